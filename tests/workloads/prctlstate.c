/* prctlstate: process and thread state set by prctl and /proc that no
 * other workload sets (issue 11).
 *
 * Setup:
 *   PR_SET_MDWE          PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT
 *                        (REFUSE_EXEC_GAIN alone where NO_INHERIT is unknown).
 *   PR_SET_THP_DISABLE   1 with PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18;
 *                        plain 1 where the kernel refuses the flag).
 *   PR_SET_MEMORY_MERGE  1 (KSM for every VMA of the process); then the
 *                        middle page of a new 3-page mapping is unmerged
 *                        (MADV_UNMERGEABLE): its VmFlags lack "mg", which
 *                        the e2e test's smaps comparison checks.
 *   speculation          PR_GET_SPECULATION_CTRL of PR_SPEC_STORE_BYPASS,
 *                        _INDIRECT_BRANCH, _L1D_FLUSH recorded; where the value
 *                        has PR_SPEC_PRCTL (the task may choose), it chooses
 *                        PR_SPEC_DISABLE in the main thread. On a machine
 *                        whose mitigations are not per task, nothing changes.
 *   loginuid             /proc/self/loginuid 4242 in the main thread, and a
 *                        second thread writes 4343 to its own
 *                        /proc/thread-self/loginuid (skipped if the file is
 *                        missing: a kernel without audit).
 * The thread sleeps until told to stop.
 * Verification: PR_GET_MDWE, PR_GET_THP_DISABLE, PR_GET_MEMORY_MERGE read the
 * values set up; MDWE still works (an mmap with PROT_WRITE|PROT_EXEC fails
 * with EACCES); PR_GET_SPECULATION_CTRL of each control reads as recorded;
 * /proc/self/task/TID/loginuid of each thread reads its value.
 */
#include "workload.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define PR_SET_MDWE_ 65
#define PR_GET_MDWE_ 66
#define PR_MDWE_REFUSE_EXEC_GAIN_ 1
#define PR_MDWE_NO_INHERIT_ 2
#define PR_SET_MEMORY_MERGE_ 67
#define PR_GET_MEMORY_MERGE_ 68
#define PR_THP_DISABLE_EXCEPT_ADVISED_ 2
#define MAIN_LOGINUID 4242u
#define THREAD_LOGINUID 4343u

static const char *const spec_names[3] = { "STORE_BYPASS", "INDIRECT_BRANCH", "L1D_FLUSH" };
static int spec_at_setup[3];
static int mdwe_want, thp_want, have_loginuid;
static volatile pid_t thread_tid;
static volatile int thread_ready, thread_stop;
static uint64_t loops;

static void write_loginuid(const char *path, unsigned uid)
{
	char buf[16];
	int n = snprintf(buf, sizeof buf, "%u", uid);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		wl_die("write %u to %s: %s", uid, path, strerror(errno));
	close(fd);
}

static long read_loginuid(pid_t tid)
{
	char path[64], buf[32];
	snprintf(path, sizeof path, "/proc/self/task/%d/loginuid", (int)tid);
	ssize_t n = wl_read_file(path, buf, sizeof buf - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return (long)strtoul(buf, NULL, 10);
}

static void *thread_main(void *arg)
{
	(void)arg;
	thread_tid = (pid_t)syscall(SYS_gettid);
	if (have_loginuid)
		write_loginuid("/proc/thread-self/loginuid", THREAD_LOGINUID);
	__atomic_store_n(&thread_ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&thread_stop, __ATOMIC_ACQUIRE))
		wl_sleep_ms(5);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "prctlstate");

	mdwe_want = PR_MDWE_REFUSE_EXEC_GAIN_ | PR_MDWE_NO_INHERIT_;
	if (prctl(PR_SET_MDWE_, mdwe_want, 0, 0, 0) != 0) {
		mdwe_want = PR_MDWE_REFUSE_EXEC_GAIN_;
		if (prctl(PR_SET_MDWE_, mdwe_want, 0, 0, 0) != 0)
			wl_die("PR_SET_MDWE: %s", strerror(errno));
	}
	thp_want = 1 | PR_THP_DISABLE_EXCEPT_ADVISED_;
	if (prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED_, 0, 0) != 0) {
		thp_want = 1;
		if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
			wl_die("PR_SET_THP_DISABLE: %s", strerror(errno));
	}
	if (prctl(PR_SET_MEMORY_MERGE_, 1, 0, 0, 0) != 0)
		wl_die("PR_SET_MEMORY_MERGE: %s", strerror(errno));
	char *three = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (three == MAP_FAILED || madvise(three + 4096, 4096, MADV_UNMERGEABLE) != 0)
		wl_die("mmap, MADV_UNMERGEABLE: %s", strerror(errno));
	memset(three, 0x33, 3 * 4096);
	for (int w = 0; w < 3; w++) {
		int v = prctl(PR_GET_SPECULATION_CTRL, w, 0, 0, 0);
		if (v > 0 && (v & PR_SPEC_PRCTL) && !(v & PR_SPEC_FORCE_DISABLE))
			if (prctl(PR_SET_SPECULATION_CTRL, w, PR_SPEC_DISABLE, 0, 0) != 0)
				wl_printf("PR_SET_SPECULATION_CTRL %s: %s\n", spec_names[w], strerror(errno));
		spec_at_setup[w] = prctl(PR_GET_SPECULATION_CTRL, w, 0, 0, 0);
		wl_printf("speculation %s: %#x\n", spec_names[w], spec_at_setup[w]);
	}
	have_loginuid = access("/proc/self/loginuid", F_OK) == 0;
	if (have_loginuid)
		write_loginuid("/proc/self/loginuid", MAIN_LOGINUID);
	else
		wl_printf("no /proc/self/loginuid: loginuid not checked\n");

	pthread_t th;
	if (pthread_create(&th, NULL, thread_main, NULL) != 0)
		wl_die("pthread_create failed");
	while (!__atomic_load_n(&thread_ready, __ATOMIC_ACQUIRE))
		wl_sleep_ms(1);

	wl_ready();

	while (!wl_stop) {
		loops++;
		wl_sleep_ms(5);
	}

	int v = prctl(PR_GET_MDWE_, 0, 0, 0, 0);
	WL_CHECK(v == mdwe_want, "PR_GET_MDWE: expected %d, got %d", mdwe_want, v);
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(p == MAP_FAILED && errno == EACCES,
		 "MDWE: a PROT_WRITE|PROT_EXEC mmap should fail with EACCES, got %s",
		 p == MAP_FAILED ? strerror(errno) : "a mapping");
	if (p != MAP_FAILED)
		munmap(p, 4096);
	v = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	WL_CHECK(v == thp_want, "PR_GET_THP_DISABLE: expected %d, got %d", thp_want, v);
	v = prctl(PR_GET_MEMORY_MERGE_, 0, 0, 0, 0);
	WL_CHECK(v == 1, "PR_GET_MEMORY_MERGE: expected 1, got %d", v);
	for (int w = 0; w < 3; w++) {
		v = prctl(PR_GET_SPECULATION_CTRL, w, 0, 0, 0);
		WL_CHECK(v == spec_at_setup[w], "PR_GET_SPECULATION_CTRL %s: expected %#x, got %#x",
			 spec_names[w], spec_at_setup[w], v);
	}
	if (have_loginuid) {
		long l = read_loginuid((pid_t)syscall(SYS_gettid));
		WL_CHECK(l == MAIN_LOGINUID, "main thread's loginuid: expected %u, got %ld", MAIN_LOGINUID, l);
		l = read_loginuid(thread_tid);
		WL_CHECK(l == THREAD_LOGINUID, "second thread's loginuid: expected %u, got %ld", THREAD_LOGINUID, l);
	}

	__atomic_store_n(&thread_stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
