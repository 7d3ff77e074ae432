/* bench_vmas READY N: one private anonymous mapping of N pages, each page
 * written with its index, then every other page made read-only: N VMAs (the
 * kernel can't merge neighbours of different protections), each with one
 * present page. Ready protocol of tiny.c; on SIGTERM checks every page's
 * word and exits 0 if intact, 3 if not. */
#include "ready.h"

#include <stdint.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: %s <ready-file> N\n", argv[0]);
		return 2;
	}
	const long n = atol(argv[2]), page = 4096;
	char *m = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (long i = 0; i < n; i++)
		*(uint64_t *)(m + i * page) = 0x5a5a000000000000ull | (uint64_t)i;
	for (long i = 1; i < n; i += 2)
		if (mprotect(m + i * page, page, PROT_READ) != 0) {
			perror("mprotect");
			return 1;
		}
	if (ready(argv[1]) != 0)
		return 1;
	sleep_until_stop();
	for (long i = 0; i < n; i++)
		if (*(uint64_t *)(m + i * page) != (0x5a5a000000000000ull | (uint64_t)i))
			return 3;
	return 0;
}
