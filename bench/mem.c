/* 1 GiB workload: bench_mem <ready-file> [MiB]. mallocs the buffer, writes a non-zero
 * pattern into every page (all pages present, none is the zero page), writes its pid to
 * <ready-file>.tmp and renames it to <ready-file>, then sleeps in a loop. On SIGTERM it checks
 * the whole buffer and exits 0 if it is intact, 3 if not (so a restore is verified). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static uint64_t pattern(size_t i) { return (i * 0x9e3779b97f4a7c15ULL) | 1; }

static int ready(const char *path)
{
	char tmp[4096], buf[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, n) != n || close(fd) != 0)
		return -1;
	return rename(tmp, path);
}

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0); /* only regular files and /dev/null can be dumped */
	if (argc < 2) {
		fprintf(stderr, "usage: %s <ready-file> [MiB]\n", argv[0]);
		return 2;
	}
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 1024;
	size_t size = mib << 20;
	uint64_t *p = malloc(size);
	if (!p) {
		perror("malloc");
		return 1;
	}
	/* Whole buffer, 8 bytes at a time: the data is not trivially compressible either. */
	for (size_t i = 0; i < size / 8; i++)
		p[i] = pattern(i);
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	if (ready(argv[1]) != 0) {
		perror("ready file");
		return 1;
	}
	while (!stop) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < size / 8; i++)
		if (p[i] != pattern(i)) {
			fprintf(stderr, "bench_mem: word %zu is %#llx, want %#llx\n", i, (unsigned long long)p[i],
				(unsigned long long)pattern(i));
			return 3;
		}
	return 0;
}
