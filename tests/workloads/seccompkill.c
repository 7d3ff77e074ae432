/* seccompkill: a process that its own seccomp filter kills at its first
 * syscall after restore. Not restorable, on purpose: a restore of it must
 * fail, not report success and leave the death unseen (the e2e test
 * FirstStep.* checks that).
 *
 * The main thread blocks in pause(). A helper thread then installs, for
 * every thread (SECCOMP_FILTER_FLAG_TSYNC), a filter that kills the process
 * on pause(); the main thread, already inside it, is not judged again until
 * it re-enters it. The dump finds it in pause() and rewinds it to re-enter
 * the syscall (pitfall 8); the restored main thread does so, and the filter
 * kills the process at once. The helper sleeps in nanosleep(), allowed.
 *
 * Argument "thread": the filter kills only the thread (SECCOMP_RET_KILL_THREAD):
 * the main thread dies, the helper lives on.
 *
 * Never verified by SIGTERM (the test never lets it get that far): if it is
 * ever woken, it prints FAIL.
 */
#include "workload.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static pid_t main_tid;
static unsigned kill_action = SECCOMP_RET_KILL_PROCESS;

static int in_pause(void)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)main_tid);
	ssize_t n = wl_read_file(path, buf, sizeof buf - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atoi(buf) == SYS_pause;
}

static void *helper(void *arg)
{
	(void)arg;
	while (!in_pause())
		wl_sleep_ms(1);
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pause, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, kill_action),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fprog = { sizeof prog / sizeof prog[0], prog };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog) != 0)
		wl_die("seccomp(SET_MODE_FILTER, TSYNC): %s", strerror(errno));
	wl_ready();
	for (;;)
		wl_sleep_ms(10);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "seccompkill");
	if (argc > 2 && strcmp(argv[2], "thread") == 0)
		kill_action = SECCOMP_RET_KILL_THREAD;
	main_tid = (pid_t)syscall(SYS_gettid);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		wl_die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	pthread_t th;
	if (pthread_create(&th, NULL, helper, NULL) != 0)
		wl_die("pthread_create failed");
	syscall(SYS_pause);
	wl_fail("woken from pause(): the filter should have killed it on the way back in");
	wl_finish();
}
