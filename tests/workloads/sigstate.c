/* sigstate: per-thread signal state — alternate signal stacks and
 * thread-private pending signals — survives restore.
 *
 * Setup: the main thread and one worker each install their own sigaltstack
 * (different sizes); SIGRTMIN+6 has an SA_ONSTACK|SA_SIGINFO handler. The
 * worker blocks SIGRTMIN+6, and the main thread queues it to the worker
 * alone (rt_tgsigqueueinfo, si_value 6161): pending in that thread's private
 * queue across the checkpoint.
 *
 * Verification: each thread still has its own alternate stack; the worker
 * unblocks and takes the signal exactly once, with its value, in the worker
 * thread and on the worker's alternate stack.
 */
#include "workload.h"

#include <pthread.h>
#include <sys/syscall.h>

#define SIG (SIGRTMIN + 6)
static char main_stack[64 * 1024], worker_stack[96 * 1024];
static volatile int worker_tid, handled, handled_value, handled_tid, handled_on_stack;
static volatile int go_verify, worker_done;
static char worker_report[512];

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	char here;
	handled++;
	handled_value = si->si_value.sival_int;
	handled_tid = gettid();
	handled_on_stack = &here >= worker_stack && &here < worker_stack + sizeof worker_stack;
}

static int check_altstack(const char *who, char *base, size_t size, char *out, size_t n)
{
	stack_t ss;
	if (sigaltstack(NULL, &ss) != 0)
		return snprintf(out, n, "%s: sigaltstack: %s", who, strerror(errno));
	if (ss.ss_sp != base || ss.ss_size != size || (ss.ss_flags & SS_DISABLE))
		return snprintf(out, n, "%s: alternate stack %p+%zu flags %d, expected %p+%zu", who, ss.ss_sp,
				ss.ss_size, ss.ss_flags, (void *)base, size);
	return 0;
}

static void *worker(void *arg)
{
	(void)arg;
	stack_t ss = { .ss_sp = worker_stack, .ss_size = sizeof worker_stack };
	if (sigaltstack(&ss, NULL) != 0)
		wl_die("worker sigaltstack: %s", strerror(errno));
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIG);
	sigaddset(&m, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	worker_tid = gettid();
	while (!go_verify)
		wl_sleep_ms(5);
	check_altstack("worker", worker_stack, sizeof worker_stack, worker_report, sizeof worker_report);
	sigset_t pending;
	sigpending(&pending);
	if (!worker_report[0] && !sigismember(&pending, SIG))
		snprintf(worker_report, sizeof worker_report, "worker: SIGRTMIN+6 is no longer pending");
	sigdelset(&m, SIGTERM);
	pthread_sigmask(SIG_UNBLOCK, &m, NULL);
	worker_done = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "sigstate");
	struct sigaction sa = { .sa_sigaction = handler, .sa_flags = SA_SIGINFO | SA_ONSTACK };
	sigaction(SIG, &sa, NULL);
	stack_t ss = { .ss_sp = main_stack, .ss_size = sizeof main_stack };
	if (sigaltstack(&ss, NULL) != 0)
		wl_die("sigaltstack: %s", strerror(errno));
	pthread_t t;
	pthread_create(&t, NULL, worker, NULL);
	while (!worker_tid)
		wl_sleep_ms(1);
	siginfo_t si = { .si_signo = SIG, .si_code = SI_QUEUE, .si_pid = getpid(), .si_uid = getuid() };
	si.si_value.sival_int = 6161;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), worker_tid, SIG, &si) != 0)
		wl_die("rt_tgsigqueueinfo: %s", strerror(errno));

	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(5);

	char report[512] = "";
	if (check_altstack("main", main_stack, sizeof main_stack, report, sizeof report))
		wl_fail("%s", report);
	go_verify = 1;
	for (int i = 0; i < 2000 && !worker_done; i++)
		wl_sleep_ms(1);
	pthread_join(t, NULL);
	if (worker_report[0])
		wl_fail("%s", worker_report);
	WL_CHECK(handled == 1, "SIGRTMIN+6 handled %d times, expected once", handled);
	WL_CHECK(handled_value == 6161, "si_value %d, expected 6161", handled_value);
	WL_CHECK(handled_tid == worker_tid, "handled in thread %d, expected the worker %d", handled_tid, worker_tid);
	WL_CHECK(handled_on_stack, "the handler did not run on the worker's alternate stack");
	wl_finish();
}
