#include "proc/smaps.h"

#include <algorithm>

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

// The VmFlags of each VMA, a line at a time.
class VmFlagsParser {
 public:
  Result<void> line(std::string_view line) {
    lineno_++;
    if (line.starts_with("VmFlags:")) {
      if (!have_vma_) return error(EINVAL, "/proc smaps line {}: VmFlags before any VMA", lineno_);
      std::vector<std::string>& flags = out_[cur_];
      std::string_view rest = line.substr(8);
      flags.reserve(static_cast<size_t>(std::count(rest.begin(), rest.end(), ' ')));
      for (std::string_view f = next_field(rest); !f.empty(); f = next_field(rest)) flags.emplace_back(f);
    } else if (!line.empty() && !(line[0] >= 'A' && line[0] <= 'Z') && vma_start(line, &cur_)) {
      have_vma_ = true;
      out_[cur_];
    }
    return {};
  }
  VmFlags take() { return std::move(out_); }

 private:
  VmFlags out_;
  bool have_vma_ = false;
  uint64_t cur_ = 0;
  size_t lineno_ = 0;
};

}  // namespace

Result<VmFlags> parse_smaps_vmflags(std::string_view text) {
  VmFlagsParser p;
  for (std::string_view line; next_line(text, line);) TRY(p.line(line));
  return p.take();
}

// Read a chunk at a time: 30,000 VMAs' smaps are 25 MB of text.
Result<VmFlags> read_smaps_vmflags(pid_t pid) {
  VmFlagsParser p;
  TRY_CTX(for_each_line(fmt::format("/proc/{}/smaps", pid), [&](std::string_view line) { return p.line(line); }),
          "pid {}", pid);
  return p.take();
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
