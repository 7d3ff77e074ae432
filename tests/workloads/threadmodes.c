/* threadmodes: modes a thread sets for itself that no other workload sets,
 * different in each thread.
 *
 * Setup (each thread blocks every signal but SIGSYS, so that SIGTERM goes
 * to the main thread):
 *   "faults" thread   PR_SET_TSC PR_TSC_SIGSEGV (rdtsc faults),
 *                     PR_MCE_KILL early, and ARCH_SET_CPUID 0 (cpuid faults).
 *                     A CPU without CPUID faulting refuses the last (ENODEV):
 *                     no process there can be in that mode, so there is
 *                     nothing to lose; the workload says so and checks the rest.
 *   "late" thread     PR_MCE_KILL late.
 *   "dispatch" thread syscall user dispatch on (PR_SET_SYSCALL_USER_DISPATCH,
 *                     no code range exempt) with its selector byte at allow.
 * Both sleep through raw nanosleep syscalls (no vDSO: rdtsc would fault).
 *
 * With the argument "block" the dispatch thread sets its selector to block
 * once ready and spins without a syscall until stopped: a dump must be
 * refused, because each syscall ckpt made in the thread would reach its
 * SIGSYS handler.
 *
 * Verification: each thread reads back its modes (PR_GET_TSC,
 * PR_MCE_KILL_GET, ARCH_GET_CPUID); the main thread keeps the defaults;
 * dispatch is still on in the dispatch thread (a syscall made with the
 * selector at block reaches the handler, once) and no SIGSYS came before.
 */
#include "workload.h"

#include <asm/prctl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_ON 1
#endif
#define SELECTOR_ALLOW 0
#define SELECTOR_BLOCK 1

static volatile char selector = SELECTOR_ALLOW;
static volatile int sigsys_count, stop_threads;
static volatile int ready_count, have_cpuid_faulting, block_mode;
struct modes {
	int tsc, mce, cpuid;
};
static struct modes seen_faults, seen_late, seen_main;
static int dispatch_on_after, sigsys_before;

static void on_sigsys(int sig)
{
	(void)sig;
	selector = SELECTOR_ALLOW; /* this handler's own return is a syscall */
	sigsys_count++;
}

static struct modes read_modes(void)
{
	struct modes m = { -1, -1, -1 };
	prctl(PR_GET_TSC, &m.tsc, 0, 0, 0);
	m.mce = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	m.cpuid = (int)syscall(SYS_arch_prctl, ARCH_GET_CPUID, 0);
	return m;
}

static void only_sigsys(void)
{
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
}

static void nap(void)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	syscall(SYS_nanosleep, &ts, NULL);
}

/* Counted ready, then asleep until stopped; then reads its modes into `seen`. */
static void park(struct modes *seen)
{
	__atomic_add_fetch(&ready_count, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&stop_threads, __ATOMIC_ACQUIRE))
		nap();
	*seen = read_modes();
}

static void *faults_main(void *arg)
{
	(void)arg;
	only_sigsys();
	if (prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0) != 0 ||
	    prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) != 0)
		wl_die("PR_SET_TSC, PR_MCE_KILL: %s", strerror(errno));
	have_cpuid_faulting = syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) == 0;
	park(&seen_faults);
	return NULL;
}

static void *late_main(void *arg)
{
	(void)arg;
	only_sigsys();
	if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE, 0, 0) != 0)
		wl_die("PR_MCE_KILL late: %s", strerror(errno));
	park(&seen_late);
	return NULL;
}

static void *dispatch_main(void *arg)
{
	(void)arg;
	only_sigsys();
	if (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0, (char *)&selector) != 0)
		wl_die("PR_SET_SYSCALL_USER_DISPATCH: %s", strerror(errno));
	__atomic_add_fetch(&ready_count, 1, __ATOMIC_RELEASE);
	if (block_mode) {
		selector = SELECTOR_BLOCK;
		while (!__atomic_load_n(&stop_threads, __ATOMIC_ACQUIRE))
			;
		selector = SELECTOR_ALLOW;
	} else {
		while (!__atomic_load_n(&stop_threads, __ATOMIC_ACQUIRE))
			nap();
	}
	sigsys_before = sigsys_count;
	selector = SELECTOR_BLOCK;
	syscall(SYS_getppid); /* dispatched: the handler allows again */
	selector = SELECTOR_ALLOW;
	dispatch_on_after = sigsys_count - sigsys_before;
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "threadmodes");
	block_mode = argc > 2 && strcmp(argv[2], "block") == 0;
	struct sigaction sa = { 0 };
	sa.sa_handler = on_sigsys;
	if (sigaction(SIGSYS, &sa, NULL) != 0)
		wl_die("sigaction SIGSYS: %s", strerror(errno));
	pthread_t th[3];
	void *(*mains[3])(void *) = { faults_main, late_main, dispatch_main };
	for (int i = 0; i < 3; i++)
		if (pthread_create(&th[i], NULL, mains[i], NULL) != 0)
			wl_die("pthread_create failed");
	while (__atomic_load_n(&ready_count, __ATOMIC_ACQUIRE) < 3)
		wl_sleep_ms(1);
	if (!have_cpuid_faulting)
		wl_printf("this CPU can't make cpuid fault: ARCH_SET_CPUID not checked\n");

	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(5);

	__atomic_store_n(&stop_threads, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	seen_main = read_modes();
	WL_CHECK(seen_faults.tsc == PR_TSC_SIGSEGV, "faults thread: PR_GET_TSC %d, expected SIGSEGV (%d)",
		 seen_faults.tsc, PR_TSC_SIGSEGV);
	WL_CHECK(seen_faults.mce == PR_MCE_KILL_EARLY, "faults thread: PR_MCE_KILL_GET %d, expected early (%d)",
		 seen_faults.mce, PR_MCE_KILL_EARLY);
	if (have_cpuid_faulting)
		WL_CHECK(seen_faults.cpuid == 0, "faults thread: ARCH_GET_CPUID %d, expected 0 (cpuid faults)",
			 seen_faults.cpuid);
	WL_CHECK(seen_late.mce == PR_MCE_KILL_LATE, "late thread: PR_MCE_KILL_GET %d, expected late (%d)",
		 seen_late.mce, PR_MCE_KILL_LATE);
	WL_CHECK(seen_late.tsc == PR_TSC_ENABLE && seen_late.cpuid == 1,
		 "late thread: PR_GET_TSC %d, ARCH_GET_CPUID %d, expected the defaults", seen_late.tsc,
		 seen_late.cpuid);
	WL_CHECK(seen_main.tsc == PR_TSC_ENABLE && seen_main.mce == PR_MCE_KILL_DEFAULT && seen_main.cpuid == 1,
		 "main thread: PR_GET_TSC %d, PR_MCE_KILL_GET %d, ARCH_GET_CPUID %d, expected the defaults",
		 seen_main.tsc, seen_main.mce, seen_main.cpuid);
	WL_CHECK(sigsys_before == 0, "%d SIGSYS came before the check", sigsys_before);
	WL_CHECK(dispatch_on_after == 1, "dispatch thread: a blocked syscall reached the handler %d times, expected 1",
		 dispatch_on_after);
	wl_finish();
}
