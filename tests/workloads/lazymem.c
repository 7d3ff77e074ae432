/* lazymem: memory for restore --lazy-pages (arg 1: MiB, default 64). Every
 * page of a buffer holds a pattern of its index, but every 7th, never
 * touched (absent at dump: must read as zeros). At SIGTERM, while most
 * pages may still wait for the lazy-pages daemon, it first moves one MiB
 * with mremap (its pages must follow it) and drops another with
 * madvise(MADV_DONTNEED) (it must read as zeros, not as dumped), then
 * checks every page. With "fork" (arg 2) it forks a child first, which
 * exits at once (a lazy restore refuses that: the test expects it killed). */
#include "workload.h"

#include <sys/mman.h>

enum { kPage = 4096, kWords = kPage / 8, kMiB = 1 << 20 };

static uint64_t pattern(size_t page, size_t word) { return wl_mix64((uint64_t)page << 20 | word) | 1; }

static bool hole(size_t page) { return page % 7 == 3; }

/* The first wrong word of `npages` pages at `p`, which were pages `first`.. */
static void check(const uint64_t *p, size_t first, size_t npages, bool zeros, const char *what)
{
	for (size_t i = 0; i < npages; i++)
		for (size_t w = 0; w < kWords; w++) {
			const size_t page = first + i;
			uint64_t want = zeros || hole(page) ? 0 : pattern(page, w);
			if (p[i * kWords + w] != want) {
				wl_fail("%s: page %zu word %zu is %#llx, want %#llx", what, page, w,
					(unsigned long long)p[i * kWords + w], (unsigned long long)want);
				return;
			}
		}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "lazymem");
	size_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 64;
	const bool do_fork = argc > 3 && strcmp(argv[3], "fork") == 0;
	if (mib < 4)
		wl_die("usage: lazymem READY [MiB >= 4] [fork]");
	const size_t npages = (mib << 20) / kPage;
	uint64_t *buf = mmap(NULL, npages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Where MiB 1 goes at the end (mapped over). */
	void *dest = mmap(NULL, kMiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || dest == MAP_FAILED)
		wl_die("mmap %zu MiB: %s", mib, strerror(errno));
	for (size_t p = 0; p < npages; p++)
		if (!hole(p))
			for (size_t w = 0; w < kWords; w++)
				buf[p * kWords + w] = pattern(p, w);

	wl_ready();
	wl_run_until_sigterm(0);

	if (do_fork) {
		pid_t child = fork();
		if (child == 0)
			_exit(0);
		if (child < 0 || waitpid(child, NULL, 0) != child)
			wl_fail("fork: %s", strerror(errno));
	}

	/* MiB 1 moves away; MiB 2 is dropped; the rest stays. */
	const size_t per_mib = kMiB / kPage;
	uint64_t *moved = mremap(buf + per_mib * kWords, kMiB, kMiB, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
	if (moved == MAP_FAILED)
		wl_die("mremap: %s", strerror(errno));
	if (madvise(buf + 2 * per_mib * kWords, kMiB, MADV_DONTNEED) != 0)
		wl_die("madvise: %s", strerror(errno));
	check(buf, 0, per_mib, false, "MiB 0");
	check(moved, per_mib, per_mib, false, "the MiB moved by mremap");
	check(buf + 2 * per_mib * kWords, 2 * per_mib, per_mib, true, "the MiB dropped by MADV_DONTNEED");
	check(buf + 3 * per_mib * kWords, 3 * per_mib, npages - 3 * per_mib, false, "the rest");
	wl_finish();
}
