/* bench_tcpconns PORTFILE READY N: a server with N established TCP
 * connections. Listens on 127.0.0.1 (its port written to PORTFILE), accepts
 * N connections (bench/tcp.py is their client, outside the tree), then
 * signals ready and echoes every byte it reads, polling, until SIGTERM. */
#include "ready.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int n = atoi(argv[3]);
	struct rlimit rl = {n + 64, n + 64};
	setrlimit(RLIMIT_NOFILE, &rl);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4096) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		return 1;
	FILE *f = fopen(argv[1], "w");
	fprintf(f, "%u\n", ntohs(a.sin_port));
	fclose(f);
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	for (int i = 0; i < n; i++) {
		p[i].fd = accept(l, NULL, NULL);
		p[i].events = POLLIN;
		if (p[i].fd < 0)
			return 1;
	}
	if (ready(argv[2]) < 0)
		return 1;
	while (!stop) {
		if (poll(p, (nfds_t)n, 10) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			char buf[4096];
			ssize_t r = read(p[i].fd, buf, sizeof(buf));
			if (r <= 0 || write(p[i].fd, buf, (size_t)r) != r)
				return 3;
		}
	}
	return 0;
}
