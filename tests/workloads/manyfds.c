/* manyfds: every fd from 0 to N-1 open, many of them sharing open file
 * descriptions, some under an RLIMIT_NOFILE of exactly N.
 *
 * wl_manyfds <ready> N [plain|soft|hard]
 *   fds 3..N-1, by fd % 4 (k = fd / 4):
 *     0: one of 16 files <ready>.f<k%16>, O_RDWR (every 4th O_APPEND),
 *        a description of its own at offset k (many descriptions per inode)
 *     1: dup of fd-1, close-on-exec          (shares fd-1's description)
 *     2: /dev/null O_RDONLY, a description of its own
 *     3: dup of fd-3                          (fd-3, fd-2 and fd share one)
 *   soft: RLIMIT_NOFILE soft limit N (the hard one as inherited);
 *   hard: soft and hard limit N. The fds are all open when the ready file
 *   appears (it is written through the last slot, closed and opened again).
 * Verification (on SIGTERM): every fd 3..N-1 has its F_GETFL, F_GETFD,
 * device/inode and offset; kcmp(KCMP_FILE) says the same descriptions are
 * shared as at setup, and the distinct ones (fd and fd+2, fd and fd+4) are
 * distinct; no fd >= N is open; the RLIMIT_NOFILE limits are as set.
 */
#include "workload.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define NFILES 16
#define KCMP_FILE 0

struct fdstate {
	int fl, fdfl;
	off_t off;
	dev_t dev;
	ino_t ino;
};

static struct fdstate *state;
static int nfds;

static void describe(int fd, struct fdstate *s)
{
	struct stat st;
	memset(s, 0, sizeof(*s));
	s->fl = fcntl(fd, F_GETFL);
	s->fdfl = fcntl(fd, F_GETFD);
	s->off = lseek(fd, 0, SEEK_CUR);
	if (fstat(fd, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
}

static int same(int a, int b)
{
	return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0;
}

static int open_fd(int fd, const char *files)
{
	const int k = fd / 4;
	int got = -1;
	switch (fd % 4) {
	case 0: {
		char path[PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s%d", files, k % NFILES);
		got = open(path, O_RDWR | O_CREAT | ((k % 4) == 3 ? O_APPEND : 0), 0644);
		if (got >= 0 && lseek(got, k, SEEK_SET) != k)
			wl_die("lseek fd %d: %s", got, strerror(errno));
		break;
	}
	case 1:
		got = fcntl(fd - 1, F_DUPFD_CLOEXEC, fd);
		break;
	case 2:
		got = open("/dev/null", O_RDONLY);
		break;
	case 3:
		got = fcntl(fd - 3, F_DUPFD, fd);
		break;
	}
	if (got != fd)
		wl_die("fd %d: got %d (%s)", fd, got, strerror(errno));
	return got;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "manyfds");
	if (argc < 3)
		wl_die("usage: wl_manyfds <ready> N [plain|soft|hard]");
	nfds = atoi(argv[2]);
	const char *mode = argc > 3 ? argv[3] : "plain";
	if (nfds < 8)
		wl_die("N %d < 8", nfds);
	state = calloc((size_t)nfds, sizeof(*state));
	if (!state)
		wl_die("calloc");
	char files[PATH_MAX + 8];
	wl_aux_path(files, sizeof(files), "f");
	for (int fd = 3; fd < nfds; fd++)
		open_fd(fd, files);
	for (int fd = 3; fd < nfds; fd++)
		describe(fd, &state[fd]);

	struct rlimit want;
	if (getrlimit(RLIMIT_NOFILE, &want) != 0)
		wl_die("getrlimit: %s", strerror(errno));
	if (!strcmp(mode, "soft") || !strcmp(mode, "hard")) {
		want.rlim_cur = (rlim_t)nfds;
		if (!strcmp(mode, "hard"))
			want.rlim_max = (rlim_t)nfds;
		if (setrlimit(RLIMIT_NOFILE, &want) != 0)
			wl_die("setrlimit(RLIMIT_NOFILE, %d): %s", nfds, strerror(errno));
	} else if (strcmp(mode, "plain")) {
		wl_die("mode '%s' is not plain, soft or hard", mode);
	}
	/* The ready file takes the last slot for a moment. */
	close(nfds - 1);
	wl_ready();
	open_fd(nfds - 1, files);
	describe(nfds - 1, &state[nfds - 1]);

	while (!wl_stop)
		wl_sleep_ms(10);

	int bad = 0;
	for (int fd = 3; fd < nfds && bad < 5; fd++) {
		struct fdstate now;
		describe(fd, &now);
		const struct fdstate *old = &state[fd];
		if (now.fl != old->fl || now.fdfl != old->fdfl || now.off != old->off || now.dev != old->dev ||
		    now.ino != old->ino) {
			wl_fail("fd %d: flags %#o/%d offset %lld ino %llu, expected %#o/%d %lld %llu", fd, now.fl,
				now.fdfl, (long long)now.off, (unsigned long long)now.ino, old->fl, old->fdfl,
				(long long)old->off, (unsigned long long)old->ino);
			bad++;
		}
	}
	for (int fd = 4; fd + 4 < nfds && bad < 5; fd += 4) {
		if (!same(fd, fd + 1) || !same(fd, fd + 3) || same(fd, fd + 2) || same(fd, fd + 4)) {
			wl_fail("fd %d: descriptions shared with %d/%d/%d/%d: %d/%d/%d/%d, expected 1/1/0/0", fd,
				fd + 1, fd + 3, fd + 2, fd + 4, same(fd, fd + 1), same(fd, fd + 3), same(fd, fd + 2),
				same(fd, fd + 4));
			bad++;
		}
	}
	for (int fd = nfds; fd < nfds + 256; fd++)
		WL_CHECK(fcntl(fd, F_GETFD) < 0, "fd %d is open, beyond the %d dumped", fd, nfds);
	struct rlimit now;
	WL_CHECK(getrlimit(RLIMIT_NOFILE, &now) == 0 && now.rlim_cur == want.rlim_cur && now.rlim_max == want.rlim_max,
		 "RLIMIT_NOFILE %llu/%llu, expected %llu/%llu", (unsigned long long)now.rlim_cur,
		 (unsigned long long)now.rlim_max, (unsigned long long)want.rlim_cur,
		 (unsigned long long)want.rlim_max);
	wl_finish();
}
