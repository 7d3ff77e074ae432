/* membarrier: the mm's membarrier(2) registrations.
 *
 * Registers MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, its _SYNC_CORE and
 * _RSEQ variants (those the kernel supports: MEMBARRIER_CMD_QUERY says) and
 * MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, with a second thread alive (a
 * registration of a multithreaded mm takes another path in the kernel),
 * and records MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3).
 *
 * Verification: GET_REGISTRATIONS gives the same mask; each registered
 * private expedited command succeeds (without registration: EPERM), and so
 * does MEMBARRIER_CMD_GLOBAL_EXPEDITED; the thread still runs.
 */
#include "workload.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>

#define CMD_GET_REGISTRATIONS (1 << 9)

static int membarrier(int cmd, unsigned int flags)
{
	return (int)syscall(SYS_membarrier, cmd, flags, 0);
}

/* {command, its registration} */
static const struct {
	int cmd, reg;
	const char *name;
} kinds[] = {
	{ MEMBARRIER_CMD_GLOBAL_EXPEDITED, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, "global expedited" },
	{ MEMBARRIER_CMD_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, "private expedited" },
	{ MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
	  "private expedited sync-core" },
	{ MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
	  "private expedited rseq" },
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static volatile uint64_t ticks;
static int registered; /* mask of kinds[i].reg */
static int reported;   /* GET_REGISTRATIONS at ready */

static void *ticker(void *arg)
{
	(void)arg;
	for (;;) {
		__atomic_add_fetch(&ticks, 1, __ATOMIC_RELAXED);
		wl_sleep_ms(5);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "membarrier");
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	pthread_t th;
	if (pthread_create(&th, NULL, ticker, NULL) != 0)
		wl_die("pthread_create");
	pthread_sigmask(SIG_UNBLOCK, &term, NULL);

	int supported = membarrier(MEMBARRIER_CMD_QUERY, 0);
	if (supported < 0)
		wl_die("MEMBARRIER_CMD_QUERY: %s", wl_errname(errno));
	for (size_t i = 0; i < NKINDS; i++) {
		if (!(supported & kinds[i].reg))
			continue;
		/* Not registered yet: the command is refused. */
		if (kinds[i].cmd != MEMBARRIER_CMD_GLOBAL_EXPEDITED && membarrier(kinds[i].cmd, 0) != -1)
			wl_die("%s works before registering", kinds[i].name);
		if (membarrier(kinds[i].reg, 0) != 0)
			wl_die("register %s: %s", kinds[i].name, wl_errname(errno));
		registered |= kinds[i].reg;
	}
	reported = membarrier(CMD_GET_REGISTRATIONS, 0);
	if (reported < 0)
		wl_die("MEMBARRIER_CMD_GET_REGISTRATIONS: %s", wl_errname(errno));
	if (reported != registered)
		wl_die("GET_REGISTRATIONS %#x, registered %#x", reported, registered);
	wl_printf("membarrier: registered %#x\n", registered);
	wl_ready();

	while (!wl_stop)
		wl_sleep_ms(5);

	int now = membarrier(CMD_GET_REGISTRATIONS, 0);
	WL_CHECK(now == reported, "GET_REGISTRATIONS %#x (%s), was %#x", now, now < 0 ? wl_errname(errno) : "",
		 reported);
	for (size_t i = 0; i < NKINDS; i++) {
		if (!(registered & kinds[i].reg))
			continue;
		WL_CHECK(membarrier(kinds[i].cmd, 0) == 0, "%s: %s", kinds[i].name, wl_errname(errno));
	}
	uint64_t t0 = __atomic_load_n(&ticks, __ATOMIC_RELAXED);
	for (int i = 0; i < 200 && __atomic_load_n(&ticks, __ATOMIC_RELAXED) == t0; i++)
		wl_sleep_ms(5);
	WL_CHECK(__atomic_load_n(&ticks, __ATOMIC_RELAXED) != t0, "the thread stopped ticking");
	wl_finish();
}
