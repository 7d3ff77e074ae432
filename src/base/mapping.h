// Mapping: owns one mmap()ed range of ckpt's own memory and unmaps it once.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "arch/x86_64/page.h"
#include "base/result.h"

namespace ckpt {

// Faults in the whole pages of [p, p + n) at once (MADV_POPULATE_WRITE, Linux
// 5.14), as they are about to be written: where a first touch is dear (a
// guest with shadow page tables: ~25 us a fault) one madvise beats a fault
// a page. Best effort: without it, the writes fault as ever.
inline void prefault(void* p, size_t n) {
  constexpr int kMadvPopulateWrite = 23;  // not in this libc's headers
  const uint64_t a = arch::page_up(reinterpret_cast<uint64_t>(p));
  const uint64_t b = arch::page_down(reinterpret_cast<uint64_t>(p) + n);
  if (b > a) (void)::madvise(reinterpret_cast<void*>(a), b - a, kMadvPopulateWrite);
}

class Mapping {
 public:
  static Result<Mapping> map(size_t len, int prot, int flags, int fd = -1, off_t off = 0) {
    void* p = ::mmap(nullptr, len, prot, flags, fd, off);
    if (p == MAP_FAILED) return sys_error("mmap {} bytes", len);
    return Mapping(static_cast<char*>(p), len);
  }
  static Result<Mapping> anonymous(size_t len) {
    return map(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  }
  // Takes over a range mapped by the caller.
  static Mapping adopt(char* p, size_t len) { return Mapping(p, len); }
  Mapping() = default;
  Mapping(Mapping&& o) noexcept : p_(std::exchange(o.p_, nullptr)), len_(o.len_) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      len_ = o.len_;
    }
    return *this;
  }
  ~Mapping() { reset(); }

  char* data() const { return p_; }
  size_t size() const { return len_; }
  void reset() {
    if (p_) ::munmap(p_, len_);
    p_ = nullptr;
  }

 private:
  Mapping(char* p, size_t len) : p_(p), len_(len) {}
  char* p_ = nullptr;
  size_t len_ = 0;
};

}  // namespace ckpt
