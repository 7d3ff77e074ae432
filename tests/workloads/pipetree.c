/* pipetree: the ends of pipes spread over a parent R and two children C1, C2,
 * with data in flight in each, and one write end shared by both children:
 *
 *   a: R  -> C1   1000 bytes in flight
 *   b: C1 -> C2   2000 bytes in flight
 *   c: C2 -> R    3000 bytes in flight
 *   d: C1, C2 -> R   one write description inherited by both, 10 bytes from each
 *   s: a seqpacket socketpair: s[0] held by R and C1 (one description), s[1]
 *      by C2; C1 then R sent a message to C2, C2 one back
 *   f: <ready>.shared, 4096 bytes, one description held by R, C1 and C2 at
 *      offset 100
 *
 * On SIGTERM (R passes it on) each checks what is in flight, then they talk
 * round the ring: R writes to C1, C1 to C2, C2 to R, each message after the
 * data in flight; C1 then closes b and C2 sees EOF after its message, C2
 * exits and R sees EOF on c and d (no one else, ckpt included, holds a write
 * end). Each, in ring order, finds f's shared offset where the one before
 * left it and moves it 10 bytes on (the file keeps its size: a restore of a
 * dump --leave-running finds it as dumped); C1 checks s[0] and f are R's own
 * descriptions (kcmp). Prints "PASS C1", "PASS C2", then "PASS pipetree"
 * from R.
 */
#include "workload.h"

#include <linux/kcmp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

static unsigned char pattern(int pipe, size_t i) { return (unsigned char)wl_mix64(((uint64_t)pipe << 32) | i); }

static char buf[8192];

static void send_pattern(int fd, int id, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)pattern(id, i);
	if (write(fd, buf, n) != (ssize_t)n)
		wl_die("write %zu bytes of pipe %c: %s", n, 'a' + id, strerror(errno));
}

/* n bytes, within 10 s; returns how many came before EOF, an error or the time. */
static size_t recv_exact(int fd, char *out, size_t n)
{
	size_t done = 0;
	while (done < n) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 10000) <= 0)
			break;
		ssize_t r = read(fd, out + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	return done;
}

static void expect_pattern(const char *who, int fd, int id, size_t n)
{
	size_t got = recv_exact(fd, buf, n);
	WL_CHECK(got == n, "%s: pipe %c: %zu bytes in flight, expected %zu", who, 'a' + id, got, n);
	for (size_t i = 0; i < got; i++)
		if ((unsigned char)buf[i] != pattern(id, i)) {
			wl_fail("%s: pipe %c: byte %zu differs", who, 'a' + id, i);
			return;
		}
}

static void expect_message(const char *who, int fd, const char *msg)
{
	char in[16] = { 0 };
	size_t got = recv_exact(fd, in, strlen(msg));
	WL_CHECK(got == strlen(msg) && memcmp(in, msg, got) == 0, "%s: expected \"%s\", got %zu bytes \"%.*s\"", who,
		 msg, got, (int)got, in);
}

static void expect_eof(const char *who, int fd, char name)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char c;
	WL_CHECK(poll(&p, 1, 10000) == 1 && read(fd, &c, 1) == 0, "%s: pipe %c: no EOF once its writers are gone", who,
		 name);
}

static int queued(int fd)
{
	int n = -1;
	ioctl(fd, FIONREAD, &n);
	return n;
}

static void wait_queued(int fd, int n)
{
	for (int i = 0; i < 10000 && queued(fd) != n; i++)
		wl_sleep_ms(1);
	if (queued(fd) != n)
		wl_die("%d bytes queued, waited for %d", queued(fd), n);
}

/* One message of the socketpair, boundaries kept. */
static void expect_packet(const char *who, int fd, const char *msg)
{
	char in[32] = { 0 };
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n = poll(&p, 1, 10000) == 1 ? recv(fd, in, sizeof(in), MSG_DONTWAIT) : -1;
	WL_CHECK(n == (ssize_t)strlen(msg) && memcmp(in, msg, (size_t)n) == 0,
		 "%s: socketpair: expected packet \"%s\", got %zd bytes \"%.*s\"", who, msg, n, n > 0 ? (int)n : 0, in);
}

static void send_packet(const char *who, int fd, const char *msg)
{
	if (send(fd, msg, strlen(msg), 0) != (ssize_t)strlen(msg))
		wl_fail("%s: send on the socketpair: %s", who, wl_errname(errno));
}

/* f's shared offset is where the task before left it; moves it 10 bytes on. */
static void step_shared(const char *who, int fd, off_t want)
{
	off_t at = lseek(fd, 0, SEEK_CUR);
	WL_CHECK(at == want, "%s: shared file offset %lld, expected %lld", who, (long long)at, (long long)want);
	if (write(fd, "0123456789", 10) != 10)
		wl_fail("%s: write the shared file: %s", who, wl_errname(errno));
}

static bool same_description(pid_t other, int fd)
{
	return syscall(SYS_kcmp, getpid(), other, KCMP_FILE, fd, fd) == 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "pipetree");
	int a[2], b[2], c[2], d[2], sp[2];
	if (pipe(a) || pipe(b) || pipe(c) || pipe(d))
		wl_die("pipe: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp))
		wl_die("socketpair: %s", strerror(errno));
	char shared_path[PATH_MAX + 8];
	wl_aux_path(shared_path, sizeof(shared_path), "shared");
	int f = open(shared_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || ftruncate(f, 4096) || lseek(f, 100, SEEK_SET) != 100)
		wl_die("%s: %s", shared_path, strerror(errno));
	pid_t kids[2];

	kids[0] = fork();
	if (kids[0] == 0) {
		wl_name = "C1";
		close(a[1]), close(b[0]), close(c[0]), close(c[1]), close(d[0]), close(sp[1]);
		send_pattern(b[1], 1, 2000);
		send_packet("C1", sp[0], "C1>C2 packet");
		if (write(d[1], "from C1..", 10) != 10)
			wl_die("write d");
		wl_run_until_sigterm(0);
		WL_CHECK(same_description(getppid(), sp[0]) && same_description(getppid(), f),
			 "C1: its socket and its shared file are not R's descriptions");
		expect_pattern("C1", a[0], 0, 1000);
		expect_message("C1", a[0], "R>C1");
		step_shared("C1", f, 110);
		if (write(b[1], "C1>C2", 5) != 5)
			wl_fail("C1: write b: %s", wl_errname(errno));
		close(b[1]);
		wl_finish();
	}
	kids[1] = fork();
	if (kids[1] == 0) {
		wl_name = "C2";
		close(a[0]), close(a[1]), close(b[1]), close(c[0]), close(d[0]), close(sp[0]);
		wait_queued(b[0], 2000);
		send_packet("C2", sp[1], "C2>R packet");
		send_pattern(c[1], 2, 3000);
		if (write(d[1], "from C2..", 10) != 10)
			wl_die("write d");
		wl_run_until_sigterm(0);
		expect_packet("C2", sp[1], "C1>C2 packet");
		expect_packet("C2", sp[1], "R>C2 packet");
		expect_pattern("C2", b[0], 1, 2000);
		expect_message("C2", b[0], "C1>C2");
		expect_eof("C2", b[0], 'b');
		step_shared("C2", f, 120);
		if (write(c[1], "C2>R", 4) != 4)
			wl_fail("C2: write c: %s", wl_errname(errno));
		wl_finish();
	}
	close(a[0]), close(b[0]), close(b[1]), close(c[1]), close(d[1]), close(sp[1]);
	send_pattern(a[1], 0, 1000);
	wait_queued(c[0], 3000);
	wait_queued(d[0], 20);
	/* C1's packet went before its write on d: R's comes after it. */
	send_packet("R", sp[0], "R>C2 packet");
	for (int i = 0; i < 10000 && queued(sp[0]) <= 0; i++)
		wl_sleep_ms(1);
	if (queued(sp[0]) <= 0)
		wl_die("C2's packet never came");
	wl_ready();
	wl_run_until_sigterm(0);

	for (int i = 0; i < 2; i++)
		kill(kids[i], SIGTERM);
	char in[20];
	WL_CHECK(recv_exact(d[0], in, 20) == 20 &&
			 ((memcmp(in, "from C1..", 10) == 0 && memcmp(in + 10, "from C2..", 10) == 0) ||
			  (memcmp(in, "from C2..", 10) == 0 && memcmp(in + 10, "from C1..", 10) == 0)),
		 "R: pipe d does not hold both children's messages");
	expect_packet("R", sp[0], "C2>R packet");
	step_shared("R", f, 100);
	if (write(a[1], "R>C1", 4) != 4)
		wl_fail("R: write a: %s", wl_errname(errno));
	expect_pattern("R", c[0], 2, 3000);
	expect_message("R", c[0], "C2>R");
	WL_CHECK(lseek(f, 0, SEEK_CUR) == 130, "R: shared file offset %lld after C2, expected 130",
		 (long long)lseek(f, 0, SEEK_CUR));
	wl_reap_children(kids, 2, "R");
	expect_eof("R", c[0], 'c');
	expect_eof("R", d[0], 'd');
	wl_finish();
}
