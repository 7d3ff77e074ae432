#include "proc/anon_fdinfo.h"

#include <algorithm>
#include <iterator>
#include <limits>

#include "proc/text.h"

namespace ckpt::proc {

namespace {

std::string_view trim(std::string_view s) {
  constexpr std::string_view kBlank = " \t";
  size_t b = s.find_first_not_of(kBlank);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kBlank) - b + 1);
}

// One line of a kind: its key (before the colon), whether every kernel we
// support prints it, and how its trimmed value goes into T.
template <typename T>
struct Line {
  std::string_view key;
  bool required;
  bool (*parse)(std::string_view val, T& out);
};

// The lines of `table` in `text`, any other skipped (pos, flags, a line a
// newer kernel adds); `what` names the kind in messages.
template <typename T, size_t N>
Result<T> parse_lines(std::string_view text, std::string_view what, const Line<T> (&table)[N]) {
  T out;
  bool seen[N] = {};
  std::string_view line;
  for (int lineno = 1; next_line(text, line); ++lineno) {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon), val = trim(line.substr(colon + 1));
    auto it = std::find_if(std::begin(table), std::end(table), [&](const Line<T>& l) { return l.key == key; });
    if (it == std::end(table)) continue;
    if (!it->parse(val, out)) return fail("/proc {} fdinfo line {}: bad {} '{:.64}'", what, lineno, key, val);
    seen[it - std::begin(table)] = true;
  }
  for (size_t i = 0; i < N; ++i)
    if (table[i].required && !seen[i]) return fail("/proc {} fdinfo: no {} line", what, table[i].key);
  return out;
}

template <typename T, auto Field, int Base>
bool num(std::string_view val, T& out) {
  return parse_num(val, Base, out.*Field);
}

bool flag(std::string_view val, bool& out) {
  if (val != "0" && val != "1") return false;
  out = val == "1";
  return true;
}

// "(seconds, nanoseconds)" as nanoseconds, at most a ktime_t's 2^63 - 1.
bool timespec_ns(std::string_view val, uint64_t& out) {
  if (!val.starts_with('(') || !val.ends_with(')')) return false;
  val = val.substr(1, val.size() - 2);
  const size_t comma = val.find(", ");
  if (comma == std::string_view::npos) return false;
  uint64_t sec = 0, nsec = 0;
  if (!parse_num(val.substr(0, comma), 10, sec) || !parse_num(val.substr(comma + 2), 10, nsec) ||
      nsec >= 1'000'000'000)
    return false;
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  if (sec > (kMax - nsec) / 1'000'000'000) return false;
  out = sec * 1'000'000'000 + nsec;
  return true;
}

constexpr Line<EventFdInfo> kEventFdLines[] = {
    {"eventfd-count", true, num<EventFdInfo, &EventFdInfo::count, 16>},
    {"eventfd-semaphore", false,
     [](std::string_view val, EventFdInfo& out) { return out.shows_semaphore = flag(val, out.semaphore); }},
};

constexpr Line<SignalFdInfo> kSignalFdLines[] = {
    {"sigmask", true, num<SignalFdInfo, &SignalFdInfo::sigmask, 16>},
};

constexpr Line<TimerFdInfo> kTimerFdLines[] = {
    {"clockid", true, num<TimerFdInfo, &TimerFdInfo::clockid, 10>},
    {"ticks", true, num<TimerFdInfo, &TimerFdInfo::ticks, 10>},
    {"settime flags", true, num<TimerFdInfo, &TimerFdInfo::settime_flags, 8>},
    {"it_value", true, [](std::string_view val, TimerFdInfo& out) { return timespec_ns(val, out.value_ns); }},
    {"it_interval", true, [](std::string_view val, TimerFdInfo& out) { return timespec_ns(val, out.interval_ns); }},
};

constexpr Line<PidFdInfo> kPidFdLines[] = {
    {"Pid", true, num<PidFdInfo, &PidFdInfo::pid, 10>},
    {"NSpid", false,
     [](std::string_view val, PidFdInfo& out) {
       // Blank-separated, outermost first.
       out.nspid_levels = 0;
       while (!(val = trim(val)).empty()) {
         const std::string_view f = val.substr(0, std::min(val.find_first_of(" \t"), val.size()));
         int n = 0;
         if (!parse_num(f, 10, n)) return false;
         out.nspid_levels++;
         val.remove_prefix(f.size());
       }
       return out.nspid_levels > 0;
     }},
};

}  // namespace

Result<EventFdInfo> parse_eventfd_fdinfo(std::string_view text) { return parse_lines(text, "eventfd", kEventFdLines); }
Result<SignalFdInfo> parse_signalfd_fdinfo(std::string_view text) {
  return parse_lines(text, "signalfd", kSignalFdLines);
}
Result<TimerFdInfo> parse_timerfd_fdinfo(std::string_view text) { return parse_lines(text, "timerfd", kTimerFdLines); }
Result<PidFdInfo> parse_pidfd_fdinfo(std::string_view text) { return parse_lines(text, "pidfd", kPidFdLines); }

}  // namespace ckpt::proc
