#include "proc/smaps.h"

#include <charconv>

#include "base/fs.h"

namespace ckpt::proc {

namespace {

// A VMA header line starts with "start-end " in hex; field lines start with a
// capitalized name and a colon.
bool vma_start(std::string_view line, uint64_t* start) {
  size_t dash = line.find('-');
  if (dash == std::string_view::npos || dash == 0) return false;
  auto r = std::from_chars(line.data(), line.data() + dash, *start, 16);
  return r.ec == std::errc() && r.ptr == line.data() + dash;
}

}  // namespace

Result<VmFlags> parse_smaps_vmflags(std::string_view text) {
  VmFlags out;
  bool have_vma = false;
  uint64_t cur = 0;
  size_t lineno = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    lineno++;
    if (line.starts_with("VmFlags:")) {
      if (!have_vma) return error(EINVAL, "/proc smaps line {}: VmFlags before any VMA", lineno);
      std::vector<std::string>& flags = out[cur];
      std::string_view rest = line.substr(8);
      while (!rest.empty()) {
        size_t b = rest.find_first_not_of(' ');
        if (b == std::string_view::npos) break;
        rest = rest.substr(b);
        size_t e = rest.find(' ');
        flags.emplace_back(rest.substr(0, e));
        rest = e == std::string_view::npos ? std::string_view() : rest.substr(e);
      }
    } else if (!line.empty() && !(line[0] >= 'A' && line[0] <= 'Z') && vma_start(line, &cur)) {
      have_vma = true;
      out[cur];
    }
  }
  return out;
}

Result<VmFlags> read_smaps_vmflags(pid_t pid) {
  std::string text = TRY(read_file(fmt::format("/proc/{}/smaps", pid)));
  return TRY_CTX(parse_smaps_vmflags(text), "pid {}", pid);
}

}  // namespace ckpt::proc
