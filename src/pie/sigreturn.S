/*
 * The one way out of every blob: rdi = sigframe (rsp at rt_sigreturn).
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
 * The barrier of syscall-trace completion: tgkill(rdi = tgid, rsi = tid,
 * SIGSTOP). The thread runs untraced up to here; its signal-delivery stop
 * at rst_stop_syscall + 2 is where ckpt starts tracing its syscalls. SIGSTOP
 * because it is the one signal that stops a thread whose signals are all
 * blocked without forcing anything on its dispositions (a forced SIGTRAP
 * would reset an ignored or blocked one; pitfall 5).
 */
	.globl rst_stop
	.type rst_stop, @function
rst_stop:
	movl $19, %edx		/* SIGSTOP */
	movl $234, %eax		/* __NR_tgkill */
	.globl rst_stop_syscall
rst_stop_syscall:
	syscall
	ret
	.section .note.GNU-stack,"",@progbits
