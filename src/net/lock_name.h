// A network lock's name says who owns it: "ckpt-<pid>-<start time>" of the
// ckpt process that made it (its start time in clock ticks after boot,
// field 22 of /proc/PID/stat), so that a later ckpt can tell a lock whose
// maker is dead from one still in use, even once the pid is reused. 23
// characters at most: an iptables chain name holds 28.
//
// Header-only: verify (src/image) checks names from images with it, and the
// name goes into nft and iptables commands, so it is checked before any use.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ckpt::net {

struct LockOwner {
  pid_t pid = 0;
  uint64_t start = 0;
};

inline std::optional<LockOwner> parse_lock_name(std::string_view name) {
  if (!name.starts_with("ckpt-") || name.size() > 28) return std::nullopt;
  name.remove_prefix(5);
  auto number = [&](uint64_t& v, uint64_t max) {
    size_t i = 0;
    v = 0;
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && i < 20; i++) v = v * 10 + (name[i] - '0');
    if (i == 0 || v > max) return false;
    name.remove_prefix(i);
    return true;
  };
  uint64_t pid, start;
  if (!number(pid, 4194304) || pid == 0 || !name.starts_with('-')) return std::nullopt;
  name.remove_prefix(1);
  if (!number(start, UINT64_MAX / 10) || !name.empty()) return std::nullopt;
  return LockOwner{static_cast<pid_t>(pid), start};
}

inline std::string lock_name(const LockOwner& o) {
  return "ckpt-" + std::to_string(o.pid) + "-" + std::to_string(o.start);
}

}  // namespace ckpt::net
