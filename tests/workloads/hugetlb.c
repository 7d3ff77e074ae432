/* hugetlb: private anonymous hugetlb memory (MAP_HUGETLB, 2 MiB pages) and
 * its content. The machine needs 3 free 2 MiB huge pages (the e2e test
 * raises /proc/sys/vm/nr_hugepages and puts it back after).
 *
 * Setup: a 3-page MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB
 * mapping; huge page 0 filled with a pattern (every 8-byte word its index
 * mixed), huge page 1 left untouched, huge page 2 written in its last 4 KiB
 * only. Its KernelPageSize in /proc/self/smaps is recorded.
 * Verification: the pattern is intact, page 1 reads zero, page 2 reads zero
 * but for its last 4 KiB; KernelPageSize still 2048 kB; the mapping still
 * refuses a 4 KiB-aligned munmap inside a huge page (EINVAL), as hugetlb
 * memory does.
 */
#include "workload.h"

#include <sys/mman.h>

#define HUGE (2UL << 20)
#define NHUGE 3
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

static uint64_t *mem;
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
	long kb = kernel_page_size_kb(mem);
	if (kb != 2048)
		wl_die("KernelPageSize of the mapping: %ld kB, not 2048", kb);

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
	kb = kernel_page_size_kb(mem);
	WL_CHECK(kb == 2048, "KernelPageSize: expected 2048 kB, got %ld", kb);
	errno = 0;
	int r = munmap((char *)mem + 4096, 4096);
	WL_CHECK(r != 0 && errno == EINVAL, "munmap of 4 KiB inside a huge page: expected EINVAL, got %s",
		 r == 0 ? "success" : strerror(errno));
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
