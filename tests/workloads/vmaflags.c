/* vmaflags: VMAs whose flags only smaps' VmFlags show, each right above a
 * plain neighbour it would merge with if its flag were lost.
 *
 * In its own slot of a reservation, each case maps one plain page and its
 * region directly above it, with the neighbour's protection:
 *   lock     mlock                                    lo
 *   onfault  mlock2(MLOCK_ONFAULT), pages 0 and 2 touched only   lo lf
 *   seq      MADV_SEQUENTIAL                          sr
 *   rand     MADV_RANDOM                              rr
 *   merge    MADV_MERGEABLE (if the kernel has KSM)   mg
 *   drop     MAP_DROPPABLE (Linux 6.11)               dp (with nr wf dd)
 *   grows    MAP_GROWSDOWN                            gd
 *   seal     mseal (Linux 6.10)                       sl
 *   account  mapped read-write, written, emptied (MADV_DONTNEED) and
 *            mprotect'ed read-only: ac (its read-only neighbour never was
 *            writable: no ac)
 * Last, mlockall(MCL_FUTURE | MCL_ONFAULT): a mapping made later is locked
 * on fault (lo lf); a probe mapping made at setup shows it.
 *
 * Verification: /proc/self/maps identical; the VmFlags line of every region
 * and neighbour identical; VmLck of /proc/self/status identical; a new
 * mapping's VmFlags as the probe's; the onfault region's untouched pages
 * still not resident (mincore), the others' content intact.
 */
#include "workload.h"

#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif
#define NR_MSEAL 462

#define SLOT_PAGES 16
#define REGION_PAGES 4

enum { LOCK, ONFAULT, SEQ, RAND, MERGE, DROP, GROWS, SEAL, ACCOUNT, NCASES };
static const char *const names[NCASES] = { "lock",  "onfault", "seq",  "rand",   "merge",
					   "drop",  "grows",   "seal", "account" };

struct region {
	uint8_t *plain;  /* one page, just below */
	uint8_t *addr;   /* REGION_PAGES pages */
	int prot;
	int present;     /* set up (the kernel may lack the flag) */
	char flags[128];       /* VmFlags of addr at ready */
	char plain_flags[128]; /* and of plain */
};

static struct region regions[NCASES];
static size_t page;
static char smaps[1 << 20];
static char maps_before[65536], maps_after[65536];
static ssize_t maps_before_len;
static char probe_flags[128];
static char vmlck_before[64];
static uint64_t loops;

static uint64_t word(int i, size_t w)
{
	return wl_mix64(((uint64_t)i << 32) | w);
}

/* The VmFlags line of the VMA starting at addr (without "VmFlags:"), from
 * the smaps text read last; "" if there is none. */
static void vmflags_of(const void *addr, char *out, size_t n)
{
	char head[32];
	int hl = snprintf(head, sizeof(head), "%lx-", (unsigned long)addr);
	out[0] = '\0';
	for (char *p = smaps; p && *p;) {
		if (strncmp(p, head, (size_t)hl) == 0) {
			char *f = strstr(p, "VmFlags:");
			if (!f)
				return;
			f += 8;
			while (*f == ' ')
				f++;
			size_t len = strcspn(f, "\n");
			while (len > 0 && f[len - 1] == ' ')
				len--;
			snprintf(out, n, "%.*s", (int)len, f);
			return;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

static void read_smaps(void)
{
	ssize_t n = wl_read_file("/proc/self/smaps", smaps, sizeof(smaps) - 1);
	if (n < 0)
		n = 0;
	smaps[n] = '\0';
}

/* "VmLck:   16 kB" of /proc/self/status. */
static void read_vmlck(char *out, size_t n)
{
	static char status[8192];
	ssize_t len = wl_read_file("/proc/self/status", status, sizeof(status) - 1);
	out[0] = '\0';
	if (len <= 0)
		return;
	status[len] = '\0';
	char *p = strstr(status, "VmLck:");
	if (p)
		snprintf(out, n, "%.*s", (int)strcspn(p, "\n"), p);
}

static void fill(int i)
{
	if (i == ACCOUNT)
		return; /* never touched */
	uint64_t *w = (uint64_t *)regions[i].addr;
	for (size_t j = 0; j < REGION_PAGES * page / 8; j++) {
		if (i == ONFAULT && (j * 8 / page) % 2 == 1)
			continue; /* pages 1 and 3 stay untouched */
		w[j] = word(i, j);
	}
}

static void setup(uint8_t *base)
{
	for (int i = 0; i < NCASES; i++) {
		struct region *r = &regions[i];
		uint8_t *s = base + (size_t)i * SLOT_PAGES * page;
		r->plain = s + 4 * page;
		r->addr = r->plain + page;
		r->prot = PROT_READ | PROT_WRITE;
		r->present = 1;
		int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
		if (i == DROP)
			mflags = MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED;
		if (i == GROWS)
			mflags |= MAP_GROWSDOWN;
		if (mmap(r->addr, REGION_PAGES * page, PROT_READ | PROT_WRITE, mflags, -1, 0) == MAP_FAILED) {
			if (i == DROP && (errno == EINVAL || errno == EOPNOTSUPP || errno == ENOTSUP)) {
				wl_printf("vmaflags: no MAP_DROPPABLE here (%s)\n", wl_errname(errno));
				r->present = 0;
				mmap(r->addr, REGION_PAGES * page, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
				continue;
			}
			wl_die("mmap %s: %s", names[i], strerror(errno));
		}
		fill(i);
		int rc = 0;
		switch (i) {
		case LOCK: rc = mlock(r->addr, REGION_PAGES * page); break;
		case ONFAULT: rc = (int)syscall(SYS_mlock2, r->addr, REGION_PAGES * page, MLOCK_ONFAULT); break;
		case SEQ: rc = madvise(r->addr, REGION_PAGES * page, MADV_SEQUENTIAL); break;
		case RAND: rc = madvise(r->addr, REGION_PAGES * page, MADV_RANDOM); break;
		case MERGE:
			rc = madvise(r->addr, REGION_PAGES * page, MADV_MERGEABLE);
			if (rc != 0 && errno == EINVAL) {
				wl_printf("vmaflags: no KSM here\n");
				r->present = 0;
				rc = 0;
			}
			break;
		case SEAL:
			rc = (int)syscall(NR_MSEAL, r->addr, REGION_PAGES * page, 0);
			if (rc != 0 && errno == ENOSYS) {
				wl_printf("vmaflags: no mseal here\n");
				r->present = 0;
				rc = 0;
			}
			break;
		case ACCOUNT:
			/* Read-only, but charged: it was mapped writable and
			 * written (an anon_vma keeps the charge), its pages
			 * since dropped. */
			r->addr[0] = 1;
			r->prot = PROT_READ;
			rc = madvise(r->addr, REGION_PAGES * page, MADV_DONTNEED);
			if (rc == 0)
				rc = mprotect(r->addr, REGION_PAGES * page, PROT_READ);
			break;
		}
		if (rc != 0)
			wl_die("set up %s: %s", names[i], strerror(errno));
		/* The neighbour: same protection, no flag. */
		if (mmap(r->plain, page, r->prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			wl_die("mmap plain %s: %s", names[i], strerror(errno));
		if (r->prot & PROT_WRITE)
			memset(r->plain, 0x40 + i, page);
	}
}

/* VmFlags of a mapping made now: mm->def_flags shows in them. */
static void probe(char *out, size_t n)
{
	void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap: %s", wl_errname(errno));
		return;
	}
	read_smaps();
	vmflags_of(p, out, n);
	munmap(p, page);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "vmaflags");
	page = (size_t)sysconf(_SC_PAGESIZE);
	/* A reservation holds the slots; only the regions stay mapped. */
	uint8_t *base = mmap(NULL, NCASES * SLOT_PAGES * page, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		wl_die("reservation: %s", strerror(errno));
	if (munmap(base, NCASES * SLOT_PAGES * page) != 0)
		wl_die("munmap: %s", strerror(errno));
	setup(base);
	if (mlockall(MCL_FUTURE | MCL_ONFAULT) != 0)
		wl_die("mlockall: %s", strerror(errno));
	probe(probe_flags, sizeof(probe_flags));
	if (!strstr(probe_flags, "lo") || !strstr(probe_flags, "lf"))
		wl_die("a mapping after mlockall(MCL_FUTURE | MCL_ONFAULT) has VmFlags '%s'", probe_flags);

	read_smaps();
	for (int i = 0; i < NCASES; i++) {
		vmflags_of(regions[i].addr, regions[i].flags, sizeof(regions[i].flags));
		vmflags_of(regions[i].plain, regions[i].plain_flags, sizeof(regions[i].plain_flags));
		wl_printf("vmaflags: %s: %s (neighbour: %s)\n", names[i], regions[i].flags,
			  regions[i].plain_flags);
	}
	read_vmlck(vmlck_before, sizeof(vmlck_before));
	maps_before_len = wl_read_file("/proc/self/maps", maps_before, sizeof(maps_before));
	if (maps_before_len <= 0)
		wl_die("cannot read /proc/self/maps");
	wl_ready();

	while (!wl_stop) {
		loops++;
		wl_sleep_ms(5);
	}

	/* 1. Layout and flags, before anything can change them. */
	ssize_t after_len = wl_read_file("/proc/self/maps", maps_after, sizeof(maps_after));
	WL_CHECK(after_len == maps_before_len && memcmp(maps_before, maps_after, (size_t)after_len) == 0,
		 "/proc/self/maps differs");
	read_smaps();
	for (int i = 0; i < NCASES; i++) {
		char now[128], plain_now[128];
		vmflags_of(regions[i].addr, now, sizeof(now));
		vmflags_of(regions[i].plain, plain_now, sizeof(plain_now));
		WL_CHECK(strcmp(now, regions[i].flags) == 0, "%s: VmFlags '%s', were '%s'", names[i], now,
			 regions[i].flags);
		WL_CHECK(strcmp(plain_now, regions[i].plain_flags) == 0,
			 "%s's neighbour: VmFlags '%s', were '%s'", names[i], plain_now,
			 regions[i].plain_flags);
	}
	char vmlck[64];
	read_vmlck(vmlck, sizeof(vmlck));
	WL_CHECK(strcmp(vmlck, vmlck_before) == 0, "'%s', was '%s'", vmlck, vmlck_before);

	/* 2. What was not touched is still not there. */
	unsigned char vec[REGION_PAGES];
	if (mincore(regions[ONFAULT].addr, REGION_PAGES * page, vec) != 0) {
		wl_fail("mincore: %s", wl_errname(errno));
	} else {
		for (int p = 0; p < REGION_PAGES; p++)
			WL_CHECK((vec[p] & 1) == (p % 2 == 0), "onfault page %d resident %d, expected %d", p,
				 vec[p] & 1, p % 2 == 0);
	}

	/* 3. Contents (a droppable page may have been dropped: zero). */
	for (int i = 0; i < NCASES; i++) {
		if (!regions[i].present || i == ACCOUNT)
			continue;
		const uint64_t *w = (const uint64_t *)regions[i].addr;
		for (size_t j = 0; j < REGION_PAGES * page / 8; j++) {
			if (i == ONFAULT && (j * 8 / page) % 2 == 1)
				continue;
			if (w[j] != word(i, j) && !(i == DROP && w[j] == 0)) {
				wl_fail("%s word %zu: %#llx, expected %#llx", names[i], j,
					(unsigned long long)w[j], (unsigned long long)word(i, j));
				break;
			}
		}
	}

	/* 4. mlockall(MCL_FUTURE | MCL_ONFAULT) still locks new mappings. */
	char probe_now[128];
	probe(probe_now, sizeof(probe_now));
	WL_CHECK(strcmp(probe_now, probe_flags) == 0, "a new mapping has VmFlags '%s', had '%s' (mlockall)",
		 probe_now, probe_flags);
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
