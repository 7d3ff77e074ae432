/* regs: register state held across the checkpoint.
 *
 * One asm block loads known patterns into rbx, r12-r15, the x87 stack
 * st0-st7, the vector registers and (AVX-512) the opmask registers k1-k7,
 * then waits for SIGTERM without touching them: it increments a memory
 * counter, polls the memory flag set by the handler, and sleeps with a raw
 * nanosleep syscall (which only clobbers rax, rcx, r11; rdi/rsi hold its
 * arguments). After the flag is seen, still inside the same asm block, every
 * register is stored to memory; C code then compares against the patterns.
 * MXCSR, the x87 control word and (if the OS enables protection keys) PKRU
 * are set to non-default values before the loop and checked after it.
 *
 * Args (any order, all optional):
 *   sse | avx | avx512   vector set to use (default: the best supported)
 *   spin                 busy-poll with "pause" instead of sleeping
 *
 * Vector sets: sse = xmm0-15; avx = ymm0-15 (full 256 bits, so the upper
 * halves are covered); avx512 = zmm0-31 (512 bits) and k1-k7 (64 bits with
 * AVX512BW, else 16 bits).
 */
#include "workload.h"

#include <cpuid.h>
#include <stddef.h>

/* Layout used by the asm (offsets are literal in the templates). */
struct regstate {
	uint8_t vec[32][64];   /* 0:    xmm/ymm/zmm N at N*64 */
	uint8_t st[8][16];     /* 2048: x87 80-bit values, 16-byte slots */
	uint64_t k[8];         /* 2176: opmask kN at 2176+N*8 (k0 unused) */
	uint64_t gpr[5];       /* 2240: rbx, r12, r13, r14, r15 */
} __attribute__((aligned(64)));
_Static_assert(offsetof(struct regstate, st) == 2048, "layout");
_Static_assert(offsetof(struct regstate, k) == 2176, "layout");
_Static_assert(offsetof(struct regstate, gpr) == 2240, "layout");

static struct regstate expect, actual;
static uint64_t loops;
static int spin_mode;
static struct timespec sleep_ts = { 0, 2000000 }; /* 2 ms */

static const uint32_t MXCSR_SET = 0xFF80; /* FTZ, round toward zero, all masked */
static const uint16_t FPUCW_SET = 0x0E7F; /* round toward zero, 53-bit precision */
static const uint32_t PKRU_SET = 0x5555555C; /* default + write-disable for key 1 */

/* ---- asm template pieces ---------------------------------------------- */

#define GPR_LOAD                                 \
	"movq 2240(%[e]), %%rbx\n\t"             \
	"movq 2248(%[e]), %%r12\n\t"             \
	"movq 2256(%[e]), %%r13\n\t"             \
	"movq 2264(%[e]), %%r14\n\t"             \
	"movq 2272(%[e]), %%r15\n\t"
#define GPR_STORE                                \
	"movq %%rbx, 2240(%[a])\n\t"             \
	"movq %%r12, 2248(%[a])\n\t"             \
	"movq %%r13, 2256(%[a])\n\t"             \
	"movq %%r14, 2264(%[a])\n\t"             \
	"movq %%r15, 2272(%[a])\n\t"

/* st0..st7: push slots 0..7 (so st0 = slot 7), pop back into 7..0. */
#define X87_LD(n) "fldt 2048+16*" #n "(%[e])\n\t"
#define X87_ST(n) "fstpt 2048+16*" #n "(%[a])\n\t"
#define X87_LOAD X87_LD(0) X87_LD(1) X87_LD(2) X87_LD(3) X87_LD(4) X87_LD(5) X87_LD(6) X87_LD(7)
#define X87_STORE X87_ST(7) X87_ST(6) X87_ST(5) X87_ST(4) X87_ST(3) X87_ST(2) X87_ST(1) X87_ST(0)

#define REP16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) \
		 M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define REP32(M) REP16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) \
		 M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define REP_K(M) M(1) M(2) M(3) M(4) M(5) M(6) M(7)

#define SSE_LD(n) "movdqu 64*" #n "(%[e]), %%xmm" #n "\n\t"
#define SSE_ST(n) "movdqu %%xmm" #n ", 64*" #n "(%[a])\n\t"
#define AVX_LD(n) "vmovdqu 64*" #n "(%[e]), %%ymm" #n "\n\t"
#define AVX_ST(n) "vmovdqu %%ymm" #n ", 64*" #n "(%[a])\n\t"
#define Z_LD(n) "vmovdqu64 64*" #n "(%[e]), %%zmm" #n "\n\t"
#define Z_ST(n) "vmovdqu64 %%zmm" #n ", 64*" #n "(%[a])\n\t"
#define KQ_LD(n) "kmovq 2176+8*" #n "(%[e]), %%k" #n "\n\t"
#define KQ_ST(n) "kmovq %%k" #n ", 2176+8*" #n "(%[a])\n\t"
#define KW_LD(n) "kmovw 2176+8*" #n "(%[e]), %%k" #n "\n\t"
#define KW_ST(n) "kmovw %%k" #n ", 2176+8*" #n "(%[a])\n\t"

/* The wait loop: no register but rax, rcx, rdi, rsi, r11 is touched. */
#define WAIT_LOOP                                               \
	"1:\n\t"                                                \
	"incq %[cnt]\n\t"                                       \
	"cmpl $0, %[stop]\n\t"                                  \
	"jne 3f\n\t"                                            \
	"cmpl $0, %[spin]\n\t"                                  \
	"jne 2f\n\t"                                            \
	"movl $35, %%eax\n\t" /* SYS_nanosleep */               \
	"leaq %[ts], %%rdi\n\t"                                 \
	"xorl %%esi, %%esi\n\t"                                 \
	"syscall\n\t"                                           \
	"jmp 1b\n"                                              \
	"2:\n\t"                                                \
	"pause\n\t"                                             \
	"jmp 1b\n"                                              \
	"3:\n\t"

#define REGS_ASM(VLOAD, VSTORE, ...)                                             \
	__asm__ volatile(GPR_LOAD X87_LOAD VLOAD WAIT_LOOP VSTORE X87_STORE GPR_STORE \
			 : [cnt] "+m"(loops)                                      \
			 : [stop] "m"(wl_stop), [spin] "m"(spin_mode),            \
			   [ts] "m"(sleep_ts), [e] "r"(&expect), [a] "r"(&actual) \
			 : "memory", "cc", "rax", "rbx", "rcx", "rsi", "rdi", "r11", \
			   "r12", "r13", "r14", "r15", "st", "st(1)", "st(2)",    \
			   "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "xmm0",   \
			   "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
			   "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",    \
			   "xmm14", "xmm15" __VA_ARGS__)

static void run_sse(void)
{
	REGS_ASM(REP16(SSE_LD), REP16(SSE_ST));
}

static void run_avx(void)
{
	REGS_ASM(REP16(AVX_LD), REP16(AVX_ST) "vzeroupper\n\t");
}

/* xmm16-31 and k1-7 are not usable by compiler-generated code here (no
 * -mavx512f), so they need no clobbers. */
static void run_avx512_kq(void)
{
	REGS_ASM(REP32(Z_LD) REP_K(KQ_LD), REP32(Z_ST) REP_K(KQ_ST) "vzeroupper\n\t");
}

static void run_avx512_kw(void)
{
	REGS_ASM(REP32(Z_LD) REP_K(KW_LD), REP32(Z_ST) REP_K(KW_ST) "vzeroupper\n\t");
}

/* ---- control registers ---------------------------------------------- */

static uint32_t get_mxcsr(void)
{
	uint32_t v;
	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}
static void set_mxcsr(uint32_t v)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(v));
}
static uint16_t get_fpucw(void)
{
	uint16_t v;
	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}
static void set_fpucw(uint16_t v)
{
	__asm__ volatile("fldcw %0" : : "m"(v));
}
static int have_ospke(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	return (c >> 4) & 1; /* CPUID.7.0:ECX.OSPKE */
}
static uint32_t get_pkru(void)
{
	uint32_t eax, edx;
	__asm__ volatile("rdpkru" : "=a"(eax), "=d"(edx) : "c"(0));
	return eax;
}
static void set_pkru(uint32_t v)
{
	__asm__ volatile("wrpkru" : : "a"(v), "c"(0), "d"(0) : "memory");
}

/* ---- comparison ------------------------------------------------------- */

static void compare_bytes(const char *name, const uint8_t *exp, const uint8_t *act, size_t n)
{
	for (size_t off = 0; off < n; off += 8) {
		uint64_t e = 0, a = 0;
		size_t len = n - off < 8 ? n - off : 8;
		memcpy(&e, exp + off, len);
		memcpy(&a, act + off, len);
		if (e != a) {
			wl_fail("%s differs at byte %zu: expected %#llx, got %#llx", name, off,
				(unsigned long long)e, (unsigned long long)a);
			return; /* one report per register */
		}
	}
}

enum vset { V_SSE, V_AVX, V_AVX512 };

int main(int argc, char **argv)
{
	wl_init(argc, argv, "regs");
	__builtin_cpu_init();
	int have_avx = __builtin_cpu_supports("avx");
	int have_avx512 = __builtin_cpu_supports("avx512f");
	int have_bw = __builtin_cpu_supports("avx512bw");
	enum vset vs = have_avx512 ? V_AVX512 : have_avx ? V_AVX : V_SSE;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "spin"))
			spin_mode = 1;
		else if (!strcmp(argv[i], "sse"))
			vs = V_SSE;
		else if (!strcmp(argv[i], "avx"))
			vs = V_AVX;
		else if (!strcmp(argv[i], "avx512"))
			vs = V_AVX512;
		else
			wl_die("unknown arg '%s'", argv[i]);
	}
	if ((vs == V_AVX && !have_avx) || (vs == V_AVX512 && !have_avx512))
		wl_die("requested vector set not supported by this CPU");
	int use_pkru = have_ospke();

	/* Patterns: distinct per byte position. */
	uint8_t *p = (uint8_t *)&expect;
	for (size_t i = 0; i < sizeof(expect); i += 8) {
		uint64_t v = wl_mix64(0xc0ffee00ULL + i);
		memcpy(p + i, &v, sizeof(v));
	}
	/* x87: valid normal extended values (explicit integer bit set, moderate
	 * exponent, random sign); slot padding zero. */
	for (int i = 0; i < 8; i++) {
		uint64_t mant = wl_mix64(0xf00dULL + i) | (1ULL << 63);
		uint16_t se = (uint16_t)(0x3ff0 + i * 3) | (uint16_t)((i & 1) << 15);
		memset(expect.st[i], 0, 16);
		memcpy(expect.st[i], &mant, 8);
		memcpy(expect.st[i] + 8, &se, 2);
	}
	expect.k[0] = 0;
	memset(&actual, 0, sizeof(actual));

	uint32_t mxcsr0 = get_mxcsr();
	uint16_t fpucw0 = get_fpucw();
	set_mxcsr(MXCSR_SET);
	set_fpucw(FPUCW_SET);
	if (use_pkru)
		set_pkru(PKRU_SET);
	uint32_t mxcsr_set = get_mxcsr();
	uint16_t fpucw_set = get_fpucw();
	uint32_t pkru_set = use_pkru ? get_pkru() : 0;
	if (mxcsr_set == mxcsr0 || fpucw_set == fpucw0)
		wl_die("could not change MXCSR (%#x) or FPU CW (%#x)", mxcsr_set, fpucw_set);

	static const char *const vs_names[] = { "sse", "avx", "avx512" };
	wl_printf("regs: vectors %s%s, %s, pkru %s\n", vs_names[vs],
		  vs == V_AVX512 ? (have_bw ? " (k 64-bit)" : " (k 16-bit)") : "",
		  spin_mode ? "spin" : "sleep", use_pkru ? "yes" : "no");

	wl_ready();

	switch (vs) {
	case V_SSE: run_sse(); break;
	case V_AVX: run_avx(); break;
	case V_AVX512: have_bw ? run_avx512_kq() : run_avx512_kw(); break;
	}

	/* Read control registers before any library call can touch them. */
	uint32_t mxcsr = get_mxcsr();
	uint16_t fpucw = get_fpucw();
	uint32_t pkru = use_pkru ? get_pkru() : 0;
	set_mxcsr(mxcsr0);
	set_fpucw(fpucw0);

	static const char *const gpr_names[] = { "rbx", "r12", "r13", "r14", "r15" };
	for (int i = 0; i < 5; i++)
		WL_CHECK(actual.gpr[i] == expect.gpr[i], "%s: expected %#llx, got %#llx",
			 gpr_names[i], (unsigned long long)expect.gpr[i],
			 (unsigned long long)actual.gpr[i]);
	for (int i = 0; i < 8; i++) {
		char name[16];
		snprintf(name, sizeof(name), "st(%d)", 7 - i); /* slot i ended in st(7-i) */
		compare_bytes(name, expect.st[i], actual.st[i], 10);
	}
	int nvec = vs == V_AVX512 ? 32 : 16;
	size_t vbytes = vs == V_AVX512 ? 64 : vs == V_AVX ? 32 : 16;
	const char *vname = vs == V_AVX512 ? "zmm" : vs == V_AVX ? "ymm" : "xmm";
	for (int i = 0; i < nvec; i++) {
		char name[16];
		snprintf(name, sizeof(name), "%s%d", vname, i);
		compare_bytes(name, expect.vec[i], actual.vec[i], vbytes);
	}
	if (vs == V_AVX512) {
		uint64_t kmask = have_bw ? ~0ULL : 0xffffULL;
		for (int i = 1; i < 8; i++)
			WL_CHECK((actual.k[i] & kmask) == (expect.k[i] & kmask),
				 "k%d: expected %#llx, got %#llx", i,
				 (unsigned long long)(expect.k[i] & kmask),
				 (unsigned long long)(actual.k[i] & kmask));
	}
	WL_CHECK(mxcsr == mxcsr_set, "MXCSR: expected %#x, got %#x", mxcsr_set, mxcsr);
	WL_CHECK(fpucw == fpucw_set, "x87 control word: expected %#x, got %#x", fpucw_set, fpucw);
	if (use_pkru)
		WL_CHECK(pkru == pkru_set, "PKRU: expected %#x, got %#x", pkru_set, pkru);
	WL_CHECK(loops > 0, "wait loop never ran");
	wl_printf("regs: %llu loop iterations\n", (unsigned long long)loops);
	wl_finish();
}
