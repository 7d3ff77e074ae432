// CHECK: a broken invariant of our own (never something the user or the kernel
// can cause: those are Results). Stays on in release builds.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#define CHECK(cond, ...)                                                          \
  do {                                                                            \
    if (!(cond)) [[unlikely]] {                                                   \
      std::fprintf(stderr, "ckpt: %s:%d: CHECK(%s) failed: %s\n", __FILE__, __LINE__, \
                   #cond, fmt::format("" __VA_ARGS__).c_str());                   \
      std::abort();                                                               \
    }                                                                             \
  } while (0)
