#include "proc/sysvipc.h"

#include <charconv>

#include "base/fs.h"

namespace ckpt::proc {

namespace {

constexpr const char* kPath = "/proc/sysvipc/shm";

// The next whitespace-separated field of `line`, as a number in `base`.
template <typename T>
bool take(std::string_view& line, T* out, int base = 10) {
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), *out, base);
  if (ec != std::errc() || (end != line.data() + line.size() && *end != ' ')) return false;
  line.remove_prefix(static_cast<size_t>(end - line.data()));
  return true;
}

}  // namespace

Result<std::vector<SysvShm>> parse_sysvipc_shm(std::string_view text) {
  std::vector<SysvShm> out;
  bool header = true;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view whole = text.substr(0, nl);
    std::string_view line = whole;
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (std::exchange(header, false) || line.find_first_not_of(' ') == std::string_view::npos) continue;
    SysvShm s;
    // key shmid perms(octal) size cpid lpid nattch uid gid cuid cgid (times, rss, swap follow)
    if (!take(line, &s.key) || !take(line, &s.shmid) || !take(line, &s.mode, 8) || !take(line, &s.size) ||
        !take(line, &s.cpid) || !take(line, &s.lpid) || !take(line, &s.nattch) || !take(line, &s.uid) ||
        !take(line, &s.gid) || !take(line, &s.cuid) || !take(line, &s.cgid))
      return error(EINVAL, "{}: can't read line {}: '{}'", kPath, out.size() + 2, whole);
    out.push_back(s);
  }
  return out;
}

Result<std::vector<SysvShm>> read_sysvipc_shm() {
  const std::string text = TRY(read_file(kPath));
  return parse_sysvipc_shm(text);
}

std::optional<SysvShm> find_shm(const std::vector<SysvShm>& all, int32_t shmid) {
  for (const SysvShm& s : all)
    if (s.shmid == shmid) return s;
  return std::nullopt;
}

}  // namespace ckpt::proc
