// File descriptors and the open file descriptions they refer to: the front
// of src/files/. One file per kind of description (kind.h) holds its dump and
// its restore; this one finds what the fds of a tree share and puts them back.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "files/inet_socket.h"
#include "files/kind.h"

namespace ckpt::files {

// The fds of one frozen task, each claimed by a kind (kind.h): table.fds(i)
// is probes[i], of kinds[i]; descriptions are not yet numbered (desc 0).
struct TaskFds {
  pid_t pid = 0;
  UniqueFd pidfd;
  img::Files table;
  std::vector<FdProbe> probes;
  std::vector<const Kind*> kinds;
};

// Every fd of `pid`, or an Error naming the first one no kind can dump (the
// task lives on: nothing has been changed yet).
Result<TaskFds> scan_fds(pid_t pid, const DumpFlags& flags);

// The open file descriptions of the whole tree, each once: the fds of all
// tasks that share one (dup, fork, SCM_RIGHTS) are found with kcmp, in
// O(N log N) calls for N fds (kcmp orders files); each description is
// collected by its kind from its first fd (the lowest of the earliest task),
// numbered, and every task's table names it. `tasks`: parents first.
Result<img::FileDescs> collect_descriptions(std::span<TaskFds* const> tasks, const CollectContext& ctx);

// fd slots a restore of this task needs (restore/fd_moves.h): its highest fd
// and the temporary fds above it (pipes, pages image, executable and one per
// mapped file), plus room for ckpt's own fds. ckpt restore raises its soft
// RLIMIT_NOFILE to its hard limit to get them.
int restore_fd_slots(const img::Files& files, const img::MmImage& mm);
// fd slots ckpt restore itself needs: every description of the tree (and
// what creating a pipe holds meanwhile) and every task's temporary fds, held
// until the tasks take theirs.
int restorer_fd_slots(const img::FileDescs& descs, int tasks);
// RLIMIT_NOFILE of a task, from /proc/PID/limits (which anyone may read;
// prlimit(2) needs the task's credentials or CAP_SYS_RESOURCE).
// RLIM_INFINITY for "unlimited".
struct NofileLimit {
  uint64_t soft, hard;
};
Result<NofileLimit> read_nofile_limit(pid_t pid);
// Refuses, while the task still lives, a task whose RLIMIT_NOFILE hard limit
// (/proc/PID/limits) could not hold what its restore needs.
Result<void> check_restore_fits(pid_t pid, const img::Files& files, const img::MmImage& mm);

// An fd to install at `target` in the restored task: ckpt's fd `fd`, owned by
// PreparedFds::open. A `late` one (its kind needs_tasks) holds a placeholder
// until open_late: the task takes ckpt's fd of that number then, before
// its fds move (the spawner: pidfd_getfd through ckpt's pidfd).
struct PreparedFd {
  int target;
  bool cloexec;
  int fd;
  bool late = false;
};

// What a task does with its fds: dup ckpt's to their numbers (fd_moves.h),
// then take its in-task steps (the spawner runs both).
struct TaskFdPlan {
  std::vector<PreparedFd> fds;
  std::vector<InTaskStep> steps;
};

struct PreparedFds {
  std::vector<UniqueFd> open;      // one per open file description of the tree, by id - 1
  std::vector<uint32_t> late;      // ids of those opened once the tasks exist (open_late)
  std::vector<TaskFdPlan> tasks;   // per task
  // TCP connections in repair mode until the tree is restored
  // (inet_socket.h: leave_repair); closed in it, silently, if it is not.
  std::vector<RepairedSocket> repaired;
};


// Creates (as ckpt) every description of the tree, so that a failure is
// reported before any task exists: ckpt holds one fd per description, every
// task inherits them all from ckpt and dups those it holds to their numbers
// (restore/fd_moves.h). `descs` and the tables are verified
// (image::check_file_descs).
// `shmem`: the shared memory objects restore created (a memfd fd may be one).
Result<PreparedFds> prepare_fds(const img::FileDescs& descs,
                                std::span<const std::pair<pid_t, const img::Files*>> tasks,
                                const std::map<uint32_t, UniqueFd>& shmem, bool check_files,
                                bool tcp_close = false);
// Once every task of the tree exists with its PID (zombies not dead yet):
// creates the descriptions whose kind needs_tasks, each onto the fd number
// of its placeholder in `fds.open`. Every task that holds one then takes it
// from ckpt (the spawner: pidfd_getfd through ckpt's pidfd).
Result<void> open_late(const img::FileDescs& descs, PreparedFds& fds);

// F_SETOWN, once the owners exist (the kernel refuses a pid that does not).
// `outside`: a dumped pid (or group id) as ckpt sees it (restore --pidns).
Result<void> set_owners(const img::FileDescs& descs, const PreparedFds& fds,
                        const std::function<pid_t(pid_t)>& outside = [](pid_t p) { return p; });

}  // namespace ckpt::files
