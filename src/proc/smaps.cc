#include "proc/smaps.h"

#include <algorithm>

#include "base/fs.h"
#include "proc/text.h"

namespace ckpt::proc {

namespace {

// The bit of a two-letter lowercase name, or -1.
int bit_of(std::string_view name) {
  if (name.size() != 2 || name[0] < 'a' || name[0] > 'z' || name[1] < 'a' || name[1] > 'z') return -1;
  return (name[0] - 'a') * 26 + (name[1] - 'a');
}

// The VMAs, a line at a time: a header line starts with its range in
// lowercase hex, a field line with a capitalized name and a colon.
class SmapsParser {
 public:
  Result<void> line(std::string_view line) {
    lineno_++;
    if (line.starts_with("VmFlags:")) {
      if (out_.empty()) return error(EINVAL, "/proc smaps line {}: VmFlags before any VMA", lineno_);
      std::string_view rest = line.substr(8);
      for (std::string_view f = next_field(rest); !f.empty(); f = next_field(rest)) out_.back().flags.add(f);
    } else if (line.starts_with("KernelPageSize:")) {
      if (out_.empty()) return error(EINVAL, "/proc smaps line {}: KernelPageSize before any VMA", lineno_);
      std::string_view rest = line.substr(15);
      uint64_t kib = 0;
      if (!parse_num(next_field(rest), 10, kib) || next_field(rest) != "kB")
        return error(EINVAL, "/proc smaps line {}: bad KernelPageSize '{:.64}'", lineno_, line);
      out_.back().page_kib = kib;
    } else if (!line.empty() && !(line[0] >= 'A' && line[0] <= 'Z')) {
      out_.push_back({.map = TRY_CTX(parse_map_line(line), "/proc smaps line {}", lineno_)});
    }
    return {};
  }
  std::vector<SmapsVma> take() { return std::move(out_); }

 private:
  std::vector<SmapsVma> out_;
  size_t lineno_ = 0;
};

}  // namespace

void VmFlags::add(std::string_view name) {
  if (const int b = bit_of(name); b >= 0) bits_[b / 64] |= uint64_t{1} << (b % 64);
  else if (!has(name)) odd_.emplace_back(name);
}

void VmFlags::remove(std::string_view name) {
  if (const int b = bit_of(name); b >= 0) bits_[b / 64] &= ~(uint64_t{1} << (b % 64));
  else std::erase(odd_, name);
}

bool VmFlags::has(std::string_view name) const {
  if (const int b = bit_of(name); b >= 0) return (bits_[b / 64] >> (b % 64)) & 1;
  return std::ranges::find(odd_, name) != odd_.end();
}

VmFlags VmFlags::without(const VmFlags& allowed) const {
  VmFlags out;
  for (size_t w = 0; w < bits_.size(); w++) out.bits_[w] = bits_[w] & ~allowed.bits_[w];
  for (const std::string& n : odd_)
    if (!allowed.has(n)) out.odd_.push_back(n);
  return out;
}

Result<std::vector<SmapsVma>> parse_smaps(std::string_view text) {
  SmapsParser p;
  for (std::string_view line; next_line(text, line);) TRY(p.line(line));
  return p.take();
}

Result<std::vector<SmapsVma>> read_smaps(pid_t pid) {
  SmapsParser p;
  TRY_CTX(for_each_line(fmt::format("/proc/{}/smaps", pid), [&](std::string_view line) { return p.line(line); }),
          "pid {}", pid);
  return p.take();
}

}  // namespace ckpt::proc
