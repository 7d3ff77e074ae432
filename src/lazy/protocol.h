// restore --lazy-pages and ckpt lazy-pages talk over one SOCK_SEQPACKET
// unix socket, DIR/lazy-pages.sock, that the daemon listens on (owner-only,
// like the images). One restore connects; on that connection:
//
//   restorer of each task -> daemon   abi::LazyUffdMsg + its userfaultfd (SCM_RIGHTS)
//   ckpt restore          -> daemon   Control: kRunning (every task runs: no
//                                     more userfaultfds) or kFailed (the tree is gone)
//   daemon                -> watcher  Report: kDone (every page is in), or
//                                     kError and why, just before it exits
//
// The watcher (restore/lazy_watcher.h) holds the connection after ckpt
// restore is gone.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <utility>
#include <vector>

#include "ckpt.pb.h"

namespace ckpt::lazy {

inline constexpr const char* kSocketName = "lazy-pages.sock";

// The socket's address through the images directory's fd: short whatever
// the directory's own path (sun_path holds 108 bytes).
inline sockaddr_un socket_address(int dirfd) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/%s", dirfd, kSocketName);
  return a;
}

struct Control {
  static constexpr uint32_t kMagic = 0x4c43544c;  // "LCTL"
  enum Kind : uint32_t { kRunning = 1, kFailed = 2 };
  uint32_t magic;
  uint32_t kind;
};

struct Report {
  static constexpr uint32_t kMagic = 0x4c525054;  // "LRPT"
  enum Kind : uint32_t { kDone = 1, kError = 2 };
  uint32_t magic;
  uint32_t kind;
  char why[504];  // kError: NUL-terminated
};

// The memory restore leaves to the daemon: private anonymous memory in
// normal pages. Not what the restorer must fill before the task runs:
// shared and file memory (other processes may see it), hugetlb (faults in
// huge pages), droppable memory, mlock'ed memory (mlock would fault it all
// in at once, before the daemon serves) and sealed memory (the kernel's
// unregistering at the end would modify a sealed VMA).
inline bool lazy_vma(const img::Vma& v) {
  return v.kind() == img::Vma::ANON_PRIVATE && v.hugetlb_page_size() == 0 && !v.droppable() && !v.locked() &&
         !v.sealed();
}

// A task's lazy VMAs, to ask whether an address lies in one.
class LazyVmas {
 public:
  explicit LazyVmas(const img::MmImage& mm) {
    for (const img::Vma& v : mm.vmas())
      if (lazy_vma(v)) ranges_.emplace_back(v.start(), v.end());  // sorted, as the VMAs are
  }
  bool contains(uint64_t addr) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                               [](uint64_t a, const std::pair<uint64_t, uint64_t>& r) { return a < r.first; });
    return it != ranges_.begin() && addr < std::prev(it)->second;
  }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};

}  // namespace ckpt::lazy
