#include "base/result.h"

#include <cstring>

namespace ckpt {

std::string errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : fmt::format("errno {}", err);
}

std::string Error::str() const {
  if (err == 0) return msg;
  return fmt::format("{}: {} ({})", msg, errno_name(err), strerror(err));
}

}  // namespace ckpt
