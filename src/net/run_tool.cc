#include "net/run_tool.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/unique_fd.h"

extern char** environ;

namespace ckpt::net {

std::string find_tool(const std::string& name) {
  for (const char* d : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    std::string p = d + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

Result<ToolOutput> run_tool(const std::vector<std::string>& argv, std::string_view input) {
  const std::string path = find_tool(argv.at(0));
  if (path.empty()) return error(ENOENT, "{} is not installed", argv[0]);
  // Input and output through memfds, not pipes: no deadlock however much
  // either side has to say, and no thread to feed one.
  int in_fd = memfd_create("ckpt-tool-in", MFD_CLOEXEC);
  if (in_fd < 0) return sys_error("memfd_create");
  UniqueFd in(in_fd);
  TRY(write_all(in.get(), input.data(), input.size()));
  if (lseek(in.get(), 0, SEEK_SET) < 0) return sys_error("lseek");
  int out_fd = memfd_create("ckpt-tool-out", MFD_CLOEXEC);
  if (out_fd < 0) return sys_error("memfd_create");
  UniqueFd out(out_fd);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, out.get(), 2);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawn(&pid, path.c_str(), &fa, &at, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc != 0) {
    errno = rc;
    return sys_error("start {}", path);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return sys_error("wait for {}", path);
  ToolOutput r;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (lseek(out.get(), 0, SEEK_SET) < 0) return sys_error("lseek");
  r.out = TRY(read_fd(out.get(), path));
  return r;
}

}  // namespace ckpt::net
