/* A 32-bit process for the bad-input test: no libc (no multilib needed),
 * pause() in a loop through int $0x80. */
void _start(void)
{
	for (;;)
		__asm__ volatile("movl $29, %%eax\n\tint $0x80" ::: "eax", "memory");
}
