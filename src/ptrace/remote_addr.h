// An address in a tracee's address space. ckpt never dereferences one; the
// type keeps them apart from sizes, offsets, register values and ckpt's own
// pointers, so that a length passed where an address goes (or the other way
// round) does not compile. Registers and the plain structs shared with the
// blobs hold raw values: raw() and RemoteAddr(v) mark the crossing.
#pragma once

#include <compare>
#include <cstdint>

#include "fmt/format.h"

namespace ckpt {

class RemoteAddr {
 public:
  constexpr RemoteAddr() = default;
  constexpr explicit RemoteAddr(uint64_t v) : v_(v) {}
  constexpr uint64_t raw() const { return v_; }
  constexpr explicit operator bool() const { return v_ != 0; }

  constexpr RemoteAddr operator+(uint64_t off) const { return RemoteAddr(v_ + off); }
  constexpr RemoteAddr operator-(uint64_t off) const { return RemoteAddr(v_ - off); }
  constexpr uint64_t operator-(RemoteAddr o) const { return v_ - o.v_; }
  constexpr auto operator<=>(const RemoteAddr&) const = default;

 private:
  uint64_t v_ = 0;
};

}  // namespace ckpt

// Formatted as its value, with the caller's spec ("{:#x}").
template <>
struct fmt::formatter<ckpt::RemoteAddr> : fmt::formatter<uint64_t> {
  auto format(ckpt::RemoteAddr a, format_context& ctx) const { return fmt::formatter<uint64_t>::format(a.raw(), ctx); }
};
