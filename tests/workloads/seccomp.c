/* seccomp: filters installed with seccomp(2) must survive restore and keep
 * judging syscalls as before.
 *
 * Two filters (oldest first): getppid fails with ENOTTY; getpriority fails
 * with EPERM. Everything else is allowed. no_new_privs is set, as an
 * unprivileged process must before installing filters.
 *
 * Verification: both syscalls still fail with their errno (a lost filter
 * would let them succeed), /proc/self/status still reports "Seccomp: 2",
 * "Seccomp_filters: 2" and "NoNewPrivs: 1", and an allowed syscall works.
 */
#include "workload.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static void install(int nr, int err)
{
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fprog = { sizeof prog / sizeof prog[0], prog };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0)
		wl_die("seccomp(SET_MODE_FILTER) for syscall %d: %s", nr, strerror(errno));
}

static void expect_denied(const char *what, long nr, int err)
{
	errno = 0;
	long r = nr == SYS_getpriority ? syscall(nr, PRIO_PROCESS, 0) : syscall(nr);
	WL_CHECK(r == -1 && errno == err, "%s: expected -1 with %s, got %ld (%s)", what, strerrorname_np(err), r,
		 errno ? strerrorname_np(errno) : "no error");
}

static void expect_status(const char *key, const char *want)
{
	static char buf[8192];
	ssize_t n = wl_read_file("/proc/self/status", buf, sizeof buf);
	char *line = n > 0 ? strstr(buf, key) : NULL;
	char value[64] = "";
	if (line)
		sscanf(line + strlen(key), " %63s", value);
	WL_CHECK(strcmp(value, want) == 0, "/proc/self/status %s expected %s, got '%s'", key, want, value);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "seccomp");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		wl_die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	install(SYS_getppid, ENOTTY);
	install(SYS_getpriority, EPERM);
	expect_denied("getppid", SYS_getppid, ENOTTY);
	expect_denied("getpriority", SYS_getpriority, EPERM);
	if (wl_fail_count)
		wl_die("filters do not work at setup");

	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(5);

	expect_denied("getppid", SYS_getppid, ENOTTY);
	expect_denied("getpriority", SYS_getpriority, EPERM);
	WL_CHECK(syscall(SYS_getpid) == getpid(), "getpid is allowed and must work");
	expect_status("Seccomp:", "2");
	expect_status("Seccomp_filters:", "2");
	expect_status("NoNewPrivs:", "1");
	wl_finish();
}
