/* tcpserve: an echo server for a client outside the tree (inet_socket_test:
 * OutsideClient). Listens on 127.0.0.1 (::1 with "6"; its port in
 * <ready-file>.port, SO_RCVBUF 2 MiB, SO_SNDBUF 1 MiB), accepts one
 * connection after ready and echoes what it reads, 4 KiB a millisecond at
 * most, never more than the socket takes back. On SIGTERM: PASS unless the
 * connection failed (reset, EOF, an error) or no connection came; prints the
 * bytes echoed.
 */
#include "workload.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static char buf[4096];

int main(int argc, char **argv)
{
	wl_init(argc, argv, "tcpserve");
	const int v6 = argc > 2 && strcmp(argv[2], "6") == 0;
	int l = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	int v = 2 << 20;
	setsockopt(l, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	v = 1 << 20;
	setsockopt(l, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&a; /* sin_port where sin6_port is */
	if (!v6) {
		*a4 = (struct sockaddr_in){ .sin_family = AF_INET };
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	socklen_t len = v6 ? sizeof(a) : sizeof(*a4);
	if (bind(l, (struct sockaddr *)&a, len) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		wl_die("listen: %s", strerror(errno));
	char path[PATH_MAX + 8], text[16];
	wl_aux_path(path, sizeof(path), "port");
	int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int n = snprintf(text, sizeof(text), "%u\n", ntohs(a.sin6_port));
	if (f < 0 || write(f, text, (size_t)n) != n || close(f) < 0)
		wl_die("write %s: %s", path, strerror(errno));
	wl_ready();
	int c = -1;
	unsigned long long echoed = 0;
	size_t held = 0; /* read, not yet written back */
	while (!wl_stop) {
		if (c < 0) {
			c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
			if (c < 0)
				wl_sleep_ms(1);
			continue;
		}
		if (held == 0) {
			ssize_t r = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
			if (r == 0) {
				wl_fail("EOF after %llu bytes", echoed);
				break;
			}
			if (r < 0 && errno != EAGAIN && errno != EINTR) {
				wl_fail("recv after %llu bytes: %s", echoed, wl_errname(errno));
				break;
			}
			if (r > 0)
				held = (size_t)r;
		}
		if (held > 0) {
			ssize_t w = send(c, buf, held, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				wl_fail("send after %llu bytes: %s", echoed, wl_errname(errno));
				break;
			}
			if (w > 0) {
				memmove(buf, buf + w, held - (size_t)w);
				held -= (size_t)w;
				echoed += (unsigned long long)w;
			}
		}
		wl_sleep_ms(1);
	}
	WL_CHECK(c >= 0, "no connection came");
	wl_printf("tcpserve: %llu bytes echoed\n", echoed);
	wl_finish();
}
