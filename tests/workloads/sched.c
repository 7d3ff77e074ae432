/* sched: each thread's scheduling policy, its parameters and its I/O
 * priority survive a checkpoint.
 *
 *   main     SCHED_BATCH, nice 5, I/O best-effort level 3
 *   idle     SCHED_IDLE, I/O idle
 *   fifo     SCHED_FIFO priority 7 with SCHED_FLAG_RESET_ON_FORK, I/O
 *            real-time level 2
 *   deadline SCHED_DEADLINE runtime 1 ms, deadline 8 ms, period 10 ms, I/O
 *            best-effort level 1; where the kernel refuses it (admission
 *            control: /proc/sys/kernel/sched_rt_runtime_us, a CPU set), the
 *            workload says so with the errno and runs without it
 * (The workers sleep: a real-time thread must not hog a CPU.)
 * The session's autogroup gets nice 6 (/proc/self/autogroup; the workload
 * leads its own session). A kernel without CONFIG_SCHED_AUTOGROUP has no
 * such file and no autogroup to lose: the workload says so and checks the
 * rest.
 *
 * Verification: each thread reads its own sched_getattr and ioprio_get back
 * and compares them with what it set.
 */
#include "workload.h"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

struct attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

#define IOPRIO(class, level) ((class) << 13 | (level))
enum { IOPRIO_RT = 1, IOPRIO_BE = 2, IOPRIO_IDLE = 3 };

struct want {
	const char *name;
	uint32_t policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	int ioprio;
	uint64_t runtime, deadline, period;
	char err[200];
	volatile int ready;
};

static struct want wants[] = {
	{ "main", 3 /* SCHED_BATCH */, 0, 5, 0, IOPRIO(IOPRIO_BE, 3), 0, 0, 0, "", 0 },
	{ "idle", 5 /* SCHED_IDLE */, 0, 0, 0, IOPRIO(IOPRIO_IDLE, 0), 0, 0, 0, "", 0 },
	{ "fifo", SCHED_FIFO, 1 /* SCHED_FLAG_RESET_ON_FORK */, 0, 7, IOPRIO(IOPRIO_RT, 2), 0, 0, 0, "", 0 },
	{ "deadline", 6 /* SCHED_DEADLINE */, 0, 0, 0, IOPRIO(IOPRIO_BE, 1), 1000000, 8000000, 10000000, "", 0 },
};
#define NTHREADS (sizeof wants / sizeof wants[0])
static volatile int no_deadline; /* errno of a refused SCHED_DEADLINE */
static volatile int done;

static void set_mine(struct want *w)
{
	struct attr a = { sizeof a, w->policy, w->flags, w->nice, w->priority, w->runtime, w->deadline, w->period };
	if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) {
		if (w->policy != 6 /* SCHED_DEADLINE */)
			wl_die("%s: sched_setattr: %s", w->name, strerror(errno));
		/* Not this machine's to give: checked as the default policy. */
		no_deadline = errno;
		w->policy = 0;
		w->runtime = w->deadline = w->period = 0;
	}
	if (syscall(SYS_ioprio_set, 1, 0, w->ioprio) != 0)
		wl_die("%s: ioprio_set: %s", w->name, strerror(errno));
}

/* What this thread has now, against what it set; the first difference. */
static void check_mine(struct want *w)
{
	struct attr a = { 0 };
	long io = syscall(SYS_ioprio_get, 1, 0);
	if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0)
		snprintf(w->err, sizeof w->err, "%s: sched_getattr: %s", w->name, strerror(errno));
	else if (a.policy != w->policy || a.flags != w->flags || a.priority != w->priority ||
		 ((w->policy == 0 || w->policy == 3) && a.nice != w->nice))
		snprintf(w->err, sizeof w->err, "%s: policy %u flags %#llx priority %u nice %d, expected %u %#llx %u %d",
			 w->name, a.policy, (unsigned long long)a.flags, a.priority, a.nice, w->policy,
			 (unsigned long long)w->flags, w->priority, w->nice);
	else if (w->policy == 6 /* SCHED_DEADLINE; others read their slice as runtime */ &&
		 (a.runtime != w->runtime || a.deadline != w->deadline || a.period != w->period))
		snprintf(w->err, sizeof w->err, "%s: runtime %llu deadline %llu period %llu ns, expected %llu %llu %llu",
			 w->name, (unsigned long long)a.runtime, (unsigned long long)a.deadline,
			 (unsigned long long)a.period, (unsigned long long)w->runtime, (unsigned long long)w->deadline,
			 (unsigned long long)w->period);
	else if (io != w->ioprio)
		snprintf(w->err, sizeof w->err, "%s: ioprio %#lx, expected %#x", w->name, io, w->ioprio);
}

static void *worker(void *arg)
{
	struct want *w = arg;
	set_mine(w);
	w->ready = 1;
	while (!done)
		wl_sleep_ms(5);
	check_mine(w);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "sched");
	pthread_t th[NTHREADS - 1];
	for (size_t i = 0; i < NTHREADS - 1; i++)
		if (pthread_create(&th[i], NULL, worker, &wants[i + 1]) != 0)
			wl_die("pthread_create");
	set_mine(&wants[0]);
	for (size_t i = 1; i < NTHREADS; i++)
		while (!wants[i].ready)
			wl_sleep_ms(1);
	const bool autogroup = access("/proc/self/autogroup", F_OK) == 0;
	if (autogroup) {
		int fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "6", 1) != 1)
			wl_die("write nice 6 to /proc/self/autogroup: %s", strerror(errno));
		close(fd);
	} else {
		wl_printf("sched: no /proc/self/autogroup here: autogroup nice not checked\n");
	}
	if (no_deadline)
		wl_printf("sched: SCHED_DEADLINE refused here (sched_setattr: %s): not checked\n", strerror(no_deadline));
	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(5);

	done = 1;
	for (size_t i = 0; i < NTHREADS - 1; i++)
		pthread_join(th[i], NULL);
	check_mine(&wants[0]);
	if (autogroup) {
		char text[64] = { 0 };
		ssize_t n = wl_read_file("/proc/self/autogroup", text, sizeof text - 1);
		const char *nice = n > 0 ? strstr(text, " nice ") : NULL;
		WL_CHECK(nice && atoi(nice + 6) == 6, "autogroup: expected nice 6, read '%s'", text);
	}
	for (size_t i = 0; i < NTHREADS; i++)
		WL_CHECK(wants[i].err[0] == 0, "%s", wants[i].err);
	wl_finish();
}
