// Progress of a long step, for a user at a terminal: once the step has run
// for a second, one line on stderr, redrawn at most ten times a second, with
// the bytes and pages done, the rate and the time left. Nothing at all when
// stderr is not a terminal (logs, pipes, tests), and nothing for a step
// that ends within the second. The tracers of a tree's dump add to one
// line side by side.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace ckpt {

class Progress {
 public:
  Progress(std::string what, uint64_t total_bytes);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(uint64_t bytes);

  // Is stderr a terminal, where a line can show? (A total that costs reads
  // to learn is not worth learning otherwise.)
  static bool shown();

  // The line for `done` bytes after `elapsed` (what add() draws).
  static std::string line(const std::string& what, uint64_t done, uint64_t total, std::chrono::nanoseconds elapsed);

 private:
  using Clock = std::chrono::steady_clock;
  std::mutex mu_;
  std::string what_;
  uint64_t total_, done_ = 0;
  bool tty_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now(), last_{};
};

}  // namespace ckpt
