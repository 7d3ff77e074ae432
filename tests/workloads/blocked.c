/* blocked: threads blocked in syscalls at checkpoint time resume correctly.
 *
 * Six threads, all with every signal blocked (except where noted):
 *   condwait  pthread_cond_wait (futex) on a flag main sets only at
 *             verification; spurious returns are counted (allowed, info);
 *   timedwait pthread_cond_timedwait, CLOCK_MONOTONIC deadline 1 hour away;
 *             ETIMEDOUT before the deadline is a FAIL;
 *   nanosleep nanosleep(200 ms) in a loop counting completed sleeps; EINTR is
 *             handled by sleeping the remaining time;
 *   abstime   clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) to ~1.5 s after
 *             ready, records when it woke: never before the deadline (a
 *             checkpoint may delay it, which is fine);
 *   sigsuspend waits in sigsuspend() (SIGUSR1 unblocked only there) for a
 *             SIGUSR1 sent with pthread_kill at verification: the handler
 *             must run exactly once, in that thread, and sigsuspend return
 *             exactly once;
 *   poll      poll(NULL, 0, 300) in a loop counting timeouts.
 * Before ready, main makes sure each thread is in (or entering) its call.
 *
 * Each thread is named after its role (pthread_setname_np).
 *
 * Verification (on SIGTERM): nothing woke early (condwait/timedwait flags not
 * yet set, sigsuspend not returned, abstime not before its deadline); the
 * nanosleep and poll counters advance twice more (they run after restore);
 * then wake everything (cond signals, pthread_kill SIGUSR1, a quit flag) and
 * join with a deadline of 5 s after the last expected wake-up. Every thread
 * also checks that gettid(), its name and its blocked mask are unchanged after
 * waking.
 * Any unexpected return value or errno is a FAIL naming the errno.
 */
#include "workload.h"

#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>

#define WAIT_ITERS 2000 /* bounded waits: 2000 x 5 ms of main-thread sleep */

enum { T_CONDWAIT, T_TIMEDWAIT, T_NANOSLEEP, T_ABSTIME, T_SIGSUSPEND, T_POLL, NT };
static const char *const tname[NT] = { "condwait", "timedwait", "nanosleep",
				       "abstime",  "sigsuspend", "poll" };

struct thr {
	pthread_t th;
	pid_t tid;          /* at start */
	uint64_t mask;      /* kernel blocked mask at start */
	int in_call;        /* about to block / blocked */
	int done;           /* finished its job (set last) */
	uint64_t count;     /* completed sleeps / wake-ups */
	uint64_t eintr;     /* EINTR returns handled */
	uint64_t spurious;  /* condwait: returns before the flag */
	char err[256];      /* first unexpected result */
};

static struct thr thr[NT];
static int quit;

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond_a; /* condwait (CLOCK_REALTIME default) */
static pthread_cond_t cond_b; /* timedwait (CLOCK_MONOTONIC) */
static int go_a, go_b;
static struct timespec b_deadline;
static int b_timed_out_early;
static struct timespec b_timeout_at;

static struct timespec d_deadline;
static struct timespec d_woke;

static volatile sig_atomic_t usr1_count;
static volatile pid_t usr1_tid;

static uint64_t loops;

static uint64_t load64(uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void add64(uint64_t *p)
{
	__atomic_add_fetch(p, 1, __ATOMIC_RELEASE);
}

static int load_int(int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store_int(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static uint64_t get_blocked(void)
{
	uint64_t set = 0;
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &set, 8);
	return set;
}

static struct timespec mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static int ts_before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static struct timespec ts_add_ms(struct timespec a, long ms)
{
	a.tv_sec += ms / 1000;
	a.tv_nsec += (ms % 1000) * 1000000L;
	if (a.tv_nsec >= 1000000000L) {
		a.tv_sec++;
		a.tv_nsec -= 1000000000L;
	}
	return a;
}

/* Record the first unexpected result of thread t. */
__attribute__((format(printf, 2, 3))) static void thr_err(struct thr *t, const char *fmt, ...)
{
	if (t->err[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
}

static void thr_start(struct thr *t)
{
	t->tid = gettid();
	t->mask = get_blocked();
	int e = pthread_setname_np(pthread_self(), tname[t - thr]);
	if (e != 0)
		thr_err(t, "pthread_setname_np: %s", wl_errname(e));
}

/* After the job: identity and mask unchanged, then done. */
static void thr_end(struct thr *t)
{
	pid_t tid = gettid();
	if (tid != t->tid)
		thr_err(t, "gettid() %d, expected %d", (int)tid, (int)t->tid);
	char name[16] = "";
	int e = pthread_getname_np(pthread_self(), name, sizeof(name));
	if (e != 0)
		thr_err(t, "pthread_getname_np: %s", wl_errname(e));
	else if (strcmp(name, tname[t - thr]) != 0)
		thr_err(t, "name '%s', expected '%s'", name, tname[t - thr]);
	uint64_t m = get_blocked();
	if (m != t->mask)
		thr_err(t, "blocked mask %#llx after waking, expected %#llx",
			(unsigned long long)m, (unsigned long long)t->mask);
	store_int(&t->done, 1);
}

static void *condwait_main(void *arg)
{
	struct thr *t = arg;
	thr_start(t);
	pthread_mutex_lock(&mtx);
	store_int(&t->in_call, 1);
	while (!go_a) {
		int e = pthread_cond_wait(&cond_a, &mtx);
		if (e != 0) {
			thr_err(t, "pthread_cond_wait: %s", wl_errname(e));
			break;
		}
		if (!go_a)
			t->spurious++;
	}
	add64(&t->count);
	pthread_mutex_unlock(&mtx);
	thr_end(t);
	return NULL;
}

static void *timedwait_main(void *arg)
{
	struct thr *t = arg;
	thr_start(t);
	pthread_mutex_lock(&mtx);
	store_int(&t->in_call, 1);
	while (!go_b) {
		int e = pthread_cond_timedwait(&cond_b, &mtx, &b_deadline);
		if (e == ETIMEDOUT) {
			b_timeout_at = mono_now();
			if (ts_before(b_timeout_at, b_deadline)) {
				b_timed_out_early = 1;
				thr_err(t, "pthread_cond_timedwait: ETIMEDOUT %lld s before its deadline",
					(long long)(b_deadline.tv_sec - b_timeout_at.tv_sec));
			} else {
				thr_err(t, "pthread_cond_timedwait: deadline (1 hour) passed");
			}
			break;
		}
		if (e != 0) {
			thr_err(t, "pthread_cond_timedwait: %s", wl_errname(e));
			break;
		}
		if (!go_b)
			t->spurious++;
	}
	add64(&t->count);
	pthread_mutex_unlock(&mtx);
	thr_end(t);
	return NULL;
}

static void *nanosleep_main(void *arg)
{
	struct thr *t = arg;
	thr_start(t);
	store_int(&t->in_call, 1);
	while (!load_int(&quit) && !t->err[0]) {
		struct timespec req = { 0, 200000000L }, rem;
		for (;;) {
			if (nanosleep(&req, &rem) == 0) {
				add64(&t->count);
				break;
			}
			if (errno != EINTR) {
				thr_err(t, "nanosleep: %s", wl_errname(errno));
				break;
			}
			t->eintr++;
			if (rem.tv_sec < 0 || rem.tv_nsec < 0 || rem.tv_nsec >= 1000000000L ||
			    rem.tv_sec > req.tv_sec ||
			    (rem.tv_sec == req.tv_sec && rem.tv_nsec > req.tv_nsec)) {
				thr_err(t, "nanosleep: EINTR with bad remaining time %lld.%09ld",
					(long long)rem.tv_sec, rem.tv_nsec);
				break;
			}
			req = rem;
		}
	}
	thr_end(t);
	return NULL;
}

static void *abstime_main(void *arg)
{
	struct thr *t = arg;
	thr_start(t);
	store_int(&t->in_call, 1);
	for (;;) {
		int e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d_deadline, NULL);
		if (e == 0)
			break;
		if (e != EINTR) {
			thr_err(t, "clock_nanosleep(TIMER_ABSTIME): %s", wl_errname(e));
			break;
		}
		t->eintr++;
	}
	d_woke = mono_now();
	add64(&t->count);
	thr_end(t);
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
	usr1_tid = gettid();
}

static void *sigsuspend_main(void *arg)
{
	struct thr *t = arg;
	thr_start(t);
	sigset_t wait_set;
	sigfillset(&wait_set);
	sigdelset(&wait_set, SIGUSR1);
	/* SIGUSR1 is blocked until sigsuspend atomically unblocks it: a signal
	 * sent any time after in_call is set is not lost. */
	store_int(&t->in_call, 1);
	while (!t->err[0]) {
		int r = sigsuspend(&wait_set);
		int e = errno;
		add64(&t->count); /* returns of sigsuspend */
		if (r != -1 || e != EINTR) {
			thr_err(t, "sigsuspend returned %d (%s), expected -1 EINTR", r,
				wl_errname(e));
			break;
		}
		if (usr1_count > 0)
			break;
		/* A return without our handler having run: some other handler? */
		thr_err(t, "sigsuspend returned without SIGUSR1");
	}
	thr_end(t);
	return NULL;
}

static void *poll_main(void *arg)
{
	struct thr *t = arg;
	thr_start(t);
	store_int(&t->in_call, 1);
	while (!load_int(&quit) && !t->err[0]) {
		int r = poll(NULL, 0, 300);
		if (r == 0) {
			add64(&t->count);
		} else if (r < 0 && errno == EINTR) {
			t->eintr++;
		} else if (r < 0) {
			thr_err(t, "poll: %s", wl_errname(errno));
		} else {
			thr_err(t, "poll(NULL, 0, 300) returned %d", r);
		}
	}
	thr_end(t);
	return NULL;
}

static void *(*const thr_fn[NT])(void *) = { condwait_main, timedwait_main, nanosleep_main,
					     abstime_main,  sigsuspend_main, poll_main };

/* Bounded wait (main-thread sleep iterations) for thread i's count to reach
 * want. Returns 1 if it did. */
static int wait_count(int i, uint64_t want)
{
	for (int it = 0; it < WAIT_ITERS; it++) {
		if (load64(&thr[i].count) >= want)
			return 1;
		wl_sleep_ms(5);
	}
	return load64(&thr[i].count) >= want;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "blocked");

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		wl_die("sigaction(SIGUSR1): %s", wl_errname(errno));

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	if (pthread_cond_init(&cond_a, &ca) != 0)
		wl_die("pthread_cond_init");
	int e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (e != 0)
		wl_die("pthread_condattr_setclock: %s", wl_errname(e));
	if (pthread_cond_init(&cond_b, &ca) != 0)
		wl_die("pthread_cond_init");
	pthread_condattr_destroy(&ca);

	const pid_t pid = getpid();
	b_deadline = mono_now();
	b_deadline.tv_sec += 3600;
	/* Threads start with every signal blocked; main keeps its own mask. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < NT; i++) {
		if (i == T_ABSTIME)
			continue; /* needs the deadline, set just before ready */
		e = pthread_create(&thr[i].th, NULL, thr_fn[i], &thr[i]);
		if (e != 0)
			wl_die("pthread_create %s: %s", tname[i], wl_errname(e));
	}

	/* Each in its call. */
	for (int i = 0; i < NT; i++) {
		if (i == T_ABSTIME)
			continue;
		for (int it = 0; !load_int(&thr[i].in_call); it++) {
			if (it > 60000)
				wl_die("thread %s did not start within a minute", tname[i]);
			wl_sleep_ms(1);
		}
	}
	/* The cond waiters set in_call under the mutex and release it only by
	 * waiting: once we get it, both are in pthread_cond_(timed)wait. */
	pthread_mutex_lock(&mtx);
	pthread_mutex_unlock(&mtx);
	/* The loops block right after in_call; let them get there. */
	wait_count(T_NANOSLEEP, 1);
	wait_count(T_POLL, 1);

	d_deadline = ts_add_ms(mono_now(), 1500);
	e = pthread_create(&thr[T_ABSTIME].th, NULL, thr_fn[T_ABSTIME], &thr[T_ABSTIME]);
	if (e != 0)
		wl_die("pthread_create %s: %s", tname[T_ABSTIME], wl_errname(e));
	for (int it = 0; !load_int(&thr[T_ABSTIME].in_call); it++) {
		if (it > 60000)
			wl_die("thread abstime did not start within a minute");
		wl_sleep_ms(1);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	for (int i = 0; i < NT; i++)
		if (thr[i].err[0])
			wl_die("%s: %s", tname[i], thr[i].err);
	wl_printf("blocked: TIDs condwait %d, timedwait %d, nanosleep %d, abstime %d, "
		  "sigsuspend %d, poll %d; abstime deadline in 1.5 s\n",
		  (int)thr[T_CONDWAIT].tid, (int)thr[T_TIMEDWAIT].tid, (int)thr[T_NANOSLEEP].tid,
		  (int)thr[T_ABSTIME].tid, (int)thr[T_SIGSUSPEND].tid, (int)thr[T_POLL].tid);

	wl_ready();

	while (!wl_stop) {
		loops++;
		wl_sleep_ms(10);
	}

	WL_CHECK(getpid() == pid, "pid %d, expected %d", (int)getpid(), (int)pid);

	/* Nothing woke early. */
	WL_CHECK(!load_int(&thr[T_CONDWAIT].done) && load64(&thr[T_CONDWAIT].count) == 0,
		 "condwait: woke before being signalled");
	WL_CHECK(!load_int(&thr[T_TIMEDWAIT].done) && load64(&thr[T_TIMEDWAIT].count) == 0,
		 "timedwait: returned before being signalled (%s)",
		 thr[T_TIMEDWAIT].err[0] ? thr[T_TIMEDWAIT].err : "no error");
	WL_CHECK(load64(&thr[T_SIGSUSPEND].count) == 0 && usr1_count == 0,
		 "sigsuspend: returned %llu time(s) before SIGUSR1 was sent (handler ran %d)",
		 (unsigned long long)load64(&thr[T_SIGSUSPEND].count), (int)usr1_count);

	/* The sleep loops keep sleeping and waking after the restore. */
	const int loopers[2] = { T_NANOSLEEP, T_POLL };
	for (int k = 0; k < 2; k++) {
		int i = loopers[k];
		uint64_t c0 = load64(&thr[i].count);
		if (!wait_count(i, c0 + 2))
			wl_fail("%s: count not advancing during verification: %llu -> %llu%s%s",
				tname[i], (unsigned long long)c0,
				(unsigned long long)load64(&thr[i].count),
				thr[i].err[0] ? ", " : "", thr[i].err);
	}

	/* Wake everything. */
	store_int(&quit, 1);
	pthread_mutex_lock(&mtx);
	go_a = 1;
	go_b = 1;
	pthread_cond_signal(&cond_a);
	pthread_cond_signal(&cond_b);
	pthread_mutex_unlock(&mtx);
	e = pthread_kill(thr[T_SIGSUSPEND].th, SIGUSR1);
	if (e != 0)
		wl_fail("pthread_kill(sigsuspend, SIGUSR1): %s", wl_errname(e));

	struct timespec join_deadline = mono_now();
	if (ts_before(join_deadline, d_deadline))
		join_deadline = d_deadline;
	join_deadline.tv_sec += 5;
	int joined[NT];
	for (int i = 0; i < NT; i++) {
		e = pthread_clockjoin_np(thr[i].th, NULL, CLOCK_MONOTONIC, &join_deadline);
		joined[i] = e == 0;
		if (e != 0)
			wl_fail("%s: join: %s (count %llu, done %d)", tname[i], wl_errname(e),
				(unsigned long long)load64(&thr[i].count), load_int(&thr[i].done));
	}

	for (int i = 0; i < NT; i++)
		if (thr[i].err[0])
			wl_fail("%s: %s", tname[i], thr[i].err);

	if (joined[T_CONDWAIT])
		WL_CHECK(thr[T_CONDWAIT].count == 1, "condwait: woke %llu times",
			 (unsigned long long)thr[T_CONDWAIT].count);
	if (joined[T_TIMEDWAIT])
		WL_CHECK(thr[T_TIMEDWAIT].count == 1 && !b_timed_out_early,
			 "timedwait: woke %llu times, early timeout %d",
			 (unsigned long long)thr[T_TIMEDWAIT].count, b_timed_out_early);
	if (joined[T_ABSTIME]) {
		WL_CHECK(thr[T_ABSTIME].count == 1, "abstime: woke %llu times",
			 (unsigned long long)thr[T_ABSTIME].count);
		WL_CHECK(!ts_before(d_woke, d_deadline),
			 "abstime: woke at %lld.%09ld, before its deadline %lld.%09ld",
			 (long long)d_woke.tv_sec, d_woke.tv_nsec, (long long)d_deadline.tv_sec,
			 d_deadline.tv_nsec);
	}
	if (joined[T_SIGSUSPEND]) {
		WL_CHECK(usr1_count == 1, "sigsuspend: SIGUSR1 handler ran %d times, expected 1",
			 (int)usr1_count);
		WL_CHECK(usr1_tid == thr[T_SIGSUSPEND].tid,
			 "sigsuspend: SIGUSR1 handled in TID %d, expected %d", (int)usr1_tid,
			 (int)thr[T_SIGSUSPEND].tid);
		WL_CHECK(thr[T_SIGSUSPEND].count == 1, "sigsuspend: returned %llu times, expected 1",
			 (unsigned long long)thr[T_SIGSUSPEND].count);
	}
	WL_CHECK(loops > 0, "main loop never ran");

	wl_printf("blocked: nanosleep %llu sleeps (%llu EINTR), poll %llu timeouts (%llu EINTR), "
		  "abstime woke %lld ms after its deadline (%llu EINTR), spurious cond wake-ups "
		  "%llu/%llu\n",
		  (unsigned long long)thr[T_NANOSLEEP].count,
		  (unsigned long long)thr[T_NANOSLEEP].eintr, (unsigned long long)thr[T_POLL].count,
		  (unsigned long long)thr[T_POLL].eintr,
		  (long long)((d_woke.tv_sec - d_deadline.tv_sec) * 1000 +
			      (d_woke.tv_nsec - d_deadline.tv_nsec) / 1000000),
		  (unsigned long long)thr[T_ABSTIME].eintr,
		  (unsigned long long)thr[T_CONDWAIT].spurious,
		  (unsigned long long)thr[T_TIMEDWAIT].spurious);
	wl_finish();
}
