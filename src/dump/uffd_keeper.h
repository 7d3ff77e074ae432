// Where a pre-dump's userfaultfd lives between rounds: a keeper process.
//
// The write-protection marks last only while some process holds the fd
// (dump/uffd_tracker.h); it must not be the task (its fd table would show
// it, and restore would bring it back) and ckpt pre-dump exits. So the round
// that armed the tracking forks a keeper: a small ckpt process, outside the
// dumped tree, that holds only the fd, the images directory and a pidfd of
// the task, and serves one request on a unix socket in the images directory
// (owner-only, like the images): the next round (pre-dump --prev-images-dir
// or dump --prev-images-dir --track-mem) connects, names the pid, and gets
// the fd with SCM_RIGHTS; the keeper then removes its socket and exits. It
// also exits, dropping the tracking, when the task exits. Killing it ends
// the tracking (the kernel clears every mark): the next round then stores
// every page, with a warning.
#pragma once

#include <sys/types.h>

#include "base/result.h"
#include "base/unique_fd.h"
#include "image/image_dir.h"

namespace ckpt::dump {

inline constexpr const char* kKeeperSocket = "uffd-keeper.sock";

// Forks the keeper of `uffd` for task `pid` in `dir`; returns its pid.
Result<pid_t> start_keeper(const image::ImageDir& dir, pid_t pid, UniqueFd uffd);

// Takes the fd from the keeper in `prev` (the previous round's directory).
// ENOENT or ECONNREFUSED: there is no keeper (killed, or the task exited).
Result<UniqueFd> take_from_keeper(const image::ImageDir& prev, pid_t pid);

}  // namespace ckpt::dump
