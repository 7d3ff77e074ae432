/* trap: SIGTRAP blocked and pending survives a checkpoint, kept apart from
 * ckpt's own breakpoint and trace traps; so does SIGCONT, which the SIGSTOP
 * that syscall-trace completion stops each thread with would flush.
 *
 * Every thread blocks SIGTRAP and SIGCONT. Then, for each of the two: one for
 * the process, sent with sigqueue() (SI_QUEUE, value 4711), one for the main
 * thread with tgkill (SI_TKILL), and one for the worker thread with tgkill.
 * The worker spins.
 *
 * Verification (on SIGTERM): each thread still has its own SIGTRAP and SIGCONT
 * pending (sigtimedwait returns them, SI_TKILL, sent by this pid), the process
 * ones are still pending after that (SI_QUEUE, value 4711), then nothing
 * more; both are still blocked everywhere.
 *
 * Argument "ignore": SIGTRAP is also ignored (SIG_IGN; blocked, its signals
 * still stay pending), and still is at the end. ckpt then completes the
 * restore without a breakpoint or int3, whose forced SIGTRAP would reset it.
 */
#include "workload.h"

#include <pthread.h>
#include <sys/syscall.h>

static volatile int stop_worker;
static volatile int worker_ready;
static pid_t worker_tid;
static char worker_err[256];

/* Takes one pending SIGTRAP, without waiting, and checks where it came from
 * (the raw syscall: glibc's sigtimedwait turns SI_TKILL into SI_USER). */
static int take_sig(int sig, int code, int value, char *err, size_t n)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	siginfo_t si;
	struct timespec zero = { 0, 0 };
	if (syscall(SYS_rt_sigtimedwait, &s, &si, &zero, _NSIG / 8) != sig) {
		snprintf(err, n, "no %s pending (%s)", strsignal(sig), wl_errname(errno));
		return 0;
	}
	if (si.si_code != code || si.si_pid != getpid() ||
	    (code == SI_QUEUE && si.si_value.sival_int != value)) {
		snprintf(err, n, "%s with code %d pid %d value %d, expected code %d pid %d value %d", strsignal(sig),
			 si.si_code, si.si_pid, si.si_value.sival_int, code, getpid(), value);
		return 0;
	}
	return 1;
}

static int take_trap(int code, int value, char *err, size_t n)
{
	return take_sig(SIGTRAP, code, value, err, n) && take_sig(SIGCONT, code, value, err, n);
}

static int trap_blocked(void)
{
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, SIGTRAP) && sigismember(&cur, SIGCONT);
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = (pid_t)syscall(SYS_gettid);
	worker_ready = 1;
	while (!stop_worker)
		;
	if (!trap_blocked())
		snprintf(worker_err, sizeof worker_err, "worker: SIGTRAP or SIGCONT no longer blocked");
	else
		take_trap(SI_TKILL, 0, worker_err, sizeof worker_err);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "trap");
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGTRAP);
	sigaddset(&s, SIGCONT);
	if (pthread_sigmask(SIG_BLOCK, &s, NULL) != 0)
		wl_die("block SIGTRAP and SIGCONT");
	const int ignore = argc > 2 && strcmp(argv[2], "ignore") == 0;
	if (ignore && signal(SIGTRAP, SIG_IGN) == SIG_ERR)
		wl_die("ignore SIGTRAP: %s", strerror(errno));
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL) != 0)
		wl_die("pthread_create");
	while (!worker_ready)
		wl_sleep_ms(1);
	union sigval v = { .sival_int = 4711 };
	for (int sig = SIGTRAP; sig; sig = sig == SIGTRAP ? SIGCONT : 0) {
		if (sigqueue(getpid(), sig, v) != 0)
			wl_die("sigqueue %s: %s", strsignal(sig), strerror(errno));
		if (syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig) != 0 ||
		    syscall(SYS_tgkill, getpid(), worker_tid, sig) != 0)
			wl_die("tgkill %s: %s", strsignal(sig), strerror(errno));
	}
	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(5);

	char err[256] = "";
	stop_worker = 1;
	pthread_join(th, NULL);
	WL_CHECK(worker_err[0] == 0, "%s", worker_err);
	WL_CHECK(trap_blocked(), "main: SIGTRAP or SIGCONT no longer blocked");
	struct sigaction now;
	sigaction(SIGTRAP, NULL, &now);
	WL_CHECK((now.sa_handler == SIG_IGN) == ignore, "SIGTRAP's handler is %p", (void *)now.sa_handler);
	WL_CHECK(take_trap(SI_TKILL, 0, err, sizeof err), "main thread's: %s", err);
	WL_CHECK(take_trap(SI_QUEUE, 4711, err, sizeof err), "process's: %s", err);
	sigset_t pend;
	sigpending(&pend);
	WL_CHECK(!sigismember(&pend, SIGTRAP) && !sigismember(&pend, SIGCONT), "a SIGTRAP or SIGCONT too many is pending");
	wl_finish();
}
