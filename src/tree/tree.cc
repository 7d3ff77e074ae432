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
// are the only ways out, a session or group gets the id of the task that
// creates it, and a group can only be joined inside its session while a task
// of it exists. So restore recreates:
// - a session a task leads, or one it inherited from its parent;
// - a session whose leader has exited, held by tasks whose parent is in
//   another one (orphans a child subreaper took in): a helper with the
//   leader's PID, forked by that parent, calls setsid() and forks them; they
//   are reparented to the parent, a subreaper while the helper exits.
//   CRIU's prepare_pstree_ids() does the same for the root's children (the
//   root is the PID namespace's init there, so no subreaper is needed);
// - a group a task leads, or whose leader (alive or a zombie) is in the
//   tree, or, when the leader has exited, a group a helper with its PID
//   leads, forked by a live task of its session (it inherits the session).
// Refused: a session whose leader is in the tree but not the task's parent
// (its parent forked it and then called setsid(): CRIU's "born_sid"; not
// done yet), and tasks of one exited leader's session under several
// parents (the helper, one task, can be the child of one of them only).
Result<JoinPlan> ProcessTree::plan_joins(bool shell_job) const {
  JoinPlan plan;
  plan.tasks.resize(tasks_.size());
  std::map<pid_t, size_t> helper_index;  // helper pid -> index in plan.helpers
  const Task& root = tasks_[0];
  const bool root_session_outside = root.sid != root.pid;
  const bool root_group_outside = root.pgid != root.pid;

  // Sessions first: a group helper may live in a session helper's session.
  for (size_t i = 0; i < tasks_.size(); i++) {
    const Task& k = tasks_[i];
    if (k.sid == k.pid) {
      if (k.pgid != k.pid) return error(EINVAL, "pid {} leads its session but is in process group {}", k.pid, k.pgid);
      plan.tasks[i].new_session = true;
      continue;
    }
    if (i == 0) {
      if (!shell_job)
        return error(EOPNOTSUPP, "pid {} ({}) does not lead its session {}: the session leader is outside the tree "
                     "(a shell?); dump with --shell-job to restore the tree into the restoring shell's session",
                     k.pid, k.comm, k.sid);
      continue;
    }
    const Task& p = tasks_[k.parent];
    if (k.sid == p.sid) continue;
    if (const Task* leader = find(k.sid))
      return error(EOPNOTSUPP, "pid {} ({}) is in session {}, neither its own nor its parent's ({}: session {}); "
                   "its leader {} ({}) is in the tree, but restore can only fork a task into its parent's session "
                   "(a parent that forked a child and then called setsid() is not supported yet)",
                   k.pid, k.comm, k.sid, p.pid, p.sid, leader->pid, leader->comm);
    if (root_session_outside && k.sid == root.sid)
      return error(EOPNOTSUPP, "pid {} ({}) is in session {} of the shell outside the tree, but its parent {} is "
                   "not: restore can't put it there", k.pid, k.comm, k.sid, p.pid);
    auto [it, added] = helper_index.emplace(k.sid, plan.helpers.size());
    if (added) plan.helpers.push_back({.pid = k.sid, .sid = k.sid, .new_session = true, .parent = k.parent});
    Helper& h = plan.helpers[it->second];
    if (h.parent != k.parent) {
      const Task& first = tasks_[h.adopted.front()];
      return error(EOPNOTSUPP, "pid {} ({}) and pid {} ({}) are in session {}, whose leader has exited, under "
                   "different parents ({} and {}): restore recreates such a session with one helper task, which "
                   "can hand its session's tasks to one parent only", first.pid, first.comm, k.pid, k.comm, k.sid,
                   first.ppid, k.ppid);
    }
    h.adopted.push_back(static_cast<int>(i));
  }

  for (size_t i = 0; i < tasks_.size(); i++) {
    const Task& k = tasks_[i];
    Joins& j = plan.tasks[i];
    if (j.new_session) continue;
    if (k.pgid == k.pid) {
      j.lead_group = true;
    } else if (const Task* leader = find(k.pgid)) {
      if (leader->sid != k.sid)
        return error(EINVAL, "pid {} is in process group {} of another session ({})", k.pid, k.pgid, leader->sid);
      j.join_group = k.pgid;
    } else if (root_group_outside && k.pgid == root.pgid && k.sid == root.sid) {
      j.join_restorer_group = i != 0;  // the root inherits it
    } else if (root_session_outside && k.pgid == root.sid) {
      return error(EOPNOTSUPP, "pid {} ({}) is in process group {} of the session leader outside the tree: restore "
                   "can't put it there", k.pid, k.comm, k.pgid);
    } else {
      // The leader has exited: a helper leads the group (the session's
      // helper when the group was the session leader's).
      auto it = helper_index.find(k.pgid);
      if (it == helper_index.end()) {
        int parent = -1;
        for (size_t c = 0; c < tasks_.size() && parent < 0; c++)
          if (tasks_[c].sid == k.sid && !tasks_[c].zombie) parent = static_cast<int>(c);
        if (parent < 0)
          return error(EOPNOTSUPP, "pid {} ({}) is in process group {}, whose leader has exited, and no live task "
                       "of its session {} is in the tree to create a helper that leads it", k.pid, k.comm, k.pgid,
                       k.sid);
        it = helper_index.emplace(k.pgid, plan.helpers.size()).first;
        plan.helpers.push_back({.pid = k.pgid, .sid = k.sid, .parent = parent});
      }
      if (plan.helpers[it->second].sid != k.sid)
        return error(EINVAL, "pid {} is in process group {} of another session ({})", k.pid, k.pgid,
                     plan.helpers[it->second].sid);
      j.join_group = k.pgid;
    }
  }
  return plan;
}

}  // namespace ckpt::tree
