// Running one step of a task's fd moves (restore/fd_moves.h plans them):
// freestanding, for the spawner, and for the tests that check a plan in a
// real fd table.
#pragma once

#include <asm/unistd.h>

#include "pie/spawn_abi.h"
#include "pie/sys.h"

namespace pie {

// <linux/fcntl.h>'s, which a test's <fcntl.h> would clash with.
inline constexpr long kFSetFd = 2, kFdCloexec = 1, kFDupFdCloexec = 1030, kOCloexec = 02000000;

struct FdOpResult {
  long err = 0;  // the failed call's negative errno, or 0
  int got = -1;  // kDupLowest: the fd it gave
  bool failed = false;
  bool closing = false;  // kDupLowest: the close after the move failed
};

// One op; `watch` follows the watched fd.
inline FdOpResult run_fd_op(const ckpt::abi::FdOp& op, int* watch) {
  using ckpt::abi::FdOp;
  FdOpResult res;
  long r = 0;
  switch (op.kind) {
    case FdOp::kCloseRange:
      r = sys(__NR_close_range, op.a, static_cast<unsigned>(op.b), 0);
      break;
    case FdOp::kSetFlags:
      r = sys(__NR_fcntl, op.a, kFSetFd, op.cloexec ? kFdCloexec : 0);
      break;
    case FdOp::kDup:
      r = sys(__NR_dup3, op.a, op.b, op.cloexec ? kOCloexec : 0);
      break;
    case FdOp::kClose:
      r = sys(__NR_close, op.a);
      break;
    case FdOp::kDupLowest:
      r = sys(__NR_fcntl, op.a, kFDupFdCloexec, 0);
      if (r >= 0) {
        res.got = static_cast<int>(r);
        // Any other number: the fd table is not the one ckpt planned.
        if (res.got != op.b) {
          res.failed = true;
          return res;
        }
        r = sys(__NR_close, op.a);
        res.closing = true;
      }
      break;
  }
  if (r < 0) {
    res.err = r;
    res.failed = true;
    return res;
  }
  if (op.watched && watch) *watch = op.b;
  return res;
}

// What a failed op was doing, in words: out.s(text), out.d(number).
template <typename Out>
void describe_fd_op(const ckpt::abi::FdOp& op, const FdOpResult& res, Out& out) {
  using ckpt::abi::FdOp;
  switch (op.kind) {
    case FdOp::kCloseRange:
      if (op.b < 0) out.s("close fds from ").d(op.a);
      else out.s("close fds ").d(op.a).s("-").d(op.b);
      return;
    case FdOp::kSetFlags:
      out.s("set the close-on-exec flag of fd ").d(op.a);
      return;
    case FdOp::kDup:
      out.s("dup fd ").d(op.a).s(" to ").d(op.b);
      return;
    case FdOp::kClose:
      out.s("close fd ").d(op.a);
      return;
    case FdOp::kDupLowest:
      if (res.closing) out.s("close fd ").d(op.a).s(" once moved to ").d(res.got);
      else if (res.got >= 0)
        out.s("move fd ").d(op.a).s(": got fd ").d(res.got).s(", planned ").d(op.b)
            .s(": the task's fd table is not the one ckpt planned");
      else out.s("move fd ").d(op.a).s(" to ").d(op.b);
      return;
  }
}

}  // namespace pie
