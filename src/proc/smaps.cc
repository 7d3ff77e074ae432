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

// The VmFlags and KernelPageSize of each VMA, a line at a time.
class SmapsParser {
 public:
  Result<void> line(std::string_view line) {
    lineno_++;
    if (line.starts_with("VmFlags:")) {
      if (!have_vma_) return error(EINVAL, "/proc smaps line {}: VmFlags before any VMA", lineno_);
      std::vector<std::string>& flags = out_.flags[cur_];
      std::string_view rest = line.substr(8);
      flags.reserve(static_cast<size_t>(std::count(rest.begin(), rest.end(), ' ')));
      for (std::string_view f = next_field(rest); !f.empty(); f = next_field(rest)) flags.emplace_back(f);
    } else if (line.starts_with("KernelPageSize:")) {
      if (!have_vma_) return error(EINVAL, "/proc smaps line {}: KernelPageSize before any VMA", lineno_);
      std::string_view rest = line.substr(15);
      uint64_t kib = 0;
      if (!parse_num(next_field(rest), 10, kib) || next_field(rest) != "kB")
        return error(EINVAL, "/proc smaps line {}: bad KernelPageSize '{:.64}'", lineno_, line);
      out_.page_kib[cur_] = kib;
    } else if (!line.empty() && !(line[0] >= 'A' && line[0] <= 'Z') && vma_start(line, &cur_)) {
      have_vma_ = true;
      out_.flags[cur_];
    }
    return {};
  }
  Smaps take() { return std::move(out_); }

 private:
  Smaps out_;
  bool have_vma_ = false;
  uint64_t cur_ = 0;
  size_t lineno_ = 0;
};

}  // namespace

Result<Smaps> parse_smaps(std::string_view text) {
  SmapsParser p;
  for (std::string_view line; next_line(text, line);) TRY(p.line(line));
  return p.take();
}

Result<Smaps> read_smaps(pid_t pid) {
  SmapsParser p;
  TRY_CTX(for_each_line(fmt::format("/proc/{}/smaps", pid), [&](std::string_view line) { return p.line(line); }),
          "pid {}", pid);
  return p.take();
}

}  // namespace ckpt::proc
