#include "base/progress.h"

#include <unistd.h>

#include <fmt/format.h>

#include "arch/x86_64/page.h"

namespace ckpt {

namespace {

constexpr auto kQuiet = std::chrono::seconds(1);           // a step this short shows nothing
constexpr auto kRedraw = std::chrono::milliseconds(100);

std::string size(double b) {
  if (b >= 1 << 30) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (b >= 1 << 20) return fmt::format("{:.1f} MiB", b / (1 << 20));
  return fmt::format("{:.0f} KiB", b / 1024);
}

}  // namespace

bool Progress::shown() { return isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string what, uint64_t total_bytes)
    : what_(std::move(what)), total_(total_bytes), tty_(shown()) {}

Progress::~Progress() {
  if (!drawn_) return;
  const std::string l = line(what_, done_, total_, Clock::now() - start_);
  fmt::print(stderr, "\r{}\n", l);
}

std::string Progress::line(const std::string& what, uint64_t done, uint64_t total, std::chrono::nanoseconds elapsed) {
  const double s = std::chrono::duration<double>(elapsed).count();
  const double rate = s > 0 ? done / s : 0;
  std::string eta = "--";
  if (rate > 0 && total >= done) eta = fmt::format("{:.1f} s", (total - done) / rate);
  return fmt::format("{}: {} of {} ({} of {} pages), {}/s, {} left", what, size(done), size(total),
                     done / arch::kPageSize, total / arch::kPageSize, size(rate), eta);
}

void Progress::add(uint64_t bytes) {
  std::lock_guard lock(mu_);
  done_ += bytes;
  if (!tty_) return;
  const auto now = Clock::now();
  if (now - start_ < kQuiet || now - last_ < kRedraw) return;
  last_ = now;
  drawn_ = true;
  // \033[K: erase what a longer line before left.
  fmt::print(stderr, "\r{}\033[K", line(what_, done_, total_, now - start_));
  std::fflush(stderr);
}

}  // namespace ckpt
