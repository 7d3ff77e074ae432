// /proc/PID/maps. The kernel's show_map_vma() prints
//   "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu "
// and, when the VMA has a name, pads with spaces to column 73 and prints it.
// So the path is everything after the inode and the padding, verbatim: it may
// contain spaces, end in " (deleted)", or be a kernel name like "[heap]",
// "[vvar_vclock]" or "[anon:name]". We keep it as printed: a '\n' in a file
// name comes out as "\012" but a '\' is not escaped, so it cannot be undone
// reliably (callers that need the file itself open map_files/ instead).
#include "proc/maps.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include "base/fs.h"
#include "proc/text.h"

namespace ckpt::proc {
namespace {

bool parse_perms(std::string_view p, MapEntry& m) {
  if (p.size() != 4) return false;
  if ((p[0] != 'r' && p[0] != '-') || (p[1] != 'w' && p[1] != '-') ||
      (p[2] != 'x' && p[2] != '-') || (p[3] != 's' && p[3] != 'p'))
    return false;
  m.read = p[0] == 'r';
  m.write = p[1] == 'w';
  m.exec = p[2] == 'x';
  m.shared = p[3] == 's';
  return true;
}

}  // namespace

Result<MapEntry> parse_map_line(std::string_view line) {
  MapEntry m;
  std::string_view rest = line;

  std::string_view range = next_field(rest);
  size_t dash = range.find('-');
  if (dash == std::string_view::npos || !parse_num(range.substr(0, dash), 16, m.start) ||
      !parse_num(range.substr(dash + 1), 16, m.end) || m.start >= m.end)
    return fail("bad address range '{:.64}'", range);

  std::string_view perms = next_field(rest);
  if (!parse_perms(perms, m)) return fail("bad permissions '{:.64}'", perms);

  std::string_view offset = next_field(rest);
  if (!parse_num(offset, 16, m.offset)) return fail("bad offset '{:.64}'", offset);

  std::string_view dev = next_field(rest);
  size_t colon = dev.find(':');
  if (colon == std::string_view::npos || !parse_num(dev.substr(0, colon), 16, m.dev_major) ||
      !parse_num(dev.substr(colon + 1), 16, m.dev_minor))
    return fail("bad device '{:.64}'", dev);

  std::string_view inode = next_field(rest);
  if (!parse_num(inode, 10, m.inode)) return fail("bad inode '{:.64}'", inode);

  // Unnamed VMAs leave just the space after the inode.
  size_t b = rest.find_first_not_of(' ');
  if (b != std::string_view::npos) m.path = rest.substr(b);
  return m;
}

Result<std::vector<MapEntry>> parse_maps(std::string_view text) {
  std::vector<MapEntry> out;
  for (int lineno = 1; !text.empty(); ++lineno) {
    size_t nl = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(std::min(nl + 1, text.size()));
    out.push_back(TRY_CTX(parse_map_line(line), "/proc maps line {}", lineno));
  }
  return out;
}

Result<std::vector<MapEntry>> read_maps(pid_t pid) {
  std::string text = TRY(read_file(fmt::format("/proc/{}/maps", pid)));
  return TRY_CTX(parse_maps(text), "pid {}", pid);
}

}  // namespace ckpt::proc
