#include "restore/pidns.h"

#include <linux/sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "base/fs.h"
#include "proc/status.h"

namespace ckpt::restore {

namespace {

constexpr int kStatusFd = 0;  // SpawnTask::temp_fds[0]: the root's status pipe

// NSpid of a status text: outermost first, innermost last.
Result<std::pair<pid_t, pid_t>> outer_inner(const std::string& path) {
  const std::string text = TRY(read_file(path));
  const proc::Status st = TRY(proc::parse_status(text));
  if (st.nspid.size() < 2) return error(EINVAL, "{}: no NSpid of a nested PID namespace", path);
  return std::pair{st.nspid.front(), st.nspid.back()};
}

// The init: the root's failure goes where the root's own would.
[[noreturn]] void init_fail(const SpawnTree& tree, const std::string& msg) {
  const int status = tree.tasks[0].temp_fds[kStatusFd];
  (void)!write(status, msg.data(), msg.size());
  __atomic_store_n(&tree.barrier->failed, 1, __ATOMIC_RELEASE);
  _exit(127);
}

[[noreturn]] void init_main(const SpawnTree& tree) {
  // The tree's /proc: a mount of its own namespace, in a mount namespace of
  // its own whose changes don't reach ckpt's.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
    init_fail(tree, fmt::format("new PID namespace: make the mounts private: {}", strerror(errno)));
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    init_fail(tree, fmt::format("new PID namespace: mount its /proc: {}", strerror(errno)));
  auto root = spawn(tree);
  if (!root) init_fail(tree, root.error().str());
  prctl(PR_SET_NAME, "ckpt-init", 0, 0, 0);
  // The tree holds what it needs: ckpt's fds (pipe ends, status pipes) must
  // not stay open here, or no one sees them close.
  syscall(SYS_close_range, 0, ~0U, 0);
  // Reaps the namespace's orphans; the root's end is the namespace's.
  for (;;) {
    int st = 0;
    const pid_t p = waitpid(-1, &st, 0);
    if (p < 0 && errno == EINTR) continue;
    if (p < 0) _exit(127);
    if (p == *root) _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }
}

}  // namespace

Result<PidMap> PidMap::read(pid_t init) {
  PidMap m;
  std::vector<pid_t> todo = {init};
  for (size_t i = 0; i < todo.size(); i++) {
    const pid_t p = todo[i];
    if (p != init) {
      const auto tids = TRY_CTX(proc::list_numeric_dir(fmt::format("/proc/{}/task", p)), "PID namespace");
      for (int tid : tids) {
        const auto [outer, inner] =
            TRY_CTX(outer_inner(fmt::format("/proc/{}/task/{}/status", p, tid)), "PID namespace");
        m.map_[inner] = outer;
      }
    }
    auto kids = TRY_CTX(proc::children(p), "PID namespace: children of {}", p);
    todo.insert(todo.end(), kids.begin(), kids.end());
  }
  return m;
}

pid_t PidMap::outside(pid_t pid) const {
  auto it = map_.find(pid);
  return it == map_.end() ? pid : it->second;
}

Result<pid_t> spawn_in_new_pidns(const SpawnTree& tree, bool sibling) {
  clone_args a{};
  a.flags = CLONE_NEWPID | CLONE_NEWNS | (sibling ? CLONE_PARENT : 0);
  a.exit_signal = sibling ? 0 : SIGCHLD;
  long r = syscall(SYS_clone3, &a, sizeof a);
  if (r == 0) init_main(tree);
  if (r < 0) return sys_error("clone3 the init of a new PID namespace (CLONE_NEWPID | CLONE_NEWNS)");
  return static_cast<pid_t>(r);
}

}  // namespace ckpt::restore
