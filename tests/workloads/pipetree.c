/* pipetree: the ends of pipes spread over a parent R and two children C1, C2,
 * with data in flight in each, and one write end shared by both children:
 *
 *   a: R  -> C1   1000 bytes in flight
 *   b: C1 -> C2   2000 bytes in flight
 *   c: C2 -> R    3000 bytes in flight
 *   d: C1, C2 -> R   one write description inherited by both, 10 bytes from each
 *
 * On SIGTERM (R passes it on) each checks what is in flight, then they talk
 * round the ring: R writes to C1, C1 to C2, C2 to R, each message after the
 * data in flight; C1 then closes b and C2 sees EOF after its message, C2
 * exits and R sees EOF on c and d (no one else, ckpt included, holds a write
 * end). Prints "PASS C1", "PASS C2", then "PASS pipetree" from R.
 */
#include "workload.h"

#include <poll.h>
#include <sys/ioctl.h>

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

int main(int argc, char **argv)
{
	wl_init(argc, argv, "pipetree");
	int a[2], b[2], c[2], d[2];
	if (pipe(a) || pipe(b) || pipe(c) || pipe(d))
		wl_die("pipe: %s", strerror(errno));
	pid_t kids[2];

	kids[0] = fork();
	if (kids[0] == 0) {
		wl_name = "C1";
		close(a[1]), close(b[0]), close(c[0]), close(c[1]), close(d[0]);
		send_pattern(b[1], 1, 2000);
		if (write(d[1], "from C1..", 10) != 10)
			wl_die("write d");
		wl_run_until_sigterm(0);
		expect_pattern("C1", a[0], 0, 1000);
		expect_message("C1", a[0], "R>C1");
		if (write(b[1], "C1>C2", 5) != 5)
			wl_fail("C1: write b: %s", wl_errname(errno));
		close(b[1]);
		wl_finish();
	}
	kids[1] = fork();
	if (kids[1] == 0) {
		wl_name = "C2";
		close(a[0]), close(a[1]), close(b[1]), close(c[0]), close(d[0]);
		wait_queued(b[0], 2000);
		send_pattern(c[1], 2, 3000);
		if (write(d[1], "from C2..", 10) != 10)
			wl_die("write d");
		wl_run_until_sigterm(0);
		expect_pattern("C2", b[0], 1, 2000);
		expect_message("C2", b[0], "C1>C2");
		expect_eof("C2", b[0], 'b');
		if (write(c[1], "C2>R", 4) != 4)
			wl_fail("C2: write c: %s", wl_errname(errno));
		wl_finish();
	}
	close(a[0]), close(b[0]), close(b[1]), close(c[1]), close(d[1]);
	send_pattern(a[1], 0, 1000);
	wait_queued(c[0], 3000);
	wait_queued(d[0], 20);
	wl_ready();
	wl_run_until_sigterm(0);

	for (int i = 0; i < 2; i++)
		kill(kids[i], SIGTERM);
	char in[20];
	WL_CHECK(recv_exact(d[0], in, 20) == 20 &&
			 ((memcmp(in, "from C1..", 10) == 0 && memcmp(in + 10, "from C2..", 10) == 0) ||
			  (memcmp(in, "from C2..", 10) == 0 && memcmp(in + 10, "from C1..", 10) == 0)),
		 "R: pipe d does not hold both children's messages");
	if (write(a[1], "R>C1", 4) != 4)
		wl_fail("R: write a: %s", wl_errname(errno));
	expect_pattern("R", c[0], 2, 3000);
	expect_message("R", c[0], "C2>R");
	wl_reap_children(kids, 2, "R");
	expect_eof("R", c[0], 'c');
	expect_eof("R", d[0], 'd');
	wl_finish();
}
