/* pipes: pipes and FIFOs with data in flight, checked byte for byte after a
 * restore (or after a dump --leave-running, which must not take a byte).
 *
 *   full      default capacity (64 KiB), full
 *   partial   10000 bytes written, 3000 read: 7000 left, from an offset in a buffer
 *   empty     nothing in it
 *   big       F_SETPIPE_SZ 1 MiB, 1 MiB - 100 bytes in it
 *   small     F_SETPIPE_SZ 4096, full
 *   nonblock  its read end O_NONBLOCK (its write end not), 300 bytes
 *   nowriter  500 bytes, write end closed: the data, then EOF
 *   noreader  read end closed: a write fails with EPIPE
 *   packets   O_DIRECT: packets of 100, 200, 4096 and 1 bytes, one per read
 *   reopened  a second read description of "partial"'s pipe (open of /proc/self/fd/N)
 *   fifo      a FIFO at <ready>.fifo, read and write ends, 5000 bytes
 *   fifo_w    a FIFO at <ready>.fifo2, write end only, 2000 bytes: a new reader gets them
 */
#include "workload.h"

#include <sys/ioctl.h>
#include <sys/stat.h>

static unsigned char pattern(int pipe, size_t i) { return (unsigned char)wl_mix64(((uint64_t)pipe << 32) | i); }

static char buf[(1 << 20) + 4096];

static void fill(int fd, int id, size_t from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)pattern(id, from + i);
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, buf + done, n - done);
		if (w <= 0)
			wl_die("fill pipe %d: %s", id, strerror(errno));
		done += (size_t)w;
	}
}

static void must_read(int fd, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, buf + done, n - done);
		if (r <= 0)
			wl_die("read: %s", strerror(errno));
		done += (size_t)r;
	}
}

static int queued(int fd)
{
	int n = -1;
	ioctl(fd, FIONREAD, &n);
	return n;
}

/* Reads n of the `left` bytes queued and compares them with pattern id
 * from `from`. */
static void expect_part(const char *what, int fd, int id, size_t from, size_t n, size_t left)
{
	WL_CHECK(queued(fd) == (int)left, "%s: %d bytes queued, expected %zu", what, queued(fd), left);
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, buf + done, n - done);
		if (r <= 0) {
			wl_fail("%s: read at %zu of %zu: %s", what, done, n, r < 0 ? wl_errname(errno) : "EOF");
			return;
		}
		done += (size_t)r;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] != pattern(id, from + i)) {
			wl_fail("%s: byte %zu is %#x, expected %#x", what, i, (unsigned char)buf[i], pattern(id, from + i));
			return;
		}
}

static void expect_data(const char *what, int fd, int id, size_t from, size_t n)
{
	expect_part(what, fd, id, from, n, n);
}

static void expect_size(const char *what, int fd, int size)
{
	int s = fcntl(fd, F_GETPIPE_SZ);
	WL_CHECK(s == size, "%s: capacity %d, expected %d", what, s, size);
}

/* The pipe still carries new data both ways round. */
static void expect_works(const char *what, int r, int w)
{
	char out[] = "ping", in[8] = { 0 };
	WL_CHECK(write(w, out, 4) == 4 && read(r, in, sizeof in) == 4 && memcmp(in, out, 4) == 0,
		 "%s: a new message did not go through", what);
}

/* Every flag F_GETFL shows: O_LARGEFILE (0100000) too, which open(2) adds and pipe(2) does not. */
static void expect_flags(const char *what, int fd, int want)
{
	int f = fcntl(fd, F_GETFL);
	WL_CHECK(f == want, "%s: flags %#o, expected %#o", what, f, want);
}

enum { FULL, PARTIAL, EMPTY, BIG, SMALL, NONBLOCK, NOWRITER, NOREADER, PACKETS, FIFO, FIFO_W, N };
static int rd[N], wr[N];
static int reopened;
static const size_t packet_len[] = { 100, 200, 4096, 1 };

static void make(int id, int flags)
{
	int p[2];
	if (pipe2(p, flags) != 0)
		wl_die("pipe2: %s", strerror(errno));
	rd[id] = p[0];
	wr[id] = p[1];
}

static void setup(void)
{
	make(FULL, 0);
	fcntl(wr[FULL], F_SETFL, O_NONBLOCK);
	size_t n = 0;
	for (;; n++) {
		unsigned char c = pattern(FULL, n);
		if (write(wr[FULL], &c, 1) != 1)
			break;
	}
	if (n != 65536)
		wl_die("full pipe took %zu bytes, not 65536", n);
	fcntl(wr[FULL], F_SETFL, 0);

	make(PARTIAL, 0);
	fill(wr[PARTIAL], PARTIAL, 0, 10000);
	must_read(rd[PARTIAL], 3000);
	char self[64];
	snprintf(self, sizeof self, "/proc/self/fd/%d", rd[PARTIAL]);
	reopened = open(self, O_RDONLY);
	if (reopened < 0)
		wl_die("reopen %s: %s", self, strerror(errno));

	make(EMPTY, 0);

	make(BIG, 0);
	if (fcntl(wr[BIG], F_SETPIPE_SZ, 1 << 20) != 1 << 20)
		wl_die("F_SETPIPE_SZ 1 MiB: %s", strerror(errno));
	fill(wr[BIG], BIG, 0, (1 << 20) - 100);

	make(SMALL, 0);
	if (fcntl(wr[SMALL], F_SETPIPE_SZ, 4096) != 4096)
		wl_die("F_SETPIPE_SZ 4096: %s", strerror(errno));
	fill(wr[SMALL], SMALL, 0, 4096);

	make(NONBLOCK, 0);
	fcntl(rd[NONBLOCK], F_SETFL, O_NONBLOCK);
	fill(wr[NONBLOCK], NONBLOCK, 0, 300);

	make(NOWRITER, 0);
	fill(wr[NOWRITER], NOWRITER, 0, 500);
	close(wr[NOWRITER]);

	make(NOREADER, 0);
	close(rd[NOREADER]);

	make(PACKETS, O_DIRECT);
	size_t at = 0;
	for (size_t i = 0; i < sizeof packet_len / sizeof packet_len[0]; i++) {
		fill(wr[PACKETS], PACKETS, at, packet_len[i]);
		at += packet_len[i];
	}

	char path[PATH_MAX];
	wl_aux_path(path, sizeof path, "fifo");
	unlink(path);
	if (mkfifo(path, 0600) != 0)
		wl_die("mkfifo %s: %s", path, strerror(errno));
	rd[FIFO] = open(path, O_RDONLY | O_NONBLOCK);
	wr[FIFO] = open(path, O_WRONLY);
	if (rd[FIFO] < 0 || wr[FIFO] < 0)
		wl_die("open %s: %s", path, strerror(errno));
	fcntl(rd[FIFO], F_SETFL, 0);
	fill(wr[FIFO], FIFO, 0, 5000);

	wl_aux_path(path, sizeof path, "fifo2");
	unlink(path);
	if (mkfifo(path, 0600) != 0)
		wl_die("mkfifo %s: %s", path, strerror(errno));
	int r = open(path, O_RDONLY | O_NONBLOCK);
	wr[FIFO_W] = open(path, O_WRONLY);
	if (r < 0 || wr[FIFO_W] < 0)
		wl_die("open %s: %s", path, strerror(errno));
	fill(wr[FIFO_W], FIFO_W, 0, 2000);
	close(r);
	rd[FIFO_W] = -1;
}

static void verify(void)
{
	expect_size("full", rd[FULL], 65536);
	expect_flags("full read end", rd[FULL], O_RDONLY);
	expect_flags("full write end", wr[FULL], O_WRONLY);
	expect_data("full", rd[FULL], FULL, 0, 65536);
	expect_works("full", rd[FULL], wr[FULL]);

	/* Both read descriptions of one pipe: what one reads the other no longer sees. */
	expect_part("partial (second description)", reopened, PARTIAL, 3000, 1000, 7000);
	expect_data("partial", rd[PARTIAL], PARTIAL, 4000, 6000);
	expect_works("partial", reopened, wr[PARTIAL]);

	expect_data("empty", rd[EMPTY], EMPTY, 0, 0);
	expect_works("empty", rd[EMPTY], wr[EMPTY]);

	expect_size("big", wr[BIG], 1 << 20);
	expect_data("big", rd[BIG], BIG, 0, (1 << 20) - 100);
	expect_works("big", rd[BIG], wr[BIG]);

	expect_size("small", rd[SMALL], 4096);
	expect_data("small", rd[SMALL], SMALL, 0, 4096);

	expect_flags("nonblock read end", rd[NONBLOCK], O_RDONLY | O_NONBLOCK);
	expect_flags("nonblock write end", wr[NONBLOCK], O_WRONLY);
	expect_data("nonblock", rd[NONBLOCK], NONBLOCK, 0, 300);
	char c;
	WL_CHECK(read(rd[NONBLOCK], &c, 1) < 0 && errno == EAGAIN, "nonblock: an empty read did not fail with EAGAIN");

	expect_data("nowriter", rd[NOWRITER], NOWRITER, 0, 500);
	WL_CHECK(read(rd[NOWRITER], &c, 1) == 0, "nowriter: no EOF after the data");

	signal(SIGPIPE, SIG_IGN);
	WL_CHECK(write(wr[NOREADER], "x", 1) < 0 && errno == EPIPE, "noreader: a write did not fail with EPIPE");

	expect_flags("packets write end", wr[PACKETS], O_WRONLY | O_DIRECT);
	size_t at = 0;
	for (size_t i = 0; i < sizeof packet_len / sizeof packet_len[0]; i++) {
		ssize_t r = read(rd[PACKETS], buf, 8192);
		WL_CHECK(r == (ssize_t)packet_len[i], "packets: read %zu gave %zd bytes, expected %zu", i, r,
			 packet_len[i]);
		for (ssize_t k = 0; k < r && k < (ssize_t)packet_len[i]; k++)
			if ((unsigned char)buf[k] != pattern(PACKETS, at + (size_t)k)) {
				wl_fail("packets: packet %zu byte %zd differs", i, k);
				break;
			}
		at += packet_len[i];
	}

	char path[PATH_MAX];
	struct stat a, b;
	wl_aux_path(path, sizeof path, "fifo");
	WL_CHECK(stat(path, &a) == 0 && fstat(rd[FIFO], &b) == 0 && a.st_ino == b.st_ino && S_ISFIFO(b.st_mode),
		 "fifo: the read end is not on %s", path);
	expect_flags("fifo read end", rd[FIFO], O_RDONLY | 0100000);
	expect_flags("fifo write end", wr[FIFO], O_WRONLY | 0100000);
	expect_data("fifo", rd[FIFO], FIFO, 0, 5000);
	expect_works("fifo", rd[FIFO], wr[FIFO]);

	wl_aux_path(path, sizeof path, "fifo2");
	int r = open(path, O_RDONLY | O_NONBLOCK);
	WL_CHECK(r >= 0, "fifo_w: open %s: %s", path, wl_errname(errno));
	if (r >= 0) {
		expect_data("fifo_w (a new reader)", r, FIFO_W, 0, 2000);
		close(r);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "pipes");
	setup();
	wl_ready();
	wl_run_until_sigterm(0);
	verify();
	wl_finish();
}
