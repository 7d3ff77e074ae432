/* fleet: a root with N workers (argument 1, default 200), as a pre-fork
 * server has; with "churn" (argument 2) the root and its first worker also
 * fork short-lived children all the time and reap them, so that the tree
 * changes while ckpt seizes it, at two levels.
 *
 * Every worker keeps a counter and a page of memory of its own; on SIGTERM,
 * passed on by the root, it checks its pid, parent and memory. The root
 * checks that every worker passed and, with churn, that it kept forking.
 */
#include "workload.h"

#include <sys/wait.h>

#define MAX_WORKERS 1024

static pid_t workers[MAX_WORKERS];
static unsigned char mem[4096];
static pid_t my_pid, my_ppid;

/* Forks a child that exits at once, and reaps it (a worker, whose only
 * children these are) or leaves it to the caller. */
static unsigned long churn_once(int reap)
{
	pid_t c = fork();
	if (c == 0)
		_exit(0);
	if (c > 0 && reap) {
		pid_t r;
		while ((r = waitpid(c, NULL, 0)) < 0 && errno == EINTR) /* SIGTERM */
			;
		WL_CHECK(r == c, "%d: reap %d: %s", my_pid, c, wl_errname(errno));
	}
	return c > 0;
}

static void fill(void)
{
	my_pid = getpid();
	my_ppid = getppid();
	for (size_t i = 0; i < sizeof(mem); i++)
		mem[i] = (unsigned char)(i * 13 + (unsigned)my_pid);
}

static void check(int root)
{
	WL_CHECK(getpid() == my_pid, "pid %d, was %d", getpid(), my_pid);
	WL_CHECK(root || getppid() == my_ppid, "%d: parent %d, was %d", my_pid, getppid(), my_ppid);
	for (size_t i = 0; i < sizeof(mem); i++)
		if (mem[i] != (unsigned char)(i * 13 + (unsigned)my_pid)) {
			wl_fail("%d: memory differs at %zu", my_pid, i);
			break;
		}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "fleet");
	int n = argc > 2 ? atoi(argv[2]) : 200;
	int churn = argc > 3 && strcmp(argv[3], "churn") == 0;
	if (n < 0 || n > MAX_WORKERS)
		wl_die("bad worker count %d", n);
	int p[2];
	if (pipe(p) < 0)
		wl_die("pipe: %s", wl_errname(errno));
	for (int i = 0; i < n; i++) {
		pid_t w = fork();
		if (w < 0)
			wl_die("fork: %s", wl_errname(errno));
		if (w == 0) {
			close(p[0]);
			fill();
			if (write(p[1], "x", 1) != 1)
				_exit(3);
			close(p[1]);
			const int churns = churn && i == 0;
			unsigned long forked = 0;
			while (!wl_stop) {
				if (churns)
					forked += churn_once(1);
				wl_sleep_ms(churns ? 1 : 20);
			}
			check(0);
			WL_CHECK(!churns || forked > 0, "%d: churn: forked nothing", my_pid);
			if (wl_fail_count) {
				wl_printf("FAIL worker %d: %s\n", my_pid, wl_fail_msg);
				_exit(1);
			}
			_exit(0);
		}
		workers[i] = w;
	}
	close(p[1]);
	for (int got = 0; got < n;) {
		char buf[64];
		ssize_t r = read(p[0], buf, sizeof(buf));
		if (r <= 0)
			wl_die("a worker failed to start");
		got += (int)r;
	}
	close(p[0]);
	fill();
	wl_ready();

	unsigned long forked = 0;
	while (!wl_stop) {
		if (!churn) {
			wl_sleep_ms(10);
			continue;
		}
		forked += churn_once(0);
		/* Reap what has exited, not the workers. */
		for (pid_t r; (r = waitpid(-1, NULL, WNOHANG)) > 0;)
			for (int i = 0; i < n; i++)
				WL_CHECK(r != workers[i], "worker %d exited early", r);
		wl_sleep_ms(1);
	}
	check(1);
	for (int i = 0; i < n; i++) {
		int st = 0;
		kill(workers[i], SIGTERM);
		if (waitpid(workers[i], &st, 0) != workers[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			wl_fail("worker %d: status %#x", workers[i], st);
	}
	WL_CHECK(!churn || forked > 0, "churn: forked nothing");
	wl_finish();
}
