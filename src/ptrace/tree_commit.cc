#include "ptrace/tree_commit.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/unique_fd.h"
#include "pie/sys.h"
#include "ptrace/watcher.h"

namespace ckpt {

// What the watcher reads: kept where it is until the watcher is reaped.
struct TreeCommit::Tasks {
  std::vector<UniqueFd> pidfds;
  std::optional<KillIf> kill_if;
};

namespace {

void kill_tree(const void* arg) {
  const auto* t = static_cast<const TreeCommit::Tasks*>(arg);
  if (t->kill_if && pie::sys(SYS_faccessat, t->kill_if->dir_fd, t->kill_if->name.c_str(), F_OK) != 0) return;
  for (const UniqueFd& fd : t->pidfds) pie::sys(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
}

}  // namespace

Result<TreeCommit> TreeCommit::watch(const std::vector<pid_t>& tasks, std::optional<KillIf> kill_if) {
  auto t = std::make_unique<Tasks>();
  t->kill_if = std::move(kill_if);
  for (pid_t p : tasks) {
    UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, p, 0)));
    if (fd) t->pidfds.push_back(std::move(fd));
    else if (errno != ESRCH) return sys_error("pidfd_open of pid {}", p);
  }
  std::vector<int> keep;
  for (const UniqueFd& fd : t->pidfds) keep.push_back(fd.get());
  if (t->kill_if) keep.push_back(t->kill_if->dir_fd);
  // Killed together before this, nothing was let go yet (nor, at dump, was
  // the inventory written).
  Watcher w = TRY(Watcher::start(kill_tree, t.get(), std::move(keep), "commit watcher"));
  return TreeCommit(std::move(t), std::move(w));
}

TreeCommit::TreeCommit(std::unique_ptr<Tasks> t, Watcher w) : tasks_(std::move(t)), watcher_(std::move(w)) {}
TreeCommit::TreeCommit(TreeCommit&&) noexcept = default;

TreeCommit::~TreeCommit() { kill(); }

void TreeCommit::commit() {
  if (watcher_) watcher_->commit();
  watcher_.reset();
}

// End-of-file, unless the commit byte came first; the watcher is reaped
// before what it reads is freed.
void TreeCommit::kill() {
  if (watcher_) watcher_->end();
  watcher_.reset();
}

}  // namespace ckpt
