#include "ptrace/remote_syscall.h"

#include <elf.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <string_view>

#include "arch/x86_64/page.h"
#include "arch/x86_64/sigframe.h"
#include "proc/maps.h"

namespace ckpt {

namespace {

constexpr uint64_t kRedZone = 128;  // the x86_64 ABI's: the thread's own, below rsp
constexpr uint64_t kScratch = arch::kPageSize;
constexpr uint64_t kFrameAlign = 64;  // the xsave area's

Result<long> run_until_exit(Tracee& t, long nr) {
  for (const char* phase : {"entry", "exit"}) {
    TRY(t.resume_syscall());
    Stop s = TRY(t.wait_past_sigstop(true));
    if (!s.syscall_stop())
      return error(s.gone() ? ESRCH : EINTR, "task {} {} instead of reaching syscall {} {}", t.tid(), s.describe(),
                   nr, phase);
  }
  return arch::syscall_result(TRY(t.regs()));
}

// Address of a syscall instruction in the task's [vdso]: the vDSO is the
// same kernel image in ckpt and in the task, so ckpt finds the bytes in its
// own copy and adds the task's vDSO base.
Result<RemoteAddr> find_vdso_syscall(RemoteAddr task_vdso_start) {
  auto* ehdr = reinterpret_cast<const Elf64_Ehdr*>(getauxval(AT_SYSINFO_EHDR));
  if (!ehdr) return fail("ckpt itself has no vDSO to find a syscall instruction in");
  // Scan the executable segment of our own vDSO for the bytes 0f 05.
  auto* phdr = reinterpret_cast<const Elf64_Phdr*>(reinterpret_cast<const char*>(ehdr) + ehdr->e_phoff);
  for (int i = 0; i < ehdr->e_phnum; i++) {
    if (phdr[i].p_type != PT_LOAD || !(phdr[i].p_flags & PF_X)) continue;
    auto* p = reinterpret_cast<const uint8_t*>(ehdr) + phdr[i].p_offset;
    for (uint64_t off = 0; off + 1 < phdr[i].p_filesz; off++)
      if (p[off] == 0x0f && p[off + 1] == 0x05) return task_vdso_start + (phdr[i].p_offset + off);
  }
  return fail("no syscall instruction in the vDSO");
}

constexpr std::array<std::span<const uint8_t>, 2> kSigreturnCode = {std::span(arch::kSigreturnCodeRax),
                                                                     std::span(arch::kSigreturnCodeEax)};

// An executable mapping of a file (libc, the program): never a memfd, such
// as the parasite's, which ckpt unmaps under the thread.
bool searchable(const proc::MapEntry& m) {
  return m.exec && m.inode != 0 && m.path.starts_with('/') && !m.path.starts_with("/memfd:");
}

std::optional<uint64_t> find_code(std::string_view bytes) {
  for (std::span<const uint8_t> code : kSigreturnCode) {
    auto at = bytes.find(std::string_view(reinterpret_cast<const char*>(code.data()), code.size()));
    if (at != std::string_view::npos) return at;
  }
  return std::nullopt;
}

bool is_sigreturn_code(Tracee& t, RemoteAddr addr) {
  uint8_t buf[sizeof arch::kSigreturnCodeRax];
  for (std::span<const uint8_t> code : kSigreturnCode)
    if (t.read_mem(addr, buf, code.size()) && std::memcmp(buf, code.data(), code.size()) == 0) return true;
  return false;
}

// Signal-restorer code in the task. First the files ckpt maps as well:
// found in ckpt's own copy, checked in the task's with one small read; else
// the task's file mappings, read.
Result<RemoteAddr> find_sigreturn_code(Tracee& t, std::span<const proc::MapEntry> task, OwnCode& own) {
  for (const proc::MapEntry& m : task) {
    if (!searchable(m)) continue;
    const auto file_off = own.sigreturn_offset(m);
    if (!file_off || *file_off < m.offset || *file_off >= m.offset + (m.end - m.start)) continue;
    const RemoteAddr addr(m.start + (*file_off - m.offset));
    if (is_sigreturn_code(t, addr)) return addr;
  }
  std::string buf;
  for (const proc::MapEntry& m : task) {
    if (!searchable(m) || !m.read) continue;
    buf.resize(m.end - m.start);
    if (!t.read_mem(RemoteAddr(m.start), buf.data(), buf.size())) continue;
    if (auto hit = find_code(buf)) return RemoteAddr(m.start + *hit);
  }
  return RemoteAddr();
}

}  // namespace

Result<OwnCode> OwnCode::read() {
  OwnCode c;
  for (proc::MapEntry& m : TRY(proc::read_maps(getpid())))
    if (m.exec && m.read && searchable(m)) c.mapped_.push_back({std::move(m)});
  return c;
}

std::optional<uint64_t> OwnCode::sigreturn_offset(const proc::MapEntry& m) {
  for (Mapped& own : mapped_) {
    const proc::MapEntry& o = own.map;
    if (o.inode != m.inode || o.dev_major != m.dev_major || o.dev_minor != m.dev_minor) continue;
    if (!own.searched) {
      if (auto hit = find_code({reinterpret_cast<const char*>(o.start), o.end - o.start})) own.file_off = o.offset + *hit;
      own.searched = true;
    }
    if (own.file_off) return own.file_off;
  }
  return std::nullopt;
}

Result<SyscallSite> find_syscall_site(Tracee& t, OwnCode& own, std::span<const proc::MapEntry> maps) {
  auto vdso = std::ranges::find(maps, std::string("[vdso]"), &proc::MapEntry::path);
  if (vdso == maps.end()) return error(EOPNOTSUPP, "task {} has no [vdso], which ckpt needs", t.tid());
  SyscallSite site;
  site.insn = TRY(find_vdso_syscall(RemoteAddr(vdso->start)));
  site.sigreturn = TRY(find_sigreturn_code(t, maps, own));
  return site;
}

Result<SyscallSite> find_syscall_site(Tracee& t) {
  OwnCode own = TRY(OwnCode::read());
  return find_syscall_site(t, own, TRY(proc::read_maps(t.tid())));
}

Result<long> run_syscall(Tracee& t, arch::Regs regs, RemoteAddr insn, long nr, std::initializer_list<uint64_t> args) {
  arch::setup_syscall(regs, insn.raw(), nr, {args.begin(), args.size()});
  TRY(t.set_regs(regs));
  return run_until_exit(t, nr);
}

Result<RemoteSyscalls> RemoteSyscalls::begin(Tracee& t, const SyscallSite& site) {
  arch::Regs saved = TRY(t.regs());
  uint64_t mask = TRY(t.blocked());
  RemoteSyscalls rs(t, site, saved, mask);
  // The way back first: once the registers point at it, a blocked mask is
  // one that rt_sigreturn undoes.
  if (site.sigreturn) TRY(rs.put_way_back());
  TRY(t.set_blocked(~0ULL));
  return rs;
}

// Writes the frame (and reserves the scratch page) below the red zone and
// points the thread at the restorer code. A stack without room for them
// leaves the scope as it was before: not kill-safe.
Result<void> RemoteSyscalls::put_way_back() {
  arch::Regs home = saved_;
  arch::rewind_restartable_syscall(home, arch::Restart::InPlace);
  std::vector<uint8_t> xsave = TRY(t_->xstate());
  // The frame's size does not depend on where it goes, as long as it is aligned.
  const auto unchanged = arch::AltStackState::unchanged();
  size_t size = TRY(arch::build_rt_sigframe(0, home, xsave, saved_mask_, unchanged)).size();
  const RemoteAddr at((saved_.rsp - kRedZone - size) & ~(kFrameAlign - 1));
  auto frame = TRY(arch::build_rt_sigframe(at.raw(), home, xsave, saved_mask_, unchanged));
  // The scratch page must be writable too: touch its lowest byte.
  const uint8_t zero = 0;
  if (!t_->write_mem(at - kScratch, &zero, 1) || !t_->write_mem(at, frame.data(), frame.size())) return {};
  scratch_ = at - kScratch;
  arch::Regs r = saved_;
  r.rip = site_.sigreturn.raw();
  r.rsp = (at + arch::rt_sigframe_rsp_offset()).raw();
  r.rax = arch::kNrRtSigreturn;
  r.orig_rax = static_cast<uint64_t>(-1);
  TRY(t_->set_regs(r));
  way_back_ = r;
  at_rest_ = true;
  return {};
}

RemoteSyscalls::~RemoteSyscalls() {
  if (active_) (void)end();  // an error path that has its own error to report; this is the best we can do
}

Result<long> RemoteSyscalls::call(long nr, std::initializer_list<uint64_t> args) {
  if (way_back_) return call_safely(nr, args);
  return run_syscall(*t_, saved_, site_.insn, nr, args);
}

// From rest (or from the previous syscall's exit stop, which returns to the
// restorer code): its rt_sigreturn's entry stop becomes our syscall.
Result<long> RemoteSyscalls::call_safely(long nr, std::initializer_list<uint64_t> args) {
  if (!at_rest_) TRY(t_->set_regs(*way_back_));  // a caller may have moved it
  at_rest_ = false;
  TRY(t_->resume_syscall());
  Stop s = TRY(t_->wait_past_sigstop(true));
  if (!s.syscall_stop())
    return error(s.gone() ? ESRCH : EINTR, "task {} {} instead of reaching syscall {} entry", t_->tid(),
                 s.describe(), nr);
  arch::Regs r = *way_back_;
  arch::setup_syscall(r, site_.sigreturn.raw(), nr, {args.begin(), args.size()});
  r.orig_rax = static_cast<uint64_t>(nr);  // what the kernel runs from an entry stop
  TRY(t_->set_regs(r));
  TRY(t_->resume_syscall());
  s = TRY(t_->wait_past_sigstop(true));
  if (!s.syscall_stop())
    return error(s.gone() ? ESRCH : EINTR, "task {} {} instead of reaching syscall {} exit", t_->tid(),
                 s.describe(), nr);
  return arch::syscall_result(TRY(t_->regs()));
}

Result<uint64_t> RemoteSyscalls::must(std::string_view what, long nr, std::initializer_list<uint64_t> args) {
  long r = TRY(call(nr, args));
  if (r < 0 && r > -4096) return error(static_cast<int>(-r), "task {}: remote {}", t_->tid(), what);
  return static_cast<uint64_t>(r);
}

Result<RemoteAddr> RemoteSyscalls::scratch() {
  if (!scratch_) {
    const uint64_t at = TRY(must("mmap of a scratch page", SYS_mmap,
                                 {0, kScratch, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                  static_cast<uint64_t>(-1), 0}));
    scratch_ = RemoteAddr(at);
    owns_scratch_ = true;
  }
  return *scratch_;
}

Result<void> RemoteSyscalls::end() {
  active_ = false;
  Result<void> unmapped;
  if (scratch_ && owns_scratch_) {
    auto r = must("munmap of the scratch page", SYS_munmap, {scratch_->raw(), kScratch});
    if (!r) unmapped = std::unexpected(r.error());
  }
  // Our syscalls left the task at a syscall-exit stop, where the kernel no
  // longer rewinds an interrupted syscall: do it ourselves (see regs.h).
  arch::Regs back = saved_;
  arch::rewind_restartable_syscall(back, arch::Restart::InPlace);
  // Mask first: until the registers are back, the way back restores it too.
  TRY(t_->set_blocked(saved_mask_));
  TRY(t_->set_regs(back));
  return unmapped;
}

}  // namespace ckpt
