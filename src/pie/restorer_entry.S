/*
 * Entry points of the restorer blob.
 *
 * restorer_entry: rdi = RestorerArgs*, rsp = top of the boot stack.
 * restorer_thread_entry: rdi = ThreadArg*, rsp = top of that thread's stack.
 * rst_sigreturn:  rdi = sigframe (rsp at rt_sigreturn). Kept out of line and
 *                 in assembly so its address, and that of its syscall
 *                 instruction, are fixed points ckpt can put a breakpoint on
 *                 and reuse for a remote munmap.
 */
	.text
	.globl restorer_entry
	.type restorer_entry, @function
restorer_entry:
	andq $-16, %rsp
	call restorer_main
	ud2

	.globl restorer_thread_entry
	.type restorer_thread_entry, @function
restorer_thread_entry:
	andq $-16, %rsp
	call restorer_thread_main
	ud2

	.globl rst_sigreturn
	.type rst_sigreturn, @function
rst_sigreturn:
	movq %rdi, %rsp
	movl $15, %eax		/* __NR_rt_sigreturn */
	.globl rst_syscall
rst_syscall:
	syscall
	ud2
