/* bench_sparse READY GiB [STRIDE]: one private anonymous mapping of GiB GiB
 * (MAP_NORESERVE, MADV_NOHUGEPAGE: a huge page per touched 2 MiB would make
 * it all present), one page in every STRIDE (default 512) written with its
 * index: 2 MiB of address space per present page. Ready protocol of tiny.c;
 * on SIGTERM checks every written page and exits 0 if intact, 3 if not. */
#include "ready.h"

#include <stdint.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	syscall(SYS_close_range, 3, ~0U, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: %s <ready-file> GiB [stride]\n", argv[0]);
		return 2;
	}
	const uint64_t page = 4096, size = (uint64_t)atol(argv[2]) << 30;
	const uint64_t stride = argc > 3 ? (uint64_t)atol(argv[3]) : 512;
	char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED || madvise(m, size, MADV_NOHUGEPAGE) != 0) {
		perror("mmap");
		return 1;
	}
	for (uint64_t i = 0; i < size / page; i += stride)
		*(uint64_t *)(m + i * page) = 0xa5a5000000000000ull | i;
	if (ready(argv[1]) != 0)
		return 1;
	sleep_until_stop();
	for (uint64_t i = 0; i < size / page; i += stride)
		if (*(uint64_t *)(m + i * page) != (0xa5a5000000000000ull | i))
			return 3;
	return 0;
}
