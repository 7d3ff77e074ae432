/* memdevs: the memory devices held open with various flags.
 *
 *   zero     /dev/zero, O_RDWR
 *   zerodup  dup(zero)
 *   urandom  /dev/urandom, O_RDONLY | O_NONBLOCK
 *   random   /dev/random, O_RDONLY
 *   full     /dev/full, O_WRONLY | O_APPEND
 *   null     /dev/null, O_WRONLY
 *
 * Verification: each fd's link, F_GETFL, F_GETFD and device number as at
 * setup; zero reads 4096 zero bytes and takes a write, zerodup too;
 * urandom and random read 64 bytes that are not all the same; full fails a
 * write with ENOSPC and a read with EBADF (write-only); null takes a
 * write.
 */
#include "workload.h"

#include <sys/stat.h>

enum { ZERO, ZERODUP, URANDOM, RANDOM, FULL, NUL, NFDS };
static const char *const names[NFDS] = { "zero", "zerodup", "urandom", "random", "full", "null" };
static int fds[NFDS], fl[NFDS], fd_flags[NFDS];
static dev_t rdev[NFDS];
static char links[NFDS][64];
static char buf[4096];

static void link_of(int fd, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t r = readlink(path, out, n - 1);
	out[r < 0 ? 0 : r] = '\0';
}

static void expect_random(int i)
{
	ssize_t n = read(fds[i], buf, 64);
	bool same = true;
	for (int k = 1; k < 64; k++)
		same &= buf[k] == buf[0];
	WL_CHECK(n == 64 && !same, "%s: read %zd bytes (%s)%s", names[i], n, n < 0 ? wl_errname(errno) : "ok",
		 same ? ", all the same" : "");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "memdevs");
	fds[ZERO] = open("/dev/zero", O_RDWR);
	fds[ZERODUP] = dup(fds[ZERO]);
	fds[URANDOM] = open("/dev/urandom", O_RDONLY | O_NONBLOCK);
	fds[RANDOM] = open("/dev/random", O_RDONLY | O_CLOEXEC);
	fds[FULL] = open("/dev/full", O_WRONLY | O_APPEND);
	fds[NUL] = open("/dev/null", O_WRONLY);
	for (int i = 0; i < NFDS; i++) {
		struct stat st;
		if (fds[i] < 0 || fstat(fds[i], &st) != 0)
			wl_die("%s: %s", names[i], strerror(errno));
		rdev[i] = st.st_rdev;
		fl[i] = fcntl(fds[i], F_GETFL);
		fd_flags[i] = fcntl(fds[i], F_GETFD);
		link_of(fds[i], links[i], sizeof(links[i]));
	}
	wl_ready();
	wl_run_until_sigterm(0);

	for (int i = 0; i < NFDS; i++) {
		char now[64];
		struct stat st;
		link_of(fds[i], now, sizeof(now));
		WL_CHECK(!strcmp(now, links[i]), "%s (fd %d): link %s, expected %s", names[i], fds[i], now, links[i]);
		int f = fcntl(fds[i], F_GETFL), d = fcntl(fds[i], F_GETFD);
		WL_CHECK(f == fl[i], "%s (fd %d): F_GETFL %#o, expected %#o", names[i], fds[i], f, fl[i]);
		WL_CHECK(d == fd_flags[i], "%s (fd %d): F_GETFD %d, expected %d", names[i], fds[i], d, fd_flags[i]);
		WL_CHECK(fstat(fds[i], &st) == 0 && st.st_rdev == rdev[i], "%s (fd %d): device %#lx, expected %#lx",
			 names[i], fds[i], (unsigned long)st.st_rdev, (unsigned long)rdev[i]);
	}
	for (int i = ZERO; i <= ZERODUP; i++) {
		memset(buf, 1, sizeof(buf));
		ssize_t n = read(fds[i], buf, sizeof(buf));
		bool zero = n == (ssize_t)sizeof(buf);
		for (size_t k = 0; zero && k < sizeof(buf); k++)
			zero = buf[k] == 0;
		WL_CHECK(zero, "%s: read %zd bytes, not all zero", names[i], n);
		WL_CHECK(write(fds[i], buf, 100) == 100, "%s: write: %s", names[i], wl_errname(errno));
	}
	expect_random(URANDOM);
	expect_random(RANDOM);
	ssize_t n = write(fds[FULL], "x", 1);
	WL_CHECK(n < 0 && errno == ENOSPC, "full: write gave %zd (%s), expected ENOSPC", n,
		 n < 0 ? wl_errname(errno) : "ok");
	n = read(fds[FULL], buf, 1);
	WL_CHECK(n < 0 && errno == EBADF, "full: read gave %zd (%s), expected EBADF (write-only)", n,
		 n < 0 ? wl_errname(errno) : "ok");
	WL_CHECK(write(fds[NUL], "x", 1) == 1, "null: write: %s", wl_errname(errno));
	wl_finish();
}
