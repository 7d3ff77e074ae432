/* bench_dirty <ready-file> [MiB] [MiB/s]: a buffer (default 1 GiB), every
 * page present, rewritten at a fixed rate (default 32 MiB/s) in random
 * 4 KiB pages, paced by the clock (it catches up after a freeze, as a
 * service with a backlog would). Each page holds a pattern of its index and
 * its generation (a table in its own memory). On SIGTERM it checks every
 * page and exits 0 if all are right, 3 if not, so a restore is verified. */
#include "ready.h"

#include <stdint.h>
#include <sys/mman.h>

enum { kPage = 4096, kWords = kPage / 8 };

static uint64_t pattern(size_t page, uint32_t g, size_t w)
{
	uint64_t x = ((uint64_t)page << 32 | g) * 0x9e3779b97f4a7c15ULL + w;
	x ^= x >> 31;
	return x * 0xbf58476d1ce4e5b9ULL | 1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: %s <ready-file> [MiB] [MiB/s]\n", argv[0]);
		return 2;
	}
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 1024;
	double rate = argc > 3 ? strtod(argv[3], NULL) : 32;
	size_t npages = (mib << 20) / kPage;
	uint64_t *buf = mmap(NULL, npages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *gen = mmap(NULL, npages * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || gen == MAP_FAILED)
		return 2;
	for (size_t p = 0; p < npages; p++) {
		gen[p] = 1;
		for (size_t w = 0; w < kWords; w++)
			buf[p * kWords + w] = pattern(p, 1, w);
	}
	if (ready(argv[1]) != 0)
		return 2;
	const double per_s = rate * (1 << 20) / kPage;
	const double start = now();
	uint64_t done = 0, x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	while (!stop) {
		uint64_t due = (uint64_t)((now() - start) * per_s);
		for (; done < due && !stop; done++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t p = x % npages;
			uint32_t g = gen[p] + 1;
			for (size_t w = 0; w < kWords; w++)
				buf[p * kWords + w] = pattern(p, g, w);
			gen[p] = g;
		}
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	for (size_t p = 0; p < npages; p++)
		for (size_t w = 0; w < kWords; w++)
			if (buf[p * kWords + w] != pattern(p, gen[p], w)) {
				fprintf(stderr, "bench_dirty: page %zu word %zu wrong\n", p, w);
				return 3;
			}
	return 0;
}
