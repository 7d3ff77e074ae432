#include "proc/timers.h"

#include <signal.h>

#include "base/fs.h"
#include "proc/text.h"

namespace ckpt::proc {

// Blocks of four lines (kernel/time/posix-timers.c, show_timer):
//   ID: 6
//   signal: 35/0000000000001092        signo/sigev_value in hex
//   notify: signal/pid.4790            none|signal|thread / pid|tid . N
//   ClockID: 1
Result<std::vector<PosixTimer>> parse_timers(std::string_view text) {
  std::vector<PosixTimer> out;
  std::string_view line;
  for (size_t lineno = 1; next_line(text, line); lineno++) {
    auto bad = [&] { return error(EINVAL, "/proc timers line {}: cannot parse '{}'", lineno, line.substr(0, 64)); };
    size_t colon = line.find(": ");
    if (colon == std::string_view::npos) {
      if (line.empty()) continue;
      return bad();
    }
    std::string_view key = line.substr(0, colon), val = line.substr(colon + 2);
    if (key == "ID") {
      out.emplace_back();
      if (!parse_num(val, 10, out.back().id)) return bad();
      continue;
    }
    if (out.empty()) return bad();
    PosixTimer& t = out.back();
    if (key == "signal") {
      size_t slash = val.find('/');
      if (slash == std::string_view::npos || !parse_num(val.substr(0, slash), 10, t.signo) ||
          !parse_num(val.substr(slash + 1), 16, t.sival))
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
      if (!parse_num(val.substr(dot + 1), 10, t.notify_pid)) return bad();
    } else if (key == "ClockID") {
      if (!parse_num(val, 10, t.clock)) return bad();
    }
  }
  return out;
}

Result<std::vector<PosixTimer>> read_timers(pid_t pid) {
  std::string text = TRY(read_file(fmt::format("/proc/{}/timers", pid)));
  return TRY_CTX(parse_timers(text), "pid {}", pid);
}

}  // namespace ckpt::proc
