/* bench_fds READY N: N more fds (3..N+2): every other one opens one of 64
 * files in the working directory (a description of its own, at an offset of
 * its own), the next one is its dup (the same description). Ready protocol of
 * tiny.c; on SIGTERM checks each fd's offset and that each pair still shares
 * its description (kcmp), exits 0 if so, 3 if not. */
#include "ready.h"

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: %s <ready-file> N\n", argv[0]);
		return 2;
	}
	const int n = atoi(argv[2]);
	for (int i = 0; i < n; i++) {
		const int fd = 3 + i, k = i / 2;
		if (i % 2 == 0) {
			char path[4200];
			snprintf(path, sizeof(path), "%s.f%d", argv[1], k % 64);
			if (open(path, O_RDWR | O_CREAT, 0644) != fd || lseek(fd, k, SEEK_SET) != k) {
				perror("open");
				return 1;
			}
		} else if (dup(fd - 1) != fd) {
			perror("dup");
			return 1;
		}
	}
	if (ready(argv[1]) != 0)
		return 1;
	sleep_until_stop();
	for (int i = 0; i < n; i++) {
		const int fd = 3 + i, k = i / 2;
		if (lseek(fd, 0, SEEK_CUR) != k)
			return 3;
		if (i % 2 == 1 && syscall(SYS_kcmp, getpid(), getpid(), 0, fd - 1, fd) != 0)
			return 3;
	}
	return 0;
}
