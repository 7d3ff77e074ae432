// Drives real processes through the ckpt binary, as root. The test process is
// a child subreaper, so workloads killed by a dump are reaped here and their
// PIDs are free for the restore.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/result.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"

namespace e2e {

// The ckpt binary the tests drive: $CKPT_BIN if set (CI points it at the
// sanitizer build), else the one built next to the tests.
const char* ckpt_bin();

// How a parameterized test restores: its name in the test's name and in
// ctest's listing (else gtest prints the struct's bytes).
struct Mode {
  bool breakpoints;
  bool leave_running = false;
};
std::string mode_name(const Mode& m);
inline void PrintTo(const Mode& m, std::ostream* os) { *os << mode_name(m); }
inline std::string mode_test_name(const ::testing::TestParamInfo<Mode>& i) { return mode_name(i.param); }

struct CkptRun {
  int status = -1;  // wait status
  std::string out, err;
  int exit_code() const;
};

class Harness {
 public:
  Harness();
  ~Harness();
  const std::string& dir() const { return dir_; }
  std::string images() const { return dir_ + "/img"; }

  // Starts build/workloads/wl_<name> and waits for its ready file.
  pid_t start_workload(const std::string& name, const std::vector<std::string>& args = {});
  // Same, running the workload's binary from `binary` (a copy made elsewhere).
  pid_t start_workload_at(const std::string& binary, const std::string& name,
                          const std::vector<std::string>& args = {});
  std::string workload_log(const std::string& name) const;

  // Starts wl_<name>, dumps it (the dump kills it) and reaps it: its
  // checkpoint is in images(). Returns its pid.
  pid_t dump_workload(const std::string& name, const std::vector<std::string>& args = {});

  // Runs ckpt to completion.
  CkptRun ckpt(const std::vector<std::string>& args);
  // Starts ckpt in the background; finish with wait_ckpt().
  // `prefix`: a command that runs ckpt (e.g. setpriv dropping a capability).
  pid_t ckpt_background(const std::vector<std::string>& args, const std::vector<std::string>& prefix = {});
  CkptRun wait_ckpt(pid_t pid, std::chrono::seconds timeout = std::chrono::seconds(60));
  // Starts `ckpt dump --leave-running` of `pid`, slowed down in its memory
  // step (CKPT_FAULT=slow:memory), and returns once its parasite is in the
  // task: frozen, traced, its main thread in the parasite with every signal
  // blocked. Returns -1 if that never happens.
  pid_t slow_dump_with_parasite(pid_t pid);

  // Restores images() in the background (with --no-breakpoints unless
  // `breakpoints`; -v4 into restore.log; `extra` appended) and returns
  // ckpt's pid once the restored `root` runs, untraced: finish with
  // wait_ckpt(). -1 if it never does (reported through gtest).
  pid_t restore_background(pid_t root, bool breakpoints, const std::vector<std::string>& extra = {});
  // Restores images() of workload `name` (rooted at `root`, at a
  // breakpoint), lets it check itself (SIGTERM), and expects the restore to
  // end with status 0 and the workload to have printed "PASS <name>".
  void restore_expect_pass(pid_t root, const std::string& name);
  // The whole cycle for a tree workload rooted at `root`: `dump` runs and
  // must succeed; with `leave_running` its tasks must be let go and the
  // root gets SIGTERM: its status is returned, unless
  // restore_after_leave_running: then it must pass its own verification
  // (its tree gone), and the files it changed are put back as dumped
  // (FilesAsDumped); else the dump must have killed them (reaped here).
  // Then verify must accept the
  // images, `between` runs (checks on the images), the tree is restored
  // and let go, and `restored` runs (checks on the restored tree). Then the
  // root gets SIGTERM; returns its wait status (-1 if a step failed:
  // reported through gtest).
  int dump_restore_tree(pid_t root, const std::vector<std::string>& dump, bool leave_running, bool breakpoints,
                        const std::function<void()>& between = {}, const std::function<void()>& restored = {});

  // dump_restore_tree with leave_running restores the images too, once
  // the tree that ran on has passed (off where a peer outside the tree
  // can't go through it twice).
  bool restore_after_leave_running = false;

  // waitpid with a timeout; returns the status (or -1 on timeout, after SIGKILL).
  int wait_child(pid_t pid, std::chrono::seconds timeout = std::chrono::seconds(30));
  // Waits until ckpt restore has written `pidfile` (after completion) and let
  // go of the task (no tracer).
  bool wait_restored(pid_t pid, const std::string& pidfile, std::chrono::seconds timeout = std::chrono::seconds(20));

 private:
  std::string dir_;
  std::vector<pid_t> children_;
  std::map<pid_t, std::string> outputs_;  // ckpt runs: base path of .out/.err
};

// The regular files directly in a harness's directory (workload logs,
// ready files, the files a workload made next to them; not ckpt's own
// output), as they are when made: put_back() writes each one's contents
// back in place (same inode), so that the images of a dump --leave-running
// can be restored once the tree that ran on has verified itself, which
// wrote to its log and files (restore refuses a held file of another size).
class FilesAsDumped {
 public:
  explicit FilesAsDumped(const std::string& dir);
  void put_back() const;

 private:
  std::map<std::string, std::string> contents_;  // path -> bytes
};

// Readiness is a condition, never a fixed sleep: these poll the condition
// itself until a deadline, and say whether it came true.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(10));
// Until "State:" of `pid` is `want`.
bool wait_state(pid_t pid, char want);
// Until `pid` is untraced and its main thread is back in its loop's sleep: the
// workloads' wl_sleep_ms(), i.e. blocked in clock_nanosleep, its own code.
bool wait_back_in_loop(pid_t pid);
// Until the main thread of `pid` has gone on with its own work from now on:
// switched out twice (a loop that sleeps went round at least once) or 2 ms on
// a CPU (a loop that spins went round many times). For any workload.
bool wait_ran_on(pid_t pid);

// A metadata image `name` of images directory `dir`, read as ckpt reads
// images (header and checksum checked).
template <typename Msg>
ckpt::Result<Msg> read_image(const std::string& dir, const std::string& name, ckpt::image::ImageKind kind) {
  ckpt::image::ImageDir d = TRY(ckpt::image::ImageDir::open(dir, ckpt::image::SharedDir::Allow));
  Msg m;
  TRY(d.read(name, kind, &m));
  return m;
}
// A stats image (stats-dump.img, stats-restore.img).
inline ckpt::Result<ckpt::img::Stats> read_stats(const std::string& dir, const std::string& name) {
  return read_image<ckpt::img::Stats>(dir, name, ckpt::image::ImageKind::Stats);
}
// The completion stops of the restore of images directory `dir`, from its
// stats image: 3 for each process's main thread (its breakpoint or its
// barrier, then munmap's entry and exit: the same stops either way) and 1
// for each other thread, each thread once, all caught by breakpoints if
// `breakpoints` (else by syscall tracing). Returns the threads of each
// process that completed.
std::map<pid_t, size_t> expect_completion_stops(const std::string& dir, bool breakpoints);

bool alive(pid_t pid);
// /proc/PID/maps without the parasite's mapping, and whether it had one.
std::pair<std::string, bool> maps_but_parasite(pid_t pid);
// Waits until `ckpt` traces `pid` and its parasite is mapped there.
bool wait_for_parasite(pid_t pid, pid_t ckpt);
// Waits (10 s at most) until thread `tid` is seen blocked in syscall `nr`.
bool wait_in_syscall(pid_t tid, long nr);
std::string read_text(const std::string& path);
// "State:" letter of /proc/pid/status, TracerPid.
char proc_state(pid_t pid);
pid_t tracer_of(pid_t pid);
// Killed but not dead yet: SIGKILL pending, or already exiting. Such a task
// still looks running ('R' or 'S') until it is scheduled.
bool dying(pid_t pid);
// "Cpus_allowed_list:" of /proc/pid/status: the CPUs it may run on (ckpt
// pins a task to a CPU for a while as it dumps it: dump/cpu_pins.h).
std::string cpus_of(pid_t pid);
// "fd target" lines of the low fds, to compare the fd table before and after.
std::string fds_of(pid_t pid);
pid_t ppid_of(pid_t pid);
// `root` and its descendants, parents first.
std::vector<pid_t> tree_of(pid_t root);
// The sum of their proportional set sizes: the memory the tree costs the machine.
uint64_t tree_pss_kib(pid_t root);
// Flips the bits of the byte at `at` of `path` (its middle if `at` < 0), as
// damage a checksum must catch; false if it could not.
bool flip_byte(const std::string& path, off_t at = -1);
std::string comm_of(pid_t pid);
// A TCP port nobody listens on now; whether something listens on one.
uint16_t free_port();
bool listening(uint16_t port);
// Waits until the tree of `root` has `tasks` tasks, every one in pause().
bool tree_paused(pid_t root, size_t tasks);

// A --psk-file holding `secret`, named `name` in h.dir(), mode 0600.
std::string key_file(Harness& h, const std::string& name, const std::string& secret);

// `ckpt page-server -D dir` on a free port of 127.0.0.1, listening once made;
// with `psk_file`, it wants that key (--psk-file); `extra` is appended.
struct PageServerRun {
  PageServerRun(Harness& h, const std::string& dir, const std::string& psk_file = "",
                const std::vector<std::string>& extra = {});
  // What dump and pre-dump take to send their pages there.
  std::vector<std::string> flags() const;
  uint16_t port = free_port();
  pid_t pid = -1;  // ckpt page-server
};

// In a forked child: a session of its own (unless `own_session` is false)
// and no fd but /dev/null on 0-2, as a process started from a shell could
// be dumped.
void isolate_child(bool own_session = true);
// A forked helper process: `setup` runs in it, then it pauses for ever (its
// children too, if it makes some). The caller waits for it to be ready.
template <typename F>
pid_t spawn_paused(F setup, bool own_session = true) {
  pid_t pid = fork();
  if (pid == 0) {
    isolate_child(own_session);
    setup();
    for (;;) pause();
  }
  return pid;
}

// The tasks of a tree killed by a dump or a failed restore: the test process
// is a subreaper, so they end up its children once their parents are gone;
// reaped until none holds its PID (at most 10 s each).
void reap_all(const std::vector<pid_t>& tasks);

// Dumps a helper process made by `setup` (spawn_paused): the dump must fail
// with `want` in its error, leaving the process alive, sleeping, untraced and
// with the fds it had. The helper is killed and reaped after.
void expect_dump_refused(Harness& h, const std::function<void()>& setup, const std::string& want);

}  // namespace e2e
