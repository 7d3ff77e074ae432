/* The bench workloads' ready protocol (see README): the pid written to
 * <ready>.tmp, renamed to <ready>; SIGTERM sets `stop`. */
#ifndef BENCH_READY_H
#define BENCH_READY_H
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int ready(const char *path)
{
	char tmp[4096], buf[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, n) != n || close(fd) != 0 || rename(tmp, path) != 0)
		return -1;
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	return sigaction(SIGTERM, &sa, NULL);
}

static inline void sleep_until_stop(void)
{
	while (!stop) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
#endif
