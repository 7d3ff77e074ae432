#include "base/log.h"

namespace ckpt {

Log::~Log() {
  if (file_) std::fclose(file_);
}

void Log::attach(UniqueFd fd) {
  if (file_) std::fclose(file_);
  file_ = fdopen(fd.get(), "a");
  if (file_) fd.release();
}

void Log::write(Level l, const std::string& line) {
  if (!enabled(l)) return;
  static constexpr const char* kTag[] = {"", "Error", "Warn", "Info", "Debug"};
  int i = static_cast<int>(l);
  // Errors always reach the terminal, whether or not a log file is open.
  if (!file_ || l == Level::Error) fmt::print(stderr, "{}: {}\n", kTag[i], line);
  if (file_) {
    fmt::print(file_, "{}: {}\n", kTag[i], line);
    std::fflush(file_);
  }
}

}  // namespace ckpt
