/*
 * The one way out of every blob: rdi = sigframe (rsp at rt_sigreturn),
 * rsi = the CPU the caller ran on (arch/x86_64/cpu_now.h), which ckpt reads
 * at the breakpoint to disarm it from that CPU.
 * Kept out of line and in assembly so that its address, and that of its
 * syscall instruction, are fixed points where ckpt puts a breakpoint and
 * which it reuses for a remote munmap of the blob (src/ptrace/completion.h).
 */
	.text
	.globl rst_sigreturn
	.type rst_sigreturn, @function
rst_sigreturn:
	movq %rdi, %rsp
	movl $15, %eax		/* __NR_rt_sigreturn */
	.globl rst_syscall
rst_syscall:
	syscall
	ud2

/*
 * The barrier of syscall-trace completion: the thread runs untraced up to
 * here, and stops itself for ckpt, which traces its syscalls from then on.
 * rdi = tgid, rsi = tid, edx = kBarrierTrap or kBarrierStop (pie/abi.h):
 *  - int3: a SIGTRAP forced on this thread alone, as a hardware breakpoint's
 *    is (SIGTRAP is unblocked in the restorer, and not ignored: that would
 *    make the kernel reset it to SIG_DFL; pitfall 5);
 *  - tgkill(tgid, tid, SIGSTOP) where the task ignores SIGTRAP: it stops a
 *    thread whose signals are all blocked without touching any disposition,
 *    but the kernel walks every thread of the group for each one (to flush
 *    SIGCONT), so it is quadratic in the thread count.
 * ckpt checks the stop is at rst_barrier_trap + 1 or rst_barrier_syscall + 2.
 */
	.globl rst_barrier
	.type rst_barrier, @function
rst_barrier:
	xorl %eax, %eax
	cmpl $2, %edx
	je 1f
	.globl rst_barrier_trap
rst_barrier_trap:
	int3
	ret
1:	movl $19, %edx		/* SIGSTOP */
	movl $234, %eax		/* __NR_tgkill */
	.globl rst_barrier_syscall
rst_barrier_syscall:
	syscall
	ret
	.section .note.GNU-stack,"",@progbits
