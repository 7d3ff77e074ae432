#include "tree/tree.h"

#include <sys/wait.h>

namespace ckpt::tree {

namespace {

constexpr pid_t kPidMaxLimit = 4 * 1024 * 1024;  // PID_MAX_LIMIT on 64-bit

bool waitable_status(int s) {
  if (WIFEXITED(s)) return (s & ~0xff00) == 0;
  return WIFSIGNALED(s) && WTERMSIG(s) < 65 && (s & ~0xff) == 0;
}

}  // namespace

Result<ProcessTree> ProcessTree::make(std::vector<Task> tasks) {
  ProcessTree t;
  if (tasks.empty()) return error(EINVAL, "the process tree has no task");
  if (tasks.size() > static_cast<size_t>(kPidMaxLimit))
    return error(EINVAL, "the process tree has {} tasks, more than a system can have", tasks.size());
  for (size_t i = 0; i < tasks.size(); i++) {
    Task& k = tasks[i];
    k.children.clear();
    if (k.pid <= 0 || k.pid >= kPidMaxLimit) return error(EINVAL, "task {}: bad pid {}", i, k.pid);
    if (!t.index_.emplace(k.pid, static_cast<int>(i)).second) return error(EINVAL, "pid {} is listed twice", k.pid);
    if (k.pgid < 0 || k.sid < 0) return error(EINVAL, "pid {}: bad group {} or session {}", k.pid, k.pgid, k.sid);
    if (k.zombie && !waitable_status(k.exit_status))
      return error(EINVAL, "zombie {}: {:#x} is not an exit status", k.pid, k.exit_status);
    if (i == 0) {
      if (k.zombie) return error(EINVAL, "the root {} is a zombie", k.pid);
      k.parent = -1;
      continue;
    }
    auto p = t.index_.find(k.ppid);
    if (p == t.index_.end() || p->second == static_cast<int>(i))
      return error(EINVAL, "pid {}: its parent {} is not listed before it", k.pid, k.ppid);
    if (tasks[p->second].zombie) return error(EINVAL, "pid {}: its parent {} is a zombie", k.pid, k.ppid);
    k.parent = p->second;
    tasks[p->second].children.push_back(static_cast<int>(i));
  }
  t.tasks_ = std::move(tasks);
  return t;
}

Result<ProcessTree> ProcessTree::from_image(const img::ProcessTree& image) {
  std::vector<Task> tasks;
  tasks.reserve(image.tasks_size());
  for (const img::TreeTask& r : image.tasks()) {
    if (r.state() != img::TreeTask::ALIVE && r.state() != img::TreeTask::ZOMBIE)
      return error(EINVAL, "pid {}: unknown state {}", r.pid(), static_cast<int>(r.state()));
    tasks.push_back({.pid = r.pid(), .ppid = r.ppid(), .pgid = r.pgid(), .sid = r.sid(),
                     .zombie = r.state() == img::TreeTask::ZOMBIE, .exit_status = r.exit_status(),
                     .comm = r.comm()});
  }
  return make(std::move(tasks));
}

img::ProcessTree ProcessTree::to_image() const {
  img::ProcessTree out;
  for (const Task& k : tasks_) {
    img::TreeTask* r = out.add_tasks();
    r->set_pid(k.pid);
    r->set_ppid(k.ppid);
    r->set_pgid(k.pgid);
    r->set_sid(k.sid);
    r->set_state(k.zombie ? img::TreeTask::ZOMBIE : img::TreeTask::ALIVE);
    r->set_exit_status(k.exit_status);
    r->set_comm(k.comm);
  }
  return out;
}

const Task* ProcessTree::find(pid_t pid) const {
  auto it = index_.find(pid);
  return it == index_.end() ? nullptr : &tasks_[it->second];
}

std::vector<pid_t> ProcessTree::alive() const {
  std::vector<pid_t> out;
  for (const Task& k : tasks_)
    if (!k.zombie) out.push_back(k.pid);
  return out;
}

// A child is born in its parent's session and group; setsid() and setpgid()
// are the only ways out, and a group can only be joined inside its session
// while its leader (alive or a zombie) exists. So restore can recreate a
// session a task leads, or one it inherited from its parent; and a group it
// leads, or one whose leader is in the tree.
Result<std::vector<Joins>> ProcessTree::plan_joins(bool shell_job) const {
  std::vector<Joins> out(tasks_.size());
  const Task& root = tasks_[0];
  const bool root_group_outside = root.pgid != root.pid;
  for (size_t i = 0; i < tasks_.size(); i++) {
    const Task& k = tasks_[i];
    Joins& j = out[i];
    if (k.sid == k.pid) {
      if (k.pgid != k.pid) return error(EINVAL, "pid {} leads its session but is in process group {}", k.pid, k.pgid);
      j.new_session = true;
      continue;
    }
    if (i == 0) {
      if (!shell_job)
        return error(EOPNOTSUPP, "pid {} ({}) does not lead its session {}: the session leader is outside the tree "
                     "(a shell?); dump with --shell-job to restore the tree into the restoring shell's session",
                     k.pid, k.comm, k.sid);
    } else if (const Task& p = tasks_[k.parent]; k.sid != p.sid) {
      return error(EOPNOTSUPP, "pid {} ({}) is in session {}, neither its own nor its parent's ({}: session {}): "
                   "restoring such a session is not supported yet", k.pid, k.comm, k.sid, p.pid, p.sid);
    }
    if (k.pgid == k.pid) {
      j.lead_group = true;
    } else if (const Task* leader = find(k.pgid)) {
      if (leader->sid != k.sid)
        return error(EINVAL, "pid {} is in process group {} of another session ({})", k.pid, k.pgid, leader->sid);
      j.join_group = k.pgid;
    } else if (root_group_outside && k.pgid == root.pgid && k.sid == root.sid) {
      j.join_restorer_group = i != 0;  // the root inherits it
    } else {
      return error(EOPNOTSUPP, "pid {} ({}) is in process group {}, whose leader is not in the tree (it has "
                   "exited): restoring such a group is not supported yet", k.pid, k.comm, k.pgid);
    }
  }
  return out;
}

}  // namespace ckpt::tree
