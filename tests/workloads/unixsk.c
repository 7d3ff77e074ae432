/* unixsk: unix sockets of every shape, with data in flight.
 *
 * Setup:
 *   st    stream socketpair: st0 -> st1 150000 pattern bytes, st1 has read
 *         the first 1000; st1 -> st0 5000 bytes. st0 SO_PASSCRED, SO_SNDBUF
 *         200000; st1 O_NONBLOCK, SO_RCVBUF 100000
 *   dg    datagram socketpair: dg0 -> dg1 messages of 1, 100, 3000 bytes,
 *         dg1 -> dg0 7 and 60000 bytes
 *   sq    seqpacket socketpair: sq0 -> sq1 10, 20, 30 bytes; sq1 -> sq0
 *         "bye", then shutdown(sq1, SHUT_WR)
 *   cl    stream socketpair whose cl1 wrote "last words" and was closed
 *   pk    stream socketpair, pk0 -> pk1 "0123456789"; pk1 peeked 4 bytes
 *         with SO_PEEK_OFF 0 (its peek offset is then 4)
 *   ls    stream listener at <ready>.sock (mode 0640, backlog 5,
 *         O_NONBLOCK); ca connected and accepted as sa, "hello server" and
 *         "hello client" in flight; cb connected and not yet accepted
 *   da,db datagram sockets with abstract names; da connected to db; da -> db
 *         3 messages, db -> da (sendto) 2 messages
 *   pd    datagram socket at <ready>.dgram (mode 0600), unconnected, with 2
 *         messages from an unbound socket since closed
 *   us    an unbound stream socket
 *   ql    seqpacket listener with an abstract name, backlog 2: cc (bound to
 *         an abstract name too) connected and accepted as sc, messages both
 *         ways; cd connected and not yet accepted
 *   os    accepted from a listener at <ready>.old since closed (its socket
 *         file stays), with data for oc, its client
 *   sz    accepted from ls; its client wrote "bye" and was closed
 * Verification: every queue read back byte for byte with its message
 * boundaries and senders' names; names (getsockname, getpeername), shutdown
 * states, options, flags, socket files' modes; connections still work.
 */
#include "workload.h"

#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define ST_BYTES 150000
#define ST_READ 1000
#define ST_BACK 5000

static int st[2], dg[2], sq[2], cl[2], pk[2], ls, ca, sa, cb, da, db, pd, us, ql, cc, sc, cd, os, oc, sz;
static char sock_path[PATH_MAX + 8], dgram_path[PATH_MAX + 8], old_path[PATH_MAX + 8];
static char abs_a[64], abs_b[64], abs_l[64], abs_c[64];
static int abs_a_len, abs_b_len, abs_l_len, abs_c_len;
static int st0_sndbuf, st1_rcvbuf;
static char buf[200000];

static uint8_t pat(uint64_t seed, size_t k)
{
	return (uint8_t)wl_mix64(seed * 1000003 + k);
}

static void fill(char *p, size_t n, uint64_t seed)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (char)pat(seed, k);
}

static int same(const char *p, size_t n, uint64_t seed, size_t from)
{
	for (size_t k = 0; k < n; k++)
		if ((uint8_t)p[k] != pat(seed, from + k))
			return 0;
	return 1;
}

static void send_all(int fd, const char *p, size_t n, const char *what)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			wl_die("send %s: %s", what, strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static void send_msg(int fd, size_t n, uint64_t seed, const char *what)
{
	static char m[65536];
	fill(m, n, seed);
	if (send(fd, m, n, 0) != (ssize_t)n)
		wl_die("send %s: %s", what, strerror(errno));
}

static int set_int(int fd, int opt, int v)
{
	return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
}

static int get_int(int fd, int opt)
{
	int v = -12345;
	socklen_t l = sizeof(v);
	getsockopt(fd, SOL_SOCKET, opt, &v, &l);
	return v;
}

static socklen_t addr(struct sockaddr_un *a, const char *name, int len)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, name, (size_t)len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)len);
}

/* Reads exactly n bytes (stream), failing on EOF or error. */
static int read_exact(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0)
			return 0;
		p += r;
		n -= (size_t)r;
	}
	return 1;
}

static void setup(void)
{
	/* st */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st))
		wl_die("socketpair stream: %s", strerror(errno));
	if (set_int(st[0], SO_SNDBUF, 200000) || set_int(st[1], SO_RCVBUF, 100000) || set_int(st[0], SO_PASSCRED, 1))
		wl_die("setsockopt: %s", strerror(errno));
	st0_sndbuf = get_int(st[0], SO_SNDBUF);
	st1_rcvbuf = get_int(st[1], SO_RCVBUF);
	fill(buf, ST_BYTES, 1);
	send_all(st[0], buf, ST_BYTES, "st0");
	if (!read_exact(st[1], buf, ST_READ) || !same(buf, ST_READ, 1, 0))
		wl_die("st1: first read");
	fill(buf, ST_BACK, 2);
	send_all(st[1], buf, ST_BACK, "st1");
	fcntl(st[1], F_SETFL, fcntl(st[1], F_GETFL) | O_NONBLOCK);

	/* dg */
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dg))
		wl_die("socketpair dgram: %s", strerror(errno));
	send_msg(dg[0], 1, 10, "dg0");
	send_msg(dg[0], 100, 11, "dg0");
	send_msg(dg[0], 3000, 12, "dg0");
	send_msg(dg[1], 7, 13, "dg1");
	send_msg(dg[1], 60000, 14, "dg1");

	/* sq */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq))
		wl_die("socketpair seqpacket: %s", strerror(errno));
	send_msg(sq[0], 10, 20, "sq0");
	send_msg(sq[0], 20, 21, "sq0");
	send_msg(sq[0], 30, 22, "sq0");
	if (send(sq[1], "bye", 3, 0) != 3 || shutdown(sq[1], SHUT_WR))
		wl_die("sq1: %s", strerror(errno));

	/* cl */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, cl) || send(cl[1], "last words", 10, 0) != 10)
		wl_die("cl: %s", strerror(errno));
	close(cl[1]);

	/* pk */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pk) || send(pk[0], "0123456789", 10, 0) != 10)
		wl_die("pk: %s", strerror(errno));
	if (set_int(pk[1], SO_PEEK_OFF, 0) || recv(pk[1], buf, 4, MSG_PEEK) != 4 || memcmp(buf, "0123", 4))
		wl_die("pk1: peek: %s", strerror(errno));

	/* ls, ca, sa, cb */
	struct sockaddr_un a;
	socklen_t al;
	wl_aux_path(sock_path, sizeof(sock_path), "sock");
	unlink(sock_path);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	al = addr(&a, sock_path, (int)strlen(sock_path));
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, al) || chmod(sock_path, 0640) || listen(ls, 5))
		wl_die("listener %s: %s", sock_path, strerror(errno));
	ca = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ca < 0 || connect(ca, (struct sockaddr *)&a, al) || (sa = accept(ls, NULL, NULL)) < 0)
		wl_die("ca: %s", strerror(errno));
	if (send(ca, "hello server", 12, 0) != 12 || send(sa, "hello client", 12, 0) != 12)
		wl_die("ca/sa: %s", strerror(errno));
	int cz = socket(AF_UNIX, SOCK_STREAM, 0);
	if (cz < 0 || connect(cz, (struct sockaddr *)&a, al) || (sz = accept(ls, NULL, NULL)) < 0 ||
	    send(cz, "bye", 3, 0) != 3)
		wl_die("sz: %s", strerror(errno));
	close(cz);
	cb = socket(AF_UNIX, SOCK_STREAM, 0);
	if (cb < 0 || connect(cb, (struct sockaddr *)&a, al))
		wl_die("cb: %s", strerror(errno));
	fcntl(ls, F_SETFL, fcntl(ls, F_GETFL) | O_NONBLOCK);

	/* da, db */
	abs_a_len = snprintf(abs_a, sizeof(abs_a), "%cckpt-unixsk-%d-a", 0, (int)getpid());
	abs_b_len = snprintf(abs_b, sizeof(abs_b), "%cckpt-unixsk-%d-b", 0, (int)getpid());
	da = socket(AF_UNIX, SOCK_DGRAM, 0);
	db = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un aa, ab;
	socklen_t aal = addr(&aa, abs_a, abs_a_len), abl = addr(&ab, abs_b, abs_b_len);
	if (da < 0 || db < 0 || bind(da, (struct sockaddr *)&aa, aal) || bind(db, (struct sockaddr *)&ab, abl) ||
	    connect(da, (struct sockaddr *)&ab, abl))
		wl_die("da/db: %s", strerror(errno));
	for (int i = 0; i < 3; i++)
		send_msg(da, 50 + (size_t)i, 30 + (uint64_t)i, "da");
	for (int i = 0; i < 2; i++) {
		fill(buf, 70 + (size_t)i, 40 + (uint64_t)i);
		if (sendto(db, buf, 70 + (size_t)i, 0, (struct sockaddr *)&aa, aal) != 70 + i)
			wl_die("db: %s", strerror(errno));
	}

	/* pd */
	wl_aux_path(dgram_path, sizeof(dgram_path), "dgram");
	unlink(dgram_path);
	pd = socket(AF_UNIX, SOCK_DGRAM, 0);
	al = addr(&a, dgram_path, (int)strlen(dgram_path));
	if (pd < 0 || bind(pd, (struct sockaddr *)&a, al) || chmod(dgram_path, 0600))
		wl_die("pd: %s", strerror(errno));
	int t = socket(AF_UNIX, SOCK_DGRAM, 0);
	for (int i = 0; i < 2; i++) {
		fill(buf, 33 + (size_t)i, 50 + (uint64_t)i);
		if (sendto(t, buf, 33 + (size_t)i, 0, (struct sockaddr *)&a, al) != 33 + i)
			wl_die("to pd: %s", strerror(errno));
	}
	close(t);

	us = socket(AF_UNIX, SOCK_STREAM, 0);
	if (us < 0)
		wl_die("us: %s", strerror(errno));

	/* ql, cc, sc, cd */
	abs_l_len = snprintf(abs_l, sizeof(abs_l), "%cckpt-unixsk-%d-l", 0, (int)getpid());
	abs_c_len = snprintf(abs_c, sizeof(abs_c), "%cckpt-unixsk-%d-c", 0, (int)getpid());
	struct sockaddr_un la, lc;
	socklen_t lal = addr(&la, abs_l, abs_l_len), lcl = addr(&lc, abs_c, abs_c_len);
	ql = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	cc = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	cd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (ql < 0 || cc < 0 || cd < 0 || bind(ql, (struct sockaddr *)&la, lal) || listen(ql, 2) ||
	    bind(cc, (struct sockaddr *)&lc, lcl) || connect(cc, (struct sockaddr *)&la, lal) ||
	    (sc = accept(ql, NULL, NULL)) < 0 || connect(cd, (struct sockaddr *)&la, lal))
		wl_die("ql: %s", strerror(errno));
	send_msg(cc, 11, 60, "cc");
	send_msg(cc, 22, 61, "cc");
	send_msg(sc, 33, 62, "sc");

	/* os, oc */
	wl_aux_path(old_path, sizeof(old_path), "old");
	unlink(old_path);
	int ol = socket(AF_UNIX, SOCK_STREAM, 0);
	socklen_t al2 = addr(&a, old_path, (int)strlen(old_path));
	oc = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ol < 0 || oc < 0 || bind(ol, (struct sockaddr *)&a, al2) || listen(ol, 1) ||
	    connect(oc, (struct sockaddr *)&a, al2) || (os = accept(ol, NULL, NULL)) < 0)
		wl_die("ol: %s", strerror(errno));
	close(ol);
	if (send(os, "from os", 7, 0) != 7)
		wl_die("os: %s", strerror(errno));
}

/* A datagram or seqpacket message of n bytes made from seed, with its
 * sender's name (NULL: unnamed). */
static void expect_msg(int fd, const char *who, size_t n, uint64_t seed, const char *from, int from_len)
{
	struct sockaddr_un a;
	socklen_t al = sizeof(a);
	memset(&a, 0, sizeof(a));
	ssize_t r = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&a, &al);
	if (r < 0) {
		wl_fail("%s: message of %zu bytes: %s", who, n, wl_errname(errno));
		return;
	}
	WL_CHECK((size_t)r == n, "%s: message of %zd bytes, expected %zu", who, r, n);
	WL_CHECK((size_t)r != n || same(buf, n, seed, 0), "%s: message of %zu bytes differs", who, n);
	if (from) {
		WL_CHECK(al == offsetof(struct sockaddr_un, sun_path) + (size_t)from_len &&
				 memcmp(a.sun_path, from, (size_t)from_len) == 0,
			 "%s: sender's name differs (length %u)", who, (unsigned)al);
	}
}

static void expect_empty(int fd, const char *who)
{
	ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	WL_CHECK(r < 0 && errno == EAGAIN, "%s: more queued than expected (%zd, %s)", who, r,
		 r < 0 ? wl_errname(errno) : "data");
}

static void expect_name(int fd, int peer, const char *who, const char *name, int len)
{
	struct sockaddr_un a;
	socklen_t al = sizeof(a);
	memset(&a, 0, sizeof(a));
	int r = peer ? getpeername(fd, (struct sockaddr *)&a, &al) : getsockname(fd, (struct sockaddr *)&a, &al);
	if (r) {
		wl_fail("%s: get%sname: %s", who, peer ? "peer" : "sock", wl_errname(errno));
		return;
	}
	size_t want = offsetof(struct sockaddr_un, sun_path) + (size_t)len;
	/* A path's name is given with its NUL. */
	if (len > 0 && name[0] != 0)
		want++;
	WL_CHECK(al == want && memcmp(a.sun_path, name, (size_t)len) == 0, "%s: %sname differs (length %u, expected %zu)",
		 who, peer ? "peer" : "sock", (unsigned)al, want);
}

static void verify(void)
{
	/* st */
	WL_CHECK(get_int(st[0], SO_SNDBUF) == st0_sndbuf, "st0: SO_SNDBUF %d, expected %d", get_int(st[0], SO_SNDBUF), st0_sndbuf);
	WL_CHECK(get_int(st[1], SO_RCVBUF) == st1_rcvbuf, "st1: SO_RCVBUF %d, expected %d", get_int(st[1], SO_RCVBUF), st1_rcvbuf);
	WL_CHECK(get_int(st[0], SO_PASSCRED) == 1 && get_int(st[1], SO_PASSCRED) == 0, "SO_PASSCRED differs");
	WL_CHECK(fcntl(st[1], F_GETFL) & O_NONBLOCK, "st1: O_NONBLOCK lost");
	WL_CHECK(!(fcntl(st[0], F_GETFL) & O_NONBLOCK), "st0: O_NONBLOCK gained");
	size_t got = 0;
	int ok = 1;
	while (got < ST_BYTES - ST_READ) {
		ssize_t r = recv(st[1], buf, sizeof(buf), 0);
		if (r <= 0)
			break;
		ok &= same(buf, (size_t)r, 1, ST_READ + got);
		got += (size_t)r;
	}
	WL_CHECK(got == ST_BYTES - ST_READ && ok, "st1: read %zu bytes (expected %d), %s", got, ST_BYTES - ST_READ,
		 ok ? "same" : "differing");
	expect_empty(st[1], "st1");
	WL_CHECK(read_exact(st[0], buf, ST_BACK) && same(buf, ST_BACK, 2, 0), "st0: the 5000 bytes differ");
	WL_CHECK(send(st[0], "ping", 4, 0) == 4 && recv(st[1], buf, 4, 0) == 4 && memcmp(buf, "ping", 4) == 0,
		 "st: not connected to each other");

	/* dg */
	expect_msg(dg[1], "dg1", 1, 10, NULL, 0);
	expect_msg(dg[1], "dg1", 100, 11, NULL, 0);
	expect_msg(dg[1], "dg1", 3000, 12, NULL, 0);
	expect_empty(dg[1], "dg1");
	expect_msg(dg[0], "dg0", 7, 13, NULL, 0);
	expect_msg(dg[0], "dg0", 60000, 14, NULL, 0);
	expect_empty(dg[0], "dg0");
	WL_CHECK(send(dg[0], "x", 1, 0) == 1 && recv(dg[1], buf, 2, 0) == 1, "dg: not connected to each other");

	/* sq */
	expect_msg(sq[1], "sq1", 10, 20, NULL, 0);
	expect_msg(sq[1], "sq1", 20, 21, NULL, 0);
	expect_msg(sq[1], "sq1", 30, 22, NULL, 0);
	expect_empty(sq[1], "sq1");
	WL_CHECK(recv(sq[0], buf, sizeof(buf), MSG_DONTWAIT) == 3 && memcmp(buf, "bye", 3) == 0, "sq0: \"bye\" lost");
	WL_CHECK(recv(sq[0], buf, sizeof(buf), MSG_DONTWAIT) == 0, "sq0: no end of file after \"bye\"");
	errno = 0;
	WL_CHECK(send(sq[1], "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "sq1: not shut down for writing (%s)",
		 wl_errname(errno));

	/* cl */
	WL_CHECK(recv(cl[0], buf, sizeof(buf), MSG_DONTWAIT) == 10 && memcmp(buf, "last words", 10) == 0,
		 "cl0: \"last words\" lost");
	WL_CHECK(recv(cl[0], buf, sizeof(buf), MSG_DONTWAIT) == 0, "cl0: no end of file");
	errno = 0;
	WL_CHECK(send(cl[0], "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "cl0: its peer is not closed (%s)",
		 wl_errname(errno));

	/* pk */
	WL_CHECK(get_int(pk[1], SO_PEEK_OFF) == 4, "pk1: SO_PEEK_OFF %d, expected 4", get_int(pk[1], SO_PEEK_OFF));
	WL_CHECK(get_int(pk[0], SO_PEEK_OFF) == -1, "pk0: SO_PEEK_OFF %d, expected -1", get_int(pk[0], SO_PEEK_OFF));
	WL_CHECK(recv(pk[1], buf, 3, MSG_PEEK) == 3 && memcmp(buf, "456", 3) == 0, "pk1: peek at offset 4 differs");
	WL_CHECK(recv(pk[1], buf, 10, MSG_DONTWAIT) == 10 && memcmp(buf, "0123456789", 10) == 0, "pk1: read differs");

	/* ls, ca, sa, cb */
	int plen = (int)strlen(sock_path);
	struct stat sb;
	WL_CHECK(stat(sock_path, &sb) == 0 && S_ISSOCK(sb.st_mode) && (sb.st_mode & 07777) == 0640,
		 "%s: not a socket file of mode 0640 (%o)", sock_path, sb.st_mode);
	WL_CHECK(get_int(ls, SO_ACCEPTCONN) == 1, "ls: not listening");
	WL_CHECK(fcntl(ls, F_GETFL) & O_NONBLOCK, "ls: O_NONBLOCK lost");
	expect_name(ls, 0, "ls", sock_path, plen);
	expect_name(sa, 0, "sa", sock_path, plen);
	expect_name(sa, 1, "sa", "", 0);
	expect_name(ca, 1, "ca", sock_path, plen);
	expect_name(ca, 0, "ca", "", 0);
	expect_name(cb, 1, "cb", sock_path, plen);
	WL_CHECK(recv(sa, buf, sizeof(buf), MSG_DONTWAIT) == 12 && memcmp(buf, "hello server", 12) == 0,
		 "sa: \"hello server\" lost");
	WL_CHECK(recv(ca, buf, sizeof(buf), MSG_DONTWAIT) == 12 && memcmp(buf, "hello client", 12) == 0,
		 "ca: \"hello client\" lost");
	int sb2 = accept(ls, NULL, NULL);
	WL_CHECK(sb2 >= 0, "ls: cb's connection is not in its queue (%s)", wl_errname(errno));
	if (sb2 >= 0) {
		WL_CHECK(send(cb, "cb", 2, 0) == 2 && recv(sb2, buf, 2, MSG_DONTWAIT) == 2 && memcmp(buf, "cb", 2) == 0,
			 "cb: not connected to what ls accepted");
		expect_name(sb2, 0, "sb", sock_path, plen);
		close(sb2);
	}
	WL_CHECK(accept(ls, NULL, NULL) < 0 && errno == EAGAIN, "ls: more connections queued than cb's");
	/* A new connection works. */
	struct sockaddr_un a;
	socklen_t al = addr(&a, sock_path, plen);
	int cn = socket(AF_UNIX, SOCK_STREAM, 0);
	WL_CHECK(connect(cn, (struct sockaddr *)&a, al) == 0, "connect to %s: %s", sock_path, wl_errname(errno));
	close(cn);

	/* da, db */
	expect_name(da, 0, "da", abs_a, abs_a_len);
	expect_name(da, 1, "da", abs_b, abs_b_len);
	expect_name(db, 0, "db", abs_b, abs_b_len);
	socklen_t l = sizeof(a);
	WL_CHECK(getpeername(db, (struct sockaddr *)&a, &l) < 0 && errno == ENOTCONN, "db: connected");
	for (int i = 0; i < 3; i++)
		expect_msg(db, "db", 50 + (size_t)i, 30 + (uint64_t)i, abs_a, abs_a_len);
	expect_empty(db, "db");
	for (int i = 0; i < 2; i++)
		expect_msg(da, "da", 70 + (size_t)i, 40 + (uint64_t)i, abs_b, abs_b_len);
	expect_empty(da, "da");

	/* pd */
	WL_CHECK(stat(dgram_path, &sb) == 0 && S_ISSOCK(sb.st_mode) && (sb.st_mode & 07777) == 0600,
		 "%s: not a socket file of mode 0600 (%o)", dgram_path, sb.st_mode);
	expect_name(pd, 0, "pd", dgram_path, (int)strlen(dgram_path));
	for (int i = 0; i < 2; i++)
		expect_msg(pd, "pd", 33 + (size_t)i, 50 + (uint64_t)i, NULL, 0);
	expect_empty(pd, "pd");

	/* us */
	expect_name(us, 0, "us", "", 0);
	WL_CHECK(get_int(us, SO_TYPE) == SOCK_STREAM, "us: SO_TYPE %d", get_int(us, SO_TYPE));
	WL_CHECK(getpeername(us, (struct sockaddr *)&a, &l) < 0 && errno == ENOTCONN, "us: connected");

	/* ql, cc, sc, cd */
	expect_name(ql, 0, "ql", abs_l, abs_l_len);
	expect_name(sc, 0, "sc", abs_l, abs_l_len);
	expect_name(sc, 1, "sc", abs_c, abs_c_len);
	expect_name(cc, 0, "cc", abs_c, abs_c_len);
	expect_name(cc, 1, "cc", abs_l, abs_l_len);
	expect_name(cd, 1, "cd", abs_l, abs_l_len);
	expect_msg(sc, "sc", 11, 60, NULL, 0);
	expect_msg(sc, "sc", 22, 61, NULL, 0);
	expect_empty(sc, "sc");
	expect_msg(cc, "cc", 33, 62, NULL, 0);
	expect_empty(cc, "cc");
	fcntl(ql, F_SETFL, O_NONBLOCK);
	int sd = accept(ql, NULL, NULL);
	WL_CHECK(sd >= 0, "ql: cd's connection is not in its queue (%s)", wl_errname(errno));
	if (sd >= 0) {
		WL_CHECK(send(cd, "cd", 2, 0) == 2 && recv(sd, buf, 2, MSG_DONTWAIT) == 2,
			 "cd: not connected to what ql accepted");
		close(sd);
	}
	WL_CHECK(accept(ql, NULL, NULL) < 0 && errno == EAGAIN, "ql: more connections queued than cd's");

	/* os, oc */
	int olen = (int)strlen(old_path);
	WL_CHECK(stat(old_path, &sb) == 0 && S_ISSOCK(sb.st_mode), "%s: the closed listener's socket file is gone",
		 old_path);
	expect_name(os, 0, "os", old_path, olen);
	expect_name(oc, 1, "oc", old_path, olen);
	WL_CHECK(recv(oc, buf, sizeof(buf), MSG_DONTWAIT) == 7 && memcmp(buf, "from os", 7) == 0, "oc: \"from os\" lost");
	WL_CHECK(send(oc, "x", 1, 0) == 1 && recv(os, buf, 1, MSG_DONTWAIT) == 1, "os, oc: not connected");

	/* sz */
	expect_name(sz, 0, "sz", sock_path, plen);
	WL_CHECK(recv(sz, buf, sizeof(buf), MSG_DONTWAIT) == 3 && memcmp(buf, "bye", 3) == 0, "sz: \"bye\" lost");
	WL_CHECK(recv(sz, buf, sizeof(buf), MSG_DONTWAIT) == 0, "sz: no end of file");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "unixsk");
	setup();
	wl_ready();
	wl_run_until_sigterm(0);
	verify();
	wl_finish();
}
