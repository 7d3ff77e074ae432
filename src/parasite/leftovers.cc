#include "parasite/leftovers.h"

#include <sys/syscall.h>

#include <algorithm>
#include <iterator>

#include "base/fs.h"
#include "parasite/parasite.h"
#include "proc/maps.h"
#include "proc/status.h"
#include "ptrace/completion.h"
#include "ptrace/remote_syscall.h"

namespace ckpt {

Result<Leftovers> find_leftovers(Tracee& leader, std::span<const proc::MapEntry> maps,
                                 std::span<const proc::FdLink> fds) {
  Leftovers left;
  std::vector<int> recorded;
  for (const proc::MapEntry& m : maps) {
    if (!m.path.starts_with(Parasite::kMemfdPath)) continue;
    left.maps.push_back({m.start, m.end});
    if (!m.write) continue;  // the code; the data starts with the record
    abi::ParasiteRecord rec;
    TRY(leader.read_mem(RemoteAddr(m.start), &rec, sizeof rec));
    if (rec.version != abi::kParasiteAbiVersion) continue;  // not written yet, or another ckpt's
    std::ranges::copy(parasite_fds(rec), std::back_inserter(recorded));
  }
  // One pass over the fd table: the fds the records name (sockets and pipes
  // only: a number the parasite closed says -1, but the kind is checked all
  // the same), and its memfd, if ckpt died between creating and closing it.
  for (const auto& [fd, link] : fds) {
    const bool pipe_or_socket = link.starts_with("socket:[") || link.starts_with("pipe:[");
    if ((pipe_or_socket && std::ranges::find(recorded, fd) != recorded.end()) || link.starts_with(Parasite::kMemfdPath))
      left.fds.push_back(fd);
  }
  return left;
}

Result<void> remove_leftovers(std::span<Tracee> threads, const Leftovers& left, const SyscallSite& site) {
  for (Tracee& t : threads) {
    const uint64_t rip = TRY(t.regs()).rip;
    for (auto [start, end] : left.maps)
      if (rip >= start && rip < end)
        return error(EBUSY, "thread {} is still on its way out of the parasite of a ckpt that was killed; "
                     "dump again", t.tid());
  }
  Tracee& leader = threads[0];
  RemoteSyscalls rs = TRY(RemoteSyscalls::begin(leader, site));
  for (int fd : left.fds)
    TRY(rs.must(fmt::format("close of a stale parasite's fd {}", fd), SYS_close, {static_cast<uint64_t>(fd)}));
  for (auto [start, end] : left.maps)
    TRY(rs.must(fmt::format("munmap of a stale parasite at {:#x}-{:#x}", start, end), SYS_munmap, {start, end - start}));
  TRY(rs.end());
  // Its ckpt armed a breakpoint on it (where breakpoints work at all).
  if (!left.maps.empty()) TRY(disarm_breakpoint_if_supported(leader));
  return {};
}

}  // namespace ckpt
