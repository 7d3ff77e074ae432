// The progress of a restore's page reads, for a user at a terminal
// (base/progress.h). The restorers read the pages themselves, inside the
// tasks, so a thread of ckpt follows what the tasks have read (rchar of
// /proc/PID/io) while ckpt waits for them to complete. When stderr is not
// a terminal there is no line, and no thread either.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ckpt::restore {

class ReadProgress {
 public:
  // `tasks`: the PIDs ckpt sees of the tasks that read `total` bytes.
  ReadProgress(std::string what, uint64_t total, std::vector<pid_t> tasks);
  // Stops following; a line already shown gets its last figures.
  ~ReadProgress();
  ReadProgress(const ReadProgress&) = delete;
  ReadProgress& operator=(const ReadProgress&) = delete;

 private:
  void follow(std::string what, uint64_t total);
  uint64_t read_so_far() const;

  std::vector<pid_t> tasks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ckpt::restore
