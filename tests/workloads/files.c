/* files: open files, offsets, flags, cwd and umask.
 *
 * Setup (cwd = the ready file's directory, umask 027):
 *   rw   <ready>.rw  O_RDWR|O_CREAT|O_CLOEXEC, 10000 bytes written, offset 4321
 *   dup  dup(rw): shares rw's open file description (and offset), no CLOEXEC
 *   ro   <ready>.rw  O_RDONLY, a separate description at offset 1234
 *   app  <ready>.app O_WRONLY|O_APPEND, 777 bytes written, then lseek'd to 5
 *   null /dev/null O_RDWR, and dup2'ed to fd 10
 *   path   <ready>.rw O_PATH
 *   direct <ready>.rw O_RDONLY|O_DIRECT (skipped where the filesystem refuses
 *          O_DIRECT: tmpfs before Linux 6.6), offset 4096
 *   ro also gets an owner for SIGIO, the process (F_SETOWN), and its signal
 *   SIGRTMIN+2 (F_SETSIG)
 * Verification: same set of open fds (stdio included, but its targets are
 * the harness's business and not compared); per fd the same F_GETFL, F_GETFD,
 * /proc/self/fd link, device/inode and offset; fd 10 is /dev/null; rw's
 * offset is 4321, and "XYZ" written there lands at 4321 (moving dup's shared
 * offset too); a write on app lands at the end of the file despite offset 5;
 * cwd and umask unchanged; ro's owner and signal; a 4096-byte read through
 * direct (aligned buffer) gets the file's bytes at 4096.
 */
#include "workload.h"

#include <dirent.h>
#include <sys/stat.h>

#define RW_SIZE 10000
#define RW_OFF 4321
#define RO_OFF 1234
#define APP_SIZE 777
#define APP_OFF 5
#define NULL_FD 10
#define MAX_FDS 64

enum { F_RW, F_DUP, F_RO, F_APP, F_NULL, F_NULL10, F_PATH, F_DIRECT, NFILES };
static const char *const fd_names[NFILES] = { "rw", "dup", "ro", "app", "null", "fd10", "path", "direct" };

struct fdinfo {
	int fd;
	int fl, fdfl;
	off_t off;
	dev_t dev, rdev;
	ino_t ino;
	char link[PATH_MAX];
};

static struct fdinfo files[NFILES];
static int open_fds_at_setup[MAX_FDS], n_open_at_setup;
static char path_rw[PATH_MAX + 8], path_app[PATH_MAX + 8];
static char cwd_at_setup[PATH_MAX];
static uint64_t loops;
static bool has_direct;
static char direct_buf[4096] __attribute__((aligned(4096)));

static uint8_t rw_byte(size_t k)
{
	return (uint8_t)('a' + (k * 7 + k / 26) % 26);
}

static void describe(int fd, struct fdinfo *fi)
{
	memset(fi, 0, sizeof(*fi));
	fi->fd = fd;
	fi->fl = fcntl(fd, F_GETFL);
	fi->fdfl = fcntl(fd, F_GETFD);
	fi->off = lseek(fd, 0, SEEK_CUR);
	struct stat st;
	if (fstat(fd, &st) == 0) {
		fi->dev = st.st_dev;
		fi->ino = st.st_ino;
		fi->rdev = st.st_rdev;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, fi->link, sizeof(fi->link) - 1);
	fi->link[n > 0 ? n : 0] = '\0';
}

static void compare_fd(const char *name, const struct fdinfo *old)
{
	struct fdinfo now;
	describe(old->fd, &now);
	WL_CHECK(now.fl == old->fl, "%s (fd %d) F_GETFL: expected %#o, got %#o", name, old->fd,
		 old->fl, now.fl);
	WL_CHECK(now.fdfl == old->fdfl, "%s (fd %d) F_GETFD: expected %d, got %d", name,
		 old->fd, old->fdfl, now.fdfl);
	WL_CHECK(now.off == old->off, "%s (fd %d) offset: expected %lld, got %lld", name,
		 old->fd, (long long)old->off, (long long)now.off);
	WL_CHECK(!strcmp(now.link, old->link), "%s (fd %d) path: expected '%s', got '%s'", name,
		 old->fd, old->link, now.link);
	WL_CHECK(now.dev == old->dev && now.ino == old->ino && now.rdev == old->rdev,
		 "%s (fd %d) dev/ino/rdev: expected %#llx/%llu/%#llx, got %#llx/%llu/%#llx", name,
		 old->fd, (unsigned long long)old->dev, (unsigned long long)old->ino,
		 (unsigned long long)old->rdev, (unsigned long long)now.dev,
		 (unsigned long long)now.ino, (unsigned long long)now.rdev);
}

/* Sorted list of open fds (excluding the directory stream's own fd). */
static int list_fds(int *out, int max)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0, self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd != self && n < max)
			out[n++] = fd;
	}
	closedir(d);
	for (int i = 1; i < n; i++) /* insertion sort */
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static void fmt_fds(char *buf, size_t cap, const int *fds, int n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", fds[i]);
}

static mode_t read_umask(void)
{
	mode_t m = umask(0);
	umask(m);
	return m;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "files");
	if (chdir(wl_dir) != 0)
		wl_die("chdir %s: %s", wl_dir, strerror(errno));
	umask(027);
	if (!getcwd(cwd_at_setup, sizeof(cwd_at_setup)))
		wl_die("getcwd: %s", strerror(errno));
	wl_aux_path(path_rw, sizeof(path_rw), "rw");
	wl_aux_path(path_app, sizeof(path_app), "app");

	int rw = open(path_rw, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (rw < 0)
		wl_die("open %s: %s", path_rw, strerror(errno));
	static char content[RW_SIZE];
	for (size_t k = 0; k < RW_SIZE; k++)
		content[k] = (char)rw_byte(k);
	if (write(rw, content, RW_SIZE) != RW_SIZE || lseek(rw, RW_OFF, SEEK_SET) != RW_OFF)
		wl_die("write/lseek %s: %s", path_rw, strerror(errno));
	int dup_rw = dup(rw);
	int ro = open(path_rw, O_RDONLY);
	if (dup_rw < 0 || ro < 0 || lseek(ro, RO_OFF, SEEK_SET) != RO_OFF)
		wl_die("dup/open ro: %s", strerror(errno));

	int app = open(path_app, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0666);
	if (app < 0)
		wl_die("open %s: %s", path_app, strerror(errno));
	static char head[APP_SIZE];
	memset(head, 'h', sizeof(head));
	if (write(app, head, APP_SIZE) != APP_SIZE || lseek(app, APP_OFF, SEEK_SET) != APP_OFF)
		wl_die("write/lseek %s: %s", path_app, strerror(errno));

	int null = open("/dev/null", O_RDWR);
	if (null < 0 || null == NULL_FD || dup2(null, NULL_FD) != NULL_FD)
		wl_die("/dev/null on fd %d: %s", NULL_FD, strerror(errno));

	int path = open(path_rw, O_PATH);
	if (path < 0)
		wl_die("open %s O_PATH: %s", path_rw, strerror(errno));
	/* Its own fd even where the filesystem has no O_DIRECT (then O_RDONLY). */
	int direct = open(path_rw, O_RDONLY | O_DIRECT);
	has_direct = direct >= 0;
	if (!has_direct)
		direct = open(path_rw, O_RDONLY);
	if (direct < 0 || lseek(direct, 4096, SEEK_SET) != 4096)
		wl_die("open %s O_DIRECT: %s", path_rw, strerror(errno));
	if (fcntl(ro, F_SETOWN, getpid()) < 0 || fcntl(ro, F_SETSIG, SIGRTMIN + 2) < 0)
		wl_die("F_SETOWN/F_SETSIG: %s", strerror(errno));

	const int fds[NFILES] = { rw, dup_rw, ro, app, null, NULL_FD, path, direct };
	for (int i = 0; i < NFILES; i++)
		describe(fds[i], &files[i]);
	if ((files[F_PATH].fl & O_PATH) == 0 || (has_direct && (files[F_DIRECT].fl & O_DIRECT) == 0))
		wl_die("unexpected O_PATH/O_DIRECT flags after setup");
	/* Sanity: the setup is what we think it is. */
	if ((files[F_RW].fdfl & FD_CLOEXEC) == 0 || (files[F_APP].fdfl & FD_CLOEXEC) != 0 ||
	    (files[F_APP].fl & O_APPEND) == 0 || files[F_RW].off != RW_OFF ||
	    files[F_DUP].off != RW_OFF || files[F_APP].off != APP_OFF)
		wl_die("unexpected fd state after setup");
	n_open_at_setup = list_fds(open_fds_at_setup, MAX_FDS);
	if (n_open_at_setup < 0)
		wl_die("cannot list /proc/self/fd");

	wl_ready();

	while (!wl_stop) {
		loops++;
		wl_sleep_ms(5);
	}

	/* 1. Same fds open, each with the same flags, offset and target. */
	int now_fds[MAX_FDS];
	int n_now = list_fds(now_fds, MAX_FDS);
	if (n_now != n_open_at_setup ||
	    memcmp(now_fds, open_fds_at_setup, (size_t)n_now * sizeof(int)) != 0) {
		char a[512], b[512];
		fmt_fds(a, sizeof(a), open_fds_at_setup, n_open_at_setup);
		fmt_fds(b, sizeof(b), now_fds, n_now > 0 ? n_now : 0);
		wl_fail("open fds: expected {%s}, got {%s}", a, b);
	}
	for (int i = 0; i < NFILES; i++)
		compare_fd(fd_names[i], &files[i]);

	/* 2. fd 10 is /dev/null. */
	struct stat st10, stnull;
	if (fstat(NULL_FD, &st10) != 0 || stat("/dev/null", &stnull) != 0)
		wl_fail("fstat fd %d: %s", NULL_FD, strerror(errno));
	else
		WL_CHECK(S_ISCHR(st10.st_mode) && st10.st_rdev == stnull.st_rdev,
			 "fd %d is not /dev/null (mode %#o rdev %#llx, /dev/null rdev %#llx)",
			 NULL_FD, st10.st_mode, (unsigned long long)st10.st_rdev,
			 (unsigned long long)stnull.st_rdev);

	/* 3. Writing at the restored offset; dup shares it. */
	ssize_t w = write(rw, "XYZ", 3);
	WL_CHECK(w == 3, "write XYZ on rw returned %zd (%s)", w, strerror(errno));
	off_t rw_off = lseek(rw, 0, SEEK_CUR), dup_off = lseek(dup_rw, 0, SEEK_CUR);
	WL_CHECK(rw_off == RW_OFF + 3, "rw offset after write: expected %d, got %lld", RW_OFF + 3,
		 (long long)rw_off);
	WL_CHECK(dup_off == rw_off, "dup does not share rw's offset: dup %lld, rw %lld",
		 (long long)dup_off, (long long)rw_off);
	static char back[RW_SIZE + 1];
	ssize_t r = pread(ro, back, sizeof(back), 0);
	WL_CHECK(r == RW_SIZE, "%s size: expected %d, got %zd", path_rw, RW_SIZE, r);
	for (ssize_t k = 0; k < r && k < RW_SIZE; k++) {
		char want = k >= RW_OFF && k < RW_OFF + 3 ? "XYZ"[k - RW_OFF] : (char)rw_byte((size_t)k);
		if (back[k] != want) {
			wl_fail("%s byte %zd: expected '%c', got %#x", path_rw, k, want,
				(unsigned char)back[k]);
			break;
		}
	}
	off_t ro_off = lseek(ro, 0, SEEK_CUR);
	WL_CHECK(ro_off == RO_OFF, "ro offset moved: expected %d, got %lld", RO_OFF,
		 (long long)ro_off);

	/* 4. O_APPEND: the write lands at the end, not at offset 5. */
	w = write(app, "APPEND!", 7);
	WL_CHECK(w == 7, "write on app returned %zd (%s)", w, strerror(errno));
	static char appbuf[APP_SIZE + 64];
	ssize_t alen = wl_read_file(path_app, appbuf, sizeof(appbuf));
	WL_CHECK(alen == APP_SIZE + 7, "%s size: expected %d, got %zd", path_app, APP_SIZE + 7,
		 alen);
	if (alen == APP_SIZE + 7)
		WL_CHECK(!memcmp(appbuf + APP_SIZE, "APPEND!", 7) && appbuf[0] == 'h' &&
				 appbuf[APP_OFF] == 'h',
			 "%s: append landed in the wrong place ('%.7s' at %d, '%c' at %d)",
			 path_app, appbuf + APP_SIZE, APP_SIZE, appbuf[APP_OFF], APP_OFF);

	/* 5. ro's owner and signal; a read through direct (O_DIRECT wants an
	 * aligned buffer, offset and length). */
	WL_CHECK(fcntl(ro, F_GETOWN) == getpid(), "ro F_GETOWN: expected %d, got %d", (int)getpid(), fcntl(ro, F_GETOWN));
	WL_CHECK(fcntl(ro, F_GETSIG) == SIGRTMIN + 2, "ro F_GETSIG: expected %d, got %d", SIGRTMIN + 2,
		 fcntl(ro, F_GETSIG));
	r = read(direct, direct_buf, sizeof(direct_buf));
	WL_CHECK(r == (ssize_t)sizeof(direct_buf), "read %zu bytes through direct (O_DIRECT %d): got %zd (%s)",
		 sizeof(direct_buf), has_direct, r, strerror(errno));
	for (ssize_t k = 0; k < r; k++)
		if ((uint8_t)direct_buf[k] != rw_byte((size_t)(4096 + k)) && !(4096 + k >= RW_OFF && 4096 + k < RW_OFF + 3)) {
			wl_fail("direct: byte %zd differs", 4096 + k);
			break;
		}

	/* 6. cwd and umask. */
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		wl_fail("getcwd: %s", strerror(errno));
	else
		WL_CHECK(!strcmp(cwd, cwd_at_setup), "cwd: expected '%s', got '%s'", cwd_at_setup,
			 cwd);
	mode_t um = read_umask();
	WL_CHECK(um == 027, "umask: expected 027, got %03o", (unsigned)um);
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
