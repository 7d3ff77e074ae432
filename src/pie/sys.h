// The blobs' syscall layer: raw x86_64 syscalls, nothing else. Returns the
// kernel's value (-errno on failure).
#pragma once

#include <stdint.h>

namespace pie {

static inline long sys6(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                        long a6 = 0) {
  long ret;
  register long r10 asm("r10") = a4;
  register long r8 asm("r8") = a5;
  register long r9 asm("r9") = a6;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}

template <typename... A>
static inline long sys(long nr, A... a) {
  return sys6(nr, (long)a...);
}

static inline bool is_err(long r) { return r < 0 && r > -4096; }

}  // namespace pie
