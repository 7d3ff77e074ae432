/* rseqcs: a thread that lives inside an rseq critical section keeps its
 * restartable-sequence semantics across a checkpoint.
 *
 * The "spinner" thread arms glibc's rseq area with a critical section that
 * spins until told to stop; every time it is preempted the kernel sends it
 * to the abort handler, which counts the abort and re-arms. A dump catches
 * it inside the section almost surely. Were it resumed there with rseq_cs
 * cleared (what the kernel does when it finds a thread outside the section,
 * e.g. running ckpt's parasite, or a restorer), it would never abort again.
 *
 * Main and spinner are pinned to one CPU, so that main's busy loop preempts
 * the spinner.
 *
 * Verification (on SIGTERM): both threads are still pinned to that one CPU
 * (sched_getaffinity), and 300 ms of main's busy loop bring new aborts.
 */
#include "workload.h"

#include <pthread.h>
#include <sched.h>
#include <sys/rseq.h>
#include <time.h>

static volatile int stop_spin;
static volatile uint64_t aborts;
static volatile int spinning;

static void spin(struct rseq *rs)
{
	__asm__ volatile(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3: .long 0, 0\n\t"                 /* version, flags */
		".quad 1f, (2f - 1f), 4f\n\t"       /* start_ip, post_commit_offset, abort_ip */
		".popsection\n\t"
		"0: leaq 3b(%%rip), %%rax\n\t"
		"movq %%rax, 8(%[rs])\n\t"          /* rseq->rseq_cs */
		"1: cmpl $0, %[stop]\n\t"
		"je 1b\n\t"
		"2: movq $0, 8(%[rs])\n\t"
		"jmp 5f\n\t"
		".byte 0x0f, 0xb9, 0x3d\n\t"        /* ud1 with the signature as operand */
		".long 0x53053053\n\t"              /* RSEQ_SIG, right before abort_ip */
		"4: lock incq %[aborts]\n\t"
		"jmp 0b\n\t"
		"5:\n\t"
		: [aborts] "+m"(aborts)
		: [rs] "r"(rs), [stop] "m"(stop_spin)
		: "rax", "memory", "cc");
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		wl_die("sched_setaffinity(%d): %s", cpu, strerror(errno));
}

static int cpu;
static volatile pid_t spinner_tid;

/* Is `tid` allowed on `cpu` only? */
static int pinned(pid_t tid)
{
	cpu_set_t set;
	if (sched_getaffinity(tid, sizeof(set), &set) != 0)
		return 0;
	return CPU_COUNT(&set) == 1 && CPU_ISSET(cpu, &set);
}

static void *spinner(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "spinner");
	pin(cpu);
	spinner_tid = gettid();
	struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	spinning = 1;
	spin(rs);
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "rseqcs");
	if (__rseq_size == 0)
		wl_die("glibc did not register rseq");
	cpu_set_t allowed;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		wl_die("sched_getaffinity: %s", strerror(errno));
	while (!CPU_ISSET(cpu, &allowed))
		cpu++;
	pin(cpu);
	pthread_t t;
	if (pthread_create(&t, NULL, spinner, NULL) != 0)
		wl_die("pthread_create");
	while (!spinning)
		wl_sleep_ms(1);
	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(5);

	WL_CHECK(pinned(0), "main is no longer pinned to CPU %d alone", cpu);
	WL_CHECK(pinned(spinner_tid), "the spinner is no longer pinned to CPU %d alone", cpu);
	uint64_t before = aborts;
	for (double end = now() + 0.3; now() < end;)
		;
	uint64_t after = aborts;
	WL_CHECK(after > before, "no rseq abort in 300 ms of preemption (%llu aborts in all): the critical section "
		 "lost its rseq_cs", (unsigned long long)after);
	wl_printf("aborts %llu\n", (unsigned long long)after);
	stop_spin = 1;
	pthread_join(t, NULL);
	wl_finish();
}
