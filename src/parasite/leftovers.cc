#include "parasite/leftovers.h"

#include <sys/syscall.h>

#include <algorithm>

#include "base/fs.h"
#include "parasite/parasite.h"
#include "proc/maps.h"
#include "proc/status.h"
#include "ptrace/completion.h"
#include "ptrace/remote_syscall.h"

namespace ckpt {

namespace {

// A record names fd numbers; the task may have reused one it did not hold
// any more only if the parasite closed it, and then the record says -1. The
// kind is checked all the same: only sockets and pipes are ever the parasite's.
bool parasite_kind(pid_t pid, int fd) {
  auto link = read_link(fmt::format("/proc/{}/fd/{}", pid, fd));
  return link && (link->starts_with("socket:[") || link->starts_with("pipe:["));
}

}  // namespace

Result<Leftovers> find_leftovers(Tracee& leader) {
  const pid_t pid = leader.tid();
  Leftovers left;
  uint64_t vdso = 0;
  for (const proc::MapEntry& m : TRY(proc::read_maps(pid))) {
    if (m.path == "[vdso]") vdso = m.start;
    if (!m.path.starts_with(Parasite::kMemfdPath)) continue;
    left.maps.push_back({m.start, m.end});
    if (!m.write) continue;  // the code; the data starts with the record
    abi::ParasiteRecord rec;
    TRY(leader.read_mem(m.start, &rec, sizeof rec));
    if (rec.version != abi::kParasiteAbiVersion) continue;  // not written yet, or another ckpt's
    for (int fd : parasite_fds(rec))
      if (parasite_kind(pid, fd)) left.fds.push_back(fd);
  }
  // Its memfd, if ckpt died between creating and closing it.
  for (int fd : TRY(proc::list_numeric_dir(fmt::format("/proc/{}/fd", pid)))) {
    auto link = read_link(fmt::format("/proc/{}/fd/{}", pid, fd));
    if (link && link->starts_with(Parasite::kMemfdPath)) left.fds.push_back(fd);
  }
  std::ranges::sort(left.fds);
  left.fds.erase(std::ranges::unique(left.fds).begin(), left.fds.end());
  if (!left.empty()) {
    if (!vdso) return error(EOPNOTSUPP, "task {}: no [vdso] to take a killed ckpt's parasite out with", pid);
    left.syscall_insn = TRY(find_vdso_syscall(vdso));
  }
  return left;
}

Result<void> remove_leftovers(std::span<Tracee> threads, const Leftovers& left) {
  for (Tracee& t : threads) {
    const uint64_t rip = TRY(t.regs()).rip;
    for (auto [start, end] : left.maps)
      if (rip >= start && rip < end)
        return error(EBUSY, "thread {} is still on its way out of the parasite of a ckpt that was killed; "
                     "dump again", t.tid());
  }
  Tracee& leader = threads[0];
  RemoteSyscalls rs = TRY(RemoteSyscalls::begin(leader, left.syscall_insn));
  for (int fd : left.fds) TRY(rs.must("close of a stale parasite's fd", SYS_close, {static_cast<uint64_t>(fd)}));
  for (auto [start, end] : left.maps) TRY(rs.must("munmap of a stale parasite", SYS_munmap, {start, end - start}));
  TRY(rs.end());
  // Its ckpt armed a breakpoint on it (where breakpoints work at all).
  if (!left.maps.empty()) (void)disarm_breakpoint(leader);
  return {};
}

}  // namespace ckpt
