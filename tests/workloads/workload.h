/* Shared helpers for ckpt test workloads (header-only). See README.md.
 *
 * Protocol: wl_<name> <ready-file> [args...]
 *   - set up state, then wl_ready(): pid written to <ready-file>.tmp, renamed
 *     to <ready-file>;
 *   - loop until SIGTERM (the handler only sets wl_stop);
 *   - verify, then wl_finish(): prints "PASS <name>" and exits 0, or
 *     "FAIL <name>: <details>" and exits 1.
 *
 * Output goes through write(2) from static buffers: no stdio buffering, no
 * malloc (so a workload that compares its address space is not disturbed).
 */
#ifndef CKPT_WORKLOAD_H
#define CKPT_WORKLOAD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define WL_UNUSED __attribute__((unused))

static const char *wl_name WL_UNUSED = "?";
static char wl_ready_path[PATH_MAX] WL_UNUSED; /* absolute */
static char wl_dir[PATH_MAX] WL_UNUSED;        /* absolute dir of ready file */
static volatile sig_atomic_t wl_stop WL_UNUSED;
static char wl_fail_msg[4096] WL_UNUSED;
static size_t wl_fail_len WL_UNUSED;
static int wl_fail_count WL_UNUSED;

static inline void wl_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* printf to stdout via a static buffer and one write(); adds nothing. */
__attribute__((format(printf, 1, 2))) static inline void wl_printf(const char *fmt, ...)
{
	static char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	wl_write_all(1, buf, (size_t)n);
}

/* Record a verification failure; all of them end up on the one FAIL line. */
__attribute__((format(printf, 1, 2))) static inline void wl_fail(const char *fmt, ...)
{
	wl_fail_count++;
	if (wl_fail_len + 3 >= sizeof(wl_fail_msg))
		return;
	if (wl_fail_len > 0) {
		memcpy(wl_fail_msg + wl_fail_len, "; ", 2);
		wl_fail_len += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(wl_fail_msg + wl_fail_len, sizeof(wl_fail_msg) - wl_fail_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		wl_fail_len += (size_t)n;
	if (wl_fail_len >= sizeof(wl_fail_msg))
		wl_fail_len = sizeof(wl_fail_msg) - 1;
}

/* Print the verdict line and exit: 0 on PASS, 1 on FAIL. */
__attribute__((noreturn)) static inline void wl_finish(void)
{
	if (wl_fail_count == 0) {
		wl_printf("PASS %s\n", wl_name);
		exit(0);
	}
	wl_printf("FAIL %s: %s\n", wl_name, wl_fail_msg);
	exit(1);
}

/* Setup could not be done: report and exit 1 (the ready file never appears). */
__attribute__((noreturn, format(printf, 1, 2))) static inline void wl_die(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	wl_printf("FAIL %s: setup: %s\n", wl_name, msg);
	exit(1);
}

/* "EINTR", or "errno 516" for a value with no name (e.g. a leaked
 * kernel-internal ERESTART* code). */
static inline const char *wl_errname(int e)
{
	static __thread char buf[32];
	const char *n = strerrorname_np(e);
	if (n)
		return n;
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

#define WL_CHECK(cond, ...)                 \
	do {                                \
		if (!(cond))                \
			wl_fail(__VA_ARGS__); \
	} while (0)

static inline void wl_on_sigterm(int sig)
{
	(void)sig;
	wl_stop = 1;
}

/* Parse argv, make the ready path absolute, close inherited fds >= 3,
 * install the SIGTERM handler. */
static inline void wl_init(int argc, char **argv, const char *name)
{
	wl_name = name;
	if (argc < 2) {
		wl_printf("usage: %s <ready-file> [args...]\n", argv[0]);
		exit(2);
	}
	const char *r = argv[1];
	if (r[0] == '/') {
		snprintf(wl_ready_path, sizeof(wl_ready_path), "%s", r);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			wl_die("getcwd: %s", strerror(errno));
		if (snprintf(wl_ready_path, sizeof(wl_ready_path), "%s/%s", cwd, r) >=
		    (int)sizeof(wl_ready_path))
			wl_die("ready path too long");
	}
	snprintf(wl_dir, sizeof(wl_dir), "%s", wl_ready_path);
	char *slash = strrchr(wl_dir, '/');
	if (slash == wl_dir)
		slash[1] = '\0';
	else
		*slash = '\0';

	/* Only stdin/stdout/stderr are ours: drop anything leaked by the parent
	 * (e.g. a pipe), which ckpt could not dump. */
	close_range(3, ~0U, 0);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wl_on_sigterm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESETHAND, no SA_RESTART: sleeps return EINTR */
	if (sigaction(SIGTERM, &sa, NULL) != 0)
		wl_die("sigaction(SIGTERM): %s", strerror(errno));
}

/* "<ready-file>.<suffix>": a per-run path for auxiliary files. */
static inline void wl_aux_path(char *out, size_t n, const char *suffix)
{
	if ((size_t)snprintf(out, n, "%s.%s", wl_ready_path, suffix) >= n)
		wl_die("path too long: %s.%s", wl_ready_path, suffix);
}

/* Atomically publish our pid in the ready file. */
static inline void wl_ready(void)
{
	char tmp[PATH_MAX + 8];
	char pid[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", wl_ready_path);
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("open %s: %s", tmp, strerror(errno));
	wl_write_all(fd, pid, (size_t)n);
	if (close(fd) != 0)
		wl_die("close %s: %s", tmp, strerror(errno));
	if (rename(tmp, wl_ready_path) != 0)
		wl_die("rename %s: %s", tmp, strerror(errno));
}

/* Sleep about ms milliseconds; returns early (EINTR) on a signal. */
static inline void wl_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Runs until SIGTERM: asleep, or busy (a task ckpt finds on the CPU). */
static inline void wl_run_until_sigterm(int spin)
{
	volatile unsigned long n = 0;
	while (!wl_stop) {
		if (spin)
			n++;
		else
			wl_sleep_ms(10);
	}
}

/* Passes SIGTERM on to each child of a tree workload, reaps it and records
 * a failure unless it exited 0 (it verified itself). */
static inline void wl_reap_children(const pid_t *kids, int n, const char *who)
{
	for (int i = 0; i < n; i++) {
		int st = 0;
		kill(kids[i], SIGTERM);
		WL_CHECK(waitpid(kids[i], &st, 0) == kids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			 "%s: child %d failed (status %#x)", who, kids[i], st);
	}
}

/* Read a whole file into buf (no malloc, no stdio). Returns the length read,
 * or -1 on error or if the file is larger than cap. */
static inline ssize_t wl_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	for (;;) {
		char extra;
		ssize_t r = len < cap ? read(fd, buf + len, cap - len) : read(fd, &extra, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r > 0 && len == cap)) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	return (ssize_t)len;
}

/* /proc/self/fdinfo/FD into buf, NUL-terminated; false (buf empty) if it
 * can't be read or doesn't fit. */
static inline bool wl_fdinfo(int fd, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	ssize_t n = wl_read_file(path, buf, cap - 1);
	buf[n < 0 ? 0 : n] = '\0';
	return n >= 0;
}

/* splitmix64: deterministic patterns. */
static inline uint64_t wl_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

#endif /* CKPT_WORKLOAD_H */
