/* tcpclient: a TCP client of a server outside the tree (the network lock's
 * tests): connects to 127.0.0.1:<port> (or [::1]:<port> with "6") and
 * echoes back every byte it receives. On SIGTERM: PASS if the connection
 * never failed (no reset, no error) and it echoed everything it read.
 * With "bye" after the port (and family): the server's FIN is no failure;
 * the socket stays in CLOSE_WAIT, and on SIGTERM it writes "bye" and closes.
 * With "shut": on the server's FIN it writes "bye" and shuts down for
 * writing at once (LAST_ACK until the server acknowledges), keeping the fd.
 * With "first": it writes "hi" and shuts down for writing at once (FIN_WAIT2
 * once the server acknowledges), echoes nothing, and reads until the
 * server's FIN, then prints "read <what>, then EOF"; on SIGTERM PASS if it
 * read "late" (the server's bytes after the restore) and the EOF.
 * Not in the workloads suite: tests/e2e/netlock_test.cc drives it, as the
 * peer outside the tree. */
#include "workload.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, "tcpclient");
	if (argc < 3)
		wl_die("usage: wl_tcpclient <ready-file> <port> [6]");
	const int port = atoi(argv[2]);
	const int v6 = argc > 3 && strcmp(argv[3], "6") == 0;
	const int shut = strcmp(argv[argc - 1], "shut") == 0;
	const int bye = shut || strcmp(argv[argc - 1], "bye") == 0;
	const int first = strcmp(argv[argc - 1], "first") == 0;
	int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		wl_die("socket: %s", strerror(errno));
	int rc;
	if (v6) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		rc = connect(s, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rc = connect(s, (struct sockaddr *)&a, sizeof(a));
	}
	if (rc < 0)
		wl_die("connect to port %d: %s", port, strerror(errno));
	if (fcntl(s, F_SETFL, O_NONBLOCK) < 0)
		wl_die("O_NONBLOCK: %s", strerror(errno));
	if (first && (write(s, "hi", 2) != 2 || shutdown(s, SHUT_WR) < 0))
		wl_die("write hi and shut down: %s", strerror(errno));
	wl_ready();

	unsigned long long echoed = 0;
	int failed = 0, eof = 0;
	static char got[64];
	size_t got_len = 0;
	while (!wl_stop && !failed) {
		char buf[4096];
		ssize_t n = read(s, buf, sizeof(buf));
		if (n > 0 && first) {
			for (ssize_t i = 0; i < n && got_len < sizeof(got) - 1; i++)
				got[got_len++] = buf[i];
			continue;
		}
		if (n == 0 && first) {
			eof = 1;
			wl_printf("read %s, then EOF\n", got);
			break;
		}
		if (n > 0) {
			ssize_t off = 0;
			while (off < n) {
				ssize_t w = write(s, buf + off, (size_t)(n - off));
				if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
					wl_sleep_ms(1);
					continue;
				}
				if (w < 0) {
					wl_fail("write: %s", wl_errname(errno));
					failed = 1;
					break;
				}
				off += w;
			}
			echoed += (unsigned long long)n;
			continue;
		}
		if (n == 0 && shut) {
			WL_CHECK(write(s, "bye", 3) == 3, "write bye: %s", wl_errname(errno));
			WL_CHECK(shutdown(s, SHUT_WR) == 0, "shutdown: %s", wl_errname(errno));
			break;
		} else if (n == 0 && bye) {
			break;
		} else if (n == 0) {
			wl_fail("the server closed the connection after %llu bytes", echoed);
			failed = 1;
		} else if (errno != EAGAIN && errno != EINTR) {
			wl_fail("read: %s after %llu bytes", wl_errname(errno), echoed);
			failed = 1;
		} else {
			wl_sleep_ms(2);
		}
	}
	while (!wl_stop)
		wl_sleep_ms(10);
	if (bye && !shut && !failed) {
		WL_CHECK(write(s, "bye", 3) == 3, "write bye: %s", wl_errname(errno));
		WL_CHECK(close(s) == 0, "close: %s", wl_errname(errno));
	}
	if (first) {
		WL_CHECK(eof, "no EOF from the server (read \"%s\")", got);
		WL_CHECK(strcmp(got, "late") == 0, "read \"%s\", not \"late\"", got);
	}
	wl_printf("echoed %llu bytes\n", echoed);
	wl_finish();
}
