// A dump that fails at any point loses nothing (CKPT_FAULT makes it fail
// there): non-zero exit with a clear message, the process runs on untraced
// with its state unchanged (it verifies itself), nothing of ckpt left in its
// address space or fd table, and no checkpoint taken from the directory.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include "harness.h"

namespace e2e {
namespace {

// A fault point, and the workload: signals (handlers, a blocked mask and
// queued signals, all self-checked; 8 MiB of memory: a drain does not fit the
// pipe) or trap (SIGTRAPs pending, which no trap of ckpt's may take).
using FaultCase = std::tuple<std::string, std::string>;
class Fault : public ::testing::TestWithParam<FaultCase> {};

void expect_failed_dump_loses_nothing(const std::string& point, const std::string& workload) {
  Harness h;
  pid_t pid = h.start_workload(workload, workload == "signals" ? std::vector<std::string>{"8"} : std::vector<std::string>{});
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_back_in_loop(pid)) << "the workload never reached its loop";
  const std::string maps = read_text(fmt::format("/proc/{}/maps", pid));
  const std::string fds = fds_of(pid);
  const std::string cpus = cpus_of(pid);

  setenv("CKPT_FAULT", point.c_str(), 1);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  unsetenv("CKPT_FAULT");
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("injected fault at {}", point)), std::string::npos) << d.err;
  EXPECT_NE(d.err.find(fmt::format("dump pid {}", pid)), std::string::npos) << d.err;

  ASSERT_TRUE(wait_back_in_loop(pid)) << "state " << proc_state(pid) << ", tracer " << tracer_of(pid);
  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps) << "ckpt left something in the address space";
  EXPECT_EQ(fds_of(pid), fds);
  EXPECT_EQ(cpus_of(pid), cpus) << "the task was left pinned to a CPU";
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0) << "a failed dump left a checkpoint";
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);

  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log(workload));
}

TEST_P(Fault, DumpFailsAndLosesNothing) {
  const auto& [point, workload] = GetParam();
  expect_failed_dump_loses_nothing(point, workload);
}

std::vector<FaultCase> fault_cases() {
  std::vector<FaultCase> out;
  for (const char* point : {"seize", "inject", "parasite", "memory", "drain", "cure", "images"})
    for (const char* workload : {"signals", "trap"})
      if (std::string(point) != "drain" || std::string(workload) == "signals")  // trap's memory fits the pipe
        out.emplace_back(point, workload);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Points, Fault, ::testing::ValuesIn(fault_cases()),
                         [](const ::testing::TestParamInfo<FaultCase>& i) {
                           return std::get<0>(i.param) + "_" + std::get<1>(i.param);
                         });

// A drain that fails breaks the pipe under the daemon's vmsplice; the daemon
// closes its end, and ckpt's rescue may stop it between that close and the
// -1 it writes in the record. The rescue then finds a recorded fd already
// closed (EBADF), and once gave up there, leaving the parasite mapped in the
// task: about one in five first dumps of a new process here, far fewer on
// one dumped again and again. So each round is a new process.
TEST(Fault, FailedDrainsNeverLeaveTheParasite) {
  for (int round = 0; round < 40 && !HasFailure(); round++) {
    SCOPED_TRACE(fmt::format("round {}", round + 1));
    expect_failed_dump_loses_nothing("drain", "signals");
  }
}

// ckpt killed while its parasite runs: the kernel detaches the threads, the
// parasite sees its socket close and returns the main thread to its own
// registers (the workload checks them, its heap and its signal state). Its
// fds are closed; its mapping stays, inert (code cannot unmap itself), until
// the next dump removes it.
struct Kill {
  std::string fault;  // CKPT_FAULT: where ckpt is parked
  // Killed once ckpt is parked there and, if set, the main thread is seen
  // blocked in this syscall.
  long in_syscall = -1;
  std::vector<std::string> options = {};
  std::string workload = "heap";
  std::vector<std::string> args = {"256"};
  // Killed before the daemon ran: its sockets are left too, until the next dump.
  bool leaves_fds = false;
};

void expect_survives_killed_ckpt(const Kill& k) {
  Harness h;
  pid_t pid = h.start_workload(k.workload, k.args);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_back_in_loop(pid)) << "the workload never reached its loop";
  const std::string maps = read_text(fmt::format("/proc/{}/maps", pid));
  const std::string fds = fds_of(pid);
  const std::string cpus = cpus_of(pid);
  setenv("CKPT_FAULT", k.fault.c_str(), 1);
  std::vector<std::string> args = {"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"};
  args.insert(args.end(), k.options.begin(), k.options.end());
  pid_t ckpt = h.ckpt_background(args);
  unsetenv("CKPT_FAULT");
  ASSERT_TRUE(wait_for_parasite(pid, ckpt));
  ASSERT_TRUE(wait_in_syscall(ckpt, SYS_pause)) << "ckpt never reached " << k.fault;  // CKPT_FAULT's hang
  if (k.in_syscall >= 0) {
    ASSERT_TRUE(wait_in_syscall(pid, k.in_syscall));
  }
  kill(ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  // The parasite sees its socket close and gives the main thread back to its own code.
  EXPECT_TRUE(wait_back_in_loop(pid)) << "state " << proc_state(pid) << ", tracer " << tracer_of(pid);
  EXPECT_EQ(maps_but_parasite(pid).first, maps);
  if (k.leaves_fds) EXPECT_NE(fds_of(pid), fds) << "the test did not kill ckpt where it meant to";
  else EXPECT_EQ(fds_of(pid), fds) << "the parasite left an fd behind";
  // Its affinity back (by the affinity watcher) once ckpt is gone.
  EXPECT_TRUE(wait_until([&] { return cpus_of(pid) == cpus; }, std::chrono::seconds(1)))
      << "the task was left pinned to CPUs " << cpus_of(pid) << ", not " << cpus;
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  // The next dump, into the same directory, takes what is left out; its
  // checkpoint holds none of it. The killed dump left only temporaries,
  // which it removes: no image is in place before the last phase.
  CkptRun again = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"});
  EXPECT_EQ(again.exit_code(), 0) << again.err;
  CkptRun check = h.ckpt({"verify", h.images()});
  EXPECT_EQ(check.exit_code(), 0) << check.err;
  EXPECT_TRUE(wait_back_in_loop(pid));
  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps);
  EXPECT_EQ(fds_of(pid), fds);
  kill(pid, SIGTERM);
  int status = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(h.workload_log(k.workload));
}

// Parked between two drains.
TEST(KilledCkpt, DuringMemoryDump) { expect_survives_killed_ckpt({.fault = "hang:memory"}); }
TEST(KilledCkpt, DuringMemoryDumpSyscallTraceMode) {
  expect_survives_killed_ckpt({.fault = "hang:memory", .options = {"--no-breakpoints"}});
}
// In the middle of a vmsplice (ckpt parked mid-drain, the pipe full): the
// parasite's pipe breaks under it.
TEST(KilledCkpt, WhileDraining) { expect_survives_killed_ckpt({.fault = "hang:drain", .in_syscall = SYS_vmsplice}); }
// In the cure, with the task's own xsave and mask loaded and its registers
// not yet: the main thread is still in the daemon, which returns through its
// frame. (Registers were loaded before the mask, and a ckpt killed between
// the two left the task in its own code with every signal blocked for good:
// a tree's task that CI's kill loop hit there never saw its SIGTERM.)
TEST(KilledCkpt, WhileLoadingTheTasksOwnState) {
  expect_survives_killed_ckpt({.fault = "hang:cure-state"});
}
// While a thread other than the main one waits in the parasite to be taken
// back: it returns into its own registers through its own frame.
TEST(KilledCkpt, WhileAThreadVisitsTheParasite) {
  expect_survives_killed_ckpt({.fault = "hang:visit", .workload = "threads", .args = {"8"}});
}
// Mapped and its sockets made, the daemon not started: the task was put back
// in its own registers after the last remote syscall and runs on; the
// mapping and the four socket ends stay until the next dump.
TEST(KilledCkpt, BeforeTheParasiteStarts) {
  expect_survives_killed_ckpt({.fault = "hang:inject", .leaves_fds = true});
}

// Hijacked for the remote syscalls that map the parasite in (before it
// exists), the main thread sits at signal-restorer code with a frame of its
// own registers, xsave and mask below its red zone: left alone, it returns
// into itself. (It used to run on from a syscall instruction in the vDSO
// with every signal blocked, and die of SIGSEGV.)
TEST(KilledCkpt, WhileHijackedForARemoteSyscall) {
  Harness h;
  pid_t pid = h.start_workload("signals", {"8"});
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_back_in_loop(pid)) << "the workload never reached its loop";
  const std::string maps = read_text(fmt::format("/proc/{}/maps", pid));
  const std::string fds = fds_of(pid);
  setenv("CKPT_FAULT", "hang:remote", 1);
  pid_t ckpt = h.ckpt_background({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"});
  unsetenv("CKPT_FAULT");
  ASSERT_TRUE(wait_in_syscall(ckpt, SYS_pause)) << "ckpt never reached the remote syscalls";
  ASSERT_EQ(tracer_of(pid), ckpt);
  kill(ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  // Left alone, it returns into itself and sleeps on in its loop.
  ASSERT_TRUE(wait_back_in_loop(pid)) << "state " << proc_state(pid) << ", tracer " << tracer_of(pid);
  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps);
  EXPECT_EQ(fds_of(pid), fds);
  kill(pid, SIGTERM);
  int status = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(h.workload_log("signals"));
}

// Sends `sig` to a heap workload of `mib` MiB while a dump --leave-running
// holds it frozen with the parasite in; the dump must succeed all the same.
pid_t signal_while_frozen(Harness& h, const std::string& mib, int sig) {
  pid_t pid = h.start_workload("heap", {mib});
  if (pid <= 0) return -1;
  pid_t ckpt = h.slow_dump_with_parasite(pid);
  if (ckpt <= 0) return -1;
  kill(pid, sig);
  CkptRun d = h.wait_ckpt(ckpt);
  EXPECT_EQ(d.exit_code(), 0) << d.err;
  return pid;
}

// A signal sent while the task is frozen is delivered once it runs again
// after --leave-running, not lost: SIGUSR1, which the heap workload leaves at
// its default action, then ends it.
TEST(FrozenTask, SignalDeliveredAfterLeaveRunning) {
  Harness h;
  pid_t pid = signal_while_frozen(h, "16", SIGUSR1);
  ASSERT_GT(pid, 0);
  int st = h.wait_child(pid, std::chrono::seconds(10));
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1) << "status " << st;
}

// So is a SIGSTOP, which ckpt must take while it works (it would stop the
// task under it): the dump succeeds, and the process, let go with
// --leave-running, then stops as it was told to.
TEST(FrozenTask, SigstopKeptAfterLeaveRunning) {
  Harness h;
  pid_t pid = signal_while_frozen(h, "128", SIGSTOP);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(wait_state(pid, 'T')) << "state " << proc_state(pid);
  kill(pid, SIGCONT);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("heap"));
}

}  // namespace
}  // namespace e2e
