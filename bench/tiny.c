/* Tiny workload: bench_tiny <ready-file>. Writes its pid to <ready-file>.tmp, renames it to
 * <ready-file>, then sleeps in a loop until SIGTERM (exit 0). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0); /* only regular files and /dev/null can be dumped */
	if (argc < 2) {
		fprintf(stderr, "usage: %s <ready-file>\n", argv[0]);
		return 2;
	}
	char tmp[4096], buf[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 1;
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, n) != n || close(fd) != 0 || rename(tmp, argv[1]) != 0)
		return 1;
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	while (!stop) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}
