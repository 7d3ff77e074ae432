/* ghosts: files without a name (deleted files, memfds), held as fds.
 *
 * Setup:
 *   del     <ready>.del O_RDWR, sparse: 4 KiB of pattern at 0 and at 1 MiB
 *           (size 1 MiB + 4 KiB), mode 0640, offset 1234, then unlinked
 *   del_ro  a second description of it, O_RDONLY, offset 77
 *   app     <ready>.app O_WRONLY|O_APPEND, 500 bytes, unlinked
 *   mfd     memfd "ghost" (MFD_ALLOW_SEALING), 64 KiB of pattern, offset 100,
 *           sealed F_SEAL_GROW|F_SEAL_SHRINK
 *   plain   memfd "plain" without sealing (F_GET_SEALS: F_SEAL_SEAL)
 *   shared  memfd "shared", 16 KiB, also mapped MAP_SHARED
 * Verification: per fd the same /proc/self/fd link, F_GETFL, offset, size,
 * mode, seals and contents; a write through `shared` shows in the mapping
 * and one through the mapping in the file; a write to `del` reads back
 * through `del_ro` (one file); `app` still appends.
 */
#include "workload.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define DEL_SIZE ((1 << 20) + 4096)

enum { F_DEL, F_DEL_RO, F_APP, F_MFD, F_PLAIN, F_SHARED, NFILES };
static const char *const names[NFILES] = { "del", "del_ro", "app", "mfd", "plain", "shared" };
static int fds[NFILES];
static struct {
	char link[PATH_MAX];
	int fl;
	off_t off, size;
	mode_t mode;
	int seals;
	uint64_t sum;
} at_setup[NFILES];
static char *shared_map;

static uint8_t pattern(size_t k)
{
	return (uint8_t)wl_mix64(k);
}

static uint64_t checksum(int fd, off_t size)
{
	static char buf[65536];
	uint64_t sum = 0;
	for (off_t at = 0; at < size;) {
		ssize_t n = pread(fd, buf, sizeof(buf), at);
		if (n <= 0)
			return ~0ULL;
		for (ssize_t i = 0; i < n; i++)
			sum = wl_mix64(sum ^ (uint8_t)buf[i]);
		at += n;
	}
	return sum;
}

static void describe(int i)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fds[i]);
	ssize_t n = readlink(proc, at_setup[i].link, sizeof(at_setup[i].link) - 1);
	at_setup[i].link[n > 0 ? n : 0] = '\0';
	at_setup[i].fl = fcntl(fds[i], F_GETFL);
	at_setup[i].off = lseek(fds[i], 0, SEEK_CUR);
	struct stat st;
	fstat(fds[i], &st);
	at_setup[i].size = st.st_size;
	at_setup[i].mode = st.st_mode;
	at_setup[i].seals = fcntl(fds[i], F_GET_SEALS);
	/* A write-only description can't be read: the file is read elsewhere. */
	at_setup[i].sum = (at_setup[i].fl & O_ACCMODE) == O_WRONLY ? 0 : checksum(fds[i], st.st_size);
}

static void fill(int fd, off_t at, size_t len)
{
	static char buf[65536];
	for (size_t k = 0; k < len; k++)
		buf[k] = (char)pattern((size_t)at + k);
	if (pwrite(fd, buf, len, at) != (ssize_t)len)
		wl_die("pwrite: %s", wl_errname(errno));
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "ghosts");
	char del[PATH_MAX + 16], app[PATH_MAX + 16];
	wl_aux_path(del, sizeof(del), "del");
	wl_aux_path(app, sizeof(app), "app");
	fds[F_DEL] = open(del, O_RDWR | O_CREAT | O_EXCL, 0640);
	fds[F_DEL_RO] = open(del, O_RDONLY);
	fds[F_APP] = open(app, O_WRONLY | O_APPEND | O_CREAT | O_EXCL, 0600);
	if (fds[F_DEL] < 0 || fds[F_DEL_RO] < 0 || fds[F_APP] < 0)
		wl_die("open: %s", wl_errname(errno));
	fchmod(fds[F_DEL], 0640);
	fill(fds[F_DEL], 0, 4096);
	fill(fds[F_DEL], 1 << 20, 4096);
	lseek(fds[F_DEL], 1234, SEEK_SET);
	lseek(fds[F_DEL_RO], 77, SEEK_SET);
	for (int k = 0; k < 5; k++)
		if (write(fds[F_APP], "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", 100) != 100)
			wl_die("write app");
	if (unlink(del) < 0 || unlink(app) < 0)
		wl_die("unlink: %s", wl_errname(errno));

	fds[F_MFD] = memfd_create("ghost", MFD_ALLOW_SEALING);
	fds[F_PLAIN] = memfd_create("plain", 0);
	fds[F_SHARED] = memfd_create("shared", 0);
	if (fds[F_MFD] < 0 || fds[F_PLAIN] < 0 || fds[F_SHARED] < 0)
		wl_die("memfd_create: %s", wl_errname(errno));
	fill(fds[F_MFD], 0, 65536);
	lseek(fds[F_MFD], 100, SEEK_SET);
	if (fcntl(fds[F_MFD], F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0)
		wl_die("F_ADD_SEALS: %s", wl_errname(errno));
	fill(fds[F_SHARED], 0, 16384);
	shared_map = mmap(NULL, 16384, PROT_READ | PROT_WRITE, MAP_SHARED, fds[F_SHARED], 0);
	if (shared_map == MAP_FAILED)
		wl_die("mmap: %s", wl_errname(errno));
	for (int i = 0; i < NFILES; i++)
		describe(i);
	wl_ready();

	wl_run_until_sigterm(0);

	for (int i = 0; i < NFILES; i++) {
		char link[PATH_MAX], proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fds[i]);
		ssize_t n = readlink(proc, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		WL_CHECK(strcmp(link, at_setup[i].link) == 0, "%s: link %s, was %s", names[i], link, at_setup[i].link);
		WL_CHECK(fcntl(fds[i], F_GETFL) == at_setup[i].fl, "%s: F_GETFL %#o, was %#o", names[i],
			 fcntl(fds[i], F_GETFL), at_setup[i].fl);
		off_t off = lseek(fds[i], 0, SEEK_CUR);
		WL_CHECK(off == at_setup[i].off, "%s: offset %lld, was %lld", names[i], (long long)off,
			 (long long)at_setup[i].off);
		struct stat st;
		fstat(fds[i], &st);
		WL_CHECK(st.st_size == at_setup[i].size && st.st_mode == at_setup[i].mode,
			 "%s: size %lld mode %o, was %lld %o", names[i], (long long)st.st_size, st.st_mode,
			 (long long)at_setup[i].size, at_setup[i].mode);
		WL_CHECK(fcntl(fds[i], F_GET_SEALS) == at_setup[i].seals, "%s: seals %#x, was %#x", names[i],
			 fcntl(fds[i], F_GET_SEALS), at_setup[i].seals);
		if ((at_setup[i].fl & O_ACCMODE) != O_WRONLY)
			WL_CHECK(checksum(fds[i], st.st_size) == at_setup[i].sum, "%s: contents differ", names[i]);
	}
	WL_CHECK(at_setup[F_PLAIN].seals == F_SEAL_SEAL, "plain: seals %#x", at_setup[F_PLAIN].seals);
	WL_CHECK(pwrite(fds[F_SHARED], "HELLO", 5, 0) == 5 && memcmp(shared_map, "HELLO", 5) == 0,
		 "a write through the shared memfd's fd is not in its mapping");
	memcpy(shared_map + 8192, "WORLD", 5);
	char back[5] = "";
	WL_CHECK(pread(fds[F_SHARED], back, 5, 8192) == 5 && memcmp(back, "WORLD", 5) == 0,
		 "a write through the mapping is not in the shared memfd");
	WL_CHECK(pwrite(fds[F_DEL], "XYZ", 3, 10) == 3 && pread(fds[F_DEL_RO], back, 3, 10) == 3 &&
			 memcmp(back, "XYZ", 3) == 0,
		 "del and del_ro are not one file any more");
	struct stat st;
	WL_CHECK(write(fds[F_APP], "!", 1) == 1 && fstat(fds[F_APP], &st) == 0 && st.st_size == 501,
		 "app: append gave size %lld", (long long)st.st_size);
	wl_finish();
}
