/* tree: a process tree of three levels, as a service with workers is.
 *
 *   root R (leads its session, started so by the harness)
 *   +- A  leads a process group
 *   |  +- A1 in A's group
 *   |  +- A2 leads a session of its own
 *   +- B  in R's group
 *   |  +- Z exited with status 7, not reaped: a zombie
 *   +- C  joined A's group (led by its sibling)
 *
 * Every task records its pid, parent, group, session and a page of its own
 * memory, and checks them (and that /proc/self is its pid) on SIGTERM,
 * which each parent passes to its children before it reaps them. B checks that its zombie is still there
 * and reaps the exact exit status. R opened a file before it forked: the
 * open file description is shared, so B's write through it after the
 * restore moves R's offset too.
 *
 * Arguments: "spin" makes every task busy instead of sleeping; "threads"
 * gives every live task two more threads (after its own forks), which check
 * their tid and thread-local value as they go, and must be seen running
 * again after the restore.
 */
#include "workload.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static struct {
	char name[16];
	pid_t pid, ppid, pgid, sid;
	unsigned char mem[4096];
} me;
static pid_t kids[4];
static int nkids;
static pid_t zombie;
static int ready_r = -1, ready_w = -1, shared_fd = -1;
static int spin, with_threads;

#define NTHREADS 2
static struct worker {
	pid_t tid;
	volatile unsigned long ticks;
	volatile int bad;
} workers[NTHREADS];
static __thread int tls_mark;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const int mark = (int)(w - workers) + 1;
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);  /* the main thread takes it */
	tls_mark = mark;
	w->tid = (pid_t)syscall(SYS_gettid);
	for (;;) {
		if ((pid_t)syscall(SYS_gettid) != w->tid || tls_mark != mark)
			w->bad = 1;
		w->ticks++;
		if (!spin)
			wl_sleep_ms(1);
	}
	return NULL;
}

static void start_threads(void)
{
	if (!with_threads)
		return;
	for (int i = 0; i < NTHREADS; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, worker_main, &workers[i]) != 0)
			wl_die("%s: pthread_create", me.name);
		while (!workers[i].tid)
			wl_sleep_ms(1);
	}
}

/* Each thread kept its tid and its thread-local value, and runs on. */
static void check_threads(void)
{
	if (!with_threads)
		return;
	for (int i = 0; i < NTHREADS; i++) {
		struct worker *w = &workers[i];
		WL_CHECK(!w->bad, "%s: thread %d saw another tid or thread-local value", me.name, w->tid);
		const unsigned long before = w->ticks;
		for (int ms = 0; ms < 5000 && w->ticks == before; ms++)
			wl_sleep_ms(1);
		WL_CHECK(w->ticks != before, "%s: thread %d does not run", me.name, w->tid);
	}
}

static void record(void)
{
	me.pid = getpid();
	me.ppid = getppid();
	me.pgid = getpgrp();
	me.sid = getsid(0);
	for (size_t i = 0; i < sizeof(me.mem); i++)
		me.mem[i] = (unsigned char)(i * 7 + (unsigned)me.pid);
}

/* The pid /proc/self names: getpid() unless /proc is another PID
 * namespace's (restore --pidns must give the tree a /proc of its own). */
static pid_t proc_self(void)
{
	char buf[32] = {0};
	if (readlink("/proc/self", buf, sizeof(buf) - 1) <= 0)
		return -1;
	return (pid_t)atoi(buf);
}

static void check(void)
{
	WL_CHECK(getpid() == me.pid, "%s: pid %d, was %d", me.name, getpid(), me.pid);
	WL_CHECK(proc_self() == me.pid, "%s: /proc/self is %d, pid %d", me.name, proc_self(), me.pid);
	/* The root's parent is outside the tree: the restoring ckpt now. */
	WL_CHECK(getppid() == me.ppid || strcmp(me.name, "R") == 0, "%s: parent %d, was %d", me.name, getppid(),
		 me.ppid);
	WL_CHECK(getpgrp() == me.pgid, "%s: group %d, was %d", me.name, getpgrp(), me.pgid);
	WL_CHECK(getsid(0) == me.sid, "%s: session %d, was %d", me.name, getsid(0), me.sid);
	for (size_t i = 0; i < sizeof(me.mem); i++)
		if (me.mem[i] != (unsigned char)(i * 7 + (unsigned)me.pid)) {
			wl_fail("%s: memory differs at %zu", me.name, i);
			break;
		}
}

/* On SIGTERM: check, pass it on, reap the children and judge them. */
static void verify(void)
{
	check();
	check_threads();
	if (zombie) {
		int st = 0;
		pid_t r = waitpid(zombie, &st, WNOHANG);
		WL_CHECK(r == zombie && WIFEXITED(st) && WEXITSTATUS(st) == 7,
			 "%s: zombie %d: waitpid %d, status %#x, want exit 7", me.name, zombie, r, st);
	}
	if (shared_fd >= 0 && strcmp(me.name, "B") == 0)
		WL_CHECK(write(shared_fd, "b", 1) == 1, "B: write to the shared file: %s", wl_errname(errno));
	wl_reap_children(kids, nkids, me.name);
}

typedef void (*role_fn)(void);

/* Forks a task that plays `role` (its session, group and children), then
 * records itself, says it is ready and runs until SIGTERM. */
static pid_t fork_task(const char *name, role_fn role)
{
	pid_t p = fork();
	if (p < 0)
		wl_die("fork %s: %s", name, wl_errname(errno));
	if (p == 0) {
		close(ready_r);
		nkids = 0;
		zombie = 0;
		snprintf(me.name, sizeof(me.name), "%s", name);
		wl_name = me.name;
		role();
		start_threads();
		record();
		if (write(ready_w, "x", 1) != 1)
			_exit(3);
		close(ready_w);
		wl_run_until_sigterm(spin);
		verify();
		wl_finish();
	}
	kids[nkids++] = p;
	return p;
}

static pid_t a_pid;

static void role_none(void) {}
static void role_new_session(void) { setsid(); }
static void role_join_a(void) { setpgid(0, a_pid); }
static void role_a(void)
{
	setpgid(0, 0);
	fork_task("A1", role_none);
	fork_task("A2", role_new_session);
}
static void role_b(void)
{
	zombie = fork();
	if (zombie == 0)
		_exit(7);
	/* Not reaped: it stays a zombie, dumped and restored as one. */
	while (1) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/stat", zombie);
		char buf[256] = {0};
		int fd = open(path, O_RDONLY);
		if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
			wl_die("read %s", path);
		close(fd);
		if (strstr(buf, ") Z "))
			break;
		wl_sleep_ms(1);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "tree");
	for (int i = 2; i < argc; i++) {
		spin |= strcmp(argv[i], "spin") == 0;
		with_threads |= strcmp(argv[i], "threads") == 0;
	}
	snprintf(me.name, sizeof(me.name), "R");
	char path[PATH_MAX];
	wl_aux_path(path, sizeof(path), "shared");
	shared_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (shared_fd < 0 || write(shared_fd, "r", 1) != 1)
		wl_die("open %s: %s", path, wl_errname(errno));
	int p[2];
	if (pipe(p) < 0)
		wl_die("pipe: %s", wl_errname(errno));
	ready_r = p[0];
	ready_w = p[1];

	a_pid = fork_task("A", role_a);
	/* Also from here: C joins A's group, which must exist by then. */
	setpgid(a_pid, a_pid);
	fork_task("B", role_b);
	fork_task("C", role_join_a);
	close(ready_w);
	/* A, A1, A2, B, C: then no pipe is left to dump. */
	char buf[5];
	for (size_t got = 0; got < sizeof(buf);) {
		ssize_t n = read(ready_r, buf + got, sizeof(buf) - got);
		if (n <= 0)
			wl_die("a task failed to get ready");
		got += (size_t)n;
	}
	close(ready_r);
	start_threads();
	record();
	wl_ready();

	wl_run_until_sigterm(spin);
	verify();
	off_t at = lseek(shared_fd, 0, SEEK_CUR);
	WL_CHECK(at == 2, "R: shared file offset %lld, want 2 (B's write moves it)", (long long)at);
	wl_finish();
}
