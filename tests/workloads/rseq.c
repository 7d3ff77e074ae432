/* rseq: glibc's restartable-sequences registration must survive restore.
 *
 * glibc (2.35+) registers an rseq area for every thread at
 * __builtin_thread_pointer() + __rseq_offset. Registering the same area
 * again with the same length and signature fails with EBUSY exactly when
 * that registration exists (a different length gives EINVAL; with no
 * registration the call succeeds). __rseq_size may be the feature size (20)
 * while glibc passed 32 to the kernel, so setup finds the length that gives
 * EBUSY, trying 32 first and then __rseq_size.
 *
 * Setup and verification also prove the kernel keeps the area updated: pin
 * ourselves to each allowed CPU in turn (up to 4) with sched_setaffinity;
 * rseq->cpu_id must follow and match the raw getcpu syscall.
 *
 * Verification: re-registering still fails with EBUSY (if it succeeds, the
 * registration was lost: it is undone again and reported); cpu_id is valid
 * (< _SC_NPROCESSORS_CONF) and tracks migrations; rseq_cs is 0.
 */
#include "workload.h"

#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

static struct rseq *area;
static uint32_t reg_len;
static long ncpus;
static uint64_t loops;

static long rseq_call(uint32_t len, int flags)
{
	return syscall(SYS_rseq, area, len, flags, RSEQ_SIG);
}

static uint32_t rseq_cpu(void)
{
	return __atomic_load_n(&area->cpu_id, __ATOMIC_RELAXED);
}

static int sys_getcpu(void)
{
	unsigned cpu = ~0U;
	if (syscall(SYS_getcpu, &cpu, NULL, NULL) != 0)
		return -1;
	return (int)cpu;
}

/* Pin to each allowed CPU (up to 4) and check rseq->cpu_id follows. Returns
 * the number of failures (reported through report()). */
static int check_cpu_tracking(void (*report)(const char *, ...), const char *when)
{
	int bad = 0;
	cpu_set_t orig;
	if (sched_getaffinity(0, sizeof(orig), &orig) != 0) {
		report("%s: sched_getaffinity: %s", when, strerror(errno));
		return 1;
	}
	int tried = 0;
	for (int c = 0; c < CPU_SETSIZE && tried < 4; c++) {
		if (!CPU_ISSET(c, &orig))
			continue;
		tried++;
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(c, &one);
		if (sched_setaffinity(0, sizeof(one), &one) != 0) {
			report("%s: sched_setaffinity(%d): %s", when, c, strerror(errno));
			bad++;
			continue;
		}
		uint32_t seen = rseq_cpu();
		for (int i = 0; i < 100 && seen != (uint32_t)c; i++) {
			sched_yield();
			seen = rseq_cpu();
		}
		int sys = sys_getcpu();
		if (seen != (uint32_t)c || sys != c) {
			report("%s: pinned to CPU %d, rseq cpu_id %u, getcpu %d", when, c, seen, sys);
			bad++;
		}
	}
	sched_setaffinity(0, sizeof(orig), &orig);
	uint32_t cpu = rseq_cpu(), start = area->cpu_id_start;
	if (cpu >= (uint32_t)ncpus || start >= (uint32_t)ncpus) {
		report("%s: rseq cpu_id %u / cpu_id_start %u not < %ld CPUs", when, cpu, start, ncpus);
		bad++;
	}
	return bad;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "rseq");
	ncpus = sysconf(_SC_NPROCESSORS_CONF);
	if (__rseq_size == 0)
		wl_die("glibc did not register rseq (__rseq_size 0; glibc.pthread.rseq=0?)");
	area = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	const ptrdiff_t offset_at_setup = __rseq_offset;
	const unsigned size_at_setup = __rseq_size;

	/* Find the length glibc registered with. */
	const uint32_t candidates[2] = { 32, __rseq_size };
	for (int i = 0; i < 2 && !reg_len; i++) {
		long r = rseq_call(candidates[i], 0);
		if (r == 0) {
			rseq_call(candidates[i], RSEQ_FLAG_UNREGISTER);
			wl_die("rseq area %p was not registered (registering it succeeded)",
			       (void *)area);
		}
		if (errno == EBUSY)
			reg_len = candidates[i];
		else if (errno != EINVAL)
			wl_die("rseq(len %u): %s", candidates[i], strerror(errno));
	}
	if (!reg_len)
		wl_die("no rseq length gives EBUSY (tried 32 and %u)", __rseq_size);
	check_cpu_tracking(wl_die, "setup");
	wl_printf("rseq: area %p, __rseq_size %u, registered length %u, cpu %u of %ld\n",
		  (void *)area, __rseq_size, reg_len, rseq_cpu(), ncpus);

	wl_ready();

	while (!wl_stop) {
		loops++;
		wl_sleep_ms(5);
	}

	WL_CHECK(__rseq_offset == offset_at_setup && __rseq_size == size_at_setup,
		 "__rseq_offset/__rseq_size changed: %td/%u -> %td/%u", offset_at_setup,
		 size_at_setup, __rseq_offset, __rseq_size);
	long r = rseq_call(reg_len, 0);
	int err = errno;
	if (r == 0) {
		rseq_call(reg_len, RSEQ_FLAG_UNREGISTER);
		wl_fail("rseq registration lost: re-registering %p (len %u) succeeded",
			(void *)area, reg_len);
	} else if (err != EBUSY) {
		wl_fail("re-registering rseq %p (len %u): expected EBUSY, got %s (%s)", (void *)area,
			reg_len, strerrorname_np(err) ? strerrorname_np(err) : "?",
			err == EINVAL ? "registered with another area or length" :
			err == EPERM  ? "registered with another signature" : strerror(err));
	} else {
		/* Only meaningful while registered. */
		check_cpu_tracking(wl_fail, "after restore");
	}
	WL_CHECK(area->rseq_cs == 0, "rseq_cs is %#llx, expected 0",
		 (unsigned long long)area->rseq_cs);
	WL_CHECK(loops > 0, "loop never ran");
	wl_finish();
}
