// Starting code somewhere else: the two places where ckpt leaves C++ for the
// restorer blob, which need a register-exact hand-over only assembly gives.
#pragma once

#include <cstddef>
#include <cstdint>

struct clone_args;  // <linux/sched.h>

namespace ckpt::arch {

// clone3(args, size) for a thread that starts at `entry` with `arg` as its
// first argument, on the stack `args` gives it. The child never returns here:
// it must not unwind through C++ frames that live on the parent's stack.
// Returns the child's tid, or the negative errno, in the parent.
long clone3_thread(clone_args* args, size_t size, uint64_t entry, uint64_t arg);

// Switches to the stack `stack_top` and jumps to `entry` with `arg` as its
// first argument; this stack and its frames are abandoned.
[[noreturn]] void switch_stack_and_jump(uint64_t stack_top, uint64_t entry, uint64_t arg);

}  // namespace ckpt::arch
