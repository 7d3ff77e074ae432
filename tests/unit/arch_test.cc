// x86_64 register rules (regs.h) and the rt_sigframe that rt_sigreturn
// consumes (sigframe.h). Offsets are written out here from the kernel's uapi
// headers (asm/sigcontext.h, asm/ucontext.h, asm/sigframe.h), independently
// of the structs in sigframe.cc, so that a layout slip there shows up.
#include <cpuid.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "arch/x86_64/cpu_features.h"
#include "arch/x86_64/cpu_now.h"
#include "arch/x86_64/regs.h"
#include "arch/x86_64/sigframe.h"
#include "arch/x86_64/xsave.h"
#include "ckpt.pb.h"
#include "image/schema.h"

namespace ckpt::arch {

// A parameter as gtest prints it (else "4-byte object <...>").
void PrintTo(Restart how, std::ostream* os) { *os << (how == Restart::InPlace ? "InPlace" : "Reexecute"); }

namespace {

// Every register distinct, so that a swapped pair shows.
Regs distinct_regs() {
  Regs r;
  auto* w = reinterpret_cast<unsigned long long*>(&r);
  static_assert(sizeof(Regs) % sizeof(unsigned long long) == 0);
  for (size_t i = 0; i < sizeof(Regs) / sizeof(unsigned long long); i++) w[i] = 0x1111111100000000ull * (i + 1) + i * 0x10 + 1;
  return r;
}

std::string show(const Regs& r) {
  return fmt::format("rax={:#x} orig_rax={:#x} rip={:#x} rdi={:#x} rsi={:#x} rdx={:#x} r10={:#x} r8={:#x} r9={:#x}",
                     r.rax, r.orig_rax, r.rip, r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9);
}

// ---------------------------------------------------------------------------
// rewind_restartable_syscall

struct RewindCase {
  const char* name;
  long orig_rax, rax;
  bool changed;
  long want_in_place;   // rax when changed, Restart::InPlace
  long want_reexecute;  // rax when changed, Restart::Reexecute
};
void PrintTo(const RewindCase& c, std::ostream* os) { *os << c.name; }

constexpr long kNrRead = 0, kNrPoll = 7, kNrNanosleep = 35, kNrWait4 = 61, kNrFutex = 202;

class Rewind : public testing::TestWithParam<std::tuple<RewindCase, Restart>> {};

TEST_P(Rewind, AsTheKernelWithoutAHandler) {
  const auto& [tc, how] = GetParam();
  Regs r = distinct_regs();
  r.orig_rax = static_cast<unsigned long long>(tc.orig_rax);
  r.rax = static_cast<unsigned long long>(tc.rax);
  r.rip = 0x401002;
  const Regs before = r;

  EXPECT_EQ(rewind_restartable_syscall(r, how), tc.changed);
  Regs want = before;
  if (tc.changed) {
    want.rax = static_cast<unsigned long long>(how == Restart::InPlace ? tc.want_in_place : tc.want_reexecute);
    want.rip = 0x401000;  // back onto the 2-byte syscall instruction
  }
  EXPECT_EQ(show(r), show(want));
  EXPECT_EQ(std::memcmp(&r, &want, sizeof r), 0) << "another register changed";
}

INSTANTIATE_TEST_SUITE_P(
    Arch, Rewind,
    testing::Combine(
        testing::Values(
            // include/linux/errno.h. Without a handler the kernel re-enters the
            // same syscall; ERESTART_RESTARTBLOCK goes through restart_syscall
            // (219) in the same task, or re-runs the original syscall in a
            // restored one, which has no restart block.
            RewindCase{"ERestartSys", kNrRead, -512, true, kNrRead, kNrRead},
            RewindCase{"ERestartNoIntr", kNrNanosleep, -513, true, kNrNanosleep, kNrNanosleep},
            RewindCase{"ERestartNoHand", kNrPoll, -514, true, kNrPoll, kNrPoll},
            RewindCase{"ERestartRestartBlock", kNrNanosleep, -516, true, kNrRestartSyscall, kNrNanosleep},
            RewindCase{"ERestartRestartBlockPoll", kNrPoll, -516, true, kNrRestartSyscall, kNrPoll},
            RewindCase{"ERestartSysFutex", kNrFutex, -512, true, kNrFutex, kNrFutex},
            RewindCase{"ERestartSysWait4", kNrWait4, -512, true, kNrWait4, kNrWait4},
            // Not restart codes: the result stands.
            RewindCase{"EIntr", kNrRead, -4, false, 0, 0},
            RewindCase{"EAgain", kNrRead, -11, false, 0, 0},
            RewindCase{"ENoIoctlCmd515", kNrRead, -515, false, 0, 0},
            RewindCase{"EProbeDefer517", kNrRead, -517, false, 0, 0},
            RewindCase{"Success", kNrRead, 0, false, 0, 0},
            RewindCase{"PositiveResult", kNrRead, 512, false, 0, 0},
            RewindCase{"LargePositive", kNrRead, 0x7fff12345000, false, 0, 0},
            // Not in a syscall at all (orig_rax -1): rax is just a register.
            RewindCase{"NotInSyscallErestartSys", -1, -512, false, 0, 0},
            RewindCase{"NotInSyscallErestartBlock", -1, -516, false, 0, 0},
            RewindCase{"NotInSyscallEintr", -1, -4, false, 0, 0}),
        testing::Values(Restart::InPlace, Restart::Reexecute)),
    [](const testing::TestParamInfo<std::tuple<RewindCase, Restart>>& i) {
      return fmt::format("{}_{}", std::get<0>(i.param).name, testing::PrintToString(std::get<1>(i.param)));
    });

// Rewinding is idempotent: once rax holds a syscall number, a second call
// leaves the registers alone.
TEST(RewindOnce, SecondCallIsNoOp) {
  for (Restart how : {Restart::InPlace, Restart::Reexecute}) {
    Regs r = distinct_regs();
    r.orig_rax = kNrNanosleep;
    r.rax = static_cast<unsigned long long>(-516L);
    r.rip = 0x401002;
    ASSERT_TRUE(rewind_restartable_syscall(r, how));
    const Regs once = r;
    EXPECT_FALSE(rewind_restartable_syscall(r, how));
    EXPECT_EQ(std::memcmp(&r, &once, sizeof r), 0);
  }
}

// ---------------------------------------------------------------------------
// setup_syscall

struct SetupCase {
  const char* name;
  long nr;
  std::vector<uint64_t> args;
};
void PrintTo(const SetupCase& c, std::ostream* os) { *os << c.name; }

class SetupSyscall : public testing::TestWithParam<SetupCase> {};

TEST_P(SetupSyscall, SyscallAbi) {
  const SetupCase& tc = GetParam();
  Regs r = distinct_regs();
  const Regs before = r;
  setup_syscall(r, 0x7f0000001000, tc.nr, tc.args);

  EXPECT_EQ(r.rip, 0x7f0000001000u);
  EXPECT_EQ(r.rax, static_cast<unsigned long long>(tc.nr));
  EXPECT_EQ(r.orig_rax, ~0ull);
  EXPECT_EQ(syscall_nr(r), -1);
  auto arg = [&](size_t i) { return i < tc.args.size() ? tc.args[i] : 0; };
  EXPECT_EQ(r.rdi, arg(0));
  EXPECT_EQ(r.rsi, arg(1));
  EXPECT_EQ(r.rdx, arg(2));
  EXPECT_EQ(r.r10, arg(3));  // not rcx: the syscall instruction clobbers rcx
  EXPECT_EQ(r.r8, arg(4));
  EXPECT_EQ(r.r9, arg(5));
  // Nothing else is touched.
  Regs rest = r, rest_before = before;
  for (Regs* x : {&rest, &rest_before}) x->rip = x->rax = x->orig_rax = x->rdi = x->rsi = x->rdx = x->r10 = x->r8 = x->r9 = 0;
  EXPECT_EQ(std::memcmp(&rest, &rest_before, sizeof rest), 0);
  EXPECT_EQ(r.rcx, before.rcx);
  EXPECT_EQ(r.r11, before.r11);
  EXPECT_EQ(r.rsp, before.rsp);

  // After the syscall the kernel's result is read from rax.
  r.rax = static_cast<unsigned long long>(-22L);
  EXPECT_EQ(syscall_result(r), -22);
  // And the kernel's restart logic leaves these registers alone.
  r.rax = static_cast<unsigned long long>(-512L);
  EXPECT_FALSE(rewind_restartable_syscall(r, Restart::InPlace));
}

INSTANTIATE_TEST_SUITE_P(
    Arch, SetupSyscall,
    testing::Values(SetupCase{"NoArgs", 39, {}},                                // getpid
                    SetupCase{"OneArg", 60, {7}},                               // exit(7)
                    SetupCase{"ThreeArgs", 1, {1, 0x7ffc0000, 12}},             // write
                    SetupCase{"SixArgs", 9, {0, 0x21000, 3, 0x22, ~0ull, 0}},    // mmap
                    SetupCase{"SixDistinct", 25, {0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6}}),
    [](const testing::TestParamInfo<SetupCase>& i) { return i.param.name; });

// ---------------------------------------------------------------------------
// to_image / from_image

TEST(RegsImage, RoundTripEveryField) {
  const Regs r = distinct_regs();
  img::GpRegs g;
  to_image(r, &g);
  // Through the wire format too, as a dump and a restore would.
  img::GpRegs parsed;
  ASSERT_TRUE(parsed.ParseFromString(g.SerializeAsString()));
  const Regs back = from_image(parsed);
  EXPECT_EQ(std::memcmp(&r, &back, sizeof r), 0) << show(r) << "\n" << show(back);
}

TEST(RegsImage, FieldsByName) {
  const Regs r = distinct_regs();
  img::GpRegs g;
  to_image(r, &g);
  EXPECT_EQ(g.rip(), r.rip);
  EXPECT_EQ(g.rsp(), r.rsp);
  EXPECT_EQ(g.rax(), r.rax);
  EXPECT_EQ(g.orig_rax(), r.orig_rax);
  EXPECT_EQ(g.r8(), r.r8);
  EXPECT_EQ(g.r15(), r.r15);
  EXPECT_EQ(g.eflags(), r.eflags);
  EXPECT_EQ(g.cs(), r.cs);
  EXPECT_EQ(g.ss(), r.ss);
  EXPECT_EQ(g.fs_base(), r.fs_base);
  EXPECT_EQ(g.gs_base(), r.gs_base);
  EXPECT_EQ(g.ds(), r.ds);
  EXPECT_EQ(g.gs(), r.gs);
  // One image field per user_regs_struct word.
  auto schema = image::Schema::load();
  ASSERT_TRUE(schema) << schema.error().str();
  auto full = (*schema)->reflect(g);
  ASSERT_TRUE(full) << full.error().str();
  EXPECT_EQ(static_cast<size_t>((*full)->GetDescriptor()->field_count()), sizeof(Regs) / 8);
}

TEST(RegsImage, AllOnesSurvive) {
  Regs r;
  std::memset(&r, 0xff, sizeof r);
  img::GpRegs g;
  to_image(r, &g);
  const Regs back = from_image(g);
  EXPECT_EQ(std::memcmp(&r, &back, sizeof r), 0);
}

TEST(RegsImage, EmptyImageIsZeroRegs) {
  const Regs back = from_image(img::GpRegs{});
  Regs zero;
  std::memset(&zero, 0, sizeof zero);
  EXPECT_EQ(std::memcmp(&back, &zero, sizeof zero), 0);
}

// ---------------------------------------------------------------------------
// build_rt_sigframe

// x86_64 uapi offsets, from the start of the frame (pretcode at 0).
constexpr size_t kUc = 8;                         // struct ucontext
constexpr size_t kUcFlags = kUc + 0, kUcLink = kUc + 8;
constexpr size_t kUcStackSp = kUc + 16, kUcStackFlags = kUc + 24, kUcStackSize = kUc + 32;
constexpr size_t kSc = kUc + 40;                  // struct sigcontext uc_mcontext
constexpr size_t kScR8 = kSc + 0, kScR9 = kSc + 8, kScR10 = kSc + 16, kScR11 = kSc + 24, kScR12 = kSc + 32,
                 kScR13 = kSc + 40, kScR14 = kSc + 48, kScR15 = kSc + 56, kScRdi = kSc + 64, kScRsi = kSc + 72,
                 kScRbp = kSc + 80, kScRbx = kSc + 88, kScRdx = kSc + 96, kScRax = kSc + 104, kScRcx = kSc + 112,
                 kScRsp = kSc + 120, kScRip = kSc + 128, kScEflags = kSc + 136, kScCs = kSc + 144,
                 kScGs = kSc + 146, kScFs = kSc + 148, kScSs = kSc + 150, kScErr = kSc + 152,
                 kScTrapno = kSc + 160, kScOldmask = kSc + 168, kScCr2 = kSc + 176, kScFpstate = kSc + 184,
                 kScReserved = kSc + 192;
constexpr size_t kUcSigmask = kSc + 256;          // sigset_t, 8 bytes on x86_64
constexpr size_t kSiginfo = kUcSigmask + 8;       // struct siginfo, 128 bytes
constexpr size_t kFrameEnd = kSiginfo + 128;
static_assert(kUcSigmask == 304 && kFrameEnd == 440);

// fxregs_state.sw_reserved and struct _fpx_sw_bytes.
constexpr size_t kSw = 464, kSwMagic1 = kSw, kSwExtendedSize = kSw + 4, kSwXfeatures = kSw + 8,
                 kSwXstateSize = kSw + 16;
constexpr size_t kXstateBv = 512;
constexpr uint32_t kMagic1 = 0x46505853, kMagic2 = 0x46505845;

template <typename T>
T at(const std::vector<uint8_t>& b, size_t off) {
  T v{};
  EXPECT_LE(off + sizeof v, b.size()) << "read past the frame at " << off;
  if (off + sizeof v <= b.size()) std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

// A synthetic NT_X86_XSTATE buffer: recognisable bytes everywhere, the given
// XSTATE_BV in the xsave header, xcomp_bv 0 (standard format), and the
// software bytes as ptrace leaves them (or zero).
std::vector<uint8_t> synthetic_xsave(size_t size, uint64_t xstate_bv, bool sw_from_ptrace, uint64_t sw_xfeatures = 0) {
  std::vector<uint8_t> x(size);
  for (size_t i = 0; i < size; i++) x[i] = static_cast<uint8_t>(i * 13 + 5);
  std::memset(x.data() + kSw, 0, 48);
  std::memset(x.data() + kXstateBv, 0, 64);
  std::memcpy(x.data() + kXstateBv, &xstate_bv, 8);
  if (sw_from_ptrace) {
    uint32_t m1 = kMagic1, ext = static_cast<uint32_t>(size + 4), xsz = static_cast<uint32_t>(size);
    std::memcpy(x.data() + kSwMagic1, &m1, 4);
    std::memcpy(x.data() + kSwExtendedSize, &ext, 4);
    std::memcpy(x.data() + kSwXfeatures, &sw_xfeatures, 8);
    std::memcpy(x.data() + kSwXstateSize, &xsz, 4);
  }
  return x;
}

uint32_t cpuid_xstate_end(int feature) {
  unsigned size, offset, ecx, edx;
  __cpuid_count(0xd, feature, size, offset, ecx, edx);
  return offset + size;
}

TEST(Sigframe, RspOffsetIsTheUcontext) { EXPECT_EQ(rt_sigframe_rsp_offset(), kUc); }

TEST(Sigframe, MisalignedAddressIsAnError) {
  const Regs r = distinct_regs();
  const auto x = synthetic_xsave(2816, 0x3, false);
  for (uint64_t a : {0x7ffd0001ull, 0x7ffd0008ull, 0x7ffd000cull, 0x7ffd0018ull}) {
    auto f = build_rt_sigframe(a, r, x, 0, AltStackState{});
    ASSERT_FALSE(f) << fmt::format("{:#x} accepted", a);
    EXPECT_NE(f.error().msg.find(fmt::format("{:#x}", a)), std::string::npos) << f.error().msg;
    EXPECT_NE(f.error().msg.find("aligned"), std::string::npos) << f.error().msg;
  }
}

TEST(Sigframe, TooSmallXsaveIsAnError) {
  const Regs r = distinct_regs();
  for (size_t n : {0u, 512u, 575u}) {
    auto f = build_rt_sigframe(0x7ffd0000, r, std::vector<uint8_t>(n), 0, AltStackState{});
    ASSERT_FALSE(f) << n << " bytes accepted";
    EXPECT_NE(f.error().msg.find("too small"), std::string::npos) << f.error().msg;
  }
}

struct FrameCase {
  const char* name;
  uint64_t at;
  size_t xsave_size;
  uint64_t xstate_bv;
  bool sw_from_ptrace;
  uint64_t sw_xfeatures;
};
void PrintTo(const FrameCase& c, std::ostream* os) { *os << c.name; }

class SigframeLayout : public testing::TestWithParam<FrameCase> {};

TEST_P(SigframeLayout, MatchesKernelUapi) {
  const FrameCase& tc = GetParam();
  const Regs r = distinct_regs();
  const auto x = synthetic_xsave(tc.xsave_size, tc.xstate_bv, tc.sw_from_ptrace, tc.sw_xfeatures);
  const uint64_t sigmask = 0x8000000000010203ull;
  const AltStackState ss{0x7f00deadb000, 0, 0x8000};
  auto built = build_rt_sigframe(tc.at, r, x, sigmask, ss);
  ASSERT_TRUE(built) << built.error().str();
  const std::vector<uint8_t>& f = *built;
  ASSERT_GE(f.size(), kFrameEnd);

  // ucontext header
  EXPECT_EQ(at<uint64_t>(f, kUcFlags), 0x7u) << "UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS";
  EXPECT_EQ(at<uint64_t>(f, kUcLink), 0u);
  EXPECT_EQ(at<uint64_t>(f, kUcStackSp), ss.sp);
  EXPECT_EQ(at<int32_t>(f, kUcStackFlags), ss.flags);
  EXPECT_EQ(at<uint64_t>(f, kUcStackSize), ss.size);

  // sigcontext
  EXPECT_EQ(at<uint64_t>(f, kScR8), r.r8);
  EXPECT_EQ(at<uint64_t>(f, kScR9), r.r9);
  EXPECT_EQ(at<uint64_t>(f, kScR10), r.r10);
  EXPECT_EQ(at<uint64_t>(f, kScR11), r.r11);
  EXPECT_EQ(at<uint64_t>(f, kScR12), r.r12);
  EXPECT_EQ(at<uint64_t>(f, kScR13), r.r13);
  EXPECT_EQ(at<uint64_t>(f, kScR14), r.r14);
  EXPECT_EQ(at<uint64_t>(f, kScR15), r.r15);
  EXPECT_EQ(at<uint64_t>(f, kScRdi), r.rdi);
  EXPECT_EQ(at<uint64_t>(f, kScRsi), r.rsi);
  EXPECT_EQ(at<uint64_t>(f, kScRbp), r.rbp);
  EXPECT_EQ(at<uint64_t>(f, kScRbx), r.rbx);
  EXPECT_EQ(at<uint64_t>(f, kScRdx), r.rdx);
  EXPECT_EQ(at<uint64_t>(f, kScRax), r.rax);
  EXPECT_EQ(at<uint64_t>(f, kScRcx), r.rcx);
  EXPECT_EQ(at<uint64_t>(f, kScRsp), r.rsp);
  EXPECT_EQ(at<uint64_t>(f, kScRip), r.rip);
  EXPECT_EQ(at<uint64_t>(f, kScEflags), r.eflags);
  EXPECT_EQ(at<uint16_t>(f, kScCs), static_cast<uint16_t>(r.cs));
  EXPECT_EQ(at<uint16_t>(f, kScSs), static_cast<uint16_t>(r.ss));
  EXPECT_EQ(at<uint16_t>(f, kScGs), 0u);
  EXPECT_EQ(at<uint16_t>(f, kScFs), 0u);
  EXPECT_EQ(at<uint64_t>(f, kScErr), 0u);
  EXPECT_EQ(at<uint64_t>(f, kScTrapno), 0u);
  EXPECT_EQ(at<uint64_t>(f, kScOldmask), 0u);
  EXPECT_EQ(at<uint64_t>(f, kScCr2), 0u);
  for (size_t i = 0; i < 8; i++) EXPECT_EQ(at<uint64_t>(f, kScReserved + 8 * i), 0u);
  EXPECT_EQ(at<uint64_t>(f, kUcSigmask), sigmask);
  for (size_t i = 0; i < 128; i++) ASSERT_EQ(f[kSiginfo + i], 0) << "siginfo byte " << i;
  EXPECT_EQ(at<uint64_t>(f, 0), 0u) << "pretcode";

  // fpstate: a task address, 64-byte aligned, after the frame, inside the buffer.
  const uint64_t fp = at<uint64_t>(f, kScFpstate);
  EXPECT_EQ(fp % 64, 0u) << fmt::format("{:#x}", fp);
  ASSERT_GE(fp, tc.at + kFrameEnd);
  EXPECT_LT(fp, tc.at + kFrameEnd + 64);
  const size_t off = fp - tc.at;
  ASSERT_LE(off + 512 + 64, f.size());

  // The legacy area and the xsave header/components are the dumped bytes.
  EXPECT_EQ(std::memcmp(f.data() + off, x.data(), kSw), 0) << "legacy fxsave area changed";
  EXPECT_EQ(std::memcmp(f.data() + off + 512, x.data() + 512, 64), 0) << "xsave header changed";

  // Software-reserved bytes and the two magics.
  EXPECT_EQ(at<uint32_t>(f, off + kSwMagic1), kMagic1);
  const uint32_t xstate_size = at<uint32_t>(f, off + kSwXstateSize);
  EXPECT_GE(xstate_size, 512u + 64u);
  EXPECT_LE(xstate_size, tc.xsave_size);
  EXPECT_EQ(at<uint32_t>(f, off + kSwExtendedSize), xstate_size + 4);
  ASSERT_LE(off + xstate_size + 4, f.size()) << "magic2 past the end of the frame";
  EXPECT_EQ(at<uint32_t>(f, off + xstate_size), kMagic2);
  EXPECT_EQ(std::memcmp(f.data() + off + 512, x.data() + 512, xstate_size - 512), 0) << "xstate components changed";

  const uint64_t xfeatures = at<uint64_t>(f, off + kSwXfeatures);
  EXPECT_EQ(xfeatures & 0x3, 0x3u) << "x87 and SSE always";
  EXPECT_EQ(xfeatures & tc.xstate_bv, tc.xstate_bv) << fmt::format("{:#x}", xfeatures);
  if (!(tc.xstate_bv & (1ull << 18))) {
    EXPECT_EQ(xfeatures & (1ull << 18), 0u) << "AMX tile data without use";
  }

  // The xstate size covers every feature in xfeatures the CPU knows, up to
  // what the buffer holds.
  uint32_t want = 576;
  for (int i = 2; i < 63; i++)
    if (xfeatures & (1ull << i)) want = std::max(want, cpuid_xstate_end(i));
  want = std::min<uint32_t>(want, static_cast<uint32_t>(tc.xsave_size));
  EXPECT_EQ(xstate_size, want);
}

INSTANTIATE_TEST_SUITE_P(
    Arch, SigframeLayout,
    testing::Values(
        FrameCase{"LegacyOnly", 0x7ffd0000, 2816, 0x3, false, 0},
        FrameCase{"LegacyOnlyAt16", 0x7ffd0010, 2816, 0x3, false, 0},
        FrameCase{"LegacyOnlyAt32", 0x7ffd0020, 2816, 0x3, false, 0},
        FrameCase{"LegacyOnlyAt48", 0x7ffd0030, 2816, 0x3, false, 0},
        FrameCase{"Avx", 0x7ffd0040, 2816, 0x7, false, 0},
        FrameCase{"AvxFromPtrace", 0x7ffd0050, 2816, 0x7, true, 0x2e7},
        FrameCase{"Avx512FromPtrace", 0x7ffd1230, 2816, 0xe7, true, 0x2e7},
        FrameCase{"LargeBuffer", 0x7ffd0000, 4096, 0x7, true, 0x2e7},
        FrameCase{"MinimalBuffer", 0x7ffd0000, 576, 0x7, false, 0},
        // ptrace reports AMX in the task's features, but the task never used
        // the tiles: rt_sigreturn would refuse a frame claiming them.
        FrameCase{"AmxUnused", 0x7ffd0000, 11008, 0x7, true, 0x602e7},
        FrameCase{"AmxUsed", 0x7ffd0000, 11008, 0x40007, true, 0x602e7}),
    [](const testing::TestParamInfo<FrameCase>& i) { return i.param.name; });

// The legacy-only case has a size that does not depend on the CPU: 512 bytes
// of fxsave plus the 64-byte xsave header.
TEST(Sigframe, LegacyOnlyXstateSizeIs576) {
  const auto x = synthetic_xsave(2816, 0x3, false);
  auto f = build_rt_sigframe(0x7ffd0000, distinct_regs(), x, 0, AltStackState{});
  ASSERT_TRUE(f) << f.error().str();
  const uint64_t fp = at<uint64_t>(*f, kScFpstate);
  const size_t off = fp - 0x7ffd0000;
  EXPECT_EQ(at<uint32_t>(*f, off + kSwXstateSize), 576u);
  EXPECT_EQ(at<uint32_t>(*f, off + kSwExtendedSize), 580u);
  EXPECT_EQ(at<uint32_t>(*f, off + 576), kMagic2);
  EXPECT_EQ(at<uint64_t>(*f, off + kSwXfeatures), 0x3u);
}

// Default altstack: SS_DISABLE.
TEST(Sigframe, DefaultAltStackDisabled) {
  auto f = build_rt_sigframe(0x7ffd0000, distinct_regs(), synthetic_xsave(2816, 0x3, false), 0, AltStackState{});
  ASSERT_TRUE(f) << f.error().str();
  EXPECT_EQ(at<int32_t>(*f, kUcStackFlags), 2);  // SS_DISABLE
  EXPECT_EQ(at<uint64_t>(*f, kUcStackSp), 0u);
  EXPECT_EQ(at<uint64_t>(*f, kUcStackSize), 0u);
}

}  // namespace
}  // namespace ckpt::arch

// What restore names when the dumping CPU had more: only instruction-set
// bits count (not e.g. the hypervisor bit, CPUID.1:ECX[31]), and xsave
// components in use that this kernel didn't enable.
TEST(CpuFeatures, MissingNamesOnlyInstructionSetBitsAndComponents) {
  ckpt::arch::CpuFeatures have, want;
  have.xcr0 = want.xcr0 = 0x7;                 // x87, sse, avx
  want.cpuid[0] = (1u << 28) | (1u << 31);     // avx, hypervisor
  want.cpuid[2] = 1u << 16;                    // avx512f
  have.cpuid[0] = 1u << 28;
  EXPECT_EQ(ckpt::arch::missing_cpu_features(want, 0x3, have), std::vector<std::string>{"avx512f"});
  EXPECT_EQ(ckpt::arch::missing_cpu_features(want, 0x3 | (1u << 18), have),
            (std::vector<std::string>{"avx512f", "xsave:amx_tiledata"}));
  EXPECT_TRUE(ckpt::arch::missing_cpu_features(have, 0x7, have).empty());
  // This machine runs what it dumps.
  const auto here = ckpt::arch::host_cpu_features();
  EXPECT_TRUE(ckpt::arch::missing_cpu_features(here, here.xcr0, here).empty());
  EXPECT_NE(here.cpuid[1] & (1u << 26), 0u) << "x86-64 has sse2";
}

// The words come from glibc's record of the CPUID leaves: each must be what
// its own CPUID says here and now.
TEST(CpuFeatures, EachWordIsItsLeafsRegister) {
  const auto f = ckpt::arch::host_cpu_features();
  unsigned a, b, c, d;
  __cpuid_count(1, 0, a, b, c, d);
  EXPECT_EQ(f.cpuid[0], c);
  EXPECT_EQ(f.cpuid[1], d);
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    EXPECT_EQ(f.cpuid[2], b);
    EXPECT_EQ(f.cpuid[3], c);
    EXPECT_EQ(f.cpuid[4], d);
    __cpuid_count(7, 1, a, b, c, d);
    EXPECT_EQ(f.cpuid[5], a);
  }
  if (__get_cpuid_max(0, nullptr) >= 0xd) {
    __cpuid_count(0xd, 1, a, b, c, d);
    EXPECT_EQ(f.cpuid[6], a);
  }
  __cpuid_count(1, 0, a, b, c, d);
  EXPECT_EQ(f.xcr0 != 0, (c & bit_OSXSAVE) != 0);
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000001u) {
    __cpuid_count(0x80000001u, 0, a, b, c, d);
    EXPECT_EQ(f.cpuid[7], c);
    EXPECT_EQ(f.cpuid[8], d);
  }
}

// The layout is read only for the components XCR0 enables: their ends are
// CPUID's, and together they fill what the regset holds. Without XSAVE
// (OSXSAVE clear), only the legacy area and its header count.
TEST(Xsave, LayoutOfTheEnabledComponents) {
  const auto f = ckpt::arch::host_cpu_features();
  if (!f.xcr0) {
    EXPECT_EQ(ckpt::arch::xsave_regset_size(), 0u);
    EXPECT_EQ(ckpt::arch::xsave_size_for(~uint64_t{0}), ckpt::arch::kXsaveMinSize);
    return;
  }
  unsigned a, b, c, d;
  __cpuid_count(0xd, 0, a, b, c, d);
  EXPECT_EQ(ckpt::arch::xsave_regset_size(), b);
  EXPECT_EQ(ckpt::arch::xsave_size_for(f.xcr0), b);
  EXPECT_EQ(ckpt::arch::xsave_size_for(~uint64_t{0}), b) << "components XCR0 lacks count for nothing";
  std::vector<size_t> ends(63, 0);
  for (int i = 2; i < 63; i++) {
    if (!(f.xcr0 >> i & 1)) continue;
    __cpuid_count(0xd, i, a, b, c, d);
    ends[i] = std::max<size_t>(ckpt::arch::kXsaveMinSize, a + b);
    EXPECT_EQ(ckpt::arch::xsave_size_for(uint64_t{1} << i), ends[i]) << "component " << i;
  }
  // All but one: the end of the last of the others (each component's own
  // sub-leaf), not XCR0's whole size (sub-leaf 0).
  for (int i = 2; i < 63; i++) {
    if (!(f.xcr0 >> i & 1)) continue;
    size_t want = ckpt::arch::kXsaveMinSize;
    for (int j = 2; j < 63; j++)
      if (j != i) want = std::max(want, ends[j]);
    EXPECT_EQ(ckpt::arch::xsave_size_for(f.xcr0 & ~(uint64_t{1} << i)), want) << "all but component " << i;
  }
}

// The blobs' word for the CPU they end on (a breakpoint's disarm is done
// from there): on each CPU this thread may use, it says that CPU.
TEST(CpuNow, SaysTheCpuThisThreadIsPinnedTo) {
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (!CPU_ISSET(c, &mine)) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(c, &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    EXPECT_EQ(ckpt::arch::cpu_now(), static_cast<uint32_t>(c));
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof mine, &mine), 0);
}
