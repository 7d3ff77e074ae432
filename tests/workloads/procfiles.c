/* procfiles: files of /proc held open, its own and the system's.
 *
 *   status  /proc/self/status, its first 64 bytes read; SIGUSR2 blocked
 *   stat    /proc/self/stat, not read
 *   self    /proc/self, O_DIRECTORY
 *   pidmax  /proc/sys/kernel/pid_max, its first 2 bytes read (a sysctl's
 *           read from an offset other than 0 gives nothing)
 *   meminfo /proc/meminfo, O_RDONLY | O_NONBLOCK, not read
 *
 * Verification: each fd's link (/proc/<pid>/status...) and F_GETFL as at
 * setup; status is at offset 64 and reads on with what the file shows now
 * (the bytes at 64.. of a new read of it), and shows the restored task:
 * its Pid: and SigBlk: with SIGUSR2, and SigBlk: with SIGUSR1 too once it
 * is blocked now; stat reads "<pid> (wl_procfiles) "; self finds "status"
 * (fstatat); pidmax is at offset 2, a read there gives what it gave at
 * setup, one from 0 the whole value; meminfo starts with "MemTotal:".
 */
#include "workload.h"

#include <sys/stat.h>

enum { STATUS, STAT, SELF, PIDMAX, MEMINFO, NFDS };
static const char *const names[NFDS] = { "status", "stat", "self", "pidmax", "meminfo" };
static int fds[NFDS], fl[NFDS];
static char links[NFDS][64];

#define HEAD 64

static void link_of(int fd, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t r = readlink(path, out, n - 1);
	out[r < 0 ? 0 : r] = '\0';
}

/* The value of line `key` in text, up to the newline. */
static void line_of(const char *text, const char *key, char *out, size_t n)
{
	out[0] = '\0';
	const char *at = strstr(text, key);
	if (!at)
		return;
	at += strlen(key);
	size_t len = strcspn(at, "\n");
	snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), at);
}

static char text[8192], fresh[8192];

int main(int argc, char **argv)
{
	wl_init(argc, argv, "procfiles");
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, NULL);

	fds[STATUS] = open("/proc/self/status", O_RDONLY);
	fds[STAT] = open("/proc/self/stat", O_RDONLY);
	fds[SELF] = open("/proc/self", O_RDONLY | O_DIRECTORY);
	fds[PIDMAX] = open("/proc/sys/kernel/pid_max", O_RDONLY);
	fds[MEMINFO] = open("/proc/meminfo", O_RDONLY | O_NONBLOCK);
	for (int i = 0; i < NFDS; i++)
		if (fds[i] < 0)
			wl_die("open %s: %s", names[i], strerror(errno));
	if (read(fds[STATUS], text, HEAD) != HEAD || read(fds[PIDMAX], text, 2) != 2)
		wl_die("read: %s", strerror(errno));
	char pidmax[32], rest[32];
	ssize_t len = wl_read_file("/proc/sys/kernel/pid_max", pidmax, sizeof(pidmax) - 1);
	ssize_t rest_len = pread(fds[PIDMAX], rest, sizeof(rest) - 1, 2);
	if (len < 3 || rest_len < 0)
		wl_die("read pid_max: %s", strerror(errno));
	pidmax[len] = rest[rest_len] = '\0';
	for (int i = 0; i < NFDS; i++) {
		fl[i] = fcntl(fds[i], F_GETFL);
		link_of(fds[i], links[i], sizeof(links[i]));
	}
	wl_ready();
	wl_run_until_sigterm(0);

	for (int i = 0; i < NFDS; i++) {
		char now[64];
		link_of(fds[i], now, sizeof(now));
		WL_CHECK(!strcmp(now, links[i]), "%s (fd %d): link %s, expected %s", names[i], fds[i], now, links[i]);
		int f = fcntl(fds[i], F_GETFL);
		WL_CHECK(f == fl[i], "%s (fd %d): F_GETFL %#o, expected %#o", names[i], fds[i], f, fl[i]);
	}
	char want[64];
	snprintf(want, sizeof(want), "/proc/%d/status", getpid());
	WL_CHECK(!strcmp(links[STATUS], want), "status: link %s, expected %s", links[STATUS], want);

	/* status: on from offset 64, then the whole of it as it is now. */
	off_t at = lseek(fds[STATUS], 0, SEEK_CUR);
	WL_CHECK(at == HEAD, "status: offset %ld, expected %d", (long)at, HEAD);
	ssize_t n = read(fds[STATUS], text, 16);
	ssize_t m = wl_read_file("/proc/self/status", fresh, sizeof(fresh) - 1);
	WL_CHECK(n == 16 && m > HEAD + 16 && !memcmp(text, fresh + HEAD, 16),
		 "status: read on from offset 64 \"%.16s\", the file holds \"%.16s\" there", n > 0 ? text : "",
		 m > HEAD ? fresh + HEAD : "");
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	for (int round = 0; round < 2; round++) {
		n = pread(fds[STATUS], text, sizeof(text) - 1, 0);
		text[n < 0 ? 0 : n] = '\0';
		char pid[32], blk[32], want_blk[32];
		line_of(text, "\nPid:\t", pid, sizeof(pid));
		line_of(text, "\nSigBlk:\t", blk, sizeof(blk));
		snprintf(want_blk, sizeof(want_blk), "%016llx",
			 (1ULL << (SIGUSR2 - 1)) | (round ? 1ULL << (SIGUSR1 - 1) : 0));
		WL_CHECK(atoi(pid) == getpid(), "status: Pid: %s, expected %d", pid, getpid());
		WL_CHECK(!strcmp(blk, want_blk), "status (round %d): SigBlk: %s, expected %s", round, blk, want_blk);
		sigprocmask(SIG_BLOCK, &usr1, NULL);
	}

	n = read(fds[STAT], text, sizeof(text) - 1);
	text[n < 0 ? 0 : n] = '\0';
	snprintf(want, sizeof(want), "%d (wl_procfiles) ", getpid());
	WL_CHECK(!strncmp(text, want, strlen(want)), "stat: reads \"%.40s\", expected \"%s...\"", text, want);

	struct stat st;
	WL_CHECK(fstatat(fds[SELF], "status", &st, 0) == 0, "self: fstatat status: %s", wl_errname(errno));

	at = lseek(fds[PIDMAX], 0, SEEK_CUR);
	WL_CHECK(at == 2, "pidmax: offset %ld, expected 2", (long)at);
	n = read(fds[PIDMAX], text, sizeof(text) - 1);
	text[n < 0 ? 0 : n] = '\0';
	WL_CHECK(!strcmp(text, rest), "pidmax: reads on \"%s\", expected \"%s\"", text, rest);
	n = pread(fds[PIDMAX], text, sizeof(text) - 1, 0);
	text[n < 0 ? 0 : n] = '\0';
	WL_CHECK(!strcmp(text, pidmax), "pidmax: reads \"%s\" from 0, expected \"%s\"", text, pidmax);

	n = read(fds[MEMINFO], text, 16);
	WL_CHECK(n == 16 && !memcmp(text, "MemTotal:", 9), "meminfo: reads \"%.16s\"", n > 0 ? text : "");
	wl_finish();
}
