/*
 * Entry points of the restorer blob.
 *
 * restorer_entry: rdi = RestorerArgs*, rsp = top of the boot stack.
 * restorer_thread_entry: rdi = ThreadArg*, rsp = top of that thread's stack.
 * Both end in rst_sigreturn (sigreturn.S).
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

/* spawner_entry: rdi = SpawnPlan*, rsp = top of the spawner's stack. */
	.globl spawner_entry
	.type spawner_entry, @function
spawner_entry:
	andq $-16, %rsp
	call spawner_main
	ud2
