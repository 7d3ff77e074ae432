#include "proc/timers.h"

#include <signal.h>

#include <charconv>

#include "base/fs.h"

namespace ckpt::proc {

namespace {

template <typename T>
bool number(std::string_view s, T* out, int base = 10) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

// Blocks of four lines (kernel/time/posix-timers.c, show_timer):
//   ID: 6
//   signal: 35/0000000000001092        signo/sigev_value in hex
//   notify: signal/pid.4790            none|signal|thread / pid|tid . N
//   ClockID: 1
Result<std::vector<PosixTimer>> parse_timers(std::string_view text) {
  std::vector<PosixTimer> out;
  size_t lineno = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    lineno++;
    auto bad = [&] { return error(EINVAL, "/proc timers line {}: cannot parse '{}'", lineno, line.substr(0, 64)); };
    size_t colon = line.find(": ");
    if (colon == std::string_view::npos) {
      if (line.empty()) continue;
      return bad();
    }
    std::string_view key = line.substr(0, colon), val = line.substr(colon + 2);
    if (key == "ID") {
      out.emplace_back();
      if (!number(val, &out.back().id)) return bad();
      continue;
    }
    if (out.empty()) return bad();
    PosixTimer& t = out.back();
    if (key == "signal") {
      size_t slash = val.find('/');
      if (slash == std::string_view::npos || !number(val.substr(0, slash), &t.signo) ||
          !number(val.substr(slash + 1), &t.sival, 16))
        return bad();
    } else if (key == "notify") {
      size_t slash = val.find('/'), dot = val.find('.');
      if (slash == std::string_view::npos || dot == std::string_view::npos || dot < slash) return bad();
      std::string_view how = val.substr(0, slash), whom = val.substr(slash + 1, dot - slash - 1);
      if (how == "signal") t.notify = SIGEV_SIGNAL;
      else if (how == "none") t.notify = SIGEV_NONE;
      else if (how == "thread") t.notify = SIGEV_THREAD;
      else return bad();
      if (whom == "tid") t.notify |= SIGEV_THREAD_ID;
      else if (whom != "pid") return bad();
      if (!number(val.substr(dot + 1), &t.notify_pid)) return bad();
    } else if (key == "ClockID") {
      if (!number(val, &t.clock)) return bad();
    }
  }
  return out;
}

Result<std::vector<PosixTimer>> read_timers(pid_t pid) {
  std::string text = TRY(read_file(fmt::format("/proc/{}/timers", pid)));
  return TRY_CTX(parse_timers(text), "pid {}", pid);
}

}  // namespace ckpt::proc
