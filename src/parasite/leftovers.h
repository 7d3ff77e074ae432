// What a ckpt killed in the middle of a dump leaves in the task, and taking
// it out. The task itself goes on (src/parasite/parasite.h); what stays is
// the parasite's mapping (inert: the code that could unmap it is in it) and,
// if ckpt died before the daemon started, the parasite's sockets, or, within
// its first remote syscalls, its memfd. The next dump removes them before it
// looks at the task, so that a killed ckpt costs the task nothing and the
// checkpoint holds none of it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "base/result.h"
#include "proc/fds.h"
#include "proc/maps.h"
#include "ptrace/remote_syscall.h"
#include "ptrace/tracee.h"

namespace ckpt {

struct Leftovers {
  std::vector<std::pair<uint64_t, uint64_t>> maps;  // [start, end)
  std::vector<int> fds;
  bool empty() const { return maps.empty() && fds.empty(); }
};

// From the task's mappings and open fds, read since it stopped (`maps`: its
// /proc/PID/maps; `fds`: proc::read_fd_links, or what the dump's scan of its
// fds found), and the fd record at the start of each parasite's data.
Result<Leftovers> find_leftovers(Tracee& leader, std::span<const proc::MapEntry> maps,
                                 std::span<const proc::FdLink> fds);

// Closes and unmaps them through remote syscalls in the stopped main thread;
// refuses while a thread still runs in a parasite on its way out.
Result<void> remove_leftovers(std::span<Tracee> threads, const Leftovers& left, const SyscallSite& site);

}  // namespace ckpt
