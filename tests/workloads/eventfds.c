/* eventfds: eventfd, signalfd and timerfd, with their state.
 *
 * Setup (SIGUSR1 and SIGRTMIN+2 blocked):
 *   ev    eventfd(0, EFD_NONBLOCK), then 0x123456789ab written (above 2^32);
 *   evdup dup(ev): the same description;
 *   sem   eventfd(3, EFD_SEMAPHORE), blocking;
 *   sfd   signalfd of SIGUSR1 and SIGRTMIN+2, SFD_NONBLOCK; SIGRTMIN+2 queued
 *         to ourselves (sigqueue, value 77) and left pending;
 *   tper  CLOCK_MONOTONIC, every 20 ms, TFD_NONBLOCK, never read before
 *         verification;
 *   tset  CLOCK_MONOTONIC, disarmed, 12345 ticks set (TFD_IOC_SET_TICKS);
 *   tone  CLOCK_BOOTTIME, one-shot 10 ms, expired (50 ms wait) and not read;
 *   tlong CLOCK_MONOTONIC, relative one-shot 3600 s, with a 7 s interval;
 *   trt   CLOCK_REALTIME, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, due at
 *         setup + 3600 s;
 *   tabs  CLOCK_MONOTONIC, TFD_TIMER_ABSTIME, due at ready + 1.5 s, blocking;
 *   talm  CLOCK_BOOTTIME_ALARM, relative 3600 s (where the kernel lets us
 *         make one: CAP_WAKE_ALARM; else left out, and said so).
 * Each fd's F_GETFL and its fdinfo lines of state (eventfd-semaphore,
 * sigmask, clockid, settime flags) are recorded.
 * Verification: F_GETFL and those lines unchanged. evdup reads exactly
 * 0x123456789ab, then ev gives EAGAIN (shared); sem reads 1 three times and
 * is then empty (eventfd-count 0). sfd reads the SIGRTMIN+2 queued at setup
 * (SI_QUEUE, value 77, our pid and uid), then EAGAIN; a SIGUSR1 queued now
 * (value 99) is read with its siginfo. tper: interval 20 ms, at least one
 * tick waiting, then 8..40 ticks in 300 ms. tset reads exactly 12345, tone
 * exactly 1 (disarmed); tlong: interval 7 s, value <= the value at ready and
 * > 3500 s (the time a checkpoint takes does not count); trt: now + value
 * within [expiry, expiry + 50 ms]; tabs: a blocking read returns 1, not
 * before its expiry, and within 200 ms of max(expiry, start of the read);
 * talm: value in (3500 s, 3600 s].
 */
#include "workload.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#define EV_COUNT 0x123456789abULL
#define SEM_COUNT 3
#define SIG_VALUE_BEFORE 77
#define SIG_VALUE_AFTER 99
#define TPER_NS 20000000L
#define TSET_TICKS 12345ULL
#define TLONG_S 3600
#define TLONG_INTERVAL_S 7
#define TRT_S 3600
#define TABS_MS 1500
#define NS_PER_S 1000000000LL
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)

enum { EV, EVDUP, SEM, SFD, TPER, TSET, TONE, TLONG, TRT, TABS, TALM, NFDS };
static const char *const names[NFDS] = { "ev",    "evdup", "sem", "sfd", "tper", "tset",
					 "tone",  "tlong", "trt", "tabs", "talm" };
static int fds[NFDS];
static int fl[NFDS];
static char state[NFDS][256];
static int64_t trt_at, tabs_at, tlong_at_ready;
static int sigrt;

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t ts_ns(struct timespec ts)
{
	return ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* The fdinfo lines that are the fd's settings (not its counts), joined. */
static void state_of(int fd, char *out, size_t n)
{
	static const char *const keys[] = { "eventfd-semaphore:", "sigmask:", "clockid:", "settime flags:" };
	char buf[1024];
	out[0] = '\0';
	if (!wl_fdinfo(fd, buf, sizeof(buf)))
		return;
	size_t used = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!strncmp(line, keys[k], strlen(keys[k])) && used < n)
				used += (size_t)snprintf(out + used, n - used, "%s|", line);
}

/* The eventfd-count fdinfo shows (hex), or -1. */
static long long eventfd_count(int fd)
{
	char buf[1024];
	if (!wl_fdinfo(fd, buf, sizeof(buf)))
		return -1;
	char *at = strstr(buf, "eventfd-count:");
	return at ? strtoll(at + 14, NULL, 16) : -1;
}

static int64_t read_u64(int fd, const char *name)
{
	uint64_t v = 0;
	ssize_t n = read(fd, &v, sizeof(v));
	if (n != (ssize_t)sizeof(v)) {
		wl_fail("%s: read gave %zd (%s)", name, n, n < 0 ? wl_errname(errno) : "short");
		return -1;
	}
	return (int64_t)v;
}

static void expect_eagain(int fd, const char *name)
{
	char buf[sizeof(struct signalfd_siginfo)];
	ssize_t n = read(fd, buf, sizeof(buf));
	WL_CHECK(n < 0 && errno == EAGAIN, "%s: expected EAGAIN, read gave %zd (%s)", name, n,
		 n < 0 ? wl_errname(errno) : "data");
}

static void expect_siginfo(int signo, int value)
{
	struct signalfd_siginfo si;
	ssize_t n = read(fds[SFD], &si, sizeof(si));
	if (n != (ssize_t)sizeof(si)) {
		wl_fail("sfd: reading signal %d gave %zd (%s)", signo, n, n < 0 ? wl_errname(errno) : "short");
		return;
	}
	WL_CHECK((int)si.ssi_signo == signo && si.ssi_code == SI_QUEUE && si.ssi_int == value &&
			 (pid_t)si.ssi_pid == getpid() && si.ssi_uid == getuid(),
		 "sfd: expected signal %d code %d value %d pid %d uid %d, got %u code %d value %d pid %u uid %u",
		 signo, SI_QUEUE, value, getpid(), getuid(), si.ssi_signo, si.ssi_code, si.ssi_int, si.ssi_pid,
		 si.ssi_uid);
}

static int make_timer(clockid_t c, int create_flags, int settime_flags, int64_t value_ns, int64_t interval_ns,
		      const char *name)
{
	int fd = timerfd_create(c, create_flags);
	if (fd < 0)
		wl_die("timerfd_create %s: %s", name, strerror(errno));
	struct itimerspec its = { { interval_ns / NS_PER_S, interval_ns % NS_PER_S },
				  { value_ns / NS_PER_S, value_ns % NS_PER_S } };
	if (timerfd_settime(fd, settime_flags, &its, NULL) != 0)
		wl_die("timerfd_settime %s: %s", name, strerror(errno));
	return fd;
}

static void setup(void)
{
	sigrt = SIGRTMIN + 2;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, sigrt);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
		wl_die("sigprocmask: %s", strerror(errno));

	fds[EV] = eventfd(0, EFD_NONBLOCK);
	uint64_t count = EV_COUNT;
	if (fds[EV] < 0 || write(fds[EV], &count, sizeof(count)) != sizeof(count))
		wl_die("eventfd ev: %s", strerror(errno));
	fds[EVDUP] = dup(fds[EV]);
	fds[SEM] = eventfd(SEM_COUNT, EFD_SEMAPHORE);
	if (fds[EVDUP] < 0 || fds[SEM] < 0)
		wl_die("eventfd: %s", strerror(errno));

	fds[SFD] = signalfd(-1, &mask, SFD_NONBLOCK);
	if (fds[SFD] < 0)
		wl_die("signalfd: %s", strerror(errno));
	if (sigqueue(getpid(), sigrt, (union sigval){ .sival_int = SIG_VALUE_BEFORE }) != 0)
		wl_die("sigqueue: %s", strerror(errno));

	fds[TPER] = make_timer(CLOCK_MONOTONIC, TFD_NONBLOCK, 0, TPER_NS, TPER_NS, "tper");
	fds[TSET] = make_timer(CLOCK_MONOTONIC, 0, 0, 0, 0, "tset");
	uint64_t ticks = TSET_TICKS;
	if (ioctl(fds[TSET], TFD_IOC_SET_TICKS, &ticks) != 0)
		wl_die("TFD_IOC_SET_TICKS: %s", strerror(errno));
	fds[TONE] = make_timer(CLOCK_BOOTTIME, TFD_NONBLOCK, 0, 10000000, 0, "tone");
	fds[TLONG] = make_timer(CLOCK_MONOTONIC, 0, 0, TLONG_S * NS_PER_S, TLONG_INTERVAL_S * NS_PER_S, "tlong");
	trt_at = now_ns(CLOCK_REALTIME) + TRT_S * NS_PER_S;
	fds[TRT] = make_timer(CLOCK_REALTIME, 0, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, trt_at, 0, "trt");
	fds[TALM] = timerfd_create(CLOCK_BOOTTIME_ALARM, 0);
	if (fds[TALM] >= 0) {
		close(fds[TALM]);
		fds[TALM] = make_timer(CLOCK_BOOTTIME_ALARM, 0, 0, TLONG_S * NS_PER_S, 0, "talm");
	} else {
		wl_printf("no CLOCK_BOOTTIME_ALARM timerfd here (%s): left out\n", wl_errname(errno));
	}
	wl_sleep_ms(50); /* tone expires, tper ticks */

	tabs_at = now_ns(CLOCK_MONOTONIC) + TABS_MS * 1000000LL;
	fds[TABS] = make_timer(CLOCK_MONOTONIC, 0, TFD_TIMER_ABSTIME, tabs_at, 0, "tabs");
	struct itimerspec its;
	timerfd_gettime(fds[TLONG], &its);
	tlong_at_ready = ts_ns(its.it_value);
	for (int i = 0; i < NFDS; i++) {
		if (fds[i] < 0)
			continue;
		fl[i] = fcntl(fds[i], F_GETFL);
		state_of(fds[i], state[i], sizeof(state[i]));
	}
}

static void verify_eventfds(void)
{
	int64_t v = read_u64(fds[EVDUP], "evdup");
	WL_CHECK(v == (int64_t)EV_COUNT, "evdup: expected count %#llx, read %#llx", EV_COUNT, (long long)v);
	expect_eagain(fds[EV], "ev (shares evdup's count)");
	for (int i = 0; i < SEM_COUNT; i++) {
		v = read_u64(fds[SEM], "sem");
		WL_CHECK(v == 1, "sem: read %d gave %lld, expected 1 (EFD_SEMAPHORE)", i, (long long)v);
	}
	long long left = eventfd_count(fds[SEM]);
	WL_CHECK(left == 0, "sem: eventfd-count %lld after %d reads, expected 0", left, SEM_COUNT);
}

static void verify_signalfd(void)
{
	sigset_t pending;
	sigpending(&pending);
	WL_CHECK(sigismember(&pending, sigrt), "signal %d queued at setup is not pending", sigrt);
	expect_siginfo(sigrt, SIG_VALUE_BEFORE);
	expect_eagain(fds[SFD], "sfd (after the signal of setup)");
	if (sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = SIG_VALUE_AFTER }) != 0)
		wl_fail("sigqueue SIGUSR1: %s", wl_errname(errno));
	expect_siginfo(SIGUSR1, SIG_VALUE_AFTER);
}

static void verify_timerfds(void)
{
	struct itimerspec its;
	timerfd_gettime(fds[TPER], &its);
	WL_CHECK(ts_ns(its.it_interval) == TPER_NS, "tper: interval %lld ns", (long long)ts_ns(its.it_interval));
	int64_t first = read_u64(fds[TPER], "tper (ticks before)");
	WL_CHECK(first >= 1, "tper: %lld ticks waiting, expected >= 1", (long long)first);
	wl_sleep_ms(300);
	int64_t during = read_u64(fds[TPER], "tper (ticks in 300 ms)");
	WL_CHECK(during >= 8 && during <= 40, "tper: %lld ticks in 300 ms at 20 ms, expected 8..40", (long long)during);

	int64_t v = read_u64(fds[TSET], "tset");
	WL_CHECK(v == (int64_t)TSET_TICKS, "tset: read %lld ticks, expected %llu", (long long)v, TSET_TICKS);
	v = read_u64(fds[TONE], "tone");
	WL_CHECK(v == 1, "tone: read %lld ticks, expected 1", (long long)v);
	timerfd_gettime(fds[TONE], &its);
	WL_CHECK(ts_ns(its.it_value) == 0, "tone: armed again (%lld ns)", (long long)ts_ns(its.it_value));
	expect_eagain(fds[TONE], "tone");

	timerfd_gettime(fds[TLONG], &its);
	int64_t left = ts_ns(its.it_value);
	WL_CHECK(ts_ns(its.it_interval) == TLONG_INTERVAL_S * NS_PER_S, "tlong: interval %lld ns",
		 (long long)ts_ns(its.it_interval));
	WL_CHECK(left > 3500 * NS_PER_S && left <= tlong_at_ready,
		 "tlong: %lld ns left, expected in (3500 s, %lld ns] (as at ready)", (long long)left,
		 (long long)tlong_at_ready);

	timerfd_gettime(fds[TRT], &its);
	int64_t due = now_ns(CLOCK_REALTIME) + ts_ns(its.it_value);
	WL_CHECK(due >= trt_at - 1000000 && due <= trt_at + 50000000,
		 "trt: due at %lld, set for %lld (TFD_TIMER_ABSTIME)", (long long)due, (long long)trt_at);

	int64_t start = now_ns(CLOCK_MONOTONIC);
	v = read_u64(fds[TABS], "tabs");
	int64_t end = now_ns(CLOCK_MONOTONIC), expect = start > tabs_at ? start : tabs_at;
	WL_CHECK(v == 1, "tabs: read %lld ticks, expected 1", (long long)v);
	WL_CHECK(end >= tabs_at, "tabs: fired %lld ns before its absolute expiry", (long long)(tabs_at - end));
	WL_CHECK(end <= expect + 200000000, "tabs: fired %lld ms late", (long long)((end - expect) / 1000000));

	if (fds[TALM] >= 0) {
		timerfd_gettime(fds[TALM], &its);
		left = ts_ns(its.it_value);
		WL_CHECK(left > 3500 * NS_PER_S && left <= TLONG_S * NS_PER_S, "talm: %lld ns left", (long long)left);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "eventfds");
	for (int i = 0; i < NFDS; i++)
		fds[i] = -1;
	setup();
	wl_ready();
	wl_run_until_sigterm(0);

	for (int i = 0; i < NFDS; i++) {
		if (fds[i] < 0)
			continue;
		char now[256];
		int f = fcntl(fds[i], F_GETFL);
		WL_CHECK(f == fl[i], "%s (fd %d): F_GETFL %#o, expected %#o", names[i], fds[i], f, fl[i]);
		state_of(fds[i], now, sizeof(now));
		WL_CHECK(!strcmp(now, state[i]), "%s (fd %d): fdinfo '%s', expected '%s'", names[i], fds[i], now,
			 state[i]);
	}
	verify_eventfds();
	verify_signalfd();
	verify_timerfds();
	wl_finish();
}
