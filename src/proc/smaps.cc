#include "proc/smaps.h"

#include "base/fs.h"
#include "proc/text.h"

namespace ckpt::proc {

namespace {

// A VMA header line starts with "start-end " in hex; field lines start with a
// capitalized name and a colon.
bool vma_start(std::string_view line, uint64_t* start) {
  size_t dash = line.find('-');
  return dash != std::string_view::npos && parse_num(line.substr(0, dash), 16, *start);
}

}  // namespace

Result<VmFlags> parse_smaps_vmflags(std::string_view text) {
  VmFlags out;
  bool have_vma = false;
  uint64_t cur = 0;
  std::string_view line;
  for (size_t lineno = 1; next_line(text, line); lineno++) {
    if (line.starts_with("VmFlags:")) {
      if (!have_vma) return error(EINVAL, "/proc smaps line {}: VmFlags before any VMA", lineno);
      std::vector<std::string>& flags = out[cur];
      std::string_view rest = line.substr(8);
      for (std::string_view f = next_field(rest); !f.empty(); f = next_field(rest)) flags.emplace_back(f);
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

Result<PageSizes> parse_smaps_page_sizes(std::string_view text) {
  PageSizes out;
  bool have_vma = false;
  uint64_t cur = 0;
  std::string_view line;
  for (size_t lineno = 1; next_line(text, line); lineno++) {
    if (line.starts_with("KernelPageSize:")) {
      if (!have_vma) return error(EINVAL, "/proc smaps line {}: KernelPageSize before any VMA", lineno);
      std::string_view rest = line.substr(15);
      uint64_t kib = 0;
      if (!parse_num(next_field(rest), 10, kib) || next_field(rest) != "kB")
        return error(EINVAL, "/proc smaps line {}: bad KernelPageSize '{:.64}'", lineno, line);
      out[cur] = kib;
    } else if (!line.empty() && !(line[0] >= 'A' && line[0] <= 'Z') && vma_start(line, &cur)) {
      have_vma = true;
    }
  }
  return out;
}

Result<PageSizes> read_smaps_page_sizes(pid_t pid) {
  std::string text = TRY(read_file(fmt::format("/proc/{}/smaps", pid)));
  return TRY_CTX(parse_smaps_page_sizes(text), "pid {}", pid);
}

}  // namespace ckpt::proc
