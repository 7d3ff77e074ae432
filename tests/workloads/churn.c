/* churn: threads created and destroyed all the time, so that a dump finds
 * threads being born and threads exiting while it seizes the process.
 *
 * C churners (argument, default 3, 1..64; 64 KiB stacks, SIGTERM blocked)
 * each loop: create one short-lived thread with a sequence number, which
 * computes wl_mix64(churner, seq) into the churner's slot, names itself and
 * exits at once; join it (pthread_join relies on the kernel clearing the TID,
 * i.e. on clear_child_tid being restored for a thread caught mid-life);
 * check the slot; count it. Every 64 rounds the churner sleeps 1 ms, so the
 * machine is not only churn.
 *
 * Main thread (the only one with SIGTERM unblocked): waits until every
 * churner has joined a few threads, ready, then sleeps in 10 ms steps
 * checking that no count ever goes backwards.
 *
 * Verification (on SIGTERM):
 *   - pid and main TID unchanged;
 *   - every churner's count advanced since ready, and again (by >= 10)
 *     during verification: threads are still created and joined after a
 *     restore;
 *   - no pthread_create/pthread_join error, no wrong result in a slot, no
 *     short-lived thread that found the wrong sequence number or churner;
 *   - churners stop and are joined; /proc/self/task then holds main alone.
 * Bounded waits count main-thread sleep iterations.
 */
#include "workload.h"

#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define MAX_CHURNERS 64
#define WAIT_ITERS 2000 /* 2000 x 5 ms of main-thread sleep */

struct churner {
	pthread_t th;
	int idx;
	uint64_t seq;    /* the current short-lived thread's number */
	uint64_t result; /* written by it */
	int who;         /* the churner index it saw */
	uint64_t done;   /* joined and checked */
	int err;         /* first pthread error */
	const char *err_what;
	uint64_t bad;    /* wrong results */
	uint64_t bad_seq, bad_got;
} __attribute__((aligned(64)));

static struct churner churners[MAX_CHURNERS];
static int nchurners = 3;
static int quit;
static uint64_t baseline[MAX_CHURNERS], last_seen[MAX_CHURNERS];
static uint64_t backwards;

static uint64_t load64(uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static uint64_t expected(int idx, uint64_t seq)
{
	return wl_mix64(((uint64_t)idx << 48) ^ seq);
}

static void *short_lived(void *arg)
{
	struct churner *c = arg;
	const uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
	prctl(PR_SET_NAME, "short");
	c->who = c->idx;
	__atomic_store_n(&c->result, expected(c->idx, seq), __ATOMIC_RELEASE);
	return (void *)(uintptr_t)seq;
}

static void set_err(struct churner *c, int e, const char *what)
{
	if (!c->err) {
		c->err = e;
		c->err_what = what;
	}
}

static void *churner_main(void *arg)
{
	struct churner *c = arg;
	char name[16];
	snprintf(name, sizeof(name), "churn%d", c->idx);
	prctl(PR_SET_NAME, name);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	while (!__atomic_load_n(&quit, __ATOMIC_ACQUIRE)) {
		const uint64_t seq = c->seq + 1;
		__atomic_store_n(&c->seq, seq, __ATOMIC_RELEASE);
		c->result = 0;
		c->who = -1;
		pthread_t t;
		int e = pthread_create(&t, &attr, short_lived, c);
		if (e == EAGAIN) { /* out of something for a moment: not a failure */
			wl_sleep_ms(1);
			continue;
		}
		if (e) {
			set_err(c, e, "pthread_create");
			wl_sleep_ms(1);
			continue;
		}
		void *ret = NULL;
		e = pthread_join(t, &ret);
		if (e) {
			set_err(c, e, "pthread_join");
			continue;
		}
		const uint64_t got = __atomic_load_n(&c->result, __ATOMIC_ACQUIRE);
		if (got != expected(c->idx, seq) || (uintptr_t)ret != seq || c->who != c->idx) {
			if (c->bad++ == 0) {
				c->bad_seq = seq;
				c->bad_got = got;
			}
		}
		__atomic_store_n(&c->done, c->done + 1, __ATOMIC_RELEASE);
		if (seq % 64 == 0)
			wl_sleep_ms(1);
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

static void watch(void)
{
	for (int i = 0; i < nchurners; i++) {
		uint64_t v = load64(&churners[i].done);
		if (v < last_seen[i])
			backwards++;
		last_seen[i] = v;
	}
}

/* Until every count is past ref[i] + by (bounded); reports those that are not. */
static void wait_advanced(const uint64_t *ref, uint64_t by, const char *what)
{
	int pending = nchurners;
	for (int it = 0; it < WAIT_ITERS && pending > 0; it++) {
		pending = 0;
		for (int i = 0; i < nchurners; i++)
			if (load64(&churners[i].done) < ref[i] + by)
				pending++;
		if (pending)
			wl_sleep_ms(5);
	}
	for (int i = 0; i < nchurners; i++) {
		uint64_t v = load64(&churners[i].done);
		WL_CHECK(v >= ref[i] + by, "churner %d joined %llu threads %s, expected >= %llu", i,
			 (unsigned long long)(v - ref[i]), what, (unsigned long long)by);
	}
}

static int count_tasks(void)
{
	static char tasks[4096];
	int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int n = 0;
	if (fd < 0)
		return -1;
	long r;
	while ((r = syscall(SYS_getdents64, fd, tasks, sizeof(tasks))) > 0)
		for (long off = 0; off < r;) {
			unsigned short reclen;
			memcpy(&reclen, tasks + off + 16, sizeof(reclen));
			n += tasks[off + 19] >= '0' && tasks[off + 19] <= '9';
			off += reclen;
		}
	close(fd);
	return n;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "churn");
	if (argc > 2) {
		char *end;
		long n = strtol(argv[2], &end, 10);
		if (*end || n < 1 || n > MAX_CHURNERS)
			wl_die("churner count '%s' not in 1..%d", argv[2], MAX_CHURNERS);
		nchurners = (int)n;
	}
	const pid_t pid = getpid();
	const pid_t main_tid = gettid();

	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int i = 0; i < nchurners; i++) {
		churners[i].idx = i;
		int e = pthread_create(&churners[i].th, &attr, churner_main, &churners[i]);
		if (e)
			wl_die("pthread_create churner %d: %s", i, wl_errname(e));
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	for (int i = 0; i < nchurners; i++) {
		for (int it = 0; load64(&churners[i].done) < 10; it++) {
			if (it > 60000)
				wl_die("churner %d did not get going within a minute", i);
			wl_sleep_ms(1);
		}
		baseline[i] = last_seen[i] = load64(&churners[i].done);
	}
	wl_printf("churn: %d churners\n", nchurners);
	wl_ready();

	while (!wl_stop) {
		watch();
		wl_sleep_ms(10);
	}
	watch();

	WL_CHECK(getpid() == pid, "pid %d, expected %d", (int)getpid(), (int)pid);
	WL_CHECK(gettid() == main_tid, "main TID %d, expected %d", (int)gettid(), (int)main_tid);
	WL_CHECK(backwards == 0, "a join count went backwards %llu times", (unsigned long long)backwards);
	wait_advanced(baseline, 1, "since ready");
	uint64_t now[MAX_CHURNERS];
	for (int i = 0; i < nchurners; i++)
		now[i] = load64(&churners[i].done);
	wait_advanced(now, 10, "during verification");

	__atomic_store_n(&quit, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < nchurners; i++) {
		struct churner *c = &churners[i];
		int e = pthread_join(c->th, NULL);
		WL_CHECK(e == 0, "pthread_join churner %d: %s", i, wl_errname(e));
		WL_CHECK(c->err == 0, "churner %d: %s: %s", i, c->err_what ? c->err_what : "?",
			 wl_errname(c->err));
		WL_CHECK(c->bad == 0, "churner %d: %llu wrong results, first seq %llu got %#llx", i,
			 (unsigned long long)c->bad, (unsigned long long)c->bad_seq,
			 (unsigned long long)c->bad_got);
	}
	/* pthread_join returns once the kernel cleared the TID, a moment before
	 * the exiting thread leaves /proc: give it up to a second. */
	int n = 0;
	for (int tries = 0; tries < 200 && (n = count_tasks()) != 1; tries++)
		wl_sleep_ms(5);
	WL_CHECK(n == 1, "/proc/self/task holds %d tasks after every thread was joined, expected 1", n);
	wl_finish();
}
