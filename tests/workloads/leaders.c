/* leaders: a session and process groups whose leaders have exited, as a
 * container's init (a child subreaper) holds them once a daemon's parent
 * is gone.
 *
 *   root R (leads its session, started so by the harness; a child subreaper)
 *   +- X   led a group and exited
 *   +- Y   in X's group (session R)
 *   +- L   called setsid(), forked the tasks below, and exited: they are
 *   |      R's children now, in session L
 *   +- S1  in group L (session L)
 *   +- S2  leads a group of its own (session L)
 *   |  +- S2a in S2's group
 *   +- S3  in the group of K (session L), which L forked and reaped
 *   +- Z   exited with status 5, not reaped: a zombie in session L
 *
 * Every live task records its pid, parent, group and session, and checks
 * them on SIGTERM, which each parent passes to its children before it
 * reaps them. R also checks that its children are those it had at dump
 * (no task restore added is left) and that, once it reaped them and the
 * zombie (status 5), wait() has nothing more to report.
 *
 * Argument: "spin" makes every task busy instead of sleeping.
 */
#include "workload.h"

#include <sys/prctl.h>
#include <sys/wait.h>

static struct {
	char name[16];
	pid_t pid, ppid, pgid, sid;
} me;
static pid_t kids[16];
static int nkids;
static int ready_w = -1;
static int spin;

static void record(void)
{
	me.pid = getpid();
	me.ppid = getppid();
	me.pgid = getpgrp();
	me.sid = getsid(0);
}

static void check(void)
{
	WL_CHECK(getpid() == me.pid, "%s: pid %d, was %d", me.name, getpid(), me.pid);
	/* The root's parent is outside the tree: the restoring ckpt now. */
	WL_CHECK(getppid() == me.ppid || strcmp(me.name, "R") == 0, "%s: parent %d, was %d", me.name, getppid(),
		 me.ppid);
	WL_CHECK(getpgrp() == me.pgid, "%s: group %d, was %d", me.name, getpgrp(), me.pgid);
	WL_CHECK(getsid(0) == me.sid, "%s: session %d, was %d", me.name, getsid(0), me.sid);
}

/* A task that records itself, says it is ready, runs until SIGTERM and
 * then checks itself and its children. An orphan records itself once L,
 * its parent and session leader, has exited and R has taken it in. */
static void live(const char *name, int orphan)
{
	snprintf(me.name, sizeof(me.name), "%s", name);
	wl_name = me.name;
	while (orphan && getppid() == getsid(0))
		wl_sleep_ms(1);
	record();
	if (write(ready_w, "x", 1) != 1)
		_exit(3);
	close(ready_w);
	wl_run_until_sigterm(spin);
	check();
	wl_reap_children(kids, nkids, me.name);
	wl_finish();
}

static pid_t fork_or_die(const char *name)
{
	pid_t p = fork();
	if (p < 0)
		wl_die("fork %s: %s", name, wl_errname(errno));
	if (p == 0)
		nkids = 0;
	return p;
}

static void wait_exited(pid_t p, const char *name)
{
	int st = 0;
	if (waitpid(p, &st, 0) != p)
		wl_die("wait for %s: %s", name, wl_errname(errno));
}

/* L: a session of its own, with a group whose leader K exits too. */
static void role_l(void)
{
	if (setsid() < 0)
		_exit(4);
	if (fork_or_die("Z") == 0)
		_exit(5);
	pid_t k = fork_or_die("K");
	if (k == 0)
		for (;;)
			pause();
	setpgid(k, k);
	if (fork_or_die("S1") == 0)
		live("S1", 1);
	pid_t s2 = fork_or_die("S2");
	if (s2 == 0) {
		setpgid(0, 0);
		pid_t a = fork_or_die("S2a");
		if (a == 0)
			live("S2a", 0);
		kids[nkids++] = a;
		live("S2", 1);
	}
	setpgid(s2, s2);
	pid_t s3 = fork_or_die("S3");
	if (s3 == 0) {
		setpgid(0, k);
		live("S3", 1);
	}
	setpgid(s3, k);
	kill(k, SIGKILL);
	wait_exited(k, "K");
	_exit(0);
}

static int state_of(pid_t p)
{
	char path[64], buf[512] = {0};
	snprintf(path, sizeof(path), "/proc/%d/stat", p);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	const char *rp = n > 0 ? strrchr(buf, ')') : NULL;
	return rp && rp[1] == ' ' ? rp[2] : 0;
}

static int by_pid(const void *a, const void *b)
{
	return *(const pid_t *)a - *(const pid_t *)b;
}

/* The children of R, from /proc, sorted. */
static int children(pid_t *out, int max)
{
	char path[64], buf[1024] = {0};
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", getpid(), getpid());
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	int count = 0;
	for (char *p = buf, *end; n > 0 && count < max; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		out[count++] = (pid_t)v;
	}
	qsort(out, (size_t)count, sizeof(pid_t), by_pid);
	return count;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "leaders");
	spin = argc > 2 && strcmp(argv[2], "spin") == 0;
	snprintf(me.name, sizeof(me.name), "R");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		wl_die("PR_SET_CHILD_SUBREAPER: %s", wl_errname(errno));
	int p[2];
	if (pipe(p) < 0)
		wl_die("pipe: %s", wl_errname(errno));
	ready_w = p[1];

	/* X leads a group, Y joins it (set from here: no race), X exits. */
	pid_t x = fork_or_die("X");
	if (x == 0)
		for (;;)
			pause();
	setpgid(x, x);
	pid_t y = fork_or_die("Y");
	if (y == 0) {
		close(p[0]);
		setpgid(0, x);
		live("Y", 0);
	}
	if (setpgid(y, x) < 0)
		wl_die("Y joins X's group: %s", wl_errname(errno));
	kill(x, SIGKILL);
	wait_exited(x, "X");

	pid_t l = fork_or_die("L");
	if (l == 0) {
		close(p[0]);
		role_l();
	}
	wait_exited(l, "L");
	close(ready_w);
	/* Y, S1, S2, S2a, S3. */
	char buf[5];
	for (size_t got = 0; got < sizeof(buf);) {
		ssize_t n = read(p[0], buf + got, sizeof(buf) - got);
		if (n <= 0)
			wl_die("a task failed to get ready");
		got += (size_t)n;
	}
	close(p[0]);

	/* R's children: Y, S1, S2, S3 and the zombie Z, once it is one. */
	pid_t now[16], zombie = 0;
	int n = 0;
	for (int tries = 0; tries < 5000; tries++) {
		n = children(now, 16);
		zombie = 0;
		for (int i = 0; i < n; i++)
			if (state_of(now[i]) == 'Z')
				zombie = now[i];
		if (n == 5 && zombie)
			break;
		wl_sleep_ms(1);
	}
	if (n != 5 || !zombie)
		wl_die("R has %d children (zombie %d), want Y, S1, S2, S3 and Z", n, zombie);
	for (int i = 0; i < n; i++)
		if (now[i] != zombie)
			kids[nkids++] = now[i];
	record();
	wl_ready();

	wl_run_until_sigterm(spin);
	check();
	pid_t after[16];
	int m = children(after, 16);
	WL_CHECK(m == n && memcmp(after, now, sizeof(pid_t) * (size_t)n) == 0,
		 "R: %d children after restore, %d at dump (a helper left?)", m, n);
	int st = 0;
	pid_t r = waitpid(zombie, &st, WNOHANG);
	WL_CHECK(r == zombie && WIFEXITED(st) && WEXITSTATUS(st) == 5, "R: zombie %d: waitpid %d, status %#x, want exit 5",
		 zombie, r, st);
	wl_reap_children(kids, nkids, me.name);
	r = waitpid(-1, &st, WNOHANG);
	WL_CHECK(r < 0 && errno == ECHILD, "R: wait() still reports pid %d (status %#x): a helper?", r, st);
	wl_finish();
}
