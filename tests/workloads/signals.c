/* signals: signal dispositions, the blocked mask and queued pending signals.
 *
 * Setup: SIGUSR1 (SA_SIGINFO), SIGUSR2 (SA_RESTART|SA_SIGINFO, sa_mask
 * {SIGINT, SIGQUIT}), SIGRTMIN+2 (SA_SIGINFO) handlers, SIGHUP ignored.
 * SIGUSR1 and SIGRTMIN+2 are blocked, then queued to ourselves with
 * sigqueue(): SIGUSR1 with value 0x1234, SIGRTMIN+2 twice with 7 and 8. They
 * stay pending across the checkpoint. The kernel's view of every signal's
 * action (rt_sigaction: handler, flags incl. SA_RESTORER, restorer, mask) is
 * recorded right after setup.
 *
 * Verification: all 64 actions unchanged; blocked mask is exactly {SIGUSR1,
 * SIGRTMIN+2}; pending is exactly those two; no handler ran early. Then
 * unblock: SIGUSR1 must arrive once with 0x1234 (si_code SI_QUEUE, our pid),
 * SIGRTMIN+2 exactly twice with 7 then 8. Then raise(SIGUSR2): its handler
 * must run with SIGINT/SIGQUIT blocked. SIGHUP must still be ignored (raised
 * only if the disposition is still SIG_IGN, and it must not stay pending).
 *
 * Optional argument: MiB of memory filled with a pattern and checked at the
 * end, so that a dump spends a while moving memory (more than one pipe).
 */
#include "workload.h"

#include <sys/syscall.h>

#define NSIG_KERNEL 64

/* The kernel's struct sigaction on x86_64. */
struct ksigaction {
	uintptr_t handler;
	unsigned long flags;
	uintptr_t restorer;
	uint64_t mask;
};

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static struct ksigaction actions_at_setup[NSIG_KERNEL + 1];

static volatile sig_atomic_t usr1_count, usr2_count, rt_count;
static volatile int usr1_value, usr1_code, usr1_pid;
static volatile int rt_values[8], rt_codes[8];
static volatile int usr2_blocked_ok = -1;
static uint64_t loops;

static uint64_t bit(int sig)
{
	return 1ULL << (sig - 1);
}

static int get_kaction(int sig, struct ksigaction *ka)
{
	memset(ka, 0, sizeof(*ka));
	return (int)syscall(SYS_rt_sigaction, sig, NULL, ka, 8);
}

static uint64_t get_blocked(void)
{
	uint64_t set = 0;
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &set, 8);
	return set;
}

static uint64_t get_pending(void)
{
	uint64_t set = 0;
	syscall(SYS_rt_sigpending, &set, 8);
	return set;
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	usr1_count++;
	usr1_value = si->si_value.sival_int;
	usr1_code = si->si_code;
	usr1_pid = si->si_pid;
}

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	usr2_count++;
	uint64_t m = get_blocked();
	usr2_blocked_ok = (m & bit(SIGINT)) && (m & bit(SIGQUIT)) && (m & bit(SIGUSR2));
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (rt_count < 8) {
		rt_values[rt_count] = si->si_value.sival_int;
		rt_codes[rt_count] = si->si_code;
	}
	rt_count++;
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags,
		    const int *mask_sigs, int nmask)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < nmask; i++)
		sigaddset(&sa.sa_mask, mask_sigs[i]);
	if (sigaction(sig, &sa, NULL) != 0)
		wl_die("sigaction(%d): %s", sig, strerror(errno));
}

/* Check one action against what setup intended (not just the snapshot). */
static void expect_action(int sig, const char *name, uintptr_t handler, unsigned long flags,
			  uint64_t mask)
{
	struct ksigaction ka;
	if (get_kaction(sig, &ka) != 0) {
		wl_fail("rt_sigaction(%s): %s", name, strerror(errno));
		return;
	}
	WL_CHECK(ka.handler == handler, "%s handler: expected %#lx, got %#lx", name,
		 (unsigned long)handler, (unsigned long)ka.handler);
	WL_CHECK(ka.flags == flags, "%s flags: expected %#lx, got %#lx", name, flags, ka.flags);
	WL_CHECK(ka.mask == mask, "%s sa_mask: expected %#llx, got %#llx", name,
		 (unsigned long long)mask, (unsigned long long)ka.mask);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "signals");
	const size_t ballast_len = argc > 2 ? (size_t)atoi(argv[2]) << 20 : 0;
	unsigned char *ballast = ballast_len ? malloc(ballast_len) : NULL;
	if (ballast_len && !ballast)
		wl_die("malloc(%zu): %s", ballast_len, strerror(errno));
	for (size_t i = 0; i < ballast_len; i++)
		ballast[i] = (unsigned char)(i * 7 + (i >> 12));
	const int RT = SIGRTMIN + 2;
	const int usr2_mask[] = { SIGINT, SIGQUIT };

	install(SIGUSR1, on_usr1, SA_SIGINFO, NULL, 0);
	install(SIGUSR2, on_usr2, SA_SIGINFO | SA_RESTART, usr2_mask, 2);
	install(RT, on_rt, SA_SIGINFO, NULL, 0);
	struct sigaction ign;
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGHUP, &ign, NULL) != 0)
		wl_die("sigaction(SIGHUP): %s", strerror(errno));

	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, RT);
	if (sigprocmask(SIG_BLOCK, &block, NULL) != 0)
		wl_die("sigprocmask: %s", strerror(errno));
	pid_t me = getpid();
	if (sigqueue(me, SIGUSR1, (union sigval){ .sival_int = 0x1234 }) != 0 ||
	    sigqueue(me, RT, (union sigval){ .sival_int = 7 }) != 0 ||
	    sigqueue(me, RT, (union sigval){ .sival_int = 8 }) != 0)
		wl_die("sigqueue: %s", strerror(errno));

	for (int sig = 1; sig <= NSIG_KERNEL; sig++)
		if (get_kaction(sig, &actions_at_setup[sig]) != 0)
			wl_die("rt_sigaction(%d): %s", sig, strerror(errno));
	const uint64_t want_blocked = bit(SIGUSR1) | bit(RT);
	if (get_blocked() != want_blocked || get_pending() != want_blocked)
		wl_die("unexpected mask %#llx / pending %#llx", (unsigned long long)get_blocked(),
		       (unsigned long long)get_pending());
	/* What glibc actually handed the kernel (restorer and SA_RESTORER). */
	const uintptr_t restorer = actions_at_setup[SIGUSR1].restorer;
	const unsigned long rflag = actions_at_setup[SIGUSR1].flags & SA_RESTORER;

	wl_ready();

	while (!wl_stop) {
		loops++;
		wl_sleep_ms(5);
	}

	/* 1. Every action exactly as at setup. */
	for (int sig = 1; sig <= NSIG_KERNEL; sig++) {
		struct ksigaction ka, *old = &actions_at_setup[sig];
		if (get_kaction(sig, &ka) != 0) {
			wl_fail("rt_sigaction(%d): %s", sig, strerror(errno));
			continue;
		}
		if (memcmp(&ka, old, sizeof(ka)) != 0)
			wl_fail("signal %d (%s) action changed: handler %#lx->%#lx flags %#lx->%#lx restorer %#lx->%#lx mask %#llx->%#llx",
				sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "RT",
				(unsigned long)old->handler, (unsigned long)ka.handler, old->flags,
				ka.flags, (unsigned long)old->restorer, (unsigned long)ka.restorer,
				(unsigned long long)old->mask, (unsigned long long)ka.mask);
	}
	/* 2. ... and as setup intended. */
	expect_action(SIGUSR1, "SIGUSR1", (uintptr_t)on_usr1, SA_SIGINFO | rflag, 0);
	expect_action(SIGUSR2, "SIGUSR2", (uintptr_t)on_usr2, SA_SIGINFO | SA_RESTART | rflag,
		      bit(SIGINT) | bit(SIGQUIT));
	expect_action(RT, "SIGRTMIN+2", (uintptr_t)on_rt, SA_SIGINFO | rflag, 0);
	expect_action(SIGHUP, "SIGHUP", (uintptr_t)SIG_IGN, rflag, 0);
	expect_action(SIGTERM, "SIGTERM", (uintptr_t)wl_on_sigterm, rflag, 0);
	WL_CHECK(rflag && restorer, "glibc did not set SA_RESTORER (flags %#lx, restorer %#lx)",
		 actions_at_setup[SIGUSR1].flags, (unsigned long)restorer);

	/* 3. Blocked and pending sets. */
	uint64_t blocked = get_blocked(), pending = get_pending();
	WL_CHECK(blocked == want_blocked, "blocked mask: expected %#llx, got %#llx",
		 (unsigned long long)want_blocked, (unsigned long long)blocked);
	WL_CHECK(pending == want_blocked, "pending set: expected %#llx, got %#llx",
		 (unsigned long long)want_blocked, (unsigned long long)pending);
	WL_CHECK(usr1_count == 0 && rt_count == 0,
		 "handlers ran while blocked: SIGUSR1 %d times, SIGRTMIN+2 %d times",
		 (int)usr1_count, (int)rt_count);

	/* 4. Deliver the queued signals (before sigprocmask returns). */
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	WL_CHECK(usr1_count == 1, "SIGUSR1 delivered %d times, expected 1", (int)usr1_count);
	if (usr1_count >= 1) {
		WL_CHECK(usr1_value == 0x1234, "SIGUSR1 si_value: expected 0x1234, got %#x",
			 usr1_value);
		WL_CHECK(usr1_code == SI_QUEUE, "SIGUSR1 si_code: expected SI_QUEUE (%d), got %d",
			 SI_QUEUE, usr1_code);
		WL_CHECK(usr1_pid == (int)me, "SIGUSR1 si_pid: expected %d, got %d", (int)me,
			 usr1_pid);
	}
	WL_CHECK(rt_count == 2, "SIGRTMIN+2 delivered %d times, expected 2", (int)rt_count);
	for (int i = 0; i < 2 && i < rt_count; i++) {
		WL_CHECK(rt_values[i] == 7 + i, "SIGRTMIN+2 #%d si_value: expected %d, got %d",
			 i + 1, 7 + i, rt_values[i]);
		WL_CHECK(rt_codes[i] == SI_QUEUE, "SIGRTMIN+2 #%d si_code: expected %d, got %d",
			 i + 1, SI_QUEUE, rt_codes[i]);
	}

	/* 5. SIGUSR2 handler and its sa_mask (raised only if the handler is
	 * still installed: a lost one was reported above, and would kill us). */
	struct ksigaction usr2;
	if (get_kaction(SIGUSR2, &usr2) == 0 && usr2.handler == (uintptr_t)on_usr2) {
		raise(SIGUSR2);
		WL_CHECK(usr2_count == 1, "SIGUSR2 handler ran %d times, expected 1",
			 (int)usr2_count);
		WL_CHECK(usr2_blocked_ok == 1,
			 "SIGINT/SIGQUIT/SIGUSR2 not all blocked inside the SIGUSR2 handler (%d)",
			 usr2_blocked_ok);
	}

	/* 6. SIGHUP still ignored: raising it must be a no-op. */
	struct ksigaction hup;
	if (get_kaction(SIGHUP, &hup) == 0 && hup.handler == (uintptr_t)SIG_IGN) {
		raise(SIGHUP);
		WL_CHECK(!(get_pending() & bit(SIGHUP)), "ignored SIGHUP is pending");
	}
	WL_CHECK(get_pending() == 0, "signals still pending: %#llx",
		 (unsigned long long)get_pending());
	WL_CHECK(loops > 0, "loop never ran");
	for (size_t i = 0; i < ballast_len; i++)
		if (ballast[i] != (unsigned char)(i * 7 + (i >> 12))) {
			wl_fail("memory at offset %zu changed", i);
			break;
		}
	wl_finish();
}
