/* inetsk: inet sockets without an established connection (those need
 * --tcp-established: tcpecho), each checked after restore:
 *   - a TCP listener on 127.0.0.1 (backlog 7, SO_REUSEADDR, O_NONBLOCK) with
 *     3 connections from clients of this process not yet accepted: accepted
 *     after restore, from the same client ports, and they carry data; the
 *     clients have TCP_NODELAY, and SO_KEEPALIVE with TCP_KEEPIDLE 77,
 *     TCP_KEEPINTVL 11, TCP_KEEPCNT 4;
 *   - an IPv6 listener on ::1 with IPV6_V6ONLY;
 *   - a TCP socket bound to 127.0.0.1 and not listening; an unbound one with
 *     SO_LINGER 5 s, SO_SNDBUF, IP_TOS 0x10;
 *   - UDP: u1 bound (SO_RCVBUF 300000) with datagrams of 1, 1000 and 60000
 *     bytes from u2 (bound, connected to u1) and one from u3 (auto-bound);
 *     u2 with 2 datagrams from u1; a dual-stack IPv6 socket on [::] with one
 *     datagram from IPv4 (v4-mapped sender) and one from ::1, member of the
 *     multicast group ff02::4242 on lo (IPV6_ADD_MEMBERSHIP: joining again
 *     fails with EADDRINUSE); u1 bound to device lo (SO_BINDTODEVICE).
 * Every datagram is read back with its sender; names, options and flags as
 * at setup.
 */
#include "workload.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

static int L, L6, B, U, C[3], U1, U2, U3, U6, U4s, U6s;
static unsigned short port_L, port_L6, port_B, port_C[3], port_U1, port_U2, port_U3, port_U6, port_U4s, port_U6s;

static unsigned short port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static struct sockaddr_in v4(unsigned short port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static struct sockaddr_in6 v6(const char *addr, unsigned short port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	inet_pton(AF_INET6, addr, &a.sin6_addr);
	return a;
}

static int sock(int family, int type)
{
	int fd = socket(family, type, 0);
	if (fd < 0)
		wl_die("socket: %s", strerror(errno));
	return fd;
}

static void setint(int fd, int level, int opt, int v)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0)
		wl_die("setsockopt %d/%d: %s", level, opt, strerror(errno));
}

static int getint(int fd, int level, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, level, opt, &v, &len) < 0)
		return -1000 - errno;
	return v;
}

static void bind4(int fd, unsigned short port)
{
	struct sockaddr_in a = v4(port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		wl_die("bind: %s", strerror(errno));
}

static char big[65536];

static void fill(char *p, size_t n, int id)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)wl_mix64(((uint64_t)id << 32) | i);
}

static void send4(int fd, unsigned short to, size_t n, int id)
{
	fill(big, n, id);
	struct sockaddr_in a = v4(to);
	if (sendto(fd, big, n, 0, (struct sockaddr *)&a, sizeof(a)) != (ssize_t)n)
		wl_die("sendto: %s", strerror(errno));
}

/* The next datagram of fd: n bytes of pattern id from port `from`. */
static void expect_dgram(const char *who, int fd, size_t n, int id, unsigned short from, int mapped)
{
	static char got[65536], want[65536];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	ssize_t r = recvfrom(fd, got, sizeof(got), MSG_DONTWAIT, (struct sockaddr *)&ss, &len);
	if (r < 0) {
		wl_fail("%s: datagram of pattern %d: %s", who, id, wl_errname(errno));
		return;
	}
	fill(want, n, id);
	WL_CHECK((size_t)r == n && memcmp(got, want, n) == 0, "%s: datagram %d of %zd bytes, expected %zu", who, id, r, n);
	unsigned short port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
						      : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	WL_CHECK(port == from, "%s: datagram %d from port %u, expected %u", who, id, port, from);
	if (ss.ss_family == AF_INET6) {
		char text[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof(text));
		WL_CHECK(strcmp(text, mapped ? "::ffff:127.0.0.1" : "::1") == 0, "%s: datagram %d from %s", who, id,
			 text);
	}
}

static int accept_within(int l, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		int fd = accept(l, NULL, NULL);
		if (fd >= 0)
			return fd;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		wl_sleep_ms(10);
	}
	return -1;
}

static unsigned short peer_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void setup(void)
{
	L = sock(AF_INET, SOCK_STREAM);
	setint(L, SOL_SOCKET, SO_REUSEADDR, 1);
	bind4(L, 0);
	if (listen(L, 7) < 0)
		wl_die("listen: %s", strerror(errno));
	fcntl(L, F_SETFL, O_NONBLOCK);
	port_L = port_of(L);
	for (int i = 0; i < 3; i++) {
		C[i] = sock(AF_INET, SOCK_STREAM);
		if (i == 0)
			setint(C[i], IPPROTO_TCP, TCP_NODELAY, 1);
		if (i == 1) {
			setint(C[i], SOL_SOCKET, SO_KEEPALIVE, 1);
			setint(C[i], IPPROTO_TCP, TCP_KEEPIDLE, 77);
			setint(C[i], IPPROTO_TCP, TCP_KEEPINTVL, 11);
			setint(C[i], IPPROTO_TCP, TCP_KEEPCNT, 4);
		}
		struct sockaddr_in a = v4(port_L);
		if (connect(C[i], (struct sockaddr *)&a, sizeof(a)) < 0)
			wl_die("connect: %s", strerror(errno));
		port_C[i] = port_of(C[i]);
	}
	L6 = sock(AF_INET6, SOCK_STREAM);
	setint(L6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	struct sockaddr_in6 a6 = v6("::1", 0);
	if (bind(L6, (struct sockaddr *)&a6, sizeof(a6)) < 0 || listen(L6, 3) < 0)
		wl_die("IPv6 listener: %s", strerror(errno));
	port_L6 = port_of(L6);
	B = sock(AF_INET, SOCK_STREAM);
	bind4(B, 0);
	port_B = port_of(B);
	U = sock(AF_INET, SOCK_STREAM);
	struct linger lg = { 1, 5 };
	setsockopt(U, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setint(U, SOL_SOCKET, SO_SNDBUF, 100000);
	setint(U, IPPROTO_IP, IP_TOS, 0x10);

	U1 = sock(AF_INET, SOCK_DGRAM);
	setint(U1, SOL_SOCKET, SO_RCVBUF, 300000);
	if (setsockopt(U1, SOL_SOCKET, SO_BINDTODEVICE, "lo", 2) < 0)
		wl_die("SO_BINDTODEVICE lo: %s", strerror(errno));
	bind4(U1, 0);
	port_U1 = port_of(U1);
	U2 = sock(AF_INET, SOCK_DGRAM);
	bind4(U2, 0);
	port_U2 = port_of(U2);
	struct sockaddr_in to1 = v4(port_U1);
	if (connect(U2, (struct sockaddr *)&to1, sizeof(to1)) < 0)
		wl_die("connect u2: %s", strerror(errno));
	U3 = sock(AF_INET, SOCK_DGRAM);
	send4(U2, port_U1, 1, 1);
	send4(U2, port_U1, 1000, 2);
	send4(U2, port_U1, 60000, 3);
	send4(U3, port_U1, 333, 4);
	port_U3 = port_of(U3);
	send4(U1, port_U2, 10, 5);
	send4(U1, port_U2, 20, 6);

	U6 = sock(AF_INET6, SOCK_DGRAM);
	setint(U6, IPPROTO_IPV6, IPV6_V6ONLY, 0);
	struct sockaddr_in6 any = v6("::", 0);
	if (bind(U6, (struct sockaddr *)&any, sizeof(any)) < 0)
		wl_die("bind [::]: %s", strerror(errno));
	port_U6 = port_of(U6);
	struct ipv6_mreq mr = { .ipv6mr_interface = if_nametoindex("lo") };
	inet_pton(AF_INET6, "ff02::4242", &mr.ipv6mr_multiaddr);
	if (setsockopt(U6, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)
		wl_die("join ff02::4242 on lo: %s", strerror(errno));
	U4s = sock(AF_INET, SOCK_DGRAM);
	send4(U4s, port_U6, 44, 7);
	port_U4s = port_of(U4s);
	U6s = sock(AF_INET6, SOCK_DGRAM);
	fill(big, 66, 8);
	struct sockaddr_in6 to6 = v6("::1", port_U6);
	if (sendto(U6s, big, 66, 0, (struct sockaddr *)&to6, sizeof(to6)) != 66)
		wl_die("sendto ::1: %s", strerror(errno));
	port_U6s = port_of(U6s);
}

static void verify(void)
{
	WL_CHECK(port_of(L) == port_L, "listener port %u, expected %u", port_of(L), port_L);
	WL_CHECK(getint(L, SOL_SOCKET, SO_REUSEADDR) == 1, "listener SO_REUSEADDR off");
	WL_CHECK(getint(L, SOL_SOCKET, SO_ACCEPTCONN) == 1, "listener not listening");
	WL_CHECK(fcntl(L, F_GETFL) & O_NONBLOCK, "listener lost O_NONBLOCK");
	WL_CHECK(getint(C[0], IPPROTO_TCP, TCP_NODELAY) == 1, "client 0 lost TCP_NODELAY");
	WL_CHECK(getint(C[1], SOL_SOCKET, SO_KEEPALIVE) == 1 && getint(C[1], IPPROTO_TCP, TCP_KEEPIDLE) == 77 &&
			 getint(C[1], IPPROTO_TCP, TCP_KEEPINTVL) == 11 && getint(C[1], IPPROTO_TCP, TCP_KEEPCNT) == 4,
		 "client 1 keepalive settings %d %d %d %d", getint(C[1], SOL_SOCKET, SO_KEEPALIVE),
		 getint(C[1], IPPROTO_TCP, TCP_KEEPIDLE), getint(C[1], IPPROTO_TCP, TCP_KEEPINTVL),
		 getint(C[1], IPPROTO_TCP, TCP_KEEPCNT));
	int seen = 0;
	for (int i = 0; i < 3; i++) {
		int a = accept_within(L, 3000);
		if (a < 0) {
			wl_fail("accept %d of 3 queued connections: %s", i + 1, wl_errname(errno));
			break;
		}
		unsigned short p = peer_port(a);
		int k = -1;
		for (int j = 0; j < 3; j++)
			if (port_C[j] == p)
				k = j;
		if (k < 0 || (seen & (1 << k))) {
			wl_fail("accepted a connection from port %u, not one of the clients'", p);
			close(a);
			continue;
		}
		seen |= 1 << k;
		char msg[16] = "hello", back[16] = "";
		msg[5] = (char)('0' + k);
		WL_CHECK(write(C[k], msg, 6) == 6, "client %d write: %s", k, wl_errname(errno));
		struct pollfd pf = { a, POLLIN, 0 };
		poll(&pf, 1, 3000);
		WL_CHECK(read(a, back, sizeof(back)) == 6 && memcmp(back, msg, 6) == 0, "connection %d lost its data", k);
		close(a);
	}
	WL_CHECK(seen == 7, "accepted clients mask %#x, expected 0x7", seen);
	int extra = accept(L, NULL, NULL);
	WL_CHECK(extra < 0 && errno == EAGAIN, "a fourth connection waited in the queue");

	WL_CHECK(port_of(L6) == port_L6, "IPv6 listener port %u, expected %u", port_of(L6), port_L6);
	WL_CHECK(getint(L6, IPPROTO_IPV6, IPV6_V6ONLY) == 1, "IPv6 listener lost IPV6_V6ONLY");
	int c6 = sock(AF_INET6, SOCK_STREAM);
	struct sockaddr_in6 to = v6("::1", port_L6);
	WL_CHECK(connect(c6, (struct sockaddr *)&to, sizeof(to)) == 0, "connect to the IPv6 listener: %s",
		 wl_errname(errno));
	close(c6);

	WL_CHECK(port_of(B) == port_B, "bound socket port %u, expected %u", port_of(B), port_B);
	WL_CHECK(getint(B, SOL_SOCKET, SO_ACCEPTCONN) == 0, "bound socket listens");
	WL_CHECK(port_of(U) == 0, "unbound socket is bound to %u", port_of(U));
	struct linger lg = { 0, 0 };
	socklen_t len = sizeof(lg);
	getsockopt(U, SOL_SOCKET, SO_LINGER, &lg, &len);
	WL_CHECK(lg.l_onoff == 1 && lg.l_linger == 5, "SO_LINGER %d %d", lg.l_onoff, lg.l_linger);
	WL_CHECK(getint(U, SOL_SOCKET, SO_SNDBUF) == 200000, "SO_SNDBUF %d", getint(U, SOL_SOCKET, SO_SNDBUF));
	WL_CHECK(getint(U, IPPROTO_IP, IP_TOS) == 0x10, "IP_TOS %#x", getint(U, IPPROTO_IP, IP_TOS));

	WL_CHECK(port_of(U1) == port_U1 && port_of(U2) == port_U2 && port_of(U3) == port_U3, "UDP ports changed");
	WL_CHECK(getint(U1, SOL_SOCKET, SO_RCVBUF) == 600000, "u1 SO_RCVBUF %d", getint(U1, SOL_SOCKET, SO_RCVBUF));
	char dev[IFNAMSIZ] = "";
	len = sizeof(dev);
	getsockopt(U1, SOL_SOCKET, SO_BINDTODEVICE, dev, &len);
	WL_CHECK(strcmp(dev, "lo") == 0, "u1 bound to device \"%s\"", dev);
	expect_dgram("u1", U1, 1, 1, port_U2, 0);
	expect_dgram("u1", U1, 1000, 2, port_U2, 0);
	expect_dgram("u1", U1, 60000, 3, port_U2, 0);
	expect_dgram("u1", U1, 333, 4, port_U3, 0);
	expect_dgram("u2", U2, 10, 5, port_U1, 0);
	expect_dgram("u2", U2, 20, 6, port_U1, 0);
	WL_CHECK(peer_port(U2) == port_U1, "u2 connected to port %u", peer_port(U2));
	WL_CHECK(getint(U6, IPPROTO_IPV6, IPV6_V6ONLY) == 0, "dual-stack socket is IPV6_V6ONLY");
	expect_dgram("u6", U6, 44, 7, port_U4s, 1);
	expect_dgram("u6", U6, 66, 8, port_U6s, 0);
	struct ipv6_mreq mr = { .ipv6mr_interface = if_nametoindex("lo") };
	inet_pton(AF_INET6, "ff02::4242", &mr.ipv6mr_multiaddr);
	int joined = setsockopt(U6, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr));
	WL_CHECK(joined < 0 && errno == EADDRINUSE, "u6 no longer a member of ff02::4242 on lo (joining again: %s)",
		 joined < 0 ? wl_errname(errno) : "done");
	char none;
	WL_CHECK(recv(U1, &none, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "u1: a datagram too many");
	/* They still carry new datagrams. */
	send4(U3, port_U1, 5, 9);
	wl_sleep_ms(5);
	expect_dgram("u1 (new)", U1, 5, 9, port_U3, 0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "inetsk");
	setup();
	wl_ready();
	wl_run_until_sigterm(0);
	verify();
	wl_finish();
}
