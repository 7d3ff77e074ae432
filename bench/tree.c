/* Process-tree workload: bench_tree <ready-file> <N> [MiB] [--prefork].
 *
 * The root forks N-1 workers, all direct children of the root (a flat tree, as a pre-fork server's
 * master and its workers are). The root leads its session (the driver starts it with setsid) and
 * every worker inherits the root's session and process group. Each worker closes its end of a
 * ready pipe and then sleeps in pause() until SIGTERM; the root reads the pipe until EOF, so when it
 * writes its pid to <ready-file>.tmp and renames it to <ready-file>, all N tasks exist and none
 * holds a pipe any more (ckpt refuses pipes).
 *
 * MiB (default 0): private anonymous memory the root writes, a non-zero pattern in every 8-byte
 * word. With --prefork the root writes it BEFORE forking and the workers never write it (they share
 * it copy-on-write, as the workers of a pre-fork server do); without, the root writes it after
 * forking, so only the root has it.
 *
 * On SIGTERM the root checks its whole buffer, passes SIGTERM to every worker, reaps them and
 * exits 0 if its buffer is intact and every worker exited 0 (3 otherwise). A worker of a --prefork
 * tree checks the first word of every page of the inherited buffer (reading only) and exits 0 if
 * they are intact, 3 if not. The root sleeps in 10 ms steps, the workers in pause(). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int prefork;
static int intact(size_t step);

/* A worker ends in its handler: no window between a check of a flag and pause() to lose it in. */
static void on_term_worker(int sig)
{
	(void)sig;
	_exit(prefork && !intact(4096 / sizeof(uint64_t)) ? 3 : 0);
}

static uint64_t pattern(size_t i) { return (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull; }

static uint64_t *buf;
static size_t words;

static void touch(void)
{
	for (size_t i = 0; i < words; i++)
		buf[i] = pattern(i);
}

/* Every word (root), or one word per page (workers: they must not make the root's pages their own). */
static int intact(size_t step)
{
	for (size_t i = 0; i < words; i += step)
		if (buf[i] != pattern(i))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0); /* only regular files and /dev/null can be dumped */
	int npos = 0;
	long n = 0, mib = 0;
	const char *ready = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--prefork") == 0)
			prefork = 1;
		else if (npos == 0)
			ready = argv[i], npos++;
		else if (npos == 1)
			n = atol(argv[i]), npos++;
		else if (npos == 2)
			mib = atol(argv[i]), npos++;
		else
			n = 0;
	}
	if (!ready || n < 1 || mib < 0) {
		fprintf(stderr, "usage: %s <ready-file> <tasks> [MiB] [--prefork]\n", argv[0]);
		return 2;
	}
	size_t bytes = (size_t)mib << 20;
	words = bytes / sizeof(uint64_t);
	if (bytes) {
		buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf == MAP_FAILED) {
			fprintf(stderr, "mmap %ld MiB: %s\n", mib, strerror(errno));
			return 1;
		}
	}
	if (prefork)
		touch();

	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);

	pid_t *kids = calloc((size_t)n, sizeof(pid_t));
	int p[2];
	if (!kids || pipe(p) < 0) {
		fprintf(stderr, "pipe: %s\n", strerror(errno));
		return 1;
	}
	for (long k = 0; k < n - 1; k++) {
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "fork (worker %ld of %ld): %s\n", k + 1, n - 1, strerror(errno));
			return 1; /* the workers already forked see EOF on the pipe, and are killed by the driver */
		}
		if (pid == 0) {
			free(kids);
			close(p[0]);
			if (write(p[1], "x", 1) != 1)
				_exit(1);
			close(p[1]);
			sa.sa_handler = on_term_worker;
			sigaction(SIGTERM, &sa, NULL);
			for (;;)
				pause();
		}
		kids[k] = pid;
	}
	close(p[1]);
	long got = 0;
	for (;;) {
		char c[256];
		ssize_t r = read(p[0], c, sizeof(c));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
	}
	close(p[0]);
	if (got != n - 1) {
		fprintf(stderr, "%ld of %ld workers got ready\n", got, n - 1);
		return 1;
	}
	if (!prefork)
		touch();

	char tmp[4096], line[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 1;
	int len = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (write(fd, line, len) != len || close(fd) != 0 || rename(tmp, ready) != 0)
		return 1;
	while (!stop) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}

	int ok = intact(1);
	if (!ok)
		fprintf(stderr, "root: memory differs\n");
	for (long k = 0; k < n - 1; k++)
		kill(kids[k], SIGTERM);
	for (long k = 0; k < n - 1; k++) {
		int st = 0;
		pid_t r;
		while ((r = waitpid(kids[k], &st, 0)) < 0 && errno == EINTR)
			;
		if (r != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "worker %d: waitpid %d, status %#x\n", (int)kids[k], (int)r, st);
			ok = 0;
		}
	}
	return ok ? 0 : 3;
}
