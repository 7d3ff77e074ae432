/* parked: every thread sits in pause() with its vector registers loaded, so
 * that a test can compare, from outside with ptrace, the exact state of each
 * thread (registers, xsave, signal mask, pending signals) before and after a
 * dump --leave-running.
 *
 * Main and one more thread ("parked2") each load ymm0-ymm15 with their own
 * pattern and loop on the raw pause syscall, touching no vector register, until
 * the main thread's SIGTERM handler has run. Both block SIGUSR1 and
 * SIGRTMIN+1 (the test queues them: shared and thread-private pending
 * signals); only main takes SIGTERM.
 *
 * Verification (on SIGTERM): main's ymm registers still hold its pattern
 * after the loop (parked2 never leaves it: the test compares its xsave).
 */
#include "workload.h"

#include <pthread.h>

#define NYMM 16

struct park {
	uint8_t in[NYMM][32] __attribute__((aligned(32)));
	uint8_t out[NYMM][32] __attribute__((aligned(32)));
	volatile sig_atomic_t *stop;
};

static volatile sig_atomic_t never;

/* Loads ymm0-15 from p->in, pauses until *p->stop, stores them to p->out. */
static void park(struct park *p)
{
	__asm__ volatile(
		"vmovdqa 0(%0), %%ymm0\n\t"    "vmovdqa 32(%0), %%ymm1\n\t"
		"vmovdqa 64(%0), %%ymm2\n\t"   "vmovdqa 96(%0), %%ymm3\n\t"
		"vmovdqa 128(%0), %%ymm4\n\t"  "vmovdqa 160(%0), %%ymm5\n\t"
		"vmovdqa 192(%0), %%ymm6\n\t"  "vmovdqa 224(%0), %%ymm7\n\t"
		"vmovdqa 256(%0), %%ymm8\n\t"  "vmovdqa 288(%0), %%ymm9\n\t"
		"vmovdqa 320(%0), %%ymm10\n\t" "vmovdqa 352(%0), %%ymm11\n\t"
		"vmovdqa 384(%0), %%ymm12\n\t" "vmovdqa 416(%0), %%ymm13\n\t"
		"vmovdqa 448(%0), %%ymm14\n\t" "vmovdqa 480(%0), %%ymm15\n\t"
		"1: movl $34, %%eax\n\t" /* __NR_pause */
		"syscall\n\t"
		"cmpl $0, (%2)\n\t"
		"je 1b\n\t"
		"vmovdqa %%ymm0, 0(%1)\n\t"    "vmovdqa %%ymm1, 32(%1)\n\t"
		"vmovdqa %%ymm2, 64(%1)\n\t"   "vmovdqa %%ymm3, 96(%1)\n\t"
		"vmovdqa %%ymm4, 128(%1)\n\t"  "vmovdqa %%ymm5, 160(%1)\n\t"
		"vmovdqa %%ymm6, 192(%1)\n\t"  "vmovdqa %%ymm7, 224(%1)\n\t"
		"vmovdqa %%ymm8, 256(%1)\n\t"  "vmovdqa %%ymm9, 288(%1)\n\t"
		"vmovdqa %%ymm10, 320(%1)\n\t" "vmovdqa %%ymm11, 352(%1)\n\t"
		"vmovdqa %%ymm12, 384(%1)\n\t" "vmovdqa %%ymm13, 416(%1)\n\t"
		"vmovdqa %%ymm14, 448(%1)\n\t" "vmovdqa %%ymm15, 480(%1)\n\t"
		"vzeroupper\n\t"
		:
		: "r"(p->in), "r"(p->out), "r"(p->stop)
		: "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

static void fill(struct park *p, uint64_t seed)
{
	for (int r = 0; r < NYMM; r++)
		for (int b = 0; b < 32; b += 8) {
			uint64_t v = wl_mix64(seed + r * 4 + b);
			memcpy(&p->in[r][b], &v, 8);
		}
}

static struct park parks[2];
static volatile int parked2_started;

static void *parked2(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "parked2");
	parked2_started = 1;
	park(&parks[1]);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "parked");
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGRTMIN + 1);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, NULL); /* inherited by parked2 */
	fill(&parks[0], 1);
	fill(&parks[1], 2);
	parks[0].stop = &wl_stop;
	parks[1].stop = &never;
	pthread_t t;
	if (pthread_create(&t, NULL, parked2, NULL) != 0)
		wl_die("pthread_create");
	while (!parked2_started)
		wl_sleep_ms(1);
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_UNBLOCK, &term, NULL);
	wl_ready();
	park(&parks[0]);
	WL_CHECK(memcmp(parks[0].in, parks[0].out, sizeof parks[0].in) == 0, "main's ymm registers changed");
	wl_finish();
}
