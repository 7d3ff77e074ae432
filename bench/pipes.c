/* bench_pipes READY N [MiB]: N pipes (fds 3..2N+2, read end then write end),
 * each resized to MiB (default 1; F_SETPIPE_SZ, which root may raise above
 * /proc/sys/fs/pipe-max-size) and filled to capacity with a pattern of its
 * own. Ready protocol of tiny.c; on SIGTERM reads every pipe back and checks
 * every byte, exits 0 if intact, 3 if not. */
#include "ready.h"

#include <stdint.h>
#include <sys/ioctl.h>

static unsigned char pattern(int pipe, size_t i) { return (unsigned char)((i * 2654435761u) >> 13) ^ (unsigned char)pipe; }

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: %s <ready-file> N [MiB]\n", argv[0]);
		return 2;
	}
	const int n = atoi(argv[2]);
	const size_t size = (size_t)(argc > 3 ? atoi(argv[3]) : 1) << 20;
	unsigned char *buf = malloc(size);
	if (!buf)
		return 1;
	for (int k = 0; k < n; k++) {
		int p[2];
		if (pipe(p) != 0 || p[0] != 3 + 2 * k || fcntl(p[1], F_SETPIPE_SZ, (int)size) != (int)size) {
			perror("pipe");
			return 1;
		}
		for (size_t i = 0; i < size; i++)
			buf[i] = pattern(k, i);
		if (write(p[1], buf, size) != (ssize_t)size) {
			perror("write");
			return 1;
		}
	}
	if (ready(argv[1]) != 0)
		return 1;
	sleep_until_stop();
	for (int k = 0; k < n; k++) {
		const int r = 3 + 2 * k;
		int queued = -1;
		if (ioctl(r, FIONREAD, &queued) != 0 || (size_t)queued != size || fcntl(r, F_GETPIPE_SZ) != (int)size)
			return 3;
		for (size_t got = 0; got < size;) {
			ssize_t m = read(r, buf + got, size - got);
			if (m <= 0)
				return 3;
			got += (size_t)m;
		}
		for (size_t i = 0; i < size; i++)
			if (buf[i] != pattern(k, i))
				return 3;
	}
	return 0;
}
