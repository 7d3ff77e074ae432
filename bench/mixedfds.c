/* bench_mixedfds READY N: about N fds of mixed kinds, in groups of ten: two
 * regular files (a description each, 64 files in all), a pipe (both ends,
 * one byte unread), a unix socketpair (both ends, one byte queued each way),
 * two eventfds (count = the fd number), and two dups of the group's first
 * file; one epoll watches every pipe read end, socket and eventfd. Ready
 * protocol of tiny.c; on SIGTERM checks the epoll's ready count, every
 * eventfd's count and every queued byte, exits 0 if all is there, 3 if not. */
#include "ready.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: %s <ready-file> N\n", argv[0]);
		return 2;
	}
	const int groups = atoi(argv[2]) / 10;
	const int ep = epoll_create1(0);
	int watched = 0;
	for (int g = 0; g < groups; g++) {
		int f[2], p[2], s[2];
		for (int k = 0; k < 2; k++) {
			char path[4200];
			snprintf(path, sizeof(path), "%s.f%d", argv[1], (2 * g + k) % 64);
			f[k] = open(path, O_RDWR | O_CREAT, 0644);
		}
		if (f[0] < 0 || f[1] < 0 || pipe(p) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0) {
			perror("setup");
			return 1;
		}
		if (write(p[1], "p", 1) != 1 || write(s[0], "a", 1) != 1 || write(s[1], "b", 1) != 1)
			return 1;
		int ev[2];
		for (int k = 0; k < 2; k++) {
			ev[k] = eventfd(0, EFD_NONBLOCK);
			uint64_t v = (uint64_t)ev[k];
			if (ev[k] < 0 || write(ev[k], &v, 8) != 8)
				return 1;
		}
		if (dup(f[0]) < 0 || dup(f[0]) < 0)
			return 1;
		const int targets[] = { p[0], s[0], s[1], ev[0], ev[1] };
		for (int k = 0; k < 5; k++) {
			struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)targets[k] };
			if (epoll_ctl(ep, EPOLL_CTL_ADD, targets[k], &e) < 0) {
				perror("epoll_ctl");
				return 1;
			}
			watched++;
		}
	}
	if (ready(argv[1]) != 0)
		return 1;
	sleep_until_stop();
	/* Everything watched is readable; eventfd counts and bytes are there. */
	static struct epoll_event evs[1 << 16];
	int n = epoll_wait(ep, evs, 1 << 16, 0);
	if (n != watched)
		return 3;
	for (int i = 0; i < n; i++) {
		const int fd = (int)evs[i].data.u32;
		char c;
		uint64_t v;
		struct stat st;
		if (fstat(fd, &st) < 0)
			return 3;
		if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
			if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 1 && read(fd, &c, 1) != 1)
				return 3;
		} else if (read(fd, &v, 8) != 8 || v != (uint64_t)fd) {
			return 3;
		}
	}
	return 0;
}
