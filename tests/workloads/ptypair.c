/* A pseudo-terminal pair made inside the tree, as a terminal multiplexer and
 * its shell have it:
 *
 *   R (root)  holds the master (packet mode, O_NONBLOCK), locks the pair
 *   └ S       session leader, the slave its controlling terminal; waits
 *     └ J     a job in its own process group, the terminal's foreground
 *             group; reads lines on R's command (a pipe) and checks them
 *
 * The slave's termios is set (ECHO off, VINTR ^X, IXANY), the window size
 * 101x33 (7x9 pixels), J set the slave exclusive. Queued when ready: for
 * the slave (R wrote, J has not read) two complete lines, one holding a DEL
 * taken literally (^V), a line ended by VEOF and a line being edited;
 * for the master (J wrote, R has not read) "answer-queued\n". On SIGTERM R
 * checks the pair's state through the master, reads the queued answer,
 * completes the edited line and has J read the four lines; J checks its
 * controlling terminal, foreground group, exclusive mode, then a ping goes
 * both ways. Prints "PASS J" and "PASS ptypair".
 */
#include "workload.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>

static const char *const kLines[] = {"queued line one\n", "a\x7f" "b\n", "eofline", "partend\n", "ping\n"};
enum { kLinesCount = 5 };

static void wr(int fd, const char *s, size_t n)
{
	wl_write_all(fd, s, n);
}

static char rd1(int fd)
{
	char c = 0;
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	return c;
}

static struct termios wanted(struct termios t)
{
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	t.c_iflag |= IXANY;
	t.c_cc[VINTR] = 0x18;
	t.c_cc[VEOL] = 0;
	return t;
}

/* J: the foreground job. */
static int job(int tty, int cmd, int ack)
{
	wl_name = "J";
	if (ioctl(tty, TIOCEXCL) < 0)
		wl_die("TIOCEXCL: %s", strerror(errno));
	for (int i = 0; i < 500 && tcgetpgrp(tty) != getpgrp(); i++)
		wl_sleep_ms(2);
	wr(ack, "j", 1);
	int line = 0;
	for (;;) {
		char c = rd1(cmd);
		if (c == 'W') {
			wr(tty, "answer-queued\n", 14);
			wr(ack, "w", 1);
		} else if (c == 'R') {
			char buf[256];
			ssize_t n = read(tty, buf, sizeof buf);
			const char *want = line < kLinesCount ? kLines[line] : "";
			int ok = n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0;
			if (!ok)
				wl_fail("line %d: read %zd bytes (%s), want %zu", line, n, n < 0 ? wl_errname(errno) : "",
					strlen(want));
			line++;
			wr(ack, ok ? "y" : "n", 1);
		} else if (c == 'P') {
			wr(tty, "pong\n", 5);
			wr(ack, "p", 1);
		} else {
			break;
		}
	}
	/* Its terminal after all that: still the session's, it in front. */
	WL_CHECK(tcgetpgrp(tty) == getpgrp(), "foreground group %d, want %d", tcgetpgrp(tty), getpgrp());
	WL_CHECK(tcgetsid(tty) == getsid(0), "terminal of session %d, want %d", tcgetsid(tty), getsid(0));
	int excl = 0;
	WL_CHECK(ioctl(tty, TIOCGEXCL, &excl) == 0 && excl == 1, "TIOCGEXCL %d, want 1", excl);
	/* /dev/tty leads to the slave (ENXIO without a controlling terminal),
	 * which can't be opened again while the pair is locked (EIO). */
	int ctty = open("/dev/tty", O_RDWR | O_CLOEXEC);
	WL_CHECK(ctty < 0 && errno == EIO, "open /dev/tty: %s, want EIO", ctty < 0 ? wl_errname(errno) : "opened");
	WL_CHECK(line == kLinesCount, "%d lines read, want %d", line, kLinesCount);
	wl_finish();
}

/* S: the session leader ("the shell"), with the slave for terminal. */
static int shell(const char *slave, int cmd, int ack)
{
	setsid();
	int tty = open(slave, O_RDWR | O_CLOEXEC);
	if (tty < 0 || ioctl(tty, TIOCSCTTY, 0) < 0)
		wl_die("open %s as the controlling terminal: %s", slave, strerror(errno));
	pid_t j = fork();
	if (j == 0) {
		setpgid(0, 0);
		exit(job(tty, cmd, ack));
	}
	setpgid(j, j);
	signal(SIGTTOU, SIG_IGN);
	if (tcsetpgrp(tty, j) < 0)
		wl_die("tcsetpgrp: %s", strerror(errno));
	int st = 0;
	while (waitpid(j, &st, 0) < 0 && errno == EINTR)
		;
	exit(WIFEXITED(st) ? WEXITSTATUS(st) : 2);
}

/* Reads what the master has, packet mode's status bytes checked and
 * dropped, until `want` bytes came (or 5 s). */
static size_t read_master(int m, char *out, size_t want)
{
	size_t got = 0;
	for (int i = 0; got < want && i < 500; i++) {
		struct pollfd p = {m, POLLIN, 0};
		if (poll(&p, 1, 10) <= 0)
			continue;
		char buf[512];
		ssize_t n = read(m, buf, sizeof buf);
		if (n <= 0)
			continue;
		if (buf[0] != TIOCPKT_DATA) {
			wl_fail("packet status byte %#x", buf[0]);
			continue;
		}
		size_t k = (size_t)n - 1 < want - got ? (size_t)n - 1 : want - got;
		memcpy(out + got, buf + 1, k);
		got += k;
	}
	return got;
}

static void expect_master(int m, const char *want)
{
	char buf[256] = {0};
	size_t n = read_master(m, buf, strlen(want));
	WL_CHECK(n == strlen(want) && memcmp(buf, want, n) == 0, "the master read %zu bytes '%.*s', want '%s'", n, (int)n,
		 buf, want);
}

static void ask(int cmd, int ack, char c, char want_ack)
{
	wr(cmd, &c, 1);
	char a = rd1(ack);
	WL_CHECK(a == want_ack, "J answered '%c' to '%c', want '%c'", a, c, want_ack);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "ptypair");
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		wl_die("posix_openpt: %s", strerror(errno));
	char slave[64];
	if (ptsname_r(m, slave, sizeof slave) != 0)
		wl_die("ptsname: %s", strerror(errno));
	struct termios t;
	if (tcgetattr(m, &t) < 0)
		wl_die("tcgetattr: %s", strerror(errno));
	const struct termios want_t = wanted(t);
	struct winsize ws = {33, 101, 7, 9};
	int on = 1;
	if (tcsetattr(m, TCSANOW, &want_t) < 0 || ioctl(m, TIOCSWINSZ, &ws) < 0 || ioctl(m, TIOCPKT, &on) < 0)
		wl_die("set up the terminal: %s", strerror(errno));
	int cmd[2], ack[2];
	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(ack, O_CLOEXEC) < 0)
		wl_die("pipe: %s", strerror(errno));
	pid_t s = fork();
	if (s == 0) {
		close(m);
		close(cmd[1]);
		close(ack[0]);
		shell(slave, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	if (rd1(ack[0]) != 'j')
		wl_die("the job did not start");
	if (ioctl(m, TIOCSPTLCK, &on) < 0 || fcntl(m, F_SETFL, O_NONBLOCK) < 0)
		wl_die("lock the pair: %s", strerror(errno));

	/* Queued for the slave, then for the master. */
	const char input[] = "queued line one\na\x16\x7f" "b\neofline\x04part";
	wr(m, input, sizeof input - 1);
	ask(cmd[1], ack[0], 'W', 'w');
	wl_sleep_ms(20);
	wl_ready();
	wl_run_until_sigterm(0);

	struct termios now;
	WL_CHECK(tcgetattr(m, &now) == 0, "tcgetattr: %s", wl_errname(errno));
	WL_CHECK(now.c_iflag == want_t.c_iflag && now.c_oflag == want_t.c_oflag && now.c_cflag == want_t.c_cflag &&
			 now.c_lflag == want_t.c_lflag && memcmp(now.c_cc, want_t.c_cc, 19) == 0,
		 "termios %#x %#x %#x %#x, want %#x %#x %#x %#x (or c_cc differs)", now.c_iflag, now.c_oflag, now.c_cflag,
		 now.c_lflag, want_t.c_iflag, want_t.c_oflag, want_t.c_cflag, want_t.c_lflag);
	struct winsize w2 = {0};
	WL_CHECK(ioctl(m, TIOCGWINSZ, &w2) == 0 && w2.ws_row == 33 && w2.ws_col == 101 && w2.ws_xpixel == 7 &&
			 w2.ws_ypixel == 9,
		 "winsize %ux%u (%ux%u), want 101x33 (7x9)", w2.ws_col, w2.ws_row, w2.ws_xpixel, w2.ws_ypixel);
	int v = -1;
	WL_CHECK(ioctl(m, TIOCGPKT, &v) == 0 && v == 1, "TIOCGPKT %d, want 1", v);
	WL_CHECK(ioctl(m, TIOCGPTLCK, &v) == 0 && v == 1, "TIOCGPTLCK %d, want 1", v);
	pid_t sid = 0, fg = 0;
	WL_CHECK(ioctl(m, TIOCGSID, &sid) == 0 && sid == s, "the terminal's session %d, want %d", sid, s);
	WL_CHECK(ioctl(m, TIOCGPGRP, &fg) == 0 && fg != s && fg > 0 && getpgid(fg) == fg, "foreground group %d", fg);
	WL_CHECK((fcntl(m, F_GETFL) & O_NONBLOCK) != 0, "the master lost O_NONBLOCK");

	expect_master(m, "answer-queued\r\n");
	wr(m, "end\n", 4);
	for (int i = 0; i < 4; i++)
		ask(cmd[1], ack[0], 'R', 'y');
	wr(m, "ping\n", 5);
	ask(cmd[1], ack[0], 'R', 'y');
	ask(cmd[1], ack[0], 'P', 'p');
	expect_master(m, "pong\r\n");
	wr(cmd[1], "Q", 1);
	int st = 0;
	while (waitpid(s, &st, 0) < 0 && errno == EINTR)
		;
	WL_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the shell's status %#x", st);
	wl_finish();
}
