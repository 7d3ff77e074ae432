/* vdso: the vDSO (and the vvar data behind it) must work after restore.
 *
 * Setup: record AT_SYSINFO_EHDR and look up __vdso_clock_gettime and
 * __vdso_gettimeofday in the vDSO's dynamic symbol table ourselves.
 * Loop: clock_gettime(CLOCK_MONOTONIC / CLOCK_REALTIME) and gettimeofday (all
 * served by the vDSO through glibc's cached pointers); CLOCK_MONOTONIC must
 * never go backwards (a long pause only moves it forward).
 * Verification: AT_SYSINFO_EHDR equals the start of the [vdso] line in
 * /proc/self/maps and has the ELF magic; the symbols resolve to the same
 * addresses as at setup (glibc cached them at startup); calling
 * __vdso_clock_gettime directly returns 0 and a CLOCK_MONOTONIC time between
 * two raw clock_gettime syscalls (a stale or missing vvar page fails this),
 * CLOCK_REALTIME and __vdso_gettimeofday agree with the syscall to within
 * seconds. A crash inside the vDSO is caught and reported.
 */
#include "workload.h"

#include <elf.h>
#include <setjmp.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);

static char maps[65536];
static uint64_t loops, backwards, errors;
static struct timespec back_prev, back_now;
static sigjmp_buf crash_jmp;
static volatile sig_atomic_t crash_sig;

/* Find a defined function symbol in the vDSO's dynamic symbol table. */
static uintptr_t vdso_sym(uintptr_t base, const char *name)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
		return 0;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
	uintptr_t load_offset = 0;
	const Elf64_Dyn *dyn = NULL;
	int have_load = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && !have_load) {
			load_offset = base + ph[i].p_offset - ph[i].p_vaddr;
			have_load = 1;
		} else if (ph[i].p_type == PT_DYNAMIC) {
			dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
		}
	}
	if (!have_load || !dyn)
		return 0;
	const Elf64_Sym *symtab = NULL;
	const char *strtab = NULL;
	const uint32_t *hash = NULL, *gnu_hash = NULL;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		uintptr_t p = dyn->d_un.d_ptr + load_offset;
		switch (dyn->d_tag) {
		case DT_SYMTAB: symtab = (const Elf64_Sym *)p; break;
		case DT_STRTAB: strtab = (const char *)p; break;
		case DT_HASH: hash = (const uint32_t *)p; break;
		case DT_GNU_HASH: gnu_hash = (const uint32_t *)p; break;
		}
	}
	if (!symtab || !strtab || (!hash && !gnu_hash))
		return 0;
	uint32_t nsyms = 0;
	if (hash) {
		nsyms = hash[1]; /* nchain */
	} else {
		/* GNU hash: the highest bucket start, then walk its chain. */
		uint32_t nbuckets = gnu_hash[0], symoffset = gnu_hash[1], bloom = gnu_hash[2];
		const uint32_t *buckets = gnu_hash + 4 + bloom * 2;
		const uint32_t *chain = buckets + nbuckets;
		for (uint32_t b = 0; b < nbuckets; b++)
			if (buckets[b] > nsyms)
				nsyms = buckets[b];
		if (nsyms >= symoffset)
			while (!(chain[nsyms - symoffset] & 1))
				nsyms++;
		nsyms++;
	}
	for (uint32_t i = 0; i < nsyms; i++) {
		const Elf64_Sym *s = &symtab[i];
		int bind = ELF64_ST_BIND(s->st_info);
		if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF ||
		    (bind != STB_GLOBAL && bind != STB_WEAK))
			continue;
		if (!strcmp(strtab + s->st_name, name))
			return load_offset + s->st_value;
	}
	return 0;
}

/* Start address of the [vdso] line in /proc/self/maps, or 0. */
static uintptr_t maps_vdso_start(void)
{
	ssize_t n = wl_read_file("/proc/self/maps", maps, sizeof(maps) - 1);
	if (n <= 0)
		return 0;
	maps[n] = '\0';
	for (char *line = maps; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		size_t len = strlen(line);
		if (len >= 6 && !strcmp(line + len - 6, "[vdso]"))
			return (uintptr_t)strtoull(line, NULL, 16);
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void sys_clock(clockid_t c, struct timespec *t)
{
	syscall(SYS_clock_gettime, c, t);
}

static void on_crash(int sig)
{
	crash_sig = sig;
	siglongjmp(crash_jmp, 1);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "vdso");
	const uintptr_t ehdr = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
	if (!ehdr)
		wl_die("no AT_SYSINFO_EHDR");
	const uintptr_t cgt_setup = vdso_sym(ehdr, "__vdso_clock_gettime");
	const uintptr_t gtod_setup = vdso_sym(ehdr, "__vdso_gettimeofday");
	if (!cgt_setup || !gtod_setup)
		wl_die("vDSO symbols not found (clock_gettime %#lx, gettimeofday %#lx)",
		       (unsigned long)cgt_setup, (unsigned long)gtod_setup);
	if (maps_vdso_start() != ehdr)
		wl_die("AT_SYSINFO_EHDR %#lx is not the [vdso] start %#lx", (unsigned long)ehdr,
		       (unsigned long)maps_vdso_start());
	struct timespec t_ready, last;
	clock_gettime(CLOCK_MONOTONIC, &t_ready);
	last = t_ready;

	wl_ready();

	while (!wl_stop) {
		struct timespec mono, real;
		struct timeval tv;
		if (clock_gettime(CLOCK_MONOTONIC, &mono) != 0 ||
		    clock_gettime(CLOCK_REALTIME, &real) != 0 || gettimeofday(&tv, NULL) != 0)
			errors++;
		if (ts_ns(&mono) < ts_ns(&last)) {
			if (backwards++ == 0) {
				back_prev = last;
				back_now = mono;
			}
		}
		last = mono;
		loops++;
		wl_sleep_ms(1);
	}

	WL_CHECK(backwards == 0,
		 "CLOCK_MONOTONIC went backwards %llu times, first %lld.%09ld -> %lld.%09ld",
		 (unsigned long long)backwards, (long long)back_prev.tv_sec, back_prev.tv_nsec,
		 (long long)back_now.tv_sec, back_now.tv_nsec);
	WL_CHECK(errors == 0, "%llu failing clock calls in the loop", (unsigned long long)errors);
	WL_CHECK(loops > 0, "loop never ran");

	/* 1. Where the vDSO is. */
	uintptr_t aux = (uintptr_t)getauxval(AT_SYSINFO_EHDR), start = maps_vdso_start();
	WL_CHECK(aux == ehdr, "AT_SYSINFO_EHDR changed: %#lx -> %#lx", (unsigned long)ehdr,
		 (unsigned long)aux);
	if (start != ehdr) {
		wl_fail("[vdso] in /proc/self/maps starts at %#lx, AT_SYSINFO_EHDR is %#lx",
			(unsigned long)start, (unsigned long)ehdr);
		wl_finish(); /* do not touch a vDSO that is not there */
	}

	/* 2. What is there: ELF, same symbols, working calls. A fault inside is
	 * reported rather than killing us. */
	struct sigaction sa, old_segv, old_bus;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_crash;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	if (sigsetjmp(crash_jmp, 1)) {
		wl_fail("signal %d while using the vDSO at %#lx", (int)crash_sig,
			(unsigned long)ehdr);
		wl_finish();
	}
	WL_CHECK(!memcmp((const void *)ehdr, ELFMAG, SELFMAG), "no ELF magic at %#lx",
		 (unsigned long)ehdr);
	uintptr_t cgt = vdso_sym(ehdr, "__vdso_clock_gettime");
	uintptr_t gtod = vdso_sym(ehdr, "__vdso_gettimeofday");
	WL_CHECK(cgt == cgt_setup, "__vdso_clock_gettime moved: %#lx -> %#lx",
		 (unsigned long)cgt_setup, (unsigned long)cgt);
	WL_CHECK(gtod == gtod_setup, "__vdso_gettimeofday moved: %#lx -> %#lx",
		 (unsigned long)gtod_setup, (unsigned long)gtod);

	struct timespec now;
	int rc = clock_gettime(CLOCK_MONOTONIC, &now);
	WL_CHECK(rc == 0 && ts_ns(&now) > ts_ns(&t_ready),
		 "clock_gettime(MONOTONIC) rc %d, %lld.%09ld not after ready time %lld.%09ld", rc,
		 (long long)now.tv_sec, now.tv_nsec, (long long)t_ready.tv_sec, t_ready.tv_nsec);

	if (cgt) {
		clock_gettime_fn fn = (clock_gettime_fn)cgt;
		struct timespec before, mid = { 0, 0 }, after;
		sys_clock(CLOCK_MONOTONIC, &before);
		rc = fn(CLOCK_MONOTONIC, &mid);
		sys_clock(CLOCK_MONOTONIC, &after);
		WL_CHECK(rc == 0, "__vdso_clock_gettime(MONOTONIC) returned %d", rc);
		WL_CHECK(ts_ns(&before) <= ts_ns(&mid) && ts_ns(&mid) <= ts_ns(&after),
			 "__vdso_clock_gettime(MONOTONIC) = %lld.%09ld, not within syscall times %lld.%09ld .. %lld.%09ld",
			 (long long)mid.tv_sec, mid.tv_nsec, (long long)before.tv_sec,
			 before.tv_nsec, (long long)after.tv_sec, after.tv_nsec);
		struct timespec sreal, vreal = { 0, 0 };
		sys_clock(CLOCK_REALTIME, &sreal);
		rc = fn(CLOCK_REALTIME, &vreal);
		int64_t d = ts_ns(&vreal) - ts_ns(&sreal);
		WL_CHECK(rc == 0 && d >= 0 && d < 10000000000LL,
			 "__vdso_clock_gettime(REALTIME) rc %d, %lld.%09ld vs syscall %lld.%09ld", rc,
			 (long long)vreal.tv_sec, vreal.tv_nsec, (long long)sreal.tv_sec,
			 sreal.tv_nsec);
	}
	if (gtod) {
		gettimeofday_fn fn = (gettimeofday_fn)gtod;
		struct timespec sreal;
		struct timeval tv = { 0, 0 };
		sys_clock(CLOCK_REALTIME, &sreal);
		rc = fn(&tv, NULL);
		long long d = (long long)tv.tv_sec - (long long)sreal.tv_sec;
		WL_CHECK(rc == 0 && d >= 0 && d < 10,
			 "__vdso_gettimeofday rc %d, %lld.%06ld vs syscall %lld.%09ld", rc,
			 (long long)tv.tv_sec, (long)tv.tv_usec, (long long)sreal.tv_sec,
			 sreal.tv_nsec);
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	wl_finish();
}
