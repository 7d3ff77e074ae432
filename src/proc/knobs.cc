#include "proc/knobs.h"

#include <fcntl.h>

#include <charconv>
#include <string>

#include "base/fs.h"
#include "proc/record.h"

namespace ckpt::proc {

namespace {

template <typename T>
Result<T> read_number(pid_t pid, const char* name, int base) {
  const std::string path = fmt::format("/proc/{}/{}", pid, name);
  const std::string text = TRY(read_record(path));
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc() || (end != text.data() + text.size() && *end != '\n'))
    return error(EINVAL, "{}: not a number: '{}'", path, text);
  return v;
}

Result<void> write_text(pid_t pid, const char* name, const std::string& text) {
  const std::string path = fmt::format("/proc/{}/{}", pid, name);
  UniqueFd fd = TRY(open_file(path, O_WRONLY));
  TRY_CTX(write_all(fd.get(), text.data(), text.size()), "write '{}'", text);
  return {};
}

}  // namespace

Result<int32_t> read_oom_score_adj(pid_t pid) { return read_number<int32_t>(pid, "oom_score_adj", 10); }

Result<Knobs> read_knobs(pid_t pid) {
  Knobs k;
  k.oom_score_adj = TRY(read_oom_score_adj(pid));
  k.coredump_filter = TRY(read_number<uint32_t>(pid, "coredump_filter", 16));
  const std::string path = fmt::format("/proc/{}/autogroup", pid);
  auto text = read_record(path);
  if (!text && text.error().err == ENOENT) return k;
  if (!text) return std::unexpected(text.error());
  k.autogroup_nice = TRY(parse_autogroup_nice(*text, path));
  return k;
}

Result<std::optional<int32_t>> parse_autogroup_nice(std::string_view text, std::string_view path) {
  if (text.empty()) return std::nullopt;
  constexpr std::string_view kNice = " nice ";
  const size_t at = text.find(kNice);
  int32_t nice = 0;
  const char* from = at == std::string_view::npos ? nullptr : text.data() + at + kNice.size();
  const char* end = text.data() + text.size();
  auto parsed = from ? std::from_chars(from, end, nice) : std::from_chars_result{end, std::errc::invalid_argument};
  if (parsed.ec != std::errc() || (parsed.ptr != end && *parsed.ptr != '\n'))
    return fail("{}: no nice value in '{}'", path, text);
  return nice;
}

Result<void> write_autogroup_nice(pid_t pid, int32_t nice) {
  return write_text(pid, "autogroup", std::to_string(nice));
}

Result<void> write_knobs(pid_t pid, const Knobs& k, const Knobs& inherited) {
  if (k.oom_score_adj != inherited.oom_score_adj)
    if (auto r = write_text(pid, "oom_score_adj", std::to_string(k.oom_score_adj)); !r) {
      if (r.error().err == EACCES)
        return error(EACCES, "pid {}: oom_score_adj {} is below what ckpt may set without CAP_SYS_RESOURCE", pid,
                     k.oom_score_adj);
      return r;
    }
  if (k.coredump_filter == inherited.coredump_filter) return {};
  return write_text(pid, "coredump_filter", fmt::format("{:#x}", k.coredump_filter));
}

}  // namespace ckpt::proc
