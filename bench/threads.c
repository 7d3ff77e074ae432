/* Many-threaded workload: bench_threads <ready-file> <N>. Creates N-1 threads (64 KiB stacks)
 * that block in pause() forever with SIGTERM blocked, waits until all of them are running,
 * writes its pid to <ready-file>.tmp and renames it to <ready-file>, then sleeps in 10 ms steps
 * in the main thread until SIGTERM (exit 0; returning from main ends every thread). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int running;

static void *idle(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&running, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0); /* only regular files and /dev/null can be dumped */
	if (argc < 3 || atoi(argv[2]) < 1) {
		fprintf(stderr, "usage: %s <ready-file> <threads>\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[2]);

	/* SIGTERM is taken by the main thread only: the other threads inherit a mask that blocks it. */
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (int i = 1; i < n; i++) {
		pthread_t t;
		int err = pthread_create(&t, &attr, idle, NULL);
		if (err) {
			fprintf(stderr, "pthread_create (thread %d of %d): %s\n", i + 1, n, strerror(err));
			return 1;
		}
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (__atomic_load_n(&running, __ATOMIC_ACQUIRE) < n - 1) {
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}

	char tmp[4096], buf[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 1;
	int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, len) != len || close(fd) != 0 || rename(tmp, argv[1]) != 0)
		return 1;
	while (!stop) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}
