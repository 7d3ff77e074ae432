// The process tree: one model of the tasks a checkpoint holds, built by dump
// while it seizes them and read back from tree.img by restore, verify and
// show, with the rules that say whether restore can recreate the tree's
// sessions and process groups (checked at dump, while the tree still lives).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "ckpt.pb.h"

namespace ckpt::tree {

struct Task {
  pid_t pid = 0, ppid = 0, pgid = 0, sid = 0;
  bool zombie = false;
  int exit_status = 0;  // zombie: the status its parent's wait() gets
  std::string comm;
  int parent = -1;  // index in ProcessTree::tasks(); -1 for the root
  std::vector<int> children;
};

// How a task gets its session and process group at restore. Leaders act
// right after their fork, before they fork their own children (who inherit
// the session); members join once every task of the tree exists.
struct Joins {
  bool new_session = false;  // setsid()
  bool lead_group = false;   // setpgid(0, 0)
  pid_t join_group = 0;      // setpgid(0, join_group); 0: none
  // Its group is the root's, which lies outside the tree (--shell-job): the
  // group of the restoring ckpt, which the restored root inherits.
  bool join_restorer_group = false;
};

// A task restore adds for a session or group whose leader has exited (the
// dumped tree had none): it takes the leader's PID, leads the session
// (setsid) or the group (setpgid(0, 0)) before the barrier, lets the others
// join after it, and exits once they have; its parent reaps it before it
// parks, so that the restored tree shows nothing of it.
struct Helper {
  pid_t pid = 0;             // the exited leader's: the id of its session or group
  pid_t sid = 0;             // the session it is in (`pid` when it leads one)
  bool new_session = false;  // setsid(), which makes it lead group `pid` too; else setpgid(0, 0)
  int parent = -1;           // index of the task that forks and reaps it
  // A session's helper forks the tasks of its session whose parent is in
  // another one (they are born in its session, as only a fork can put them
  // there); when it exits they are reparented to `parent`, a child subreaper
  // for that while, which is their dumped parent.
  std::vector<int> adopted;  // indices in ProcessTree::tasks()
};

// How restore recreates the tree's sessions and groups.
struct JoinPlan {
  std::vector<Joins> tasks;  // one per task of the tree
  std::vector<Helper> helpers;
};

class ProcessTree {
 public:
  // Checks the records: the root first and alive, pids unique, every other
  // task's parent an earlier, live task of the tree, zombies' statuses ones
  // that wait() can report.
  static Result<ProcessTree> make(std::vector<Task> tasks);
  static Result<ProcessTree> from_image(const img::ProcessTree& image);
  img::ProcessTree to_image() const;

  const std::vector<Task>& tasks() const { return tasks_; }
  const Task& root() const { return tasks_[0]; }
  const Task* find(pid_t pid) const;
  // Tasks alive at dump (those with images of their own), the root first.
  std::vector<pid_t> alive() const;

  // One Joins per task and the helpers restore adds, or why restore could
  // not recreate the sessions and groups. With `shell_job` the root's
  // session and group may lie outside the tree: the restored tree joins the
  // restoring shell's.
  Result<JoinPlan> plan_joins(bool shell_job) const;

 private:
  std::vector<Task> tasks_;
  std::map<pid_t, int> index_;
};

}  // namespace ckpt::tree
