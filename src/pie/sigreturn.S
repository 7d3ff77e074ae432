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
	.section .note.GNU-stack,"",@progbits
