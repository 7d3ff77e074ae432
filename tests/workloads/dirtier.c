/* dirtier: a buffer (arg 1: MiB, default 256) whose pages it keeps
 * rewriting, for iterative dumps (pre-dump rounds, then dump
 * --prev-images-dir --track-mem) while it runs. Every page holds a pattern
 * of its index and its generation, the count of times it was rewritten,
 * kept in a table of its own memory; the pages rewritten are chosen at
 * random, a bounded number a millisecond (arg 2: pages a millisecond,
 * default 16, i.e. about 64 MiB/s). One rewrite in eight goes through the
 * kernel: pwrite of the page to an aux file and pread back into place, so
 * that the kernel writes a write-protected page for the task (copy_to_user).
 * At SIGTERM every word of every page is checked against its generation;
 * the first wrong page, and the count, are reported. */
#include "workload.h"

#include <sys/mman.h>

enum { kPage = 4096, kWords = kPage / 8 };

static uint64_t *buf;
static uint32_t *gen;
static size_t npages;
static uint64_t rewrites, kernel_rewrites;
static int aux = -1;

static uint64_t pattern(size_t page, uint32_t g, size_t word)
{
	return wl_mix64(((uint64_t)page << 32 | g) * 0x100000001b3ULL + word);
}

static void fill(uint64_t *w, size_t page, uint32_t g)
{
	for (size_t i = 0; i < kWords; i++)
		w[i] = pattern(page, g, i);
}

/* The page's next generation, written in place or by the kernel. */
static void rewrite(size_t page, int by_kernel)
{
	uint64_t *p = buf + page * kWords;
	uint32_t g = gen[page] + 1;
	if (by_kernel) {
		static uint64_t tmp[kWords];
		fill(tmp, page, g);
		if (pwrite(aux, tmp, kPage, 0) != kPage || pread(aux, p, kPage, 0) != kPage)
			wl_die("rewrite page %zu through %s: %s", page, "the aux file", strerror(errno));
		kernel_rewrites++;
	} else {
		fill(p, page, g);
	}
	gen[page] = g; /* after the page: a freeze between the two finishes both */
	rewrites++;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "dirtier");
	size_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 256;
	long per_ms = argc > 3 ? strtol(argv[3], NULL, 0) : 16;
	if (mib == 0 || per_ms < 0)
		wl_die("usage: dirtier READY [MiB] [pages a ms]");
	npages = (mib << 20) / kPage;
	buf = mmap(NULL, npages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = mmap(NULL, npages * sizeof(*gen), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || gen == MAP_FAILED)
		wl_die("mmap %zu MiB: %s", mib, strerror(errno));
	char path[PATH_MAX];
	wl_aux_path(path, sizeof(path), "page");
	aux = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (aux < 0)
		wl_die("open %s: %s", path, strerror(errno));
	for (size_t p = 0; p < npages; p++) {
		gen[p] = 1;
		fill(buf + p * kWords, p, 1);
	}

	wl_ready();

	uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	while (!wl_stop) {
		for (long k = 0; k < per_ms && !wl_stop; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			rewrite(x % npages, (x >> 40) % 8 == 0);
		}
		wl_sleep_ms(1);
	}

	size_t bad = 0, first = 0;
	for (size_t p = 0; p < npages; p++) {
		const uint64_t *w = buf + p * kWords;
		for (size_t i = 0; i < kWords; i++) {
			if (w[i] != pattern(p, gen[p], i)) {
				if (bad++ == 0)
					first = p;
				break;
			}
		}
	}
	if (bad) {
		const uint64_t *w = buf + first * kWords;
		size_t i = 0;
		while (w[i] == pattern(first, gen[first], i))
			i++;
		wl_fail("%zu of %zu pages wrong; first: page %zu (generation %u), word %zu: expected %#llx, got %#llx",
			bad, npages, first, gen[first], i, (unsigned long long)pattern(first, gen[first], i),
			(unsigned long long)w[i]);
	}
	WL_CHECK(rewrites > 0, "never rewrote a page");
	char line[160];
	snprintf(line, sizeof(line), "dirtier: %llu rewrites (%llu by the kernel) of %zu pages\n",
		 (unsigned long long)rewrites, (unsigned long long)kernel_rewrites, npages);
	wl_write_all(1, line, strlen(line));
	wl_finish();
}
