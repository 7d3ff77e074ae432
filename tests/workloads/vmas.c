/* vmas: many VMAs with mixed protections, plus a private file mapping.
 *
 * A PROT_NONE reservation is carved into 60 slots of 8 pages. In each slot
 * one anonymous region of 1-4 pages is mapped MAP_FIXED at page 2, filled
 * with a per-region pattern and then mprotect'ed to PROT_READ, PROT_READ|
 * PROT_WRITE, PROT_NONE or PROT_READ|PROT_EXEC (exec regions start with a
 * tiny "mov $imm, %eax; ret" function). Some regions get an untouched
 * PROT_NONE guard page directly below them. The rest of each slot is
 * unmapped, so regions never merge. A 16 KiB file next to the ready file is
 * mapped MAP_PRIVATE, pages 1 and 3 are modified in memory only, and its fd
 * is closed.
 *
 * /proc/self/maps is captured at ready time and must be byte-identical at
 * SIGTERM (read with open/read into static buffers: no malloc, no stdio, so
 * verification itself does not change the address space). Only after that
 * are the contents checked (PROT_NONE regions made readable first), the exec
 * functions called, and the file on disk compared with its original content.
 */
#include "workload.h"

#include <sys/mman.h>

#define NREGIONS 60
#define SLOT_PAGES 8
#define FILE_SIZE 16384

struct region {
	uint8_t *addr;
	size_t pages;
	int prot;
	int guard; /* PROT_NONE page directly below */
};

static struct region regions[NREGIONS];
static size_t page;
static char maps_before[65536], maps_after[65536];
static ssize_t maps_before_len;
static uint8_t file_disk[FILE_SIZE];
static uint8_t *fmap;
static char file_path[PATH_MAX + 16];
static uint64_t loops;

static const int prots[4] = { PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE,
			      PROT_READ | PROT_EXEC };

/* Word w of region i. Exec regions start with "mov $(0x1000+i), %eax; ret". */
static uint64_t region_word(int i, size_t w)
{
	if (w == 0 && regions[i].prot == (PROT_READ | PROT_EXEC))
		return 0xb8ULL | (uint64_t)(0x1000 + i) << 8 | 0xc3ULL << 40;
	return wl_mix64(((uint64_t)i << 32) | w);
}

/* Original file content and the in-memory modifications. */
static uint8_t file_byte(size_t k)
{
	return (uint8_t)(wl_mix64(0xf11e0000ULL + k / 8) >> (8 * (k % 8)));
}
static uint8_t mapped_byte(size_t k)
{
	size_t pg = k / 4096, in = k % 4096;
	if (pg == 1)
		return (uint8_t)(0xA5 ^ in);
	if (pg == 3 && in >= 100 && in < 200)
		return 'M';
	return file_byte(k);
}

static void setup_regions(void)
{
	size_t slot = SLOT_PAGES * page;
	uint8_t *base = mmap(NULL, NREGIONS * slot, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		wl_die("reservation mmap: %s", strerror(errno));
	for (int i = 0; i < NREGIONS; i++) {
		struct region *r = &regions[i];
		uint8_t *s = base + i * slot;
		r->addr = s + 2 * page;
		r->pages = 1 + (size_t)(i + i / 4) % 4;
		r->prot = prots[i % 4];
		r->guard = (i % 5 == 0) && r->prot != PROT_NONE; /* would merge */
		if (mmap(r->addr, r->pages * page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			wl_die("mmap region %d: %s", i, strerror(errno));
		uint64_t *w = (uint64_t *)r->addr;
		for (size_t j = 0; j < r->pages * page / 8; j++)
			w[j] = region_word(i, j);
		if (mprotect(r->addr, r->pages * page, r->prot) != 0)
			wl_die("mprotect region %d: %s", i, strerror(errno));
		/* Holes: everything in the slot but the region and its guard. */
		uint8_t *keep_from = r->guard ? s + page : r->addr;
		if (munmap(s, (size_t)(keep_from - s)) != 0)
			wl_die("munmap: %s", strerror(errno));
		uint8_t *end = r->addr + r->pages * page;
		if (munmap(end, (size_t)(s + slot - end)) != 0)
			wl_die("munmap: %s", strerror(errno));
		if (r->guard && mmap(s + page, page, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			wl_die("mmap guard %d: %s", i, strerror(errno));
	}
}

static void setup_file(void)
{
	wl_aux_path(file_path, sizeof(file_path), "vmas.dat");
	int fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("open %s: %s", file_path, strerror(errno));
	static uint8_t content[FILE_SIZE];
	for (size_t k = 0; k < FILE_SIZE; k++)
		content[k] = file_byte(k);
	wl_write_all(fd, (char *)content, FILE_SIZE);
	if (fsync(fd) != 0)
		wl_die("fsync: %s", strerror(errno));
	fmap = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (fmap == MAP_FAILED)
		wl_die("mmap %s: %s", file_path, strerror(errno));
	close(fd);
	for (size_t k = 0; k < FILE_SIZE; k++)
		if (mapped_byte(k) != file_byte(k))
			fmap[k] = mapped_byte(k);
}

/* The line of buf[0..len) containing offset off (clamped to 200 chars). */
static void line_at(const char *buf, size_t len, size_t off, const char **start, int *n)
{
	size_t ls = off;
	if (ls > len)
		ls = len;
	while (ls > 0 && buf[ls - 1] != '\n')
		ls--;
	size_t le = ls;
	while (le < len && buf[le] != '\n')
		le++;
	*start = buf + ls;
	*n = (int)(le - ls > 200 ? 200 : le - ls);
}

/* Report the first differing line of the two maps texts. */
static void report_maps_diff(size_t after_len)
{
	size_t before_len = (size_t)maps_before_len, i = 0, line = 1;
	while (i < before_len && i < after_len && maps_before[i] == maps_after[i])
		if (maps_before[i++] == '\n')
			line++;
	const char *a, *b;
	int na, nb;
	line_at(maps_before, before_len, i, &a, &na);
	line_at(maps_after, after_len, i, &b, &nb);
	wl_fail("/proc/self/maps differs (%zu vs %zu bytes) from line %zu: before '%.*s', after '%.*s'",
		before_len, after_len, line, na, a, nb, b);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "vmas");
	page = (size_t)sysconf(_SC_PAGESIZE);
	if (page != 4096)
		wl_die("page size %zu not supported", page);
	setup_regions();
	setup_file();

	maps_before_len = wl_read_file("/proc/self/maps", maps_before, sizeof(maps_before));
	if (maps_before_len <= 0)
		wl_die("cannot read /proc/self/maps");
	wl_ready();

	while (!wl_stop) {
		loops++;
		wl_sleep_ms(5);
	}

	/* 1. Address space layout, before anything can change it. */
	ssize_t after_len = wl_read_file("/proc/self/maps", maps_after, sizeof(maps_after));
	if (after_len != maps_before_len ||
	    memcmp(maps_before, maps_after, (size_t)after_len) != 0) {
		report_maps_diff(after_len > 0 ? (size_t)after_len : 0);
	}

	/* 2. Region contents. */
	for (int i = 0; i < NREGIONS; i++) {
		struct region *r = &regions[i];
		if (!(r->prot & PROT_READ) && mprotect(r->addr, r->pages * page, PROT_READ) != 0) {
			wl_fail("mprotect region %d: %s", i, strerror(errno));
			continue;
		}
		const uint64_t *w = (const uint64_t *)r->addr;
		for (size_t j = 0; j < r->pages * page / 8; j++) {
			if (w[j] != region_word(i, j)) {
				wl_fail("region %d (%p, prot %d) word %zu: expected %#llx, got %#llx", i,
					(void *)r->addr, r->prot, j,
					(unsigned long long)region_word(i, j),
					(unsigned long long)w[j]);
				break;
			}
		}
		if (r->prot == (PROT_READ | PROT_EXEC)) {
			int (*fn)(void) = (int (*)(void))(void *)r->addr;
			int got = fn();
			WL_CHECK(got == 0x1000 + i, "exec region %d returned %#x, expected %#x", i,
				 got, 0x1000 + i);
		}
	}

	/* 3. Private file mapping: memory modified, disk untouched. */
	for (size_t k = 0; k < FILE_SIZE; k++) {
		if (fmap[k] != mapped_byte(k)) {
			wl_fail("file mapping byte %zu (page %zu): expected %#x, got %#x", k,
				k / 4096, mapped_byte(k), fmap[k]);
			break;
		}
	}
	ssize_t disk_len = wl_read_file(file_path, (char *)file_disk, sizeof(file_disk));
	if (disk_len != FILE_SIZE) {
		wl_fail("%s: size %zd, expected %d", file_path, disk_len, FILE_SIZE);
	} else {
		for (size_t k = 0; k < FILE_SIZE; k++) {
			if (file_disk[k] != file_byte(k)) {
				wl_fail("%s on disk byte %zu: expected %#x, got %#x", file_path, k,
					file_byte(k), file_disk[k]);
				break;
			}
		}
	}
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
