#include "files/tree_pid.h"

#include "proc/status.h"

namespace ckpt::files {

Result<const tree::Task*> tree_task(pid_t pid, const CollectContext& ctx, std::string_view what) {
  if (const tree::Task* t = ctx.tree ? ctx.tree->find(pid) : nullptr) return t;
  auto st = proc::read_status(pid);
  if (!st) return error(EOPNOTSUPP, "{} pid {}, which is not in the tree (it has exited): not supported", what, pid);
  if (st->tgid != pid && ctx.tree && ctx.tree->find(st->tgid))
    return error(EOPNOTSUPP, "{} thread {} of pid {} of the tree: only a process's main thread is supported yet",
                 what, pid, st->tgid);
  return error(EOPNOTSUPP, "{} pid {} ({}), which is not in the tree: not supported (dump a tree that holds it)",
               what, pid, st->name);
}

}  // namespace ckpt::files
