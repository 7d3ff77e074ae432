/* procstate: per-process kernel state outside memory and files.
 *
 * Setup:
 *   itimers   ITIMER_REAL 30 ms (SIGALRM), ITIMER_VIRTUAL 20 ms (SIGVTALRM),
 *             ITIMER_PROF 25 ms (SIGPROF), value = interval; each handler
 *             (SA_RESTART) counts. The loop burns ~2 ms of user CPU and
 *             sleeps ~3 ms, so all three fire; ready waits until each fired.
 *   rlimits   soft limits lowered: NOFILE 777, CORE 12345 KiB, STACK 7 MiB,
 *             NPROC 4321, MSGQUEUE 99999 (if the hard limit is below the
 *             value, both are lowered: hard - hard/16 - 1, soft half of that);
 *             NICE and RTPRIO untouched; all 16 recorded after setup.
 *   personality PER_LINUX | UNAME26.
 *   prctl     DUMPABLE 0, NO_NEW_PRIVS 1, CHILD_SUBREAPER 1, PDEATHSIG SIGUSR2
 *             (a counting handler: the parent may exit after a restore, which
 *             fires it; reported, not a failure), THP_DISABLE 1,
 *             TIMERSLACK 123456 ns, NAME "procstate-x".
 *   umask     0027.
 *   /proc/self oom_score_adj 345, coredump_filter 0x5b.
 * Verification: each itimer has the same it_interval and is armed
 * (it_value > 0; ITIMER_REAL it_value <= it_interval, the CPU ones within two
 * intervals since arming adds a tick); after burning 300 ms of CPU each
 * counter has grown by >= 3 (expected ~10-15). All 16 rlimits identical to
 * setup, and the lowered ones as intended. personality(0xffffffff) ==
 * UNAME26 and uname().release starts with "2.6.". Each prctl reads back via
 * its PR_GET_* (and /proc/self/comm); umask() returns 027 and then the value
 * just set; /proc/self/oom_score_adj and coredump_filter read back.
 */
#include "workload.h"

#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>

#define NRLIM 16
#define TIMERSLACK_NS 123456
#define PROC_NAME "procstate-x"

static const char *const rlim_names[NRLIM] = {
	"CPU",	  "FSIZE",   "DATA",  "STACK",	    "CORE",	"RSS",	"NPROC",  "NOFILE",
	"MEMLOCK", "AS",      "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
};

struct itimer_def {
	int which, sig;
	const char *name;
	long interval_us;
};

static const struct itimer_def itimers[3] = {
	{ ITIMER_REAL, SIGALRM, "ITIMER_REAL", 30000 },
	{ ITIMER_VIRTUAL, SIGVTALRM, "ITIMER_VIRTUAL", 20000 },
	{ ITIMER_PROF, SIGPROF, "ITIMER_PROF", 25000 },
};

static volatile sig_atomic_t itimer_count[3];
static volatile sig_atomic_t pdeath_count;
static struct rlimit rlim_at_setup[NRLIM];
static struct rlimit rlim_wanted[NRLIM];
static int rlim_set[NRLIM];
static uint64_t loops;
static volatile uint64_t burn_sink;

static void on_itimer(int sig)
{
	for (int i = 0; i < 3; i++)
		if (itimers[i].sig == sig)
			itimer_count[i]++;
}

static void on_pdeath(int sig)
{
	(void)sig;
	pdeath_count++;
}

static void install(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(sig, &sa, NULL) != 0)
		wl_die("sigaction(%d): %s", sig, strerror(errno));
}

static int64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Burn about ms milliseconds of CPU, nearly all of it in user mode (so that
 * ITIMER_VIRTUAL advances, not only ITIMER_PROF). */
static void burn_cpu_ms(long ms)
{
	int64_t end = cpu_ns() + ms * 1000000LL;
	uint64_t x = burn_sink;
	while (cpu_ns() < end) {
		for (int i = 0; i < 20000; i++)
			x = wl_mix64(x);
		burn_sink = x;
	}
}

static long tv_us(const struct timeval *tv)
{
	return (long)tv->tv_sec * 1000000L + (long)tv->tv_usec;
}

/* Lower the soft limit of res to want; if the hard limit is below want, lower
 * both (raising a hard limit is not allowed). */
static void lower_rlimit(int res, rlim_t want)
{
	struct rlimit r;
	if (getrlimit(res, &r) != 0)
		wl_die("getrlimit(%s): %s", rlim_names[res], strerror(errno));
	if (r.rlim_max == RLIM_INFINITY || r.rlim_max >= want) {
		r.rlim_cur = want;
	} else {
		if (r.rlim_max >= 2)
			r.rlim_max -= r.rlim_max / 16 + 1;
		r.rlim_cur = r.rlim_max / 2;
	}
	if (setrlimit(res, &r) != 0)
		wl_die("setrlimit(%s, %llu/%llu): %s", rlim_names[res],
		       (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max,
		       strerror(errno));
	rlim_wanted[res] = r;
	rlim_set[res] = 1;
}

static void fmt_rlim(char *buf, size_t cap, rlim_t v)
{
	if (v == RLIM_INFINITY)
		snprintf(buf, cap, "unlimited");
	else
		snprintf(buf, cap, "%llu", (unsigned long long)v);
}

static int prctl_get_int(int option, int *out)
{
	*out = -1;
	return prctl(option, (unsigned long)out, 0, 0, 0);
}

#define OOM_SCORE_ADJ "345"
#define COREDUMP_FILTER "0x5b"

static void write_proc(const char *name, const char *value)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/%s", name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, value, strlen(value)) != (ssize_t)strlen(value))
		wl_die("write %s to %s: %s", value, path, strerror(errno));
	close(fd);
}

/* The file's first line, without its newline. */
static void read_proc(const char *name, char *buf, size_t n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/%s", name);
	ssize_t got = wl_read_file(path, buf, n - 1);
	buf[got > 0 ? got : 0] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "procstate");

	/* Interval timers. */
	for (int i = 0; i < 3; i++)
		install(itimers[i].sig, on_itimer);
	install(SIGUSR2, on_pdeath);
	for (int i = 0; i < 3; i++) {
		struct itimerval v;
		v.it_interval.tv_sec = 0;
		v.it_interval.tv_usec = itimers[i].interval_us;
		v.it_value = v.it_interval;
		if (setitimer(itimers[i].which, &v, NULL) != 0)
			wl_die("setitimer(%s): %s", itimers[i].name, strerror(errno));
	}

	/* Resource limits. */
	lower_rlimit(RLIMIT_NOFILE, 777);
	lower_rlimit(RLIMIT_CORE, 12345 * 1024);
	lower_rlimit(RLIMIT_STACK, 7 << 20);
	lower_rlimit(RLIMIT_NPROC, 4321);
	lower_rlimit(RLIMIT_MSGQUEUE, 99999);

	/* Personality. */
	if (personality(PER_LINUX | UNAME26) == -1)
		wl_die("personality: %s", strerror(errno));
	if (personality(0xffffffff) != (PER_LINUX | UNAME26))
		wl_die("personality reads back %#x", personality(0xffffffff));

	/* prctl. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		wl_die("PR_SET_DUMPABLE: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		wl_die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		wl_die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0) != 0)
		wl_die("PR_SET_PDEATHSIG: %s", strerror(errno));
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
		wl_die("PR_SET_THP_DISABLE: %s", strerror(errno));
	if (prctl(PR_SET_TIMERSLACK, TIMERSLACK_NS, 0, 0, 0) != 0)
		wl_die("PR_SET_TIMERSLACK: %s", strerror(errno));
	if (prctl(PR_SET_NAME, PROC_NAME, 0, 0, 0) != 0)
		wl_die("PR_SET_NAME: %s", strerror(errno));
	umask(0027);
	write_proc("oom_score_adj", OOM_SCORE_ADJ);
	write_proc("coredump_filter", COREDUMP_FILTER);

	for (int res = 0; res < NRLIM; res++)
		if (getrlimit(res, &rlim_at_setup[res]) != 0)
			wl_die("getrlimit(%d): %s", res, strerror(errno));

	/* Every itimer fires before we call ourselves ready. */
	for (int n = 0; itimer_count[0] < 2 || itimer_count[1] < 2 || itimer_count[2] < 2; n++) {
		if (n > 5000)
			wl_die("itimers did not fire: real %d, virtual %d, prof %d",
			       (int)itimer_count[0], (int)itimer_count[1], (int)itimer_count[2]);
		burn_cpu_ms(2);
		wl_sleep_ms(3);
	}

	wl_ready();

	while (!wl_stop) {
		loops++;
		burn_cpu_ms(2);
		wl_sleep_ms(3);
	}

	/* 1. Interval timers: settings. A fired ITIMER_REAL reads 0 until its
	 * SIGALRM is dequeued (and re-arms it), so retry a 0 a few times. */
	for (int i = 0; i < 3; i++) {
		const struct itimer_def *d = &itimers[i];
		struct itimerval v;
		int rc = -1;
		for (int tries = 0; tries < 10; tries++) {
			rc = getitimer(d->which, &v);
			if (rc != 0 || v.it_value.tv_sec != 0 || v.it_value.tv_usec != 0)
				break;
			wl_sleep_ms(1);
		}
		if (rc != 0) {
			wl_fail("getitimer(%s): %s", d->name, strerror(errno));
			continue;
		}
		long iv = tv_us(&v.it_interval), val = tv_us(&v.it_value);
		WL_CHECK(iv == d->interval_us, "%s it_interval: expected %ld us, got %ld us", d->name,
			 d->interval_us, iv);
		WL_CHECK(val > 0, "%s not armed: it_value 0 (it_interval %ld us)", d->name, iv);
		if (d->which == ITIMER_REAL)
			WL_CHECK(val <= d->interval_us,
				 "%s it_value %ld us > it_interval %ld us", d->name, val,
				 d->interval_us);
		else
			WL_CHECK(val <= 2 * d->interval_us,
				 "%s it_value %ld us > 2 * it_interval %ld us", d->name, val,
				 d->interval_us);
	}

	/* 2. Interval timers: still firing. */
	int before[3], after[3];
	for (int i = 0; i < 3; i++)
		before[i] = itimer_count[i];
	burn_cpu_ms(300);
	for (int i = 0; i < 3; i++)
		after[i] = itimer_count[i];
	wl_printf("itimer signals during 300 ms CPU burn: real %d (%d->%d), virtual %d (%d->%d), prof %d (%d->%d)\n",
		  after[0] - before[0], before[0], after[0], after[1] - before[1], before[1],
		  after[1], after[2] - before[2], before[2], after[2]);
	for (int i = 0; i < 3; i++)
		WL_CHECK(after[i] - before[i] >= 3,
			 "%s: %s count grew by %d during 300 ms of CPU, expected >= 3 (%d->%d)",
			 itimers[i].name, sigabbrev_np(itimers[i].sig), after[i] - before[i],
			 before[i], after[i]);

	/* 3. Resource limits: identical to setup, and as intended. */
	for (int res = 0; res < NRLIM; res++) {
		struct rlimit r;
		if (getrlimit(res, &r) != 0) {
			wl_fail("getrlimit(RLIMIT_%s): %s", rlim_names[res], strerror(errno));
			continue;
		}
		const struct rlimit *o = &rlim_at_setup[res];
		if (r.rlim_cur != o->rlim_cur || r.rlim_max != o->rlim_max) {
			char ec[32], em[32], ac[32], am[32];
			fmt_rlim(ec, sizeof(ec), o->rlim_cur);
			fmt_rlim(em, sizeof(em), o->rlim_max);
			fmt_rlim(ac, sizeof(ac), r.rlim_cur);
			fmt_rlim(am, sizeof(am), r.rlim_max);
			wl_fail("RLIMIT_%s: expected soft %s hard %s, got soft %s hard %s",
				rlim_names[res], ec, em, ac, am);
		}
		if (rlim_set[res] && (o->rlim_cur != rlim_wanted[res].rlim_cur ||
				      o->rlim_max != rlim_wanted[res].rlim_max))
			wl_fail("RLIMIT_%s at setup was %llu/%llu, not the %llu/%llu set",
				rlim_names[res], (unsigned long long)o->rlim_cur,
				(unsigned long long)o->rlim_max,
				(unsigned long long)rlim_wanted[res].rlim_cur,
				(unsigned long long)rlim_wanted[res].rlim_max);
	}

	/* 4. Personality. */
	int pers = personality(0xffffffff);
	WL_CHECK(pers == (PER_LINUX | UNAME26), "personality: expected %#x, got %#x",
		 PER_LINUX | UNAME26, pers);
	struct utsname u;
	if (uname(&u) != 0)
		wl_fail("uname: %s", strerror(errno));
	else
		WL_CHECK(strncmp(u.release, "2.6.", 4) == 0,
			 "uname release: expected 2.6.* (UNAME26), got %s", u.release);

	/* 5. prctl. */
	int v;
	v = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	WL_CHECK(v == 0, "PR_GET_DUMPABLE: expected 0, got %d", v);
	v = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	WL_CHECK(v == 1, "PR_GET_NO_NEW_PRIVS: expected 1, got %d", v);
	if (prctl_get_int(PR_GET_CHILD_SUBREAPER, &v) != 0)
		wl_fail("PR_GET_CHILD_SUBREAPER: %s", strerror(errno));
	else
		WL_CHECK(v == 1, "PR_GET_CHILD_SUBREAPER: expected 1, got %d", v);
	if (prctl_get_int(PR_GET_PDEATHSIG, &v) != 0)
		wl_fail("PR_GET_PDEATHSIG: %s", strerror(errno));
	else
		WL_CHECK(v == SIGUSR2, "PR_GET_PDEATHSIG: expected %d (SIGUSR2), got %d", SIGUSR2,
			 v);
	v = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	WL_CHECK(v == 1, "PR_GET_THP_DISABLE: expected 1, got %d", v);
	v = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	WL_CHECK(v == TIMERSLACK_NS, "PR_GET_TIMERSLACK: expected %d, got %d", TIMERSLACK_NS, v);
	char name[17] = { 0 };
	if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0)
		wl_fail("PR_GET_NAME: %s", strerror(errno));
	else
		WL_CHECK(strcmp(name, PROC_NAME) == 0, "PR_GET_NAME: expected \"%s\", got \"%s\"",
			 PROC_NAME, name);
	static char comm[64];
	ssize_t n = wl_read_file("/proc/self/comm", comm, sizeof(comm) - 1);
	if (n < 0) {
		wl_fail("read /proc/self/comm: %s", strerror(errno));
	} else {
		comm[n] = '\0';
		if (n > 0 && comm[n - 1] == '\n')
			comm[n - 1] = '\0';
		WL_CHECK(strcmp(comm, PROC_NAME) == 0,
			 "/proc/self/comm: expected \"%s\", got \"%s\"", PROC_NAME, comm);
	}

	/* 6. umask: read it by setting 0777, then put it back (reads 0777). */
	mode_t m1 = umask(0777);
	mode_t m2 = umask(m1);
	WL_CHECK(m1 == 0027, "umask: expected 0027, got %04o", (unsigned)m1);
	WL_CHECK(m2 == 0777, "umask after umask(0777): expected 0777, got %04o", (unsigned)m2);

	/* 7. /proc/self numbers. */
	char buf[64];
	read_proc("oom_score_adj", buf, sizeof buf);
	WL_CHECK(strcmp(buf, OOM_SCORE_ADJ) == 0, "oom_score_adj: expected %s, got '%s'", OOM_SCORE_ADJ, buf);
	read_proc("coredump_filter", buf, sizeof buf);
	WL_CHECK(strtoul(buf, NULL, 16) == strtoul(COREDUMP_FILTER, NULL, 16), "coredump_filter: expected %s, got '%s'",
		 COREDUMP_FILTER, buf);

	if (pdeath_count)
		wl_printf("parent-death signal SIGUSR2 received %d times\n", (int)pdeath_count);
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
