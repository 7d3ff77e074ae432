/*
 * Entry points of the parasite blob.
 *
 * parasite_entry: rdi = ParasiteArgs*, rsp = top of the daemon's stack. The
 *   daemon serves commands until told to finish (rst_sigreturn, where ckpt
 *   catches it) or until its socket closes (parasite_selfcure).
 * parasite_thread_entry: rdi = ParasiteArgs*, rsi = the thread's VisitSlot,
 *   rsp = top of that slot's stack. Collects the calling thread's state, says so, and waits for ckpt
 *   to take the thread back (parasite.cc: parasite_thread_main).
 * parasite_selfcure: rdi = sigframe. The way out when ckpt is gone: the
 *   same rt_sigreturn, at an address ckpt never arms a breakpoint on, since
 *   with no tracer the breakpoint's SIGTRAP would kill the task.
 */
	.text
	.globl parasite_entry
	.type parasite_entry, @function
parasite_entry:
	andq $-16, %rsp
	call parasite_daemon
	ud2

	.globl parasite_thread_entry
	.type parasite_thread_entry, @function
parasite_thread_entry:
	andq $-16, %rsp
	call parasite_thread_main
	ud2

	.globl parasite_selfcure
	.type parasite_selfcure, @function
parasite_selfcure:
	movq %rdi, %rsp
	movl $15, %eax		/* __NR_rt_sigreturn */
	syscall
	ud2
