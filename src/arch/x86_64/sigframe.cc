#include "arch/x86_64/sigframe.h"

#include "arch/x86_64/xsave.h"

#include <cpuid.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace ckpt::arch {

namespace {

// Kernel uapi layouts (asm/sigcontext.h, asm/ucontext.h); glibc's differ.
struct KSigcontext {
  uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
  uint16_t cs, gs, fs, ss;
  uint64_t err, trapno, oldmask, cr2;
  uint64_t fpstate;
  uint64_t reserved1[8];
};
static_assert(sizeof(KSigcontext) == 256);

struct KStack {
  uint64_t sp;
  int32_t flags;
  int32_t pad;
  uint64_t size;
};

struct KUcontext {
  uint64_t uc_flags;
  uint64_t uc_link;
  KStack uc_stack;
  KSigcontext uc_mcontext;
  uint64_t uc_sigmask;
};

struct KRtSigframe {
  uint64_t pretcode;
  KUcontext uc;
  uint8_t info[128];
};

struct FpxSwBytes {
  uint32_t magic1;
  uint32_t extended_size;
  uint64_t xfeatures;
  uint32_t xstate_size;
  uint32_t padding[7];
};
static_assert(sizeof(FpxSwBytes) == 48);

constexpr uint32_t kFpXstateMagic1 = 0x46505853, kFpXstateMagic2 = 0x46505845;
constexpr size_t kSwBytesOffset = 464;
constexpr uint64_t kUcFpXstate = 1, kUcSigcontextSs = 2, kUcStrictRestoreSs = 4;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

constexpr int kXfeatureTileData = 18;  // AMX tiles: enabled per task on request (XFD)

}  // namespace

uint64_t rt_sigframe_rsp_offset() { return offsetof(KRtSigframe, uc); }

Result<std::vector<uint8_t>> build_rt_sigframe(uint64_t at, const Regs& r, std::span<const uint8_t> xsave,
                                               uint64_t sigmask, const AltStackState& ss) {
  if (at % 16) return fail("sigframe address {:#x} is not 16-byte aligned", at);
  if (xsave.size() < kXsaveHeaderOffset + 64) return fail("xsave area of {} bytes is too small", xsave.size());

  const uint64_t fp_at = align_up(at + sizeof(KRtSigframe), 64);
  const uint64_t fp_off = fp_at - at;
  std::vector<uint8_t> out(fp_off + xsave.size() + sizeof(uint32_t), 0);

  KRtSigframe f{};
  KUcontext& uc = f.uc;
  uc.uc_flags = kUcFpXstate | kUcSigcontextSs | kUcStrictRestoreSs;
  uc.uc_stack = {ss.sp, ss.flags, 0, ss.size};
  uc.uc_sigmask = sigmask;
  KSigcontext& sc = uc.uc_mcontext;
  sc.r8 = r.r8, sc.r9 = r.r9, sc.r10 = r.r10, sc.r11 = r.r11;
  sc.r12 = r.r12, sc.r13 = r.r13, sc.r14 = r.r14, sc.r15 = r.r15;
  sc.rdi = r.rdi, sc.rsi = r.rsi, sc.rbp = r.rbp, sc.rbx = r.rbx;
  sc.rdx = r.rdx, sc.rax = r.rax, sc.rcx = r.rcx, sc.rsp = r.rsp;
  sc.rip = r.rip, sc.eflags = r.eflags;
  sc.cs = static_cast<uint16_t>(r.cs), sc.ss = static_cast<uint16_t>(r.ss);
  sc.fpstate = fp_at;
  std::memcpy(out.data(), &f, sizeof f);

  uint8_t* fp = out.data() + fp_off;
  std::memcpy(fp, xsave.data(), xsave.size());
  // Rewrite the software-reserved bytes: they tell rt_sigreturn that a full
  // xsave image follows the legacy area, and how large it is.
  FpxSwBytes sw{};
  uint64_t xstate_bv;
  std::memcpy(&xstate_bv, fp + kXsaveHeaderOffset, sizeof xstate_bv);
  FpxSwBytes have;
  std::memcpy(&have, fp + kSwBytesOffset, sizeof have);
  sw.magic1 = kFpXstateMagic1;
  sw.xfeatures = (have.magic1 == kFpXstateMagic1 ? have.xfeatures : 0) | xstate_bv | 0x3;
  if (!(xstate_bv & (1ULL << kXfeatureTileData))) sw.xfeatures &= ~(1ULL << kXfeatureTileData);
  // rt_sigreturn takes at most the task's own xstate size, which leaves out
  // dynamically enabled features (AMX tile data) unless the task uses them;
  // ptrace hands out the machine's full size.
  sw.xstate_size = static_cast<uint32_t>(std::min(xsave_size_for(sw.xfeatures), xsave.size()));
  sw.extended_size = sw.xstate_size + sizeof(uint32_t);
  std::memcpy(fp + kSwBytesOffset, &sw, sizeof sw);
  const uint32_t magic2 = kFpXstateMagic2;
  std::memcpy(fp + sw.xstate_size, &magic2, sizeof magic2);
  return out;
}

}  // namespace ckpt::arch
