/* creds: a process that dropped privileges comes back with them dropped.
 *
 * Setup, as root: 100 supplementary groups {100, 200, ..., 10000};
 * CAP_SYS_BOOT dropped
 * from the bounding set; SECBIT_NOROOT; then, keeping capabilities across
 * the change, uids 1000/1001/1002 and gids 2000/2001/2002 (real, effective,
 * saved); the capability sets cut down to CAP_DAC_OVERRIDE (to keep writing
 * the harness's files) and CAP_NET_BIND_SERVICE, the latter also inheritable
 * and ambient.
 *
 * A second thread exists throughout: glibc changes the ids of every thread,
 * and so must restore.
 *
 * Verification: every id, the groups, the four capability sets, the
 * bounding set and the securebits are exactly as set up, in both threads.
 */
#include "workload.h"

#include <grp.h>
#include <pthread.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

struct caps {
	uint64_t eff, prm, inh;
};

static struct caps get_caps(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) != 0)
		wl_die("capget: %s", strerror(errno));
	struct caps c = { d[0].effective | (uint64_t)d[1].effective << 32,
			  d[0].permitted | (uint64_t)d[1].permitted << 32,
			  d[0].inheritable | (uint64_t)d[1].inheritable << 32 };
	return c;
}

static void set_caps(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { eff, prm, inh }, { eff >> 32, prm >> 32, inh >> 32 } };
	if (syscall(SYS_capset, &h, d) != 0)
		wl_die("capset: %s", strerror(errno));
}

#define BIT(c) (1ULL << (c))
static const uint64_t kKept = BIT(CAP_DAC_OVERRIDE) | BIT(CAP_NET_BIND_SERVICE);

static void check_ids(const char *what, uid_t r, uid_t e, uid_t s, uid_t wr, uid_t we, uid_t ws)
{
	WL_CHECK(r == wr && e == we && s == ws, "%s: expected %u/%u/%u, got %u/%u/%u", what, wr, we, ws, r, e, s);
}

#define NGROUPS 100
static gid_t want_groups[NGROUPS];

/* This thread's own groups, from the kernel (the raw syscall: glibc's
 * setgroups changes every thread's, and restore must have done so too). */
static int groups_ok(void)
{
	gid_t now[NGROUPS + 1];
	long n = syscall(SYS_getgroups, NGROUPS + 1, now);
	return n == NGROUPS && memcmp(now, want_groups, sizeof want_groups) == 0;
}

static volatile int worker_check, worker_uid_ok = -1, worker_groups_ok = -1;

static void *worker(void *arg)
{
	(void)arg;
	sigset_t m;
	sigfillset(&m);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	while (!worker_check)
		wl_sleep_ms(5);
	uid_t r, e, s;
	getresuid(&r, &e, &s); /* this thread's own, from the kernel */
	worker_uid_ok = r == 1000 && e == 1001 && s == 1002;
	worker_groups_ok = groups_ok();
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "creds");
	pthread_t t;
	pthread_create(&t, NULL, worker, NULL);
	if (getuid() != 0)
		wl_die("must start as root");
	for (int i = 0; i < NGROUPS; i++)
		want_groups[i] = 100 * (i + 1);
	if (setgroups(NGROUPS, want_groups) != 0)
		wl_die("setgroups: %s", strerror(errno));
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0) != 0)
		wl_die("PR_CAPBSET_DROP: %s", strerror(errno));
	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_KEEP_CAPS, 0, 0, 0) != 0)
		wl_die("PR_SET_SECUREBITS: %s", strerror(errno));
	if (setresgid(2000, 2001, 2002) != 0 || setresuid(1000, 1001, 1002) != 0)
		wl_die("setres[ug]id: %s", strerror(errno));
	set_caps(kKept, kKept, BIT(CAP_NET_BIND_SERVICE));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0)
		wl_die("PR_CAP_AMBIENT_RAISE: %s", strerror(errno));
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0)
		wl_die("PR_SET_KEEPCAPS 0: %s", strerror(errno));

	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(5);

	uid_t r, e, s;
	getresuid(&r, &e, &s);
	check_ids("uids", r, e, s, 1000, 1001, 1002);
	WL_CHECK(setfsuid(-1) == 1001, "fsuid: expected 1001, got %d", setfsuid(-1));
	gid_t gr, ge, gs;
	getresgid(&gr, &ge, &gs);
	check_ids("gids", gr, ge, gs, 2000, 2001, 2002);
	WL_CHECK(groups_ok(), "groups: expected %d of them, 100 to 10000, got %d", NGROUPS, getgroups(0, NULL));
	struct caps c = get_caps();
	WL_CHECK(c.eff == kKept && c.prm == kKept && c.inh == BIT(CAP_NET_BIND_SERVICE),
		 "capabilities: expected eff=prm=%#llx inh=%#llx, got eff=%#llx prm=%#llx inh=%#llx",
		 (unsigned long long)kKept, (unsigned long long)BIT(CAP_NET_BIND_SERVICE), (unsigned long long)c.eff,
		 (unsigned long long)c.prm, (unsigned long long)c.inh);
	WL_CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) == 1,
		 "CAP_NET_BIND_SERVICE is no longer ambient");
	WL_CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_DAC_OVERRIDE, 0, 0) == 0,
		 "CAP_DAC_OVERRIDE became ambient");
	WL_CHECK(prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0) == 0, "CAP_SYS_BOOT is back in the bounding set");
	WL_CHECK(prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0) == 1, "CAP_CHOWN left the bounding set");
	worker_check = 1;
	pthread_join(t, NULL);
	WL_CHECK(worker_uid_ok == 1, "the second thread's uids differ from 1000/1001/1002");
	WL_CHECK(worker_groups_ok == 1, "the second thread's groups differ from the main thread's");
	int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	WL_CHECK(bits == SECBIT_NOROOT, "securebits: expected %#x, got %#x", SECBIT_NOROOT, bits);
	wl_finish();
}
