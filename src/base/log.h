// Log: leveled messages to stderr or a log file. One Log is made by main and
// handed by reference to whatever needs it (no global logger).
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "base/unique_fd.h"

namespace ckpt {

enum class Level { Error = 1, Warn = 2, Info = 3, Debug = 4 };

class Log {
 public:
  explicit Log(int verbosity = 2) : verbosity_(verbosity) {}
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;
  ~Log();

  // Also write everything (at the current verbosity) to `fd`, a file opened
  // for appending (base/dir.h: open_append_own).
  void attach(UniqueFd fd);
  void set_verbosity(int v) { verbosity_ = v; }
  bool enabled(Level l) const { return static_cast<int>(l) <= verbosity_; }

  template <typename... Args>
  void error(fmt::format_string<Args...> f, Args&&... a) { write(Level::Error, fmt::format(f, std::forward<Args>(a)...)); }
  template <typename... Args>
  void warn(fmt::format_string<Args...> f, Args&&... a) { write(Level::Warn, fmt::format(f, std::forward<Args>(a)...)); }
  template <typename... Args>
  void info(fmt::format_string<Args...> f, Args&&... a) { write(Level::Info, fmt::format(f, std::forward<Args>(a)...)); }
  template <typename... Args>
  void debug(fmt::format_string<Args...> f, Args&&... a) {
    if (enabled(Level::Debug)) write(Level::Debug, fmt::format(f, std::forward<Args>(a)...));
  }

 private:
  void write(Level l, const std::string& line);
  int verbosity_;
  FILE* file_ = nullptr;
};

}  // namespace ckpt
