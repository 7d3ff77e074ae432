#include "arch/x86_64/regs.h"

#include <fmt/format.h>

#include <utility>

#include "ckpt.pb.h"

namespace ckpt::arch {

namespace {
// include/linux/errno.h: kernel-internal, never seen by user space unless a
// tracer looks at a task stopped in the middle of one.
constexpr long kERestartSys = 512, kERestartNoIntr = 513, kERestartNoHand = 514,
               kERestartRestartBlock = 516;
}  // namespace

void setup_syscall(Regs& regs, uint64_t insn, long nr, std::span<const uint64_t> args) {
  regs.rip = insn;
  regs.rax = nr;
  regs.orig_rax = static_cast<uint64_t>(-1);
  unsigned long long* slots[] = {&regs.rdi, &regs.rsi, &regs.rdx, &regs.r10, &regs.r8, &regs.r9};
  for (size_t i = 0; i < 6; i++) *slots[i] = i < args.size() ? args[i] : 0;
}

bool rewind_restartable_syscall(Regs& regs, Restart how) {
  if (static_cast<long>(regs.orig_rax) < 0) return false;
  switch (-static_cast<long>(regs.rax)) {
    case kERestartSys:
    case kERestartNoIntr:
    case kERestartNoHand:
      regs.rax = regs.orig_rax;
      break;
    case kERestartRestartBlock:
      regs.rax = how == Restart::InPlace ? kNrRestartSyscall : regs.orig_rax;
      break;
    default:
      return false;
  }
  regs.rip -= kSyscallInsnLen;
  return true;
}

std::string eflags_names(uint64_t bits) {
  static constexpr std::pair<uint64_t, const char*> kNamed[] = {
      {0x100, "TF"},    {0x3000, "IOPL"}, {0x4000, "NT"},      {0x20000, "VM"},
      {0x80000, "VIF"}, {0x100000, "VIP"}, {0x8 | 0x20 | 0x8000 | ~0x3fffffULL, "reserved"}};
  std::string out;
  for (auto [mask, name] : kNamed)
    if (bits & mask & ~kEflagsUserBits) out += out.empty() ? name : fmt::format("|{}", name);
  return out;
}

#define CKPT_REGS(X)                                                                                  \
  X(r15) X(r14) X(r13) X(r12) X(rbp) X(rbx) X(r11) X(r10) X(r9) X(r8) X(rax) X(rcx) X(rdx) X(rsi) \
  X(rdi) X(orig_rax) X(rip) X(cs) X(eflags) X(rsp) X(ss) X(fs_base) X(gs_base) X(ds) X(es) X(fs) X(gs)

void to_image(const Regs& r, img::GpRegs* out) {
#define X(f) out->set_##f(r.f);
  CKPT_REGS(X)
#undef X
}

Regs from_image(const img::GpRegs& in) {
  Regs r{};
#define X(f) r.f = in.f();
  CKPT_REGS(X)
#undef X
  return r;
}

}  // namespace ckpt::arch
