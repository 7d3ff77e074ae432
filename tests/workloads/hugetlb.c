/* hugetlb: hugetlb memory (2 MiB pages) and its content: private and shared
 * anonymous MAP_HUGETLB memory, and a memfd of huge pages (MFD_HUGETLB)
 * mapped shared and held as an fd. The machine needs 6 free 2 MiB huge
 * pages (the e2e test raises /proc/sys/vm/nr_hugepages and puts it back).
 *
 * Setup: a 3-page MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB
 * mapping; huge page 0 filled with a pattern (every 8-byte word its index
 * mixed), huge page 1 left untouched, huge page 2 written in its last 4 KiB
 * only. A 2-page MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB mapping with its
 * first page filled with another pattern and its second untouched. A
 * 1-page MFD_HUGETLB memfd mapped shared, its first 64 KiB written. Their
 * KernelPageSize in /proc/self/smaps is recorded.
 * Verification: the patterns are intact, untouched pages read zero;
 * KernelPageSize still 2048 kB everywhere; the private mapping still
 * refuses a 4 KiB-aligned munmap inside a huge page (EINVAL), as hugetlb
 * memory does; the memfd fd is still on hugetlbfs and reads what the
 * mapping holds; and both shared mappings are still shared: a child forked
 * after restore writes into them and the parent sees it.
 */
#include "workload.h"

#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <linux/magic.h>

#define HUGE (2UL << 20)
#define NHUGE 3
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 4U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif
#define MEMFD_WRITTEN (64 << 10)

static uint64_t *mem, *shared, *memfd_map;
static int memfd;
static uint64_t loops;

static long kernel_page_size_kb(void *addr)
{
	static char buf[1 << 20];
	ssize_t n = wl_read_file("/proc/self/smaps", buf, sizeof buf - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char head[32];
	snprintf(head, sizeof head, "%lx-", (unsigned long)addr);
	char *at = strstr(buf, head);
	if (!at || (at != buf && at[-1] != '\n'))
		return -1;
	char *k = strstr(at, "KernelPageSize:");
	return k ? strtol(k + 15, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "hugetlb");
	mem = mmap(NULL, NHUGE * HUGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (mem == MAP_FAILED)
		wl_die("mmap of %d 2 MiB huge pages: %s (see /proc/sys/vm/nr_hugepages)", NHUGE,
		       strerror(errno));
	const size_t words = HUGE / 8;
	for (size_t i = 0; i < words; i++)
		mem[i] = wl_mix64(i);
	uint64_t *last = mem + (3 * HUGE - 4096) / 8;
	for (size_t i = 0; i < 4096 / 8; i++)
		last[i] = ~wl_mix64(i);
	shared = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (shared == MAP_FAILED)
		wl_die("mmap of 2 shared 2 MiB huge pages: %s", strerror(errno));
	for (size_t i = 0; i < words; i++)
		shared[i] = wl_mix64(i) ^ 0x5a5a;
	memfd = memfd_create("huge", MFD_HUGETLB | MFD_HUGE_2MB);
	if (memfd < 0 || ftruncate(memfd, HUGE) < 0)
		wl_die("memfd of huge pages: %s", strerror(errno));
	memfd_map = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (memfd_map == MAP_FAILED)
		wl_die("mmap of the memfd: %s", strerror(errno));
	for (size_t i = 0; i < MEMFD_WRITTEN / 8; i++)
		memfd_map[i] = ~wl_mix64(i) ^ 0xa5;
	void *regions[] = {mem, shared, memfd_map};
	for (int i = 0; i < 3; i++) {
		long kb = kernel_page_size_kb(regions[i]);
		if (kb != 2048)
			wl_die("KernelPageSize of mapping %d: %ld kB, not 2048", i, kb);
	}

	wl_ready();
	while (!wl_stop) {
		loops++;
		wl_sleep_ms(5);
	}

	size_t bad = 0, first = 0;
	for (size_t i = 0; i < words; i++)
		if (mem[i] != wl_mix64(i) && bad++ == 0)
			first = i;
	WL_CHECK(bad == 0, "huge page 0: %zu words differ, first at word %zu", bad, first);
	bad = 0;
	for (size_t i = words; i < 3 * words - 4096 / 8; i++)
		if (mem[i] != 0 && bad++ == 0)
			first = i;
	WL_CHECK(bad == 0, "huge pages 1-2: %zu words not zero, first at word %zu", bad, first);
	bad = 0;
	for (size_t i = 0; i < 4096 / 8; i++)
		if (last[i] != ~wl_mix64(i))
			bad++;
	WL_CHECK(bad == 0, "last 4 KiB: %zu words differ", bad);
	for (int i = 0; i < 3; i++) {
		long kb = kernel_page_size_kb(regions[i]);
		WL_CHECK(kb == 2048, "KernelPageSize of mapping %d: expected 2048 kB, got %ld", i, kb);
	}

	bad = 0;
	for (size_t i = 0; i < words; i++)
		if (shared[i] != (wl_mix64(i) ^ 0x5a5a) && bad++ == 0)
			first = i;
	WL_CHECK(bad == 0, "shared huge page 0: %zu words differ, first at word %zu", bad, first);
	bad = 0;
	for (size_t i = words; i < 2 * words; i++)
		if (shared[i] != 0)
			bad++;
	WL_CHECK(bad == 0, "shared huge page 1: %zu words not zero", bad);
	bad = 0;
	for (size_t i = 0; i < words; i++)
		if (memfd_map[i] != (i < MEMFD_WRITTEN / 8 ? ~wl_mix64(i) ^ 0xa5 : 0))
			bad++;
	WL_CHECK(bad == 0, "memfd huge page: %zu words differ", bad);
	struct statfs fs;
	WL_CHECK(fstatfs(memfd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC, "the memfd is not on hugetlbfs any more");
	static uint64_t through_fd[MEMFD_WRITTEN / 8];
	WL_CHECK(pread(memfd, through_fd, sizeof through_fd, 0) == sizeof through_fd &&
			 memcmp(through_fd, memfd_map, sizeof through_fd) == 0,
		 "the memfd's fd does not read what its mapping holds");
	/* Still shared: what a child writes, the parent sees. */
	pid_t child = fork();
	if (child == 0) {
		shared[words] = 0xfeedface;
		memfd_map[words - 1] = 0xcafef00d;
		_exit(0);
	}
	int status;
	WL_CHECK(child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status), "writer child");
	WL_CHECK(shared[words] == 0xfeedface, "shared anonymous huge pages are no longer shared");
	WL_CHECK(memfd_map[words - 1] == 0xcafef00d, "the memfd's mapping is no longer shared");
	errno = 0;
	int r = munmap((char *)mem + 4096, 4096);
	WL_CHECK(r != 0 && errno == EINVAL, "munmap of 4 KiB inside a huge page: expected EINVAL, got %s",
		 r == 0 ? "success" : strerror(errno));
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
