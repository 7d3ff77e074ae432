#include "restore/read_progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include <fmt/format.h>

#include "base/progress.h"

namespace ckpt::restore {

namespace {

constexpr auto kPoll = std::chrono::milliseconds(100);

// What `pid` and its threads, live and gone, have read (0 once it is gone).
uint64_t rchar(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/io", pid));
  std::string key;
  uint64_t v = 0;
  while (in >> key >> v)
    if (key == "rchar:") return v;
  return 0;
}

}  // namespace

ReadProgress::ReadProgress(std::string what, uint64_t total, std::vector<pid_t> tasks) : tasks_(std::move(tasks)) {
  if (isatty(STDERR_FILENO) != 1 || total == 0) return;
  thread_ = std::thread([this, what = std::move(what), total]() mutable { follow(std::move(what), total); });
}

ReadProgress::~ReadProgress() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard l(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

uint64_t ReadProgress::read_so_far() const {
  uint64_t sum = 0;
  for (pid_t p : tasks_) sum += rchar(p);
  return sum;
}

void ReadProgress::follow(std::string what, uint64_t total) {
  Progress progress(std::move(what), total);
  uint64_t shown = 0;
  auto update = [&] {
    // rchar also counts the few small reads a task makes besides its pages.
    const uint64_t now = std::max(shown, std::min(read_so_far(), total));
    progress.add(now - shown);  // also with nothing new: a stalled restore shows
    shown = now;
  };
  std::unique_lock l(mu_);
  while (!cv_.wait_for(l, kPoll, [this] { return stop_; })) update();
  update();
}

}  // namespace ckpt::restore
