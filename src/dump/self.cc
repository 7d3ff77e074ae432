#include "dump/self.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/unique_fd.h"
#include "proc/knobs.h"
#include "proc/status.h"

namespace ckpt::dump {

Result<Self> Self::read() {
  Self s;
  for (const char* kind : {"mnt", "net", "pid", "ipc", "uts", "user", "cgroup", "time"}) {
    struct stat st;
    if (stat(fmt::format("/proc/self/ns/{}", kind).c_str(), &st) == 0) s.namespaces.push_back({kind, st.st_dev, st.st_ino});
  }
  struct stat root;
  if (stat("/", &root) < 0) return sys_error("stat ckpt's root directory");
  s.root_dev = root.st_dev;
  s.root_ino = root.st_ino;
  s.oom_score_adj = TRY(proc::read_oom_score_adj(getpid()));
  s.sys_resource = TRY(proc::read_status(getpid())).cap_eff & (1ULL << CAP_SYS_RESOURCE);
  return s;
}

Result<void> check_namespaces(pid_t pid, const Self& self) {
  UniqueFd dir(open(fmt::format("/proc/{}/ns", pid).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return sys_error("pid {}: open its namespaces", pid);
  for (const Self::Namespace& ns : self.namespaces) {
    struct stat theirs;
    if (fstatat(dir.get(), ns.kind, &theirs, 0) < 0) return sys_error("pid {}: read its {} namespace", pid, ns.kind);
    if (theirs.st_ino != ns.ino || theirs.st_dev != ns.dev)
      return error(EOPNOTSUPP, "pid {} is in another {} namespace than ckpt: namespaces are not supported yet", pid,
                   ns.kind);
  }
  return {};
}

}  // namespace ckpt::dump
