#include "ptrace/remote_syscall.h"

#include <elf.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <cstring>

namespace ckpt {

Result<long> run_syscall(Tracee& t, arch::Regs regs, uint64_t insn, long nr, std::initializer_list<uint64_t> args) {
  arch::setup_syscall(regs, insn, nr, {args.begin(), args.size()});
  TRY(t.set_regs(regs));
  for (const char* phase : {"entry", "exit"}) {
    TRY(t.resume_syscall());
    Stop s = TRY(t.wait_past_sigstop(true));
    if (!s.syscall_stop())
      return error(s.gone() ? ESRCH : EINTR, "task {} {} instead of reaching syscall {} {}", t.tid(), s.describe(),
                   nr, phase);
  }
  arch::Regs after = TRY(t.regs());
  return arch::syscall_result(after);
}

Result<RemoteSyscalls> RemoteSyscalls::begin(Tracee& t, uint64_t insn, std::optional<uint64_t> shared_scratch) {
  arch::Regs saved = TRY(t.regs());
  uint64_t mask = TRY(t.blocked());
  TRY(t.set_blocked(~0ULL));
  RemoteSyscalls rs(t, insn, saved, mask);
  if (shared_scratch) {
    rs.scratch_ = shared_scratch;
    rs.owns_scratch_ = false;
  }
  return rs;
}

RemoteSyscalls::~RemoteSyscalls() {
  if (active_) (void)end();
}

Result<long> RemoteSyscalls::call(long nr, std::initializer_list<uint64_t> args) {
  return run_syscall(*t_, saved_, insn_, nr, args);
}

Result<uint64_t> RemoteSyscalls::must(std::string_view what, long nr, std::initializer_list<uint64_t> args) {
  long r = TRY(call(nr, args));
  if (r < 0 && r > -4096) return error(static_cast<int>(-r), "task {}: remote {}", t_->tid(), what);
  return static_cast<uint64_t>(r);
}

Result<uint64_t> RemoteSyscalls::scratch() {
  if (!scratch_)
    scratch_ = TRY(must("mmap of a scratch page", SYS_mmap,
                        {0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0}));
  return *scratch_;
}

Result<void> RemoteSyscalls::end() {
  active_ = false;
  Result<void> unmapped;
  if (scratch_ && owns_scratch_) {
    auto r = must("munmap of the scratch page", SYS_munmap, {*scratch_, 4096});
    if (!r) unmapped = std::unexpected(r.error());
  }
  // Our syscalls left the task at a syscall-exit stop, where the kernel no
  // longer rewinds an interrupted syscall: do it ourselves (see regs.h).
  arch::Regs back = saved_;
  arch::rewind_restartable_syscall(back, arch::Restart::InPlace);
  TRY(t_->set_regs(back));
  TRY(t_->set_blocked(saved_mask_));
  return unmapped;
}

Result<uint64_t> find_vdso_syscall(uint64_t task_vdso_start) {
  auto* ehdr = reinterpret_cast<const Elf64_Ehdr*>(getauxval(AT_SYSINFO_EHDR));
  if (!ehdr) return fail("ckpt itself has no vDSO to find a syscall instruction in");
  // Scan the executable segment of our own vDSO for the bytes 0f 05.
  auto* phdr = reinterpret_cast<const Elf64_Phdr*>(reinterpret_cast<const char*>(ehdr) + ehdr->e_phoff);
  for (int i = 0; i < ehdr->e_phnum; i++) {
    if (phdr[i].p_type != PT_LOAD || !(phdr[i].p_flags & PF_X)) continue;
    auto* p = reinterpret_cast<const uint8_t*>(ehdr) + phdr[i].p_offset;
    for (uint64_t off = 0; off + 1 < phdr[i].p_filesz; off++)
      if (p[off] == 0x0f && p[off + 1] == 0x05) return task_vdso_start + phdr[i].p_offset + off;
  }
  return fail("no syscall instruction in the vDSO");
}

}  // namespace ckpt
