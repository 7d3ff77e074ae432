// System V shared memory segments at restore (dump/shmem.h): each made once,
// in ckpt, before any task exists, with the key and the id it had (the
// kernel takes the next id from /proc/sys/kernel/shm_next_id, which only a
// checkpoint-restore capable process may write), its mode, owner and
// content; every task then attaches it by id at its address (the restorer's
// attach_sysv). A segment that was destroyed (IPC_RMID while attached) is
// made, then marked destroyed again at once: ckpt holds an attach of its own
// until every task has its own, so that it lives until the tree's last
// detach, as before. The creator's uid and gid are those of the dump (made
// by a child of ckpt that takes them); left different: the creator's pid
// (ckpt's), the last pid and the times.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"

namespace ckpt::restore {

// One shmat of ckpt's own, detached when this goes.
class ShmAttach {
 public:
  ShmAttach() = default;
  explicit ShmAttach(void* at) : at_(at) {}
  ShmAttach(ShmAttach&& o) noexcept : at_(std::exchange(o.at_, nullptr)) {}
  ShmAttach& operator=(ShmAttach&& o) noexcept;
  ~ShmAttach() { reset(); }
  char* data() const { return static_cast<char*>(at_); }
  void reset();

 private:
  void* at_ = nullptr;
};

class SysvSegments {
 public:
  SysvSegments() = default;
  SysvSegments(SysvSegments&& o) noexcept;
  SysvSegments& operator=(SysvSegments&& o) noexcept;
  // Unless kept: every segment made is removed (IPC_RMID; one a task still
  // attaches goes with that task).
  ~SysvSegments();

  // Makes every System V segment of `image`. A key or an id already in use
  // is refused, naming both, before any segment is made; a failure later
  // removes those made.
  static Result<SysvSegments> create(const image::ImageDir& dir, const img::ShmemImage& image, Log& log);
  // Every task has attached its segments: ckpt's own attaches go, so that a
  // destroyed segment lives exactly as long as the tree's.
  void drop_own_attaches() { own_.clear(); }
  // The restore succeeded: the segments are the tree's.
  void keep() { made_.clear(); }

 private:
  void remove();  // what is not kept, and ckpt's attaches

  std::vector<int> made_;       // ids, removed unless kept
  std::vector<ShmAttach> own_;  // of destroyed segments
};

}  // namespace ckpt::restore
