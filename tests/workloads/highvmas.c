/* highvmas: N one-page VMAs (arg 1, default 3000) above the libraries, in
 * the gap below the stack, so that in a dump the pages of the main thread's
 * TCB (glibc's rseq area) are followed by many more pieces of memory: the
 * parasite goes on returning to user space, where the kernel writes the rseq
 * area, while that page waits in the pipe (tests/e2e/rseq_area_test.cc).
 * Each page holds a pattern of its index; at SIGTERM every word is checked. */
#include "workload.h"

#include <sys/mman.h>

enum { kPage = 4096, kWords = kPage / 8 };

static uint64_t pattern(size_t page, size_t word)
{
	return wl_mix64((uint64_t)page << 32 | word);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "highvmas");
	const long want = argc > 2 ? strtol(argv[2], NULL, 0) : 3000;
	if (want <= 0 || want > 100000)
		wl_die("usage: highvmas READY [N]");
	static uint64_t *pages[100000];
	int local;
	/* 256 MiB below the stack, every other page: one VMA each. */
	const uintptr_t top = ((uintptr_t)&local & ~(uintptr_t)(kPage - 1)) - (256UL << 20);
	long made = 0;
	for (long i = 0; i < want; i++) {
		void *p = mmap((void *)(top - (uintptr_t)i * 2 * kPage), kPage, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			wl_die("map page %ld below the stack: %s", i, strerror(errno));
		pages[made] = p;
		for (size_t w = 0; w < kWords; w++)
			pages[made][w] = pattern((size_t)made, w);
		made++;
	}

	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(10);

	long bad = 0;
	for (long i = 0; i < made; i++)
		for (size_t w = 0; w < kWords; w++)
			if (pages[i][w] != pattern((size_t)i, w)) {
				if (bad++ == 0)
					wl_fail("page %ld word %zu: expected %#llx, got %#llx", i, w,
						(unsigned long long)pattern((size_t)i, w),
						(unsigned long long)pages[i][w]);
				break;
			}
	WL_CHECK(bad == 0, "%ld of %ld pages wrong", bad, made);
	wl_finish();
}
