/* pidfds: a tree R, its child C (alive) and its child Z (a zombie), with
 * pidfds of each held by R:
 *
 *   pc     pidfd_open(C, PIDFD_NONBLOCK)
 *   pcdup  dup(pc): the same description
 *   pz     pidfd_open(Z), after Z exited with status 7 (not reaped)
 *   pself  pidfd_open(R, PIDFD_THREAD)
 *   pboth  pidfd_open(R), opened before C was forked: C holds it too
 *   cstat  /proc/C/stat, its first 4 bytes read (a file of /proc of another
 *          task of the tree)
 *
 * Verification (R): each fd's link and F_GETFL as at setup (O_NONBLOCK on
 * pc and pcdup, O_EXCL for PIDFD_THREAD on pself); fdinfo Pid: of each is
 * its task's; pz polls readable at once and waitid(P_PIDFD) gives Z's exit
 * status 7; C still runs: pc does not poll readable, and waitid on it fails
 * with EAGAIN (PIDFD_NONBLOCK); cstat is at offset 4 and reads on with C's
 * stat ("C's pid (comm) ..."); pboth is one description in R and C
 * (kcmp KCMP_FILE). Then R sends C SIGTERM (C exits 42 without
 * checking anything: its state is R's to check), pcdup polls readable and
 * waitid(P_PIDFD) on it gives status 42 for C's pid.
 */
#include "workload.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum { PC, PCDUP, PZ, PSELF, CSTAT, PBOTH, NFDS };
static const char *const names[NFDS] = { "pc", "pcdup", "pz", "pself", "cstat", "pboth" };
static int fds[NFDS], fl[NFDS];
static char links[NFDS][64];

static void link_of(int fd, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t r = readlink(path, out, n - 1);
	out[r < 0 ? 0 : r] = '\0';
}

/* The Pid: line of a pidfd's fdinfo, or -2. */
static int pid_line(int fd)
{
	char buf[1024];
	if (!wl_fdinfo(fd, buf, sizeof(buf)))
		return -2;
	char *at = strstr(buf, "\nPid:");
	return at ? atoi(at + 5) : -2;
}

static int pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void expect_exit(const char *name, int fd, pid_t pid, int code)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int r = waitid(P_PIDFD, fd, &si, WEXITED);
	WL_CHECK(r == 0 && si.si_pid == pid && si.si_code == CLD_EXITED && si.si_status == code,
		 "%s: waitid(P_PIDFD) gave %d (%s), pid %d code %d status %d; expected pid %d exited %d", name, r,
		 r < 0 ? wl_errname(errno) : "ok", si.si_pid, si.si_code, si.si_status, pid, code);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "pidfds");
	fds[PBOTH] = pidfd_open(getpid(), 0);
	pid_t c = fork();
	if (c < 0)
		wl_die("fork: %s", strerror(errno));
	if (c == 0) {
		wl_name = "C";
		wl_run_until_sigterm(0);
		_exit(42);
	}
	pid_t z = fork();
	if (z < 0)
		wl_die("fork: %s", strerror(errno));
	if (z == 0)
		_exit(7);
	siginfo_t si;
	if (waitid(P_PID, z, &si, WEXITED | WNOWAIT) != 0)
		wl_die("wait for Z to exit: %s", strerror(errno));

	fds[PC] = pidfd_open(c, PIDFD_NONBLOCK);
	fds[PCDUP] = dup(fds[PC]);
	fds[PZ] = pidfd_open(z, 0);
	fds[PSELF] = pidfd_open(getpid(), PIDFD_THREAD);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", c);
	fds[CSTAT] = open(path, O_RDONLY);
	for (int i = 0; i < NFDS; i++)
		if (fds[i] < 0)
			wl_die("%s: %s", names[i], strerror(errno));
	char head[4];
	if (read(fds[CSTAT], head, sizeof(head)) != sizeof(head))
		wl_die("read %s: %s", path, strerror(errno));
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
	WL_CHECK(fl[PC] & O_NONBLOCK, "pc: no O_NONBLOCK at setup (%#o)", fl[PC]);
	WL_CHECK(fl[PSELF] & O_EXCL, "pself: no PIDFD_THREAD at setup (%#o)", fl[PSELF]);
	const pid_t want[] = { c, c, z, getpid() };
	for (int i = PC; i <= PSELF; i++)
		WL_CHECK(pid_line(fds[i]) == want[i], "%s: fdinfo Pid: %d, expected %d", names[i], pid_line(fds[i]),
			 want[i]);

	/* The zombie: exited, its status waiting. */
	WL_CHECK(readable(fds[PZ], 1000), "pz: Z exited, yet its pidfd does not poll readable");
	expect_exit("pz", fds[PZ], z, 7);

	/* C runs on. */
	WL_CHECK(!readable(fds[PC], 0), "pc: polls readable while C runs");
	memset(&si, 0, sizeof(si));
	int r = waitid(P_PIDFD, fds[PC], &si, WEXITED);
	WL_CHECK(r < 0 && errno == EAGAIN, "pc: waitid while C runs gave %d (%s), expected EAGAIN (PIDFD_NONBLOCK)", r,
		 r < 0 ? wl_errname(errno) : "ok");
	WL_CHECK(lseek(fds[CSTAT], 0, SEEK_CUR) == sizeof(head), "cstat: offset %ld, expected %zu",
		 (long)lseek(fds[CSTAT], 0, SEEK_CUR), sizeof(head));
	char stat[512], want_stat[64];
	ssize_t n = read(fds[CSTAT], stat, sizeof(stat) - 1);
	stat[n < 0 ? 0 : n] = '\0';
	char full[600];
	snprintf(full, sizeof(full), "%.4s%s", head, stat);
	snprintf(want_stat, sizeof(want_stat), "%d (wl_pidfds) ", c);
	WL_CHECK(!strncmp(full, want_stat, strlen(want_stat)), "cstat: reads \"%.40s\", expected \"%s...\"", full,
		 want_stat);

	/* Still one description in both. */
	long same = syscall(SYS_kcmp, getpid(), c, 0 /* KCMP_FILE */, fds[PBOTH], fds[PBOTH]);
	WL_CHECK(same == 0, "pboth: kcmp of R's and C's fd %d gave %ld (%s), expected 0 (one description)", fds[PBOTH],
		 same, same < 0 ? wl_errname(errno) : "another");

	/* C exits: its pidfd says so. */
	kill(c, SIGTERM);
	WL_CHECK(readable(fds[PCDUP], 10000), "pcdup: C was sent SIGTERM, yet its pidfd does not poll readable");
	expect_exit("pcdup", fds[PCDUP], c, 42);
	wl_finish();
}
