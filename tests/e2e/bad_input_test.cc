// Bad input gets a clear error and a non-zero exit, and nothing is lost: a
// refused dump leaves the process running untraced, a refused restore leaves
// no process behind.
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "harness.h"
#include "image/crc32c.h"
#include "image/image_file.h"
#include "proc/status.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

// After ckpt gave up on `pid` and exited. Not a readiness wait: no condition
// says "no harm is coming" (a SIGKILL ckpt sent takes a moment to end the
// task), so harm is given a moment to show.
void expect_unharmed(pid_t pid) {
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(tracer_of(pid), 0) << "left traced";
  char s = proc_state(pid);
  EXPECT_TRUE(s == 'S' || s == 'R') << "state " << s;
}

// A forked helper process: leads a session of its own (as a service does),
// closes inherited fds, runs `setup`, then waits in pause(). Returns once
// `ready(pid)` holds: by default, once it is in that pause, its setup done.
template <typename F, typename R>
pid_t spawn(F setup, R ready) {
  pid_t pid = spawn_paused(setup);
  EXPECT_TRUE(ready(pid)) << "helper " << pid << " never got ready";
  return pid;
}
template <typename F>
pid_t spawn(F setup) {
  return spawn(setup, [](pid_t pid) { return wait_in_syscall(pid, SYS_pause); });
}

void reap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST(BadDump, MissingPid) {
  Harness h;
  CkptRun r = h.ckpt({"dump", "-t", "4194000", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("no process with pid 4194000"), std::string::npos) << r.err;
}

TEST(BadDump, KernelThread) {
  Harness h;
  CkptRun r = h.ckpt({"dump", "-t", "2", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("kernel thread"), std::string::npos) << r.err;
}

TEST(BadDump, Itself) {
  Harness h;
  // The shell's pid becomes ckpt's through exec.
  pid_t p = fork();
  if (p == 0) {
    execl("/bin/sh", "sh", "-c", fmt::format("exec {} dump -t $$ -D {} 2>{}/self.err", ckpt_bin(), h.images(), h.dir()).c_str(),
          nullptr);
    _exit(127);
  }
  int st = h.wait_child(p);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
  EXPECT_NE(read_text(h.dir() + "/self.err").find("is ckpt itself"), std::string::npos);
}

TEST(BadDump, ZombieLeader) {
  // The main thread has exited; another thread lives on.
  Harness h;
  pid_t pid = spawn(
      [] {
        pthread_t t;
        pthread_create(&t, nullptr, [](void*) -> void* { for (;;) pause(); }, nullptr);
        // Only this thread, without unwinding through gtest (pthread_exit would).
        syscall(SYS_exit, 0);
      },
      [](pid_t pid) { return wait_state(pid, 'Z'); });  // the leader is a zombie, its thread lives
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("pid {}", pid)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("main thread has exited"), std::string::npos) << r.err;
  EXPECT_EQ(tracer_of(pid), 0);
  reap(pid);
}

// The tree of one of ckpt's ancestors holds ckpt: refused before anything
// is seized (the test process is ckpt's parent, init its ancestor), by each
// command that dumps: dump() and pre_dump() leave that check to their callers.
TEST(BadDump, TreeHoldingCkpt) {
  Harness h;
  for (pid_t pid : {getpid(), 1}) {
    const std::string t = std::to_string(pid);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"dump", "-t", t, "-D", h.images()},
          std::vector<std::string>{"pre-dump", "-t", t, "-D", h.images()},
          std::vector<std::string>{"migrate", "-t", t, "--to", "127.0.0.1:1", "-D", h.dir() + "/migrate"}}) {
      CkptRun r = h.ckpt(args);
      EXPECT_NE(r.exit_code(), 0) << args[0];
      EXPECT_NE(r.err.find(fmt::format("pid {} (", pid)), std::string::npos) << args[0] << ": " << r.err;
      EXPECT_NE(r.err.find("is an ancestor of ckpt"), std::string::npos) << args[0] << ": " << r.err;
      EXPECT_EQ(tracer_of(pid), 0) << args[0];
    }
  }
}

TEST(BadDump, UnsupportedFd) {
  Harness h;
  pid_t pid = spawn([] {
    if (socket(AF_PACKET, SOCK_DGRAM, 0) < 0) _exit(1);  // no model of packet sockets in ckpt
  });
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("is socket:["), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not supported"), std::string::npos) << r.err;
  expect_unharmed(pid);
  // Nothing half-written is taken for a checkpoint.
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  reap(pid);
}

// A dnotify watch (F_NOTIFY) shows nowhere ckpt could read it; restored
// without it, the task would wait for events that never come. The owner it
// gives the directory is seen: refused, and the watch still works after.
TEST(BadDump, DnotifyWatch) {
  Harness h;
  const std::string watched = h.images() + ".watched";
  ASSERT_EQ(mkdir(watched.c_str(), 0700), 0);
  const int sig = SIGRTMIN + 3;  // blocked: it stays pending, for the test to see
  pid_t pid = spawn([&] {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, sig);
    sigprocmask(SIG_BLOCK, &block, nullptr);
    int d = open(watched.c_str(), O_RDONLY | O_DIRECTORY);
    if (d < 0 || fcntl(d, F_SETSIG, sig) != 0 || fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT) != 0) _exit(1);
  });
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("as a dnotify watch (F_NOTIFY) gives it"), std::string::npos) << r.err;
  expect_unharmed(pid);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  // The watch is still there: a file made in the directory signals the task.
  const std::string made = watched + "/made";
  close(open(made.c_str(), O_CREAT | O_WRONLY, 0600));
  EXPECT_TRUE(wait_until([&] {
    const auto st = ckpt::proc::read_status(pid);
    return st && (st->shd_pnd >> (sig - 1) & 1);
  })) << "the watch's signal is not pending";
  reap(pid);
  unlink(made.c_str());
  rmdir(watched.c_str());
}

// What restore could not bring back is refused at dump, the process left
// running: an fd on a namespace file (a regular file to stat(2), but not
// one its path opens), a working directory since removed, a chroot.
// A file the task holds that changed size between dump and restore is
// refused before any task exists, naming it and both sizes; with
// --skip-file-check it is opened anyway.
TEST(BadRestore, HeldFileChangedSize) {
  Harness h;
  const std::string path = h.dir() + "/held";
  pid_t pid = spawn([&] {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, "12345", 5) != 5) _exit(1);
  });
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  reap(pid);
  int fd = open(path.c_str(), O_WRONLY | O_APPEND);
  ASSERT_EQ(write(fd, "678", 3), 3);
  close(fd);
  CkptRun r = h.ckpt({"restore", "-d", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(path + " is not as it was dumped: 5 bytes then, 8 now"), std::string::npos) << r.err;
  EXPECT_FALSE(alive(pid)) << "restore left a process behind";
  CkptRun s = h.ckpt({"restore", "-d", "-D", h.images(), "--skip-file-check"});
  ASSERT_EQ(s.exit_code(), 0) << s.err;
  EXPECT_TRUE(alive(pid));
  reap(pid);
}

// A file the task holds that was replaced between dump and restore by
// another of the same size (saved by an editor: written aside, renamed
// over) is refused before any task exists, naming it and both inodes;
// --skip-file-check opens the new one. One moved away is refused naming
// the path.
TEST(BadRestore, HeldFileReplacedOrMoved) {
  Harness h;
  const std::string path = h.dir() + "/held";
  pid_t pid = spawn([&] {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, "12345", 5) != 5) _exit(1);
  });
  struct stat before {};
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  reap(pid);
  const std::string aside = path + ".new";
  int fd = open(aside.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_EQ(write(fd, "abcde", 5), 5);
  close(fd);
  ASSERT_EQ(rename(aside.c_str(), path.c_str()), 0);
  struct stat now {};
  ASSERT_EQ(stat(path.c_str(), &now), 0);
  CkptRun r = h.ckpt({"restore", "-d", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("{} is not the file that was dumped: inode {} on device", path, before.st_ino)),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fmt::format("inode {} on", now.st_ino)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--skip-file-check"), std::string::npos) << r.err;
  EXPECT_FALSE(alive(pid)) << "restore left a process behind";

  ASSERT_EQ(rename(path.c_str(), aside.c_str()), 0);
  CkptRun m = h.ckpt({"restore", "-d", "-D", h.images()});
  EXPECT_NE(m.exit_code(), 0);
  EXPECT_NE(m.err.find(fmt::format("open {}: ENOENT", path)), std::string::npos) << m.err;
  EXPECT_FALSE(alive(pid)) << "restore left a process behind";

  ASSERT_EQ(rename(aside.c_str(), path.c_str()), 0);
  CkptRun s = h.ckpt({"restore", "-d", "-D", h.images(), "--skip-file-check"});
  ASSERT_EQ(s.exit_code(), 0) << s.err;
  EXPECT_TRUE(alive(pid));
  reap(pid);
}

// An fd of a kind ckpt can't restore fails the dump with the kind named;
// the process runs on as it was.
TEST(BadDump, UnsupportedFdKindsAreNamed) {
  Harness h;
  struct Case {
    std::function<void()> setup;
    std::string want;
  };
  const std::vector<Case> cases = {
      {[] {
         io_uring_params p{};
         if (syscall(SYS_io_uring_setup, 4, &p) < 0) _exit(1);
       }, "anon_inode:[io_uring]"},
      {[] {
         perf_event_attr a{};
         a.size = sizeof a;
         a.type = PERF_TYPE_SOFTWARE;
         a.config = PERF_COUNT_SW_TASK_CLOCK;
         a.exclude_kernel = 1;
         if (syscall(SYS_perf_event_open, &a, 0, -1, -1, 0) < 0) _exit(1);
       }, "anon_inode:[perf_event]"},
      {[] {
         bpf_attr a{};
         a.map_type = BPF_MAP_TYPE_ARRAY;
         a.key_size = 4;
         a.value_size = 8;
         a.max_entries = 4;
         if (syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a) < 0) _exit(1);
       }, "anon_inode:bpf-map"},
      {[] {
         if (syscall(SYS_userfaultfd, 0) < 0) _exit(1);
       }, "anon_inode:[userfaultfd]"},
  };
  for (const Case& c : cases) {
    pid_t pid = spawn(c.setup);  // the new fd is its lowest free one, 3
    CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
    EXPECT_NE(r.exit_code(), 0);
    EXPECT_NE(r.err.find(fmt::format("pid {}: fd 3 is {}: this kind of file is not supported", pid, c.want)),
              std::string::npos) << r.err;
    expect_unharmed(pid);
    EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
    reap(pid);
  }
}

// A deleted file holding more data than --ghost-limit is refused at dump,
// naming the limit; raised, the file comes back with its data and owner.
TEST(BadDump, DeletedFileOverTheGhostLimit) {
  Harness h;
  const std::string path = h.dir() + "/big";
  pid_t pid = spawn([&] {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || dup2(fd, 10) != 10 || close(fd) < 0) _exit(1);
    fd = 10;
    std::string data(2 << 20, 'x');
    if (write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()) || unlink(path.c_str()) < 0) _exit(1);
    if (fcntl(fd, F_SETOWN, getpid()) < 0 || fcntl(fd, F_SETSIG, SIGRTMIN + 1) < 0) _exit(1);
  });
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("pid {}: fd 10 ({} (deleted)): it holds more than 1048576 bytes", pid, path)),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--ghost-limit"), std::string::npos) << r.err;
  expect_unharmed(pid);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);

  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--ghost-limit", "4M"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  reap(pid);
  const std::string pidfile = h.dir() + "/restored.pid";
  CkptRun rr = h.ckpt({"restore", "-d", "-D", h.images(), "--pidfile", pidfile});
  ASSERT_EQ(rr.exit_code(), 0) << rr.err;
  ASSERT_TRUE(h.wait_restored(pid, pidfile));
  const std::string fd = fmt::format("/proc/{}/fd/10", pid);
  char link[4096] = "";
  EXPECT_GT(readlink(fd.c_str(), link, sizeof link - 1), 0);
  EXPECT_EQ(std::string(link), path + " (deleted)");
  EXPECT_EQ(read_text(fd), std::string(2 << 20, 'x'));
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "the file has a name again";
  // Its owner and signal, seen through a copy of the task's fd.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  int copy = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, 10, 0));
  ASSERT_GE(copy, 0);
  EXPECT_EQ(fcntl(copy, F_GETOWN), pid);
  EXPECT_EQ(fcntl(copy, F_GETSIG), SIGRTMIN + 1);
  close(copy);
  close(pidfd);
  reap(pid);
}

TEST(BadDump, RestoreCouldNotReopen) {
  Harness h;
  const std::string gone = h.dir() + "/gone";
  const std::string jail = h.dir() + "/jail";
  ASSERT_EQ(mkdir(jail.c_str(), 0700), 0);
  struct Case {
    std::function<void()> setup;
    std::string want;
  };
  const std::vector<Case> cases = {
      {[] { if (open("/proc/self/ns/net", O_RDONLY) < 0) _exit(1); }, "restore could not open it again by its path"},
      {[&] { if (mkdir(gone.c_str(), 0700) < 0 || chdir(gone.c_str()) < 0 || rmdir(gone.c_str()) < 0) _exit(1); },
       "is not at that path any more"},
      {[&] { if (chroot(jail.c_str()) < 0 || chdir("/") < 0) _exit(1); }, "another root directory (chroot)"},
  };
  for (const Case& c : cases) {
    pid_t pid = spawn(c.setup);
    CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
    EXPECT_NE(r.exit_code(), 0);
    EXPECT_NE(r.err.find(c.want), std::string::npos) << r.err;
    expect_unharmed(pid);
    EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
    reap(pid);
  }
}

// A name that is not UTF-8 (of an open file, of a thread) would make an image
// restore can't read: the dump fails and the process runs on.
TEST(BadDump, NameNotUtf8) {
  Harness h;
  const std::string file = h.dir() + "/caf\xe9";
  for (bool thread_name : {false, true}) {
    pid_t pid = spawn([&] {
      if (thread_name) prctl(PR_SET_NAME, "caf\xe9", 0, 0, 0);
      else if (open(file.c_str(), O_RDWR | O_CREAT, 0600) < 0) _exit(1);
    });
    CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
    EXPECT_NE(r.exit_code(), 0);
    EXPECT_NE(r.err.find("is not UTF-8"), std::string::npos) << r.err;
    expect_unharmed(pid);
    EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
    reap(pid);
  }
}

// A VmFlag ckpt can't put back (here memory registered with userfaultfd:
// "um") is refused at dump, by name, before any fd is looked at.
TEST(BadDump, VmFlagCkptCannotRestore) {
  Harness h;
  pid_t pid = spawn([] {
    int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC));
    uffdio_api api{.api = UFFD_API, .features = 0, .ioctls = 0};
    if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) != 0) _exit(1);
    void* mem = mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uffdio_register reg{.range = {reinterpret_cast<uint64_t>(mem), 4 * 4096}, .mode = UFFDIO_REGISTER_MODE_MISSING,
                        .ioctls = 0};
    if (mem == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) _exit(1);
  });
  ASSERT_TRUE(alive(pid));
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("has VmFlags \"um\": registered with userfaultfd"), std::string::npos) << r.err;
  expect_unharmed(pid);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  reap(pid);
}

// Syscall user dispatch with its selector at block would send every
// syscall ckpt makes in the thread to the task's SIGSYS handler: refused
// before the first, and the task runs on with dispatch still on and no
// SIGSYS seen (it checks both when stopped).
TEST(BadDump, SyscallUserDispatchBlocking) {
  Harness h;
  pid_t pid = h.start_workload("threadmodes", {"block"});
  ASSERT_GT(pid, 0);
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("syscall user dispatch on and its selector byte at"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("says block"), std::string::npos) << r.err;
  expect_unharmed(pid);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("threadmodes"));
}

// Without CAP_SYS_ADMIN ckpt cannot suspend seccomp: a task in strict mode
// would be killed by its first parasite syscall. ckpt refuses, and the task
// runs on.
TEST(BadDump, SeccompWithoutCapSysAdmin) {
  Harness h;
  pid_t pid = h.start_workload("strict");
  ASSERT_GT(pid, 0);
  pid_t c = h.ckpt_background({"dump", "-t", std::to_string(pid), "-D", h.images()},
                              {"/usr/bin/setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"});
  CkptRun r = h.wait_ckpt(c);
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("cannot suspend its filters"), std::string::npos) << r.err;
  expect_unharmed(pid);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("strict"));
}

// ckpt's child may not go below ckpt's own oom_score_adj without
// CAP_SYS_RESOURCE (which root lacks on this machine): a task restore could
// not put back is refused at dump, and lives on.
TEST(BadDump, OomScoreAdjCkptCouldNotPutBack) {
  const auto cap_eff = ckpt::proc::read_status(getpid());
  ASSERT_TRUE(cap_eff);
  if (cap_eff->cap_eff & (1ULL << CAP_SYS_RESOURCE)) GTEST_SKIP() << "ckpt has CAP_SYS_RESOURCE: it can put any value back";
  Harness h;
  pid_t pid = h.start_workload("counter");
  ASSERT_GT(pid, 0);
  // ckpt runs with 500, the task with 0.
  pid_t c = h.ckpt_background({"dump", "-t", std::to_string(pid), "-D", h.images()},
                              {"/bin/sh", "-c", "echo 500 > /proc/self/oom_score_adj && exec \"$0\" \"$@\""});
  CkptRun r = h.wait_ckpt(c);
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("oom_score_adj 0, lower than ckpt's own 500: restoring it needs CAP_SYS_RESOURCE"),
            std::string::npos) << r.err;
  expect_unharmed(pid);
  reap(pid);
}

// A file of a mounted hugetlbfs is refused at dump as hugetlb with its page
// size: hugetlbfs also sets VM_DONTEXPAND ("de"), which used to name it "a
// driver's or kernel's mapping". (Anonymous MAP_HUGETLB memory, private or
// shared, and memfds of huge pages, mapped shared or private or held as
// fds, are restored: the hugetlb workload.) The test mounts a hugetlbfs in
// its directory, allocates two 2 MiB pages (/proc/sys/vm/nr_hugepages) and
// puts both back after.
TEST(BadDump, HugetlbfsFileNamedWithItsPageSize) {
  const std::string knob = "/proc/sys/vm/nr_hugepages";
  const std::string free_pages = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
  if (access(free_pages.c_str(), F_OK) != 0) GTEST_SKIP() << "no 2 MiB huge pages on this machine";
  const long before = std::stol(read_text(knob));
  struct PutBack {
    std::string knob;
    long n;
    ~PutBack() { std::ofstream(knob) << n; }
  } put_back{knob, before};
  std::ofstream(knob) << before + 2;
  if (std::stol(read_text(free_pages)) < 2) GTEST_SKIP() << "the kernel could not allocate two 2 MiB huge pages";
  Harness h;
  const std::string mnt = h.dir() + "/huge";
  ASSERT_EQ(mkdir(mnt.c_str(), 0700), 0);
  if (mount("ckpt-test", mnt.c_str(), "hugetlbfs", 0, "pagesize=2M") != 0)
    GTEST_SKIP() << "mount hugetlbfs: " << strerror(errno);
  struct Unmount {
    std::string at;
    ~Unmount() { umount2(at.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const std::string file = mnt + "/file";
  pid_t pid = spawn([&] {
    constexpr size_t kLen = 2 << 20;
    int fd = open(file.c_str(), O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, kLen) < 0) _exit(1);
    void* mem = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) _exit(1);
    std::memset(mem, 0x5a, kLen);
  });
  ASSERT_TRUE(alive(pid));
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("({}) has VmFlags \"ht\": hugetlb memory (hugetlbfs, shared, 2048 kB pages): "
                                   "not supported yet", file)),
            std::string::npos) << r.err;
  expect_unharmed(pid);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  reap(pid);
}

// A task whose executable was deleted since it started could never come
// back (restore opens the executable at its path): refused at dump, naming
// the deleted file, and it lives on.
TEST(BadDump, ExecutableDeleted) {
  Harness h;
  const std::string copy = h.dir() + "/wl_counter_copy";
  {
    std::ifstream in(CKPT_WORKLOADS "/wl_counter", std::ios::binary);
    std::ofstream out(copy, std::ios::binary);
    out << in.rdbuf();
  }
  ASSERT_EQ(chmod(copy.c_str(), 0755), 0);
  pid_t pid = h.start_workload_at(copy, "counter");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(unlink(copy.c_str()), 0);
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(copy + " (deleted)"), std::string::npos) << r.err;
  expect_unharmed(pid);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("counter"));
}

// errno of exec'ing `path`, 0 once it runs (a close-on-exec pipe tells).
int exec_errno(const char* path) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return errno;
  pid_t pid = fork();
  if (pid == 0) {
    const char* argv[] = {path, nullptr};
    execv(path, const_cast<char**>(argv));
    int e = errno;
    (void)!write(p[1], &e, sizeof e);
    _exit(127);
  }
  close(p[1]);
  int e = 0;
  (void)!read(p[0], &e, sizeof e);
  close(p[0]);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return e;
}

TEST(BadDump, ThirtyTwoBitProcess) {
  if (int e = exec_errno(CKPT_WORKLOADS "/pause32"))
    GTEST_SKIP() << "this kernel runs no 32-bit program (ia32 emulation off?): exec: " << strerror(e);
  Harness h;
  pid_t pid = spawn(
      [] {
        const char* argv[] = {CKPT_WORKLOADS "/pause32", nullptr};
        execv(argv[0], const_cast<char**>(argv));
        _exit(127);
      },
      [](pid_t pid) { return wait_in_syscall(pid, 29); });  // pause32 in its ia32 pause (29)
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("only 64-bit processes are supported"), std::string::npos) << r.err;
  expect_unharmed(pid);
  reap(pid);
}

// A good checkpoint of the counter workload, its process gone.
struct Dumped {
  Harness h;
  pid_t pid = -1;
  Dumped() { pid = h.dump_workload("counter"); }
  std::string file(const std::string& prefix) const { return fmt::format("{}/{}-{}.img", h.images(), prefix, pid); }
  // Restore must fail with `what` in its message and leave no process.
  void expect_refused(const std::string& what) {
    CkptRun r = h.ckpt({"restore", "-D", h.images()});
    EXPECT_NE(r.exit_code(), 0);
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_FALSE(alive(pid)) << "restore left a process behind";
  }
};

void patch(const std::string& path, size_t off, const void* bytes, size_t n) {
  int fd = open(path.c_str(), O_WRONLY);
  ASSERT_EQ(pwrite(fd, bytes, n, off), static_cast<ssize_t>(n));
  close(fd);
}

TEST(BadRestore, MissingDirectory) {
  Harness h;
  CkptRun r = h.ckpt({"restore", "-D", h.dir() + "/nope"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(h.dir() + "/nope"), std::string::npos) << r.err;
}

TEST(BadRestore, NotACheckpoint) {
  Harness h;
  mkdir(h.images().c_str(), 0700);
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("inventory.img is missing"), std::string::npos) << r.err;
}

TEST(BadRestore, TruncatedCore) {
  Dumped d;
  ASSERT_EQ(truncate(d.file("core").c_str(), 100), 0);
  d.expect_refused(d.file("core") + ": truncated at offset 100");
}

TEST(BadRestore, CorruptedPayload) {
  Dumped d;
  uint8_t x = 0xff;
  patch(d.file("mm"), 40, &x, 1);
  d.expect_refused(d.file("mm") + ": checksum mismatch in payload (offset 32");
}

TEST(BadRestore, WrongMagic) {
  Dumped d;
  patch(d.file("core"), 0, "XXXX", 4);
  d.expect_refused(d.file("core") + ": not a ckpt image (bad magic at offset 0)");
}

TEST(BadRestore, FutureVersion) {
  Dumped d;
  // A well-formed header from a newer ckpt: version 99, header checksum fixed.
  std::string core = d.file("core");
  uint8_t hdr[32];
  int fd = open(core.c_str(), O_RDWR);
  ASSERT_EQ(pread(fd, hdr, 32, 0), 32);
  uint32_t v = 99;
  std::memcpy(hdr + 8, &v, 4);
  uint32_t crc = ckpt::crc32c(hdr, 28);
  std::memcpy(hdr + 28, &crc, 4);
  ASSERT_EQ(pwrite(fd, hdr, 32, 0), 32);
  close(fd);
  d.expect_refused(core + fmt::format(": image format version 99 is newer than this ckpt reads ({})", ckpt::image::kFormatVersion));
}

TEST(BadRestore, TruncatedPages) {
  Dumped d;
  ASSERT_EQ(truncate(d.file("pages").c_str(), 8192), 0);
  d.expect_refused(d.file("pages") + ": truncated at offset 8192");
}

TEST(BadRestore, PidTaken) {
  Harness h;
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("pid {}: the pid is taken by another process (wl_counter)", pid)),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("restore --pidns"), std::string::npos) << r.err;
  expect_unharmed(pid);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(BadDump, ExistingCheckpointNotOverwritten) {
  Dumped d;
  pid_t pid = d.h.start_workload("counter");
  CkptRun r = d.h.ckpt({"dump", "-t", std::to_string(pid), "-D", d.h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("already holds a checkpoint"), std::string::npos) << r.err;
  expect_unharmed(pid);
}

TEST(Cli, UnknownOptionIsAnError) {
  Harness h;
  CkptRun r = h.ckpt({"dump", "-t", "1", "-D", h.images(), "--frobnicate"});
  EXPECT_EQ(r.exit_code(), 2);
  EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.err;
}

TEST(Cli, Version) {
  Harness h;
  CkptRun r = h.ckpt({"--version"});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, fmt::format("Version: {}\n", CKPT_VERSION));
  EXPECT_EQ(r.err, "");
}

}  // namespace
}  // namespace e2e
