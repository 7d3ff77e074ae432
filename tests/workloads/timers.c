/* timers: POSIX interval timers (timer_create), ids included.
 *
 * Setup, in this order (t4 leaves a hole in the timer ids):
 *   t1  CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+3, sival_int 4242, periodic
 *       20 ms; its SA_SIGINFO handler counts, and checks si_value == 4242,
 *       si_code == SI_TIMER and si_timerid == t1's id (mismatches counted);
 *   t4  CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+3 (never armed);
 *   t2  CLOCK_REALTIME, SIGEV_SIGNAL SIGRTMIN+4, sival_ptr = &t2_target,
 *       one-shot 3600 s away (its handler only counts: it must never run);
 *   t3  CLOCK_MONOTONIC, SIGEV_NONE (sigev_signo SIGRTMIN+5, sival_int 5555),
 *       periodic 1 s;
 *   then t4 is deleted. /proc/self/timers is printed once (informational).
 *   Right before ready, t2's remaining time and CLOCK_REALTIME are read.
 * Verification: the timer_t values recorded at setup still work:
 * timer_gettime(t1) interval 20 ms, value in (0, 20 ms]; t2 interval 0, value
 * > 0 and <= the value at ready, and not earlier than originally scheduled
 * (now + value >= ready time + value at ready); t3 interval 1 s, value in
 * (0, 1 s]; timer_getoverrun(t1) >= 0; timer_gettime(t4) fails with EINVAL.
 * t1 fires >= 5 times during a 300 ms wait, and never with a wrong si_value,
 * si_code or si_timerid; SIGRTMIN+4 never arrived. /proc/self/timers lists
 * exactly the ids of t1, t2, t3, each with its signal number and sigev_value
 * ("signal: N/PTR"), "notify: signal/pid.<pid>" ("none/pid.<pid>" for t3)
 * and ClockID.
 */
#include "workload.h"

#define T1_VALUE 4242
#define T3_VALUE 5555
#define T1_PERIOD_NS 20000000L
#define T2_DELAY_S 3600
#define T3_PERIOD_S 1
#define MAX_ENTRIES 16

struct proc_timer {
	int id;
	int signo;
	unsigned long long value;
	char notify[16];
	char target[8]; /* "pid" or "tid" */
	int pid;
	int clock;
	int seen; /* bit mask of the lines seen: 1 signal, 2 notify, 4 ClockID */
};

static timer_t t1, t2, t3, t4;
static int id1, id2, id3, id4;
static int sig1, sig2, sig3;
static int t2_target = 0x7272; /* t2's sival_ptr points here */
static struct timespec t2_at_ready, real_at_ready;

static volatile sig_atomic_t t1_count, t1_bad, t2_count;
static volatile int t1_bad_value, t1_bad_code, t1_bad_timerid;
static volatile int t1_last_timerid = -1;

static char timers_buf[8192];
static struct proc_timer entries[MAX_ENTRIES];
static uint64_t loops;

static void on_t1(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	t1_count++;
	t1_last_timerid = si->si_timerid;
	if (si->si_value.sival_int != T1_VALUE || si->si_code != SI_TIMER ||
	    si->si_timerid != id1) {
		if (!t1_bad) {
			t1_bad_value = si->si_value.sival_int;
			t1_bad_code = si->si_code;
			t1_bad_timerid = si->si_timerid;
		}
		t1_bad++;
	}
}

static void on_t2(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	t2_count++;
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	if (sigaction(sig, &sa, NULL) != 0)
		wl_die("sigaction(%d): %s", sig, strerror(errno));
}

static timer_t make_timer(const char *name, clockid_t clock, int notify, int signo,
			  union sigval value)
{
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev)); /* sigev_value's upper half is shown by /proc */
	ev.sigev_notify = notify;
	ev.sigev_signo = signo;
	ev.sigev_value = value;
	timer_t t;
	if (timer_create(clock, &ev, &t) != 0)
		wl_die("timer_create(%s): %s", name, strerror(errno));
	return t;
}

static void arm(const char *name, timer_t t, time_t sec, long nsec, int periodic)
{
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = sec;
	its.it_value.tv_nsec = nsec;
	if (periodic)
		its.it_interval = its.it_value;
	if (timer_settime(t, 0, &its, NULL) != 0)
		wl_die("timer_settime(%s): %s", name, strerror(errno));
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static int64_t now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts_ns(&ts);
}

static int timer_id(timer_t t)
{
	return (int)(intptr_t)t;
}

/* Parse /proc/self/timers ("ID: N", "signal: N/PTR", "notify: KIND/pid.N",
 * "ClockID: N" per timer) into entries. Returns the number of timers, or -1
 * if the file cannot be read. Unknown lines are ignored. */
static int read_proc_timers(void)
{
	ssize_t len = wl_read_file("/proc/self/timers", timers_buf, sizeof(timers_buf) - 1);
	if (len < 0)
		return -1;
	timers_buf[len] = '\0';
	int n = 0;
	struct proc_timer *cur = NULL;
	char line[256];
	for (const char *p = timers_buf; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		if (l >= sizeof(line))
			l = sizeof(line) - 1;
		memcpy(line, p, l);
		line[l] = '\0';
		p = nl ? nl + 1 : p + strlen(p);

		int id;
		if (sscanf(line, "ID: %d", &id) == 1) {
			cur = n < MAX_ENTRIES ? &entries[n] : NULL;
			n++;
			if (cur) {
				memset(cur, 0, sizeof(*cur));
				cur->id = id;
			}
		} else if (!cur) {
			continue;
		} else if (sscanf(line, "signal: %d/%llx", &cur->signo, &cur->value) == 2) {
			cur->seen |= 1;
		} else if (sscanf(line, "notify: %15[^/]/%7[^.].%d", cur->notify, cur->target,
				  &cur->pid) == 3) {
			cur->seen |= 2;
		} else if (sscanf(line, "ClockID: %d", &cur->clock) == 1) {
			cur->seen |= 4;
		}
	}
	return n;
}

static void expect_entry(const char *name, int id, int signo, unsigned long long value,
			 const char *notify, int clock)
{
	const struct proc_timer *e = NULL;
	for (int i = 0; i < MAX_ENTRIES; i++)
		if (entries[i].seen && entries[i].id == id)
			e = &entries[i];
	int pid = (int)getpid();
	if (!e) {
		wl_fail("/proc/self/timers: %s (ID %d) missing", name, id);
		return;
	}
	if ((e->seen & 7) != 7) {
		wl_fail("/proc/self/timers: %s (ID %d) incomplete (lines seen %#x)", name, id,
			e->seen);
		return;
	}
	WL_CHECK(e->signo == signo && e->value == value,
		 "/proc/self/timers: %s (ID %d) signal: expected %d/%016llx, got %d/%016llx",
		 name, id, signo, value, e->signo, e->value);
	WL_CHECK(strcmp(e->notify, notify) == 0 && strcmp(e->target, "pid") == 0 &&
			 e->pid == pid,
		 "/proc/self/timers: %s (ID %d) notify: expected %s/pid.%d, got %s/%s.%d", name,
		 id, notify, pid, e->notify, e->target, e->pid);
	WL_CHECK(e->clock == clock, "/proc/self/timers: %s (ID %d) ClockID: expected %d, got %d",
		 name, id, clock, e->clock);
}

/* timer_gettime on a timer_t recorded at setup: it must still exist. */
static int get_timer(const char *name, timer_t t, struct itimerspec *its)
{
	if (timer_gettime(t, its) == 0)
		return 0;
	wl_fail("timer_gettime(%s, id %d): %s", name, timer_id(t), strerror(errno));
	return -1;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "timers");
	sig1 = SIGRTMIN + 3;
	sig2 = SIGRTMIN + 4;
	sig3 = SIGRTMIN + 5;
	install(sig1, on_t1);
	install(sig2, on_t2);

	/* t1 first: its handler compares against id1. */
	t1 = make_timer("t1", CLOCK_MONOTONIC, SIGEV_SIGNAL, sig1,
			(union sigval){ .sival_int = T1_VALUE });
	id1 = timer_id(t1);
	t4 = make_timer("t4", CLOCK_MONOTONIC, SIGEV_SIGNAL, sig1,
			(union sigval){ .sival_int = 4444 });
	id4 = timer_id(t4);
	t2 = make_timer("t2", CLOCK_REALTIME, SIGEV_SIGNAL, sig2,
			(union sigval){ .sival_ptr = &t2_target });
	id2 = timer_id(t2);
	t3 = make_timer("t3", CLOCK_MONOTONIC, SIGEV_NONE, sig3,
			(union sigval){ .sival_int = T3_VALUE });
	id3 = timer_id(t3);
	if (timer_delete(t4) != 0)
		wl_die("timer_delete(t4): %s", strerror(errno));
	arm("t1", t1, 0, T1_PERIOD_NS, 1);
	arm("t2", t2, T2_DELAY_S, 0, 0);
	arm("t3", t3, T3_PERIOD_S, 0, 1);

	wl_printf("timer ids: t1 %d, t4 %d (deleted), t2 %d, t3 %d\n", id1, id4, id2, id3);
	ssize_t len = wl_read_file("/proc/self/timers", timers_buf, sizeof(timers_buf) - 1);
	if (len < 0)
		wl_die("read /proc/self/timers: %s", strerror(errno));
	wl_printf("/proc/self/timers at setup:\n%.*s", (int)len, timers_buf);

	/* t1 must be firing before we call ourselves ready. */
	for (int n = 0; t1_count < 3; n++) {
		if (n > 5000)
			wl_die("t1 did not fire (%d signals)", (int)t1_count);
		wl_sleep_ms(5);
	}
	if (t1_bad)
		wl_die("t1 signal: si_value %d, si_code %d, si_timerid %d (expected %d, %d, %d)",
		       t1_bad_value, t1_bad_code, t1_bad_timerid, T1_VALUE, SI_TIMER, id1);
	struct itimerspec its;
	if (timer_gettime(t2, &its) != 0)
		wl_die("timer_gettime(t2): %s", strerror(errno));
	clock_gettime(CLOCK_REALTIME, &real_at_ready);
	t2_at_ready = its.it_value;
	if (ts_ns(&t2_at_ready) <= 0)
		wl_die("t2 not armed");

	wl_ready();

	while (!wl_stop) {
		loops++;
		wl_sleep_ms(5);
	}

	/* 1. The same timer_t values, the same settings. */
	if (get_timer("t1", t1, &its) == 0) {
		int64_t iv = ts_ns(&its.it_interval), val = ts_ns(&its.it_value);
		WL_CHECK(iv == T1_PERIOD_NS, "t1 interval: expected %ld ns, got %lld ns",
			 T1_PERIOD_NS, (long long)iv);
		WL_CHECK(val > 0 && val <= T1_PERIOD_NS,
			 "t1 value: expected in (0, %ld] ns, got %lld ns", T1_PERIOD_NS,
			 (long long)val);
	}
	int overrun = timer_getoverrun(t1);
	WL_CHECK(overrun >= 0, "timer_getoverrun(t1): %d (%s)", overrun,
		 overrun < 0 ? strerror(errno) : "");
	if (get_timer("t2", t2, &its) == 0) {
		int64_t now = now_ns(CLOCK_REALTIME);
		int64_t iv = ts_ns(&its.it_interval), val = ts_ns(&its.it_value);
		int64_t ready_val = ts_ns(&t2_at_ready);
		WL_CHECK(iv == 0, "t2 interval: expected 0, got %lld ns", (long long)iv);
		WL_CHECK(val > 0 && val <= ready_val,
			 "t2 value: expected in (0, %lld] ns (value at ready), got %lld ns",
			 (long long)ready_val, (long long)val);
		/* Expiry may move later (time spent dumped), never earlier; 10 ms
		 * of slack for the two clock reads around the timer_gettime. */
		int64_t orig_expiry = ts_ns(&real_at_ready) + ready_val;
		WL_CHECK(now + val >= orig_expiry - 10000000LL,
			 "t2 expires %lld ns earlier than scheduled at setup (value %lld ns)",
			 (long long)(orig_expiry - (now + val)), (long long)val);
	}
	if (get_timer("t3", t3, &its) == 0) {
		int64_t iv = ts_ns(&its.it_interval), val = ts_ns(&its.it_value);
		WL_CHECK(iv == T3_PERIOD_S * 1000000000LL, "t3 interval: expected %d s, got %lld ns",
			 T3_PERIOD_S, (long long)iv);
		WL_CHECK(val > 0 && val <= T3_PERIOD_S * 1000000000LL,
			 "t3 value: expected in (0, %d s], got %lld ns", T3_PERIOD_S,
			 (long long)val);
	}
	if (timer_gettime(t4, &its) == 0)
		wl_fail("deleted t4 (id %d) exists again: interval %lld ns, value %lld ns", id4,
			(long long)ts_ns(&its.it_interval), (long long)ts_ns(&its.it_value));
	else
		WL_CHECK(errno == EINVAL, "timer_gettime(deleted t4, id %d): expected EINVAL, got %s",
			 id4, strerror(errno));

	/* 2. t1 keeps firing, with the right siginfo; t2 never fired. */
	int before = t1_count;
	int64_t start = now_ns(CLOCK_MONOTONIC);
	while (now_ns(CLOCK_MONOTONIC) - start < 300000000LL)
		wl_sleep_ms(10);
	int after = t1_count;
	wl_printf("t1 signals: %d in total, %d during the 300 ms wait; overrun %d\n", after,
		  after - before, overrun);
	WL_CHECK(after - before >= 5, "t1 fired %d times during 300 ms, expected >= 5 (%d->%d)",
		 after - before, before, after);
	WL_CHECK(t1_bad == 0,
		 "t1 signal wrong %d times (of %d), first: si_value %d, si_code %d, si_timerid %d (expected %d, %d (SI_TIMER), %d)",
		 (int)t1_bad, after, t1_bad_value, t1_bad_code, t1_bad_timerid, T1_VALUE,
		 SI_TIMER, id1);
	WL_CHECK(t1_last_timerid == id1, "t1 last si_timerid: expected %d, got %d", id1,
		 t1_last_timerid);
	WL_CHECK(t2_count == 0, "t2's signal SIGRTMIN+4 arrived %d times", (int)t2_count);

	/* 3. /proc/self/timers: exactly t1, t2, t3. */
	int n = read_proc_timers();
	if (n < 0) {
		wl_fail("read /proc/self/timers: %s", strerror(errno));
	} else {
		char ids[256];
		size_t il = 0;
		ids[0] = '\0';
		for (int i = 0; i < n && i < MAX_ENTRIES && il < sizeof(ids); i++)
			il += (size_t)snprintf(ids + il, sizeof(ids) - il, "%s%d", i ? "," : "",
					       entries[i].id);
		int dup = 0;
		for (int i = 0; i < n && i < MAX_ENTRIES; i++)
			for (int j = 0; j < i; j++)
				dup |= entries[i].id == entries[j].id;
		WL_CHECK(n == 3 && !dup, "/proc/self/timers: expected IDs {%d,%d,%d}, got %d: {%s}",
			 id1, id2, id3, n, ids);
		expect_entry("t1", id1, sig1, T1_VALUE, "signal", CLOCK_MONOTONIC);
		expect_entry("t2", id2, sig2, (unsigned long long)(uintptr_t)&t2_target, "signal",
			     CLOCK_REALTIME);
		expect_entry("t3", id3, sig3, T3_VALUE, "none", CLOCK_MONOTONIC);
		for (int i = 0; i < n && i < MAX_ENTRIES; i++)
			WL_CHECK(entries[i].id == id1 || entries[i].id == id2 ||
					 entries[i].id == id3,
				 "/proc/self/timers: unexpected timer ID %d (signal %d, notify %s, ClockID %d)",
				 entries[i].id, entries[i].signo, entries[i].notify,
				 entries[i].clock);
	}
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
