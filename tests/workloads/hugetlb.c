/* hugetlb: hugetlb memory (2 MiB pages) and its content: private and shared
 * anonymous MAP_HUGETLB memory, a memfd of huge pages (MFD_HUGETLB)
 * mapped shared and held as an fd, one mapped private, and one held only as
 * an fd. The machine needs 11 free 2 MiB huge pages (the e2e test raises
 * /proc/sys/vm/nr_hugepages and puts it back).
 *
 * Setup: a 3-page MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB
 * mapping; huge page 0 filled with a pattern (every 8-byte word its index
 * mixed), huge page 1 left untouched, huge page 2 written in its last 4 KiB
 * only. A 2-page MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB mapping with its
 * first page filled with another pattern and its second untouched. A
 * 1-page MFD_HUGETLB memfd mapped shared, its first 64 KiB written. Their
 * KernelPageSize in /proc/self/smaps is recorded. A 2-page MFD_HUGETLB
 * memfd "hugepriv", each page filled with its pattern through a shared
 * mapping since unmapped, then mapped MAP_PRIVATE (the private mapping
 * reserves 2 pages of its own) and its page 0 written there: page 0 is the
 * task's private copy, page 1 still the memfd's page. A 1-page MFD_HUGETLB
 * memfd "hugefd" filled the same way and held only as an fd.
 * Verification: the patterns are intact, untouched pages read zero;
 * KernelPageSize still 2048 kB everywhere; the private mapping still
 * refuses a 4 KiB-aligned munmap inside a huge page (EINVAL), as hugetlb
 * memory does; the memfd fd is still on hugetlbfs and reads what the
 * mapping holds; and both shared mappings are still shared: a child forked
 * after restore writes into them and the parent sees it. The private
 * mapping of "hugepriv" reads its own page 0 and the memfd's page 1, with
 * 2048 kB pages; the memfd still holds its own page 0; and the mapping is
 * still a private mapping of that memfd: a write through a new shared
 * mapping of the fd shows in its page 1, not in its page 0. "hugefd" is
 * still a memfd of 2 MiB huge pages of that name, size and content.
 */
#include "workload.h"

#include <sys/mman.h>
#include <sys/stat.h>
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

static uint64_t *mem, *shared, *memfd_map, *priv_map;
static int memfd, priv_fd, fd_only;
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

static uint64_t pattern(int which, size_t i) { return wl_mix64(i) ^ ((uint64_t)which << 56); }

/* A memfd of `pages` 2 MiB huge pages named `name`, huge page p filled
 * with pattern(p + base) through a shared mapping unmapped after. */
static int filled_memfd(const char *name, size_t pages, int base)
{
	int fd = memfd_create(name, MFD_HUGETLB | MFD_HUGE_2MB);
	if (fd < 0 || ftruncate(fd, (off_t)(pages * HUGE)) < 0)
		wl_die("memfd %s of huge pages: %s", name, strerror(errno));
	uint64_t *m = mmap(NULL, pages * HUGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		wl_die("shared mmap of memfd %s: %s", name, strerror(errno));
	for (size_t p = 0; p < pages; p++)
		for (size_t i = 0; i < HUGE / 8; i++)
			m[p * HUGE / 8 + i] = pattern(base + (int)p, i);
	munmap(m, pages * HUGE);
	return fd;
}

/* Words of huge page `page` of `m` that are not pattern(which). */
static size_t differ(const uint64_t *m, size_t page, int which)
{
	size_t bad = 0;
	for (size_t i = 0; i < HUGE / 8; i++)
		if (m[page * HUGE / 8 + i] != pattern(which, i))
			bad++;
	return bad;
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
	priv_fd = filled_memfd("hugepriv", 2, 1);
	priv_map = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, priv_fd, 0);
	if (priv_map == MAP_FAILED)
		wl_die("private mmap of memfd hugepriv: %s", strerror(errno));
	for (size_t i = 0; i < words; i++)
		priv_map[i] = pattern(3, i);
	if (differ(priv_map, 1, 2) != 0)
		wl_die("page 1 of the private mapping does not read the memfd's");
	fd_only = filled_memfd("hugefd", 1, 4);
	void *regions[] = {mem, shared, memfd_map, priv_map};
	for (int i = 0; i < 4; i++) {
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
	for (int i = 0; i < 4; i++) {
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

	/* The private mapping of hugepriv: its own page 0, the memfd's page 1. */
	WL_CHECK(differ(priv_map, 0, 3) == 0, "private memfd mapping, page 0: %zu words differ from the task's copy",
		 differ(priv_map, 0, 3));
	WL_CHECK(differ(priv_map, 1, 2) == 0, "private memfd mapping, page 1: %zu words differ from the memfd's",
		 differ(priv_map, 1, 2));
	WL_CHECK(fstatfs(priv_fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC, "hugepriv is not on hugetlbfs any more");
	uint64_t *priv_shared = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_SHARED, priv_fd, 0);
	WL_CHECK(priv_shared != MAP_FAILED, "shared mmap of hugepriv after restore: %s", strerror(errno));
	if (priv_shared != MAP_FAILED) {
		WL_CHECK(differ(priv_shared, 0, 1) == 0, "memfd hugepriv, page 0: %zu words differ",
			 differ(priv_shared, 0, 1));
		WL_CHECK(differ(priv_shared, 1, 2) == 0, "memfd hugepriv, page 1: %zu words differ",
			 differ(priv_shared, 1, 2));
		/* Still a private mapping of this memfd: a write to the
		 * memfd shows where the task has no copy of its own. */
		priv_shared[0] = priv_shared[words] = 0x1234;
		WL_CHECK(priv_map[words] == 0x1234, "page 1 of the private mapping is not the memfd's page");
		WL_CHECK(priv_map[0] == pattern(3, 0), "page 0 of the private mapping is not the task's own copy");
		munmap(priv_shared, 2 * HUGE);
	}

	/* hugefd, held only as an fd. */
	struct stat st;
	char link[64], name[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd_only);
	ssize_t len = readlink(link, name, sizeof name - 1);
	name[len > 0 ? len : 0] = '\0';
	WL_CHECK(strcmp(name, "/memfd:hugefd (deleted)") == 0, "fd %d is %s, not memfd hugefd", fd_only, name);
	WL_CHECK(fstatfs(fd_only, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC, "hugefd is not on hugetlbfs any more");
	WL_CHECK(fstat(fd_only, &st) == 0 && st.st_size == (off_t)HUGE && st.st_blksize == (blksize_t)HUGE,
		 "hugefd: size %lld, page size %ld, not one 2 MiB page", (long long)st.st_size, (long)st.st_blksize);
	uint64_t *fd_map = mmap(NULL, HUGE, PROT_READ, MAP_SHARED, fd_only, 0);
	WL_CHECK(fd_map != MAP_FAILED, "mmap of hugefd after restore: %s", strerror(errno));
	if (fd_map != MAP_FAILED) {
		WL_CHECK(differ(fd_map, 0, 4) == 0, "hugefd: %zu words differ", differ(fd_map, 0, 4));
		munmap(fd_map, HUGE);
	}

	errno = 0;
	int r = munmap((char *)mem + 4096, 4096);
	WL_CHECK(r != 0 && errno == EINVAL, "munmap of 4 KiB inside a huge page: expected EINVAL, got %s",
		 r == 0 ? "success" : strerror(errno));
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
