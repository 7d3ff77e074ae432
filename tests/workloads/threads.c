/* threads: N worker pthreads (argument, default 8) must all survive the
 * restore with their identity and per-thread state. An optional second
 * argument, MiB, adds a heap buffer of that size with an index-derived
 * pattern (checked at verification), so that a dump takes a while.
 *
 * Each worker: names itself "w<idx>" (pthread_setname_np), sets its own
 * signal mask (SIGTERM plus a subset of SIGRTMIN..SIGRTMAX that is distinct
 * for every index) and its own GS base (ARCH_SET_GS: glibc leaves it 0, so
 * a base no other thread has is kept only if restore puts it back), records
 * gettid(), pthread_self() and the address of its __thread counter (its FS
 * base), then loops: a few busy iterations, increment the TLS
 * counter, publish its value in a shared array, nanosleep 5 ms (every 4th
 * step sched_yield instead).
 *
 * Main thread (the only one with SIGTERM unblocked): waits for all workers,
 * checks /proc/self/task holds exactly the recorded TIDs, records the
 * counters as baseline, ready, then loops checking that no published counter
 * ever goes backwards.
 *
 * Verification (on SIGTERM):
 *   - pid and main tid unchanged, main thread name unchanged;
 *   - every counter advanced past its baseline;
 *   - every worker checks itself on request (flag + spin/sleep handshake,
 *     held still until main released it): gettid(), pthread_self(), TLS
 *     address, GS base, signal mask (kernel view, exactly its pattern) and name
 *     (prctl view) unchanged; while it is held, main reads the counter
 *     through the TLS address and compares it with the published value;
 *   - /proc/self/task/<tid>/comm and SigBlk match for every worker;
 *   - after release, every counter advances again within a 50 ms sample
 *     (every thread runs after the restore);
 *   - the TIDs in /proc/self/task are exactly the recorded ones;
 *   - all workers stop and are joined (pthread_join relies on the kernel
 *     clearing the TID, i.e. the restored clear_child_tid).
 * No step has a time limit except bounded waits that count main-thread sleep
 * iterations (so a frozen process does not use them up).
 */
#include "workload.h"

#include <asm/prctl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define MAX_THREADS 1024
#define NAME_LEN 16
#define WAIT_ITERS 2000 /* bounded waits: 2000 x 5 ms of main-thread sleep */

struct worker {
	pthread_t th;
	int idx;
	uint32_t pattern;   /* blocked SIGRTMIN+k for bit k */
	uint64_t want_mask; /* kernel mask: SIGTERM | pattern */
	/* written once by the worker at start */
	int setup_err;
	pid_t tid;
	pthread_t self;
	volatile uint64_t *tls_addr;
	int started;
	/* progress: last value of the TLS counter */
	uint64_t published;
	/* self-check handshake */
	int check_req;  /* main -> worker: check yourself, then hold */
	int check_done; /* worker -> main: results below are valid, holding */
	int release;    /* main -> worker: continue */
	/* self-check results */
	pid_t got_tid;
	pthread_t got_self;
	volatile uint64_t *got_tls_addr;
	uint64_t got_mask;
	uint64_t got_gs;
	int mask_err, name_err, gs_err;
	char got_name[NAME_LEN];
	uint64_t checked_value;
} __attribute__((aligned(64)));

static struct worker workers[MAX_THREADS];
static int nthreads = 8;
static int quit;

static __thread volatile uint64_t tls_counter;
static volatile uint64_t busy_sink;

static uint64_t baseline[MAX_THREADS];
static uint64_t last_seen[MAX_THREADS];
static uint64_t sample[MAX_THREADS];
static uint64_t backwards;
static int first_back_idx;
static uint64_t first_back_from, first_back_to;
static uint64_t loops;

static uint64_t *heap_buf; /* optional, see main() */
static size_t heap_words;

/* A GS base no other thread has: canonical, never dereferenced. */
static uint64_t gs_base_of(int idx)
{
	return 0x7e5700000000ull + (uint64_t)idx * 0x1000;
}

static uint64_t heap_word(size_t i)
{
	return (uint64_t)i * 0x9E3779B97F4A7C15ull ^ 0x5bd1e995u;
}

static uint64_t sigbit(int sig)
{
	return 1ULL << (sig - 1);
}

static uint64_t load64(uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static int load_int(int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store_int(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void sleep_ns(long ns)
{
	struct timespec ts = { 0, ns };
	nanosleep(&ts, NULL);
}

/* Kernel view of this thread's blocked mask. */
static int get_blocked(uint64_t *out)
{
	uint64_t set = 0;
	if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &set, 8) != 0)
		return errno;
	*out = set;
	return 0;
}

static void self_check(struct worker *w)
{
	w->got_tid = gettid();
	w->got_self = pthread_self();
	w->got_tls_addr = &tls_counter;
	w->mask_err = get_blocked(&w->got_mask);
	w->gs_err = syscall(SYS_arch_prctl, ARCH_GET_GS, &w->got_gs) != 0 ? errno : 0;
	w->name_err = pthread_getname_np(pthread_self(), w->got_name, sizeof(w->got_name));
	w->checked_value = tls_counter;
	__atomic_store_n(&w->published, tls_counter, __ATOMIC_RELEASE);
	store_int(&w->check_done, 1);
	while (!load_int(&w->release) && !load_int(&quit))
		sleep_ns(1000000);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[NAME_LEN];
	snprintf(name, sizeof(name), "w%d", w->idx);
	int e = pthread_setname_np(pthread_self(), name);
	if (e != 0)
		w->setup_err = e;

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	for (int k = 0; k <= SIGRTMAX - SIGRTMIN; k++)
		if (w->pattern & (1U << k))
			sigaddset(&set, SIGRTMIN + k);
	e = pthread_sigmask(SIG_SETMASK, &set, NULL);
	if (e != 0 && w->setup_err == 0)
		w->setup_err = e;

	if (syscall(SYS_arch_prctl, ARCH_SET_GS, gs_base_of(w->idx)) != 0 && w->setup_err == 0)
		w->setup_err = errno;

	w->tid = gettid();
	w->self = pthread_self();
	w->tls_addr = &tls_counter;
	store_int(&w->started, 1);

	while (!load_int(&quit)) {
		for (int i = 0; i < 200; i++)
			busy_sink += (uint64_t)i;
		tls_counter++;
		__atomic_store_n(&w->published, tls_counter, __ATOMIC_RELEASE);
		if (load_int(&w->check_req) && !w->check_done)
			self_check(w);
		if (tls_counter % 4 == 0)
			sched_yield();
		else
			sleep_ns(5000000);
	}
	return NULL;
}

/* The TIDs in /proc/self/task (getdents64 into a static buffer). Returns the
 * count, or -errno. */
static int list_tasks(pid_t *out, int cap)
{
	static char buf[65536];
	int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int n = 0;
	for (;;) {
		long r = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (r < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		for (long off = 0; off < r;) {
			unsigned short reclen;
			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			const char *nm = buf + off + 19;
			if (nm[0] >= '0' && nm[0] <= '9') {
				if (n < cap)
					out[n] = (pid_t)atoi(nm);
				n++;
			}
			off += reclen;
		}
	}
	close(fd);
	return n;
}

/* Compare /proc/self/task with {main_tid} + worker TIDs; report through
 * report(). Returns the number of differences. */
static int check_task_set(pid_t main_tid, void (*report)(const char *, ...), const char *when)
{
	static pid_t tasks[MAX_THREADS + 64];
	static int seen[MAX_THREADS];
	int n = list_tasks(tasks, MAX_THREADS + 64);
	if (n < 0) {
		report("%s: reading /proc/self/task: %s", when, wl_errname(-n));
		return 1;
	}
	if (n > MAX_THREADS + 64) {
		report("%s: /proc/self/task has %d entries, expected %d", when, n, nthreads + 1);
		return 1;
	}
	int bad = 0, main_seen = 0;
	memset(seen, 0, sizeof(seen));
	for (int j = 0; j < n; j++) {
		if (tasks[j] == main_tid) {
			main_seen = 1;
			continue;
		}
		int found = 0;
		for (int i = 0; i < nthreads && !found; i++)
			if (workers[i].tid == tasks[j]) {
				seen[i] = 1;
				found = 1;
			}
		if (!found && bad++ < 5)
			report("%s: unexpected TID %d in /proc/self/task", when, (int)tasks[j]);
	}
	if (!main_seen && bad++ < 5)
		report("%s: main TID %d missing from /proc/self/task", when, (int)main_tid);
	for (int i = 0; i < nthreads; i++)
		if (!seen[i] && bad++ < 5)
			report("%s: worker %d TID %d missing from /proc/self/task", when, i,
			       (int)workers[i].tid);
	if (bad > 5)
		report("%s: %d TID differences in all (%d tasks, expected %d)", when, bad, n,
		       nthreads + 1);
	return bad;
}

/* Count a failure class once per kind on the FAIL line: the first few in
 * detail, then a total. */
static int fails_of_kind;
#define KIND_FAIL(...)                          \
	do {                                    \
		if (fails_of_kind++ < 4)        \
			wl_fail(__VA_ARGS__);   \
	} while (0)
#define KIND_END(what)                                                          \
	do {                                                                    \
		if (fails_of_kind > 4)                                          \
			wl_fail("%d workers in all with %s", fails_of_kind, what); \
		fails_of_kind = 0;                                              \
	} while (0)

static void watch_progress(void)
{
	for (int i = 0; i < nthreads; i++) {
		uint64_t v = load64(&workers[i].published);
		if (v < last_seen[i]) {
			if (backwards++ == 0) {
				first_back_idx = i;
				first_back_from = last_seen[i];
				first_back_to = v;
			}
		}
		last_seen[i] = v;
	}
}

/* Wait (bounded by main-thread sleep iterations) until every worker's
 * published counter is > ref[i]; report the ones that are not. */
static void wait_all_advanced(const uint64_t *ref, const char *what)
{
	int pending = nthreads;
	for (int it = 0; it < WAIT_ITERS && pending > 0; it++) {
		pending = 0;
		for (int i = 0; i < nthreads; i++)
			if (load64(&workers[i].published) <= ref[i])
				pending++;
		if (pending > 0)
			sleep_ns(5000000);
	}
	for (int i = 0; i < nthreads; i++) {
		uint64_t v = load64(&workers[i].published);
		if (v <= ref[i])
			KIND_FAIL("worker %d (TID %d) counter not advancing %s: %llu -> %llu", i,
				  (int)workers[i].tid, what, (unsigned long long)ref[i],
				  (unsigned long long)v);
	}
	KIND_END(what);
}

static int read_proc_sigblk(pid_t tid, uint64_t *out)
{
	static char buf[8192];
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	ssize_t n = wl_read_file(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	char *p = strstr(buf, "\nSigBlk:");
	if (!p)
		return -1;
	*out = strtoull(p + 8, NULL, 16);
	return 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "threads");
	if (argc > 2) {
		char *end;
		long n = strtol(argv[2], &end, 10);
		if (*end || n < 1 || n > MAX_THREADS)
			wl_die("thread count '%s' not in 1..%d", argv[2], MAX_THREADS);
		nthreads = (int)n;
	}
	if (argc > 3) {
		char *end;
		long mib = strtol(argv[3], &end, 10);
		if (*end || mib < 0 || mib > 4096)
			wl_die("heap size '%s' MiB not in 0..4096", argv[3]);
		heap_words = (size_t)mib << 17;
		if (heap_words) {
			heap_buf = malloc(heap_words * sizeof(uint64_t));
			if (!heap_buf)
				wl_die("malloc %ld MiB failed", mib);
			for (size_t i = 0; i < heap_words; i++)
				heap_buf[i] = heap_word(i);
		}
	}
	const int nrt = SIGRTMAX - SIGRTMIN + 1;
	if (nrt < 1 || nrt > 31)
		wl_die("unexpected SIGRTMIN..SIGRTMAX %d..%d", SIGRTMIN, SIGRTMAX);

	const pid_t pid = getpid();
	const pid_t main_tid = gettid();
	char main_name[NAME_LEN] = "";
	if (prctl(PR_GET_NAME, main_name) != 0)
		wl_die("prctl(PR_GET_NAME): %s", wl_errname(errno));

	/* Workers start with SIGTERM blocked (and set their own masks). */
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	const uint32_t all_rt = nrt == 32 ? ~0U : (1U << nrt) - 1;
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];
		w->idx = i;
		/* Multiplying by an odd constant is a bijection mod 2^31: distinct,
		 * non-zero patterns for distinct indexes. */
		w->pattern = ((uint32_t)(i + 1) * 0x9E3779B1u) & 0x7fffffffu & all_rt;
		w->want_mask = sigbit(SIGTERM);
		for (int k = 0; k < nrt; k++)
			if (w->pattern & (1U << k))
				w->want_mask |= sigbit(SIGRTMIN + k);
		int e = pthread_create(&w->th, &attr, worker_main, w);
		if (e != 0)
			wl_die("pthread_create #%d: %s", i, wl_errname(e));
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	/* All started and published at least once. */
	for (int i = 0; i < nthreads; i++) {
		for (int it = 0; !load_int(&workers[i].started) || load64(&workers[i].published) == 0;
		     it++) {
			if (it > 60000)
				wl_die("worker %d did not start within a minute", i);
			sleep_ns(1000000);
		}
		if (workers[i].setup_err)
			wl_die("worker %d: pthread_setname_np/pthread_sigmask: %s", i,
			       wl_errname(workers[i].setup_err));
		for (int j = 0; j < i; j++)
			if (workers[j].tid == workers[i].tid)
				wl_die("workers %d and %d share TID %d", j, i, (int)workers[i].tid);
	}
	check_task_set(main_tid, wl_die, "setup");
	for (int i = 0; i < nthreads; i++)
		baseline[i] = last_seen[i] = load64(&workers[i].published);
	wl_printf("threads: %d workers, TIDs %d..%d\n", nthreads, (int)workers[0].tid,
		  (int)workers[nthreads - 1].tid);

	wl_ready();

	while (!wl_stop) {
		loops++;
		watch_progress();
		wl_sleep_ms(10);
	}
	watch_progress();

	/* Main thread identity. */
	WL_CHECK(getpid() == pid, "pid %d, expected %d", (int)getpid(), (int)pid);
	WL_CHECK(gettid() == main_tid, "main TID %d, expected %d", (int)gettid(), (int)main_tid);
	char name_now[NAME_LEN] = "";
	prctl(PR_GET_NAME, name_now);
	WL_CHECK(strcmp(name_now, main_name) == 0, "main thread name '%s', expected '%s'", name_now,
		 main_name);

	/* The heap buffer, if any, word for word. */
	size_t bad_words = 0, first_bad = 0;
	for (size_t i = 0; i < heap_words; i++)
		if (heap_buf[i] != heap_word(i) && bad_words++ == 0)
			first_bad = i;
	WL_CHECK(bad_words == 0, "heap: %zu of %zu words differ, first at index %zu", bad_words, heap_words,
		 first_bad);

	/* Every worker ran after the ready point. */
	wait_all_advanced(baseline, "since ready");

	/* Self-checks: ask all, wait for all (each holds still once done). */
	for (int i = 0; i < nthreads; i++)
		store_int(&workers[i].check_req, 1);
	int pending = nthreads;
	for (int it = 0; it < WAIT_ITERS && pending > 0; it++) {
		pending = 0;
		for (int i = 0; i < nthreads; i++)
			if (!load_int(&workers[i].check_done))
				pending++;
		if (pending > 0)
			sleep_ns(5000000);
	}
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];
		if (!load_int(&w->check_done))
			KIND_FAIL("worker %d (TID %d) never answered the self-check request", i,
				  (int)w->tid);
	}
	KIND_END("no self-check answer");

	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];
		if (!load_int(&w->check_done))
			continue;
		char want_name[NAME_LEN];
		snprintf(want_name, sizeof(want_name), "w%d", i);
		if (w->got_tid != w->tid)
			KIND_FAIL("worker %d: gettid() %d, expected %d", i, (int)w->got_tid,
				  (int)w->tid);
		if (!pthread_equal(w->got_self, w->self))
			KIND_FAIL("worker %d: pthread_self() %#lx, expected %#lx", i,
				  (unsigned long)w->got_self, (unsigned long)w->self);
		if (w->got_tls_addr != w->tls_addr)
			KIND_FAIL("worker %d: TLS counter at %p, expected %p", i,
				  (void *)w->got_tls_addr, (void *)w->tls_addr);
		if (w->gs_err)
			KIND_FAIL("worker %d: ARCH_GET_GS: %s", i, wl_errname(w->gs_err));
		else if (w->got_gs != gs_base_of(i))
			KIND_FAIL("worker %d: GS base %#llx, expected %#llx", i,
				  (unsigned long long)w->got_gs, (unsigned long long)gs_base_of(i));
		if (w->mask_err)
			KIND_FAIL("worker %d: rt_sigprocmask: %s", i, wl_errname(w->mask_err));
		else if (w->got_mask != w->want_mask)
			KIND_FAIL("worker %d: blocked mask %#llx, expected %#llx", i,
				  (unsigned long long)w->got_mask, (unsigned long long)w->want_mask);
		if (w->name_err)
			KIND_FAIL("worker %d: pthread_getname_np: %s", i, wl_errname(w->name_err));
		else if (strcmp(w->got_name, want_name) != 0)
			KIND_FAIL("worker %d: name '%s', expected '%s'", i, w->got_name, want_name);
		/* Held still: the TLS variable read from here must match. */
		uint64_t pub = load64(&w->published);
		uint64_t through = *w->tls_addr;
		if (through != pub || pub != w->checked_value)
			KIND_FAIL("worker %d: TLS counter via %p is %llu, published %llu, checked %llu",
				  i, (void *)w->tls_addr, (unsigned long long)through,
				  (unsigned long long)pub, (unsigned long long)w->checked_value);
		/* procfs view of the same TID. */
		static char comm[64];
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)w->tid);
		ssize_t n = wl_read_file(path, comm, sizeof(comm) - 1);
		if (n < 0) {
			KIND_FAIL("worker %d: cannot read %s", i, path);
		} else {
			comm[n] = '\0';
			if (n > 0 && comm[n - 1] == '\n')
				comm[n - 1] = '\0';
			if (strcmp(comm, want_name) != 0)
				KIND_FAIL("worker %d: %s is '%s', expected '%s'", i, path, comm,
					  want_name);
		}
		uint64_t blk = 0;
		if (read_proc_sigblk(w->tid, &blk) != 0)
			KIND_FAIL("worker %d: no SigBlk in /proc/self/task/%d/status", i,
				  (int)w->tid);
		else if (blk != w->want_mask)
			KIND_FAIL("worker %d: /proc SigBlk %#llx, expected %#llx", i,
				  (unsigned long long)blk, (unsigned long long)w->want_mask);
	}
	KIND_END("self-check differences");

	/* Release them; every one must keep running. */
	for (int i = 0; i < nthreads; i++) {
		sample[i] = load64(&workers[i].published);
		store_int(&workers[i].release, 1);
	}
	wl_sleep_ms(50);
	wait_all_advanced(sample, "after verification started");
	watch_progress();

	check_task_set(main_tid, wl_fail, "verification");

	WL_CHECK(backwards == 0,
		 "published counters went backwards %llu time(s), first worker %d: %llu -> %llu",
		 (unsigned long long)backwards, first_back_idx,
		 (unsigned long long)first_back_from, (unsigned long long)first_back_to);
	WL_CHECK(loops > 0, "main loop never ran");

	/* Stop and join (join waits for the kernel's clear_child_tid wake-up). */
	store_int(&quit, 1);
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 10;
	for (int i = 0; i < nthreads; i++) {
		int e = pthread_clockjoin_np(workers[i].th, NULL, CLOCK_MONOTONIC, &deadline);
		if (e != 0)
			KIND_FAIL("joining worker %d (TID %d): %s", i, (int)workers[i].tid,
				  wl_errname(e));
	}
	KIND_END("join errors");

	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < nthreads; i++) {
		uint64_t v = load64(&workers[i].published);
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	wl_printf("threads: %d workers, counters %llu..%llu\n", nthreads, (unsigned long long)lo,
		  (unsigned long long)hi);
	wl_finish();
}
