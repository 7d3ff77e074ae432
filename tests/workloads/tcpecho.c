/* tcpecho: established TCP connections between two processes of the tree
 * (dumped with --tcp-established): the root R listens on 127.0.0.1 and
 * accepts two connections from its child C.
 *   - stream: both ends write a numbered byte stream as fast as the socket
 *     takes it (SO_SNDBUF and SO_RCVBUF 512 KiB) and read it slower, 4 KiB a
 *     millisecond, so that about 1 MiB or more is in flight each way at any
 *     moment (printed at ready); every byte read is checked: none lost,
 *     repeated or reordered;
 *   - half: C wrote "half" and shut it down for writing (C in FIN_WAIT2, R in
 *     CLOSE_WAIT with 4 bytes and the FIN unread).
 * On SIGTERM (R passes it on) each end goes on until it has read 2 MiB more,
 * then R reads "half" and EOF on the half-closed connection, answers "back"
 * and shuts down; C reads "back" and EOF. Prints "PASS C", then
 * "PASS tcpecho".
 */
#include "workload.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

static const char *who = "R";
static uint64_t sent, received;
static char wbuf[65536], rbuf[4096];

static unsigned char pattern(int side, uint64_t i) { return (unsigned char)((i % 251) + (unsigned)side * 17); }

/* One round: write what fits, read up to 4 KiB and check it. */
static int pump(int fd, int me)
{
	for (size_t k = 0; k < sizeof(wbuf); k++)
		wbuf[k] = (char)pattern(me, sent + k);
	ssize_t w = send(fd, wbuf, sizeof(wbuf), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w > 0)
		sent += (uint64_t)w;
	else if (w < 0 && errno != EAGAIN && errno != EINTR) {
		wl_fail("%s: send after %llu bytes: %s", who, (unsigned long long)sent, wl_errname(errno));
		return -1;
	}
	ssize_t r = recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
	if (r == 0) {
		wl_fail("%s: EOF after %llu bytes", who, (unsigned long long)received);
		return -1;
	}
	if (r < 0 && errno != EAGAIN && errno != EINTR) {
		wl_fail("%s: recv after %llu bytes: %s", who, (unsigned long long)received, wl_errname(errno));
		return -1;
	}
	for (ssize_t k = 0; k < r; k++)
		if ((unsigned char)rbuf[k] != pattern(!me, received + (uint64_t)k)) {
			wl_fail("%s: byte %llu is %u, expected %u", who, (unsigned long long)(received + (uint64_t)k),
				(unsigned char)rbuf[k], pattern(!me, received + (uint64_t)k));
			return -1;
		}
	if (r > 0)
		received += (uint64_t)r;
	return 0;
}

/* Until 2 MiB more are read (30 s at most). */
static void go_on(int fd, int me)
{
	const uint64_t until = received + (2 << 20);
	for (int i = 0; i < 30000 && received < until; i++) {
		if (pump(fd, me) < 0)
			return;
		wl_sleep_ms(1);
	}
	WL_CHECK(received >= until, "%s: only %llu bytes read after the signal, expected 2 MiB", who,
		 (unsigned long long)(received + (2 << 20) - until));
}

static ssize_t read_within(int fd, char *buf, size_t n, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, ms) <= 0)
		return -2;
	return read(fd, buf, n);
}

static void buffers(int fd)
{
	int v = 512 << 10;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

static void child(unsigned short port)
{
	who = "C";
	wl_name = "C";
	int s = socket(AF_INET, SOCK_STREAM, 0), h = socket(AF_INET, SOCK_STREAM, 0);
	buffers(s);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 || connect(h, (struct sockaddr *)&a, sizeof(a)) < 0)
		wl_die("connect: %s", strerror(errno));
	if (write(h, "half", 4) != 4 || shutdown(h, SHUT_WR) < 0)
		wl_die("half-close: %s", strerror(errno));
	while (!wl_stop) {
		if (pump(s, 1) < 0)
			break;
		wl_sleep_ms(1);
	}
	go_on(s, 1);
	char buf[16] = "";
	ssize_t n = read_within(h, buf, sizeof(buf), 10000);
	WL_CHECK(n == 4 && memcmp(buf, "back", 4) == 0, "C: half-closed connection read %zd bytes, expected \"back\"", n);
	n = read_within(h, buf, sizeof(buf), 10000);
	WL_CHECK(n == 0, "C: half-closed connection: read %zd after \"back\", expected EOF", n);
	wl_finish();
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "tcpecho");
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	buffers(l);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0)
		wl_die("listen: %s", strerror(errno));
	socklen_t len = sizeof(a);
	getsockname(l, (struct sockaddr *)&a, &len);
	pid_t kid = fork();
	if (kid < 0)
		wl_die("fork: %s", strerror(errno));
	if (kid == 0) {
		close(l);
		child(ntohs(a.sin_port));
	}
	int s = accept(l, NULL, NULL), h = accept(l, NULL, NULL);
	if (s < 0 || h < 0)
		wl_die("accept: %s", strerror(errno));
	buffers(s);
	for (int i = 0; i < 300; i++) {
		if (pump(s, 0) < 0)
			wl_die("%s", wl_fail_msg);
		wl_sleep_ms(1);
	}
	int outq = 0, inq = 0;
	ioctl(s, SIOCOUTQ, &outq);
	ioctl(s, SIOCINQ, &inq);
	wl_printf("R: %d bytes in its send queue, %d in its receive queue\n", outq, inq);
	wl_ready();
	while (!wl_stop) {
		if (pump(s, 0) < 0)
			break;
		wl_sleep_ms(1);
	}
	kill(kid, SIGTERM);
	go_on(s, 0);
	char buf[16] = "";
	ssize_t n = read_within(h, buf, sizeof(buf), 10000);
	WL_CHECK(n == 4 && memcmp(buf, "half", 4) == 0, "R: half-closed connection read %zd bytes, expected \"half\"", n);
	n = read_within(h, buf, sizeof(buf), 10000);
	WL_CHECK(n == 0, "R: half-closed connection: read %zd after \"half\", expected EOF", n);
	WL_CHECK(write(h, "back", 4) == 4, "R: write on the half-closed connection: %s", wl_errname(errno));
	shutdown(h, SHUT_WR);
	int st = 0;
	WL_CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "R: child failed (status %#x)",
		 st);
	wl_finish();
}
