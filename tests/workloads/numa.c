/* numa: NUMA memory policies, of threads (set_mempolicy) and of VMAs
 * (mbind), survive a checkpoint. Every policy names the lowest node the task
 * may use (get_mempolicy MPOL_F_MEMS_ALLOWED), so it runs on a machine of
 * one node too.
 *
 *   main thread   MPOL_BIND
 *   second thread MPOL_INTERLEAVE with MPOL_F_STATIC_NODES
 *   third thread  MPOL_LOCAL
 *   VMA "bound"   MPOL_BIND, 4 pages written after the mbind
 *   VMA "pref"    MPOL_PREFERRED with MPOL_F_RELATIVE_NODES, 2 pages
 *   VMA "plain"   no policy of its own, between the two (so that mbind
 *                 splits nothing back together)
 *
 * Verification: each thread reads its own policy back, and the main thread
 * each VMA's (MPOL_F_ADDR), mode, flags and nodes; every page of the VMAs
 * holds what was written.
 */
#include "workload.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define MPOL_DEFAULT_ 0
#define MPOL_PREFERRED_ 1
#define MPOL_BIND_ 2
#define MPOL_INTERLEAVE_ 3
#define MPOL_LOCAL_ 4
#define MPOL_F_STATIC_NODES_ (1 << 15)
#define MPOL_F_RELATIVE_NODES_ (1 << 14)
#define MPOL_F_ADDR_ (1 << 1)
#define MPOL_F_MEMS_ALLOWED_ (1 << 2)
#define MAXNODE 1024
#define PAGE 4096

struct policy {
	int mode;
	unsigned long nodes[MAXNODE / 64];
};

static unsigned long node_mask;
static volatile int ready_count, done;
static struct policy seen[3];
static char *area;

static struct policy get_policy(void *addr)
{
	struct policy p = { -1, { 0 } };
	if (syscall(SYS_get_mempolicy, &p.mode, p.nodes, MAXNODE, addr, addr ? MPOL_F_ADDR_ : 0) != 0)
		p.mode = -errno;
	return p;
}

static void set_policy(int mode, const char *what)
{
	const unsigned long *nodes = mode == MPOL_LOCAL_ ? NULL : &node_mask;
	if (syscall(SYS_set_mempolicy, mode, nodes, nodes ? 64 + 1 : 0) != 0)
		wl_die("set_mempolicy %s: %s", what, strerror(errno));
}

static void *worker(void *arg)
{
	const long i = (long)arg;
	set_policy(i == 1 ? MPOL_INTERLEAVE_ | MPOL_F_STATIC_NODES_ : MPOL_LOCAL_, "of a thread");
	__atomic_add_fetch(&ready_count, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
		wl_sleep_ms(5);
	seen[i] = get_policy(NULL);
	return NULL;
}

static void expect(const char *what, struct policy p, int mode, bool with_nodes)
{
	WL_CHECK(p.mode == mode, "%s: mode %#x, expected %#x", what, (unsigned)p.mode, (unsigned)mode);
	if (with_nodes)
		WL_CHECK(p.nodes[0] == node_mask, "%s: nodes %#lx, expected %#lx", what, p.nodes[0], node_mask);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "numa");
	struct policy allowed = { 0, { 0 } };
	if (syscall(SYS_get_mempolicy, NULL, allowed.nodes, MAXNODE, NULL, MPOL_F_MEMS_ALLOWED_) != 0)
		wl_die("get_mempolicy MPOL_F_MEMS_ALLOWED: %s", strerror(errno));
	for (int n = 0; n < 64 && !node_mask; n++)
		if (allowed.nodes[0] >> n & 1)
			node_mask = 1UL << n;
	if (!node_mask)
		wl_die("no node below 64 is allowed");

	area = mmap(NULL, 9 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		wl_die("mmap: %s", strerror(errno));
	if (syscall(SYS_mbind, area, 4 * PAGE, MPOL_BIND_, &node_mask, 64 + 1, 0) != 0 ||
	    syscall(SYS_mbind, area + 7 * PAGE, 2 * PAGE, MPOL_PREFERRED_ | MPOL_F_RELATIVE_NODES_, &node_mask, 64 + 1,
		    0) != 0)
		wl_die("mbind: %s", strerror(errno));
	for (int i = 0; i < 9; i++)
		memset(area + i * PAGE, 'a' + i, PAGE);
	set_policy(MPOL_BIND_, "of the main thread");

	pthread_t th[2];
	for (long i = 1; i <= 2; i++)
		if (pthread_create(&th[i - 1], NULL, worker, (void *)i) != 0)
			wl_die("pthread_create failed");
	while (__atomic_load_n(&ready_count, __ATOMIC_ACQUIRE) < 2)
		wl_sleep_ms(1);

	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(5);

	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	seen[0] = get_policy(NULL);
	expect("main thread", seen[0], MPOL_BIND_, true);
	expect("second thread", seen[1], MPOL_INTERLEAVE_ | MPOL_F_STATIC_NODES_, true);
	expect("third thread", seen[2], MPOL_LOCAL_, false);
	expect("VMA bound", get_policy(area), MPOL_BIND_, true);
	expect("VMA bound, last page", get_policy(area + 3 * PAGE), MPOL_BIND_, true);
	expect("VMA plain", get_policy(area + 5 * PAGE), MPOL_DEFAULT_, false);
	expect("VMA pref", get_policy(area + 7 * PAGE), MPOL_PREFERRED_ | MPOL_F_RELATIVE_NODES_, true);
	for (int i = 0; i < 9; i++) {
		bool same = true;
		for (int b = 0; b < PAGE; b++)
			same &= area[i * PAGE + b] == 'a' + i;
		WL_CHECK(same, "page %d of the VMAs lost its contents", i);
	}
	wl_finish();
}
