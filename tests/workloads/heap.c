/* heap: a large malloc'ed buffer (arg 1: MiB, default 256) filled with a
 * pattern derived from each 8-byte word's index. The checksum computed at
 * setup is recomputed at SIGTERM; a few words are also checked directly and
 * the first wrong word is located and reported. */
#include "workload.h"

static uint64_t pattern(uint64_t i)
{
	return wl_mix64(i ^ 0x5a5a5a5a00000000ULL);
}

/* Order-dependent 64-bit checksum (FNV-1a style over words). */
static uint64_t checksum(const uint64_t *w, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= w[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

static uint64_t *buf;
static size_t nwords;
static uint64_t expected_sum;
static uint64_t iterations;

int main(int argc, char **argv)
{
	wl_init(argc, argv, "heap");
	size_t mib = 256;
	if (argc > 2) {
		mib = strtoull(argv[2], NULL, 0);
		if (mib == 0)
			wl_die("bad size '%s'", argv[2]);
	}
	size_t bytes = mib << 20;
	nwords = bytes / sizeof(uint64_t);
	buf = malloc(bytes);
	if (!buf)
		wl_die("malloc(%zu MiB) failed", mib);
	for (size_t i = 0; i < nwords; i++)
		buf[i] = pattern(i);
	expected_sum = checksum(buf, nwords);
	uint64_t *const buf_at_setup = buf;

	wl_ready();

	while (!wl_stop) {
		iterations++;
		wl_sleep_ms(10);
	}

	WL_CHECK(buf == buf_at_setup, "buffer pointer changed: %p -> %p", (void *)buf_at_setup,
		 (void *)buf);
	/* Direct spot checks: first, last, middle, page boundaries, some others. */
	size_t spots[] = { 0, 1, 511, 512, nwords / 3, nwords / 2, nwords / 2 + 1,
			   nwords - 513, nwords - 2, nwords - 1 };
	for (size_t k = 0; k < sizeof(spots) / sizeof(spots[0]); k++) {
		size_t i = spots[k];
		WL_CHECK(buf[i] == pattern(i), "word %zu: expected %#llx, got %#llx", i,
			 (unsigned long long)pattern(i), (unsigned long long)buf[i]);
	}
	uint64_t sum = checksum(buf, nwords);
	if (sum != expected_sum) {
		wl_fail("checksum over %zu MiB: expected %#llx, got %#llx", mib,
			(unsigned long long)expected_sum, (unsigned long long)sum);
		size_t bad = 0;
		for (size_t i = 0; i < nwords; i++) {
			if (buf[i] != pattern(i)) {
				if (bad++ == 0)
					wl_fail("first bad word %zu (byte offset %#zx, page %zu): expected %#llx, got %#llx",
						i, i * 8, i * 8 / 4096, (unsigned long long)pattern(i),
						(unsigned long long)buf[i]);
			}
		}
		wl_fail("%zu bad words of %zu", bad, nwords);
	}
	WL_CHECK(iterations > 0, "loop never ran");
	wl_finish();
}
