// Starting code somewhere else: the two places where ckpt leaves C++ for the
// restorer blob, which need a register-exact hand-over only assembly gives,
// and the syscalls of code that runs where libc's state isn't its own.
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

// A syscall with no libc in between: no errno written, no TLS read. For a
// child that shares ckpt's memory (CLONE_VM) and so its threads' errno.
// Returns the result or the negative errno.
inline long raw_syscall(long nr, long a1 = 0, long a2 = 0, long a3 = 0) {
  long ret;
  asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3) : "rcx", "r11", "memory");
  return ret;
}

}  // namespace ckpt::arch
