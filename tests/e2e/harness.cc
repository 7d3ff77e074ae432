#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "base/unique_fd.h"
#include "image/image_dir.h"
#include "ptrace/completion.h"

namespace e2e {

namespace {

using Clock = std::chrono::steady_clock;

// The kernel's perf hooks stay on while the suite runs: this process holds
// a task-bound perf event for its life. ckpt restores on a machine without
// one by syscall tracing rather than wait for the hooks (restore.cc), and
// the tests that count a breakpoint's stops want breakpoints wherever they
// work (TreeProbe covers the other way).
class PerfHooksOn : public ::testing::Environment {
 public:
  void SetUp() override {
    perf_event_attr a = ckpt::dummy_task_perf_event();
    fd_ = ckpt::UniqueFd(static_cast<int>(syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC)));
  }

 private:
  ckpt::UniqueFd fd_;
};
[[maybe_unused]] ::testing::Environment* const kPerfHooksOn = ::testing::AddGlobalTestEnvironment(new PerfHooksOn);

[[noreturn]] void exec_with_files(const std::vector<std::string>& argv, const std::string& out,
                                  const std::string& err) {
  int in = open("/dev/null", O_RDONLY);
  int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int e = err == out ? o : open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(in, 0);
  dup2(o, 1);
  dup2(e, 2);
  syscall(SYS_close_range, 3, ~0U, 0);
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  execv(a[0], a.data());
  _exit(127);
}

}  // namespace

const char* ckpt_bin() {
  const char* env = getenv("CKPT_BIN");
  return env && *env ? env : CKPT_BIN;
}

int CkptRun::exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

bool alive(pid_t pid) { return kill(pid, 0) == 0 && proc_state(pid) != 'Z'; }

std::string mode_name(const Mode& m) {
  return std::string(m.breakpoints ? "breakpoint" : "syscalltrace") + (m.leave_running ? "_leaverunning" : "");
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

static std::string status_field(pid_t pid, const std::string& key) {
  std::istringstream s(read_text(fmt::format("/proc/{}/status", pid)));
  for (std::string line; std::getline(s, line);)
    if (line.rfind(key + ":", 0) == 0) {
      auto v = line.substr(key.size() + 1);
      return v.substr(v.find_first_not_of(" \t"));
    }
  return "";
}

char proc_state(pid_t pid) {
  std::string s = status_field(pid, "State");
  return s.empty() ? '?' : s[0];
}
std::string cpus_of(pid_t pid) { return status_field(pid, "Cpus_allowed_list"); }

std::string fds_of(pid_t pid) {
  std::string out;
  for (int fd = 0; fd < 64; fd++) {
    char buf[256];
    ssize_t n = readlink(fmt::format("/proc/{}/fd/{}", pid, fd).c_str(), buf, sizeof buf);
    if (n > 0) out += fmt::format("{} {}\n", fd, std::string(buf, n));
  }
  return out;
}

pid_t tracer_of(pid_t pid) { return std::atoi(status_field(pid, "TracerPid").c_str()); }

bool dying(pid_t pid) {
  const uint64_t kill_bit = uint64_t{1} << (SIGKILL - 1);
  for (const char* set : {"SigPnd", "ShdPnd"})
    if (std::strtoull(status_field(pid, set).c_str(), nullptr, 16) & kill_bit) return true;
  // Field 9 of stat, after the ")" that ends comm; PF_EXITING is 0x4.
  const std::string stat = read_text(fmt::format("/proc/{}/stat", pid));
  std::istringstream rest(stat.substr(stat.rfind(')') + 1));
  std::string field;
  for (int i = 3; i <= 9; i++) rest >> field;
  return std::strtoul(field.c_str(), nullptr, 10) & 0x4;
}
pid_t ppid_of(pid_t pid) { return std::atoi(status_field(pid, "PPid").c_str()); }
std::string comm_of(pid_t pid) { return status_field(pid, "Name"); }

Harness::Harness() {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  char tmpl[] = "/tmp/ckpt-e2e-XXXXXX";
  dir_ = mkdtemp(tmpl);
}

Harness::~Harness() {
  for (pid_t p : children_) {
    kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
  }
  // Whatever was reparented to us (restored tasks of a dead ckpt).
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  if (!::testing::Test::HasFailure()) std::system(fmt::format("rm -rf {}", dir_).c_str());
  else fmt::print(stderr, "e2e: kept {} for inspection\n", dir_);
}

std::string Harness::workload_log(const std::string& name) const { return fmt::format("{}/{}.log", dir_, name); }

pid_t Harness::start_workload(const std::string& name, const std::vector<std::string>& args) {
  return start_workload_at(fmt::format("{}/wl_{}", CKPT_WORKLOADS, name), name, args);
}

pid_t Harness::start_workload_at(const std::string& binary, const std::string& name,
                                 const std::vector<std::string>& args) {
  std::string ready = fmt::format("{}/{}.ready", dir_, name);
  unlink(ready.c_str());
  std::vector<std::string> argv = {binary, ready};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = fork();
  // A service of its own, as daemons are: its session and group are its own.
  if (pid == 0) {
    setsid();
    exec_with_files(argv, workload_log(name), workload_log(name));
  }
  children_.push_back(pid);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (access(ready.c_str(), F_OK) != 0) {
    if (Clock::now() > deadline || waitpid(pid, nullptr, WNOHANG) == pid) {
      ADD_FAILURE() << "workload " << name << " did not get ready: " << read_text(workload_log(name));
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pid;
}

pid_t Harness::dump_workload(const std::string& name, const std::vector<std::string>& args) {
  pid_t pid = start_workload(name, args);
  CkptRun d = ckpt({"dump", "-t", std::to_string(pid), "-D", images()});
  EXPECT_EQ(d.exit_code(), 0) << d.err;
  wait_child(pid);
  return pid;
}

pid_t Harness::ckpt_background(const std::vector<std::string>& args, const std::vector<std::string>& prefix) {
  std::vector<std::string> argv = prefix;
  argv.push_back(ckpt_bin());
  argv.insert(argv.end(), args.begin(), args.end());
  std::string base = fmt::format("{}/ckpt-{}", dir_, outputs_.size());
  pid_t pid = fork();
  if (pid == 0) exec_with_files(argv, base + ".out", base + ".err");
  children_.push_back(pid);
  outputs_[pid] = base;
  return pid;
}

CkptRun Harness::wait_ckpt(pid_t pid, std::chrono::seconds timeout) {
  CkptRun r;
  r.status = wait_child(pid, timeout);
  r.out = read_text(outputs_[pid] + ".out");
  r.err = read_text(outputs_[pid] + ".err");
  return r;
}

CkptRun Harness::ckpt(const std::vector<std::string>& args) { return wait_ckpt(ckpt_background(args)); }

pid_t Harness::slow_dump_with_parasite(pid_t pid) {
  setenv("CKPT_FAULT", "slow:memory", 1);
  pid_t ckpt = ckpt_background({"dump", "-t", std::to_string(pid), "-D", images(), "--leave-running"});
  unsetenv("CKPT_FAULT");
  return wait_for_parasite(pid, ckpt) ? ckpt : -1;
}

int Harness::wait_child(pid_t pid, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  int status;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      std::erase(children_, pid);
      return status;
    }
    if (r < 0) return -1;
    if (Clock::now() > deadline) {
      ADD_FAILURE() << "child " << pid << " did not finish in time";
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      std::erase(children_, pid);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

pid_t Harness::restore_background(pid_t root, bool breakpoints, const std::vector<std::string>& extra) {
  const std::string pidfile = dir_ + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", images(), "-v4", "-o", "restore.log", "--pidfile", pidfile};
  if (!breakpoints) rst.push_back("--no-breakpoints");
  rst.insert(rst.end(), extra.begin(), extra.end());
  pid_t r = ckpt_background(rst);
  if (!wait_restored(root, pidfile)) {
    ADD_FAILURE() << "restore of " << root << " did not complete: " << read_text(images() + "/restore.log");
    return -1;
  }
  return r;
}

void Harness::restore_expect_pass(pid_t root, const std::string& name) {
  pid_t r = restore_background(root, true);
  ASSERT_GT(r, 0);
  kill(root, SIGTERM);
  CkptRun done = wait_ckpt(r);
  EXPECT_EQ(done.exit_code(), 0) << done.err;
  EXPECT_NE(read_text(workload_log(name)).find("PASS " + name), std::string::npos) << read_text(workload_log(name));
}

int Harness::dump_restore_tree(pid_t root, const std::vector<std::string>& dump, bool leave_running, bool breakpoints,
                               const std::function<void()>& between, const std::function<void()>& restored) {
  const std::vector<pid_t> tasks = tree_of(root);
  CkptRun d = ckpt(dump);
  if (d.exit_code() != 0) {
    ADD_FAILURE() << "dump: " << d.err << read_text(images() + "/dump.log");
    return -1;
  }
  if (leave_running) {
    // The tree that ran on verifies itself, then (restore_after_leave_running)
    // its images are restored and the restored tree verifies itself again:
    // leaving the tree running must take nothing from it (unread data,
    // queued messages), nor from its images.
    const FilesAsDumped files(dir_);
    for (pid_t p : tasks) EXPECT_TRUE(wait_until([&] { return tracer_of(p) == 0; })) << p << " still traced";
    kill(root, SIGTERM);
    const int ran_on = wait_child(root);
    if (!restore_after_leave_running) return ran_on;
    if (!WIFEXITED(ran_on) || WEXITSTATUS(ran_on) != 0) {
      ADD_FAILURE() << "the tree left running failed its verification (status " << ran_on << "): "
                    << read_text(images() + "/dump.log");
      return ran_on;
    }
    files.put_back();
  } else {
    const int killed = wait_child(root);
    EXPECT_TRUE(WIFSIGNALED(killed) && WTERMSIG(killed) == SIGKILL) << "dump should kill the tree";
  }
  // The root's children are reparented to this test (a subreaper) and
  // reaped here, if the root did not reap them.
  for (pid_t p : tasks)
    EXPECT_TRUE(wait_until([&] {
      waitpid(p, nullptr, WNOHANG);
      return kill(p, 0) < 0;
    })) << p << " still held";
  CkptRun v = ckpt({"verify", images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;
  if (between) between();
  pid_t r = restore_background(root, breakpoints);
  if (r < 0) return -1;
  for (pid_t p : tasks) EXPECT_TRUE(wait_until([&] { return tracer_of(p) == 0; })) << p << " still traced";
  if (restored) restored();
  kill(root, SIGTERM);
  CkptRun rr = wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(images() + "/restore.log");
  return rr.status;
}

FilesAsDumped::FilesAsDumped(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && !e.path().filename().string().starts_with("ckpt-"))
      contents_[e.path()] = read_text(e.path());
}

void FilesAsDumped::put_back() const {
  for (const auto& [path, bytes] : contents_) {
    // O_TRUNC, not a new file: restore opens the path and finds its inode.
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good()) << "put back " << path;
  }
}

bool Harness::wait_restored(pid_t pid, const std::string& pidfile, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (access(pidfile.c_str(), F_OK) == 0 && alive(pid) && tracer_of(pid) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

std::pair<std::string, bool> maps_but_parasite(pid_t pid) {
  std::string out;
  bool found = false;
  std::istringstream in(read_text(fmt::format("/proc/{}/maps", pid)));
  for (std::string line; std::getline(in, line);) {
    if (line.find("ckpt-parasite") != std::string::npos) found = true;
    else out += line + "\n";
  }
  return {out, found};
}

bool wait_for_parasite(pid_t pid, pid_t ckpt) {
  for (int i = 0; i < 5000; i++) {
    if (tracer_of(pid) == ckpt && maps_but_parasite(pid).second) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

std::map<pid_t, size_t> expect_completion_stops(const std::string& dir, bool breakpoints) {
  std::map<pid_t, size_t> threads;
  auto stats = read_stats(dir, "stats-restore.img");
  EXPECT_TRUE(stats) << stats.error().str();
  if (!stats) return threads;
  std::set<pid_t> tids;
  for (const ckpt::img::TaskStops& t : stats->completion()) {
    threads[t.pid()]++;
    EXPECT_TRUE(tids.insert(t.tid()).second) << "thread " << t.tid() << " recorded twice";
    EXPECT_EQ(t.breakpoint(), breakpoints) << "thread " << t.tid() << " of " << t.pid();
    EXPECT_EQ(t.stops(), t.tid() == t.pid() ? 3u : 1u) << "thread " << t.tid() << " of " << t.pid();
  }
  return threads;
}

bool wait_in_syscall(pid_t tid, long nr) {
  const std::string path = fmt::format("/proc/{}/syscall", tid), want = fmt::format("{} ", nr);
  return wait_until([&] { return read_text(path).starts_with(want); });
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

bool wait_state(pid_t pid, char want) { return wait_until([&] { return proc_state(pid) == want; }); }

bool wait_back_in_loop(pid_t pid) {
  return wait_until([&] { return tracer_of(pid) == 0; }) && wait_in_syscall(pid, SYS_clock_nanosleep);
}

namespace {
// Nanoseconds on a CPU (schedstat's first field) and context switches of a thread.
std::pair<uint64_t, uint64_t> sched_counts(pid_t pid) {
  uint64_t run_ns = 0;
  std::istringstream(read_text(fmt::format("/proc/{}/schedstat", pid))) >> run_ns;
  const uint64_t switches = std::strtoull(status_field(pid, "voluntary_ctxt_switches").c_str(), nullptr, 10) +
                            std::strtoull(status_field(pid, "nonvoluntary_ctxt_switches").c_str(), nullptr, 10);
  return {run_ns, switches};
}
}  // namespace

bool wait_ran_on(pid_t pid) {
  const auto [ns0, sw0] = sched_counts(pid);
  return wait_until([&] {
    const auto [ns, sw] = sched_counts(pid);
    return alive(pid) && (sw >= sw0 + 2 || ns >= ns0 + 2'000'000);
  });
}

uint16_t free_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

// Listening: /proc/net/tcp state 0A.
std::string key_file(Harness& h, const std::string& name, const std::string& secret) {
  const std::string path = fmt::format("{}/{}", h.dir(), name);
  std::ofstream(path) << secret << "\n";
  chmod(path.c_str(), 0600);
  return path;
}

PageServerRun::PageServerRun(Harness& h, const std::string& dir, const std::string& psk_file,
                             const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"page-server", "-D", dir, "--address", "127.0.0.1", "--port", std::to_string(port)};
  if (!psk_file.empty()) args.insert(args.end(), {"--psk-file", psk_file});
  args.insert(args.end(), extra.begin(), extra.end());
  pid = h.ckpt_background(args);
  EXPECT_TRUE(wait_until([&] { return listening(port); })) << "page server never listened";
}

std::vector<std::string> PageServerRun::flags() const {
  return {"--page-server", "--address", "127.0.0.1", "--port", std::to_string(port)};
}

bool listening(uint16_t port) {
  std::ifstream in("/proc/net/tcp");
  const std::string want = fmt::format(":{:04X} 00000000:0000 0A", port);
  for (std::string line; std::getline(in, line);)
    if (line.find(want) != std::string::npos) return true;
  return false;
}

void isolate_child(bool own_session) {
  if (own_session) setsid();
  syscall(SYS_close_range, 3, ~0U, 0);
  int null = open("/dev/null", O_RDWR);
  dup2(null, 0), dup2(null, 1), dup2(null, 2);
  if (null > 2) close(null);
}

bool tree_paused(pid_t root, size_t tasks) {
  return wait_until([&] {
    const auto t = tree_of(root);
    return t.size() == tasks && std::ranges::all_of(t, [](pid_t p) {
      return read_text(fmt::format("/proc/{}/syscall", p)).starts_with(fmt::format("{} ", SYS_pause));
    });
  });
}

std::vector<pid_t> tree_of(pid_t root) {
  std::vector<pid_t> out = {root};
  for (size_t i = 0; i < out.size(); i++) {
    std::istringstream kids(read_text(fmt::format("/proc/{}/task/{}/children", out[i], out[i])));
    for (pid_t k; kids >> k;) out.push_back(k);
  }
  return out;
}

uint64_t tree_pss_kib(pid_t root) {
  uint64_t kib = 0;
  for (pid_t p : tree_of(root)) {
    const std::string rollup = read_text(fmt::format("/proc/{}/smaps_rollup", p));
    const size_t at = rollup.find("\nPss:");
    if (at != std::string::npos) kib += std::strtoull(rollup.c_str() + at + 5, nullptr, 10);
  }
  return kib;
}

bool flip_byte(const std::string& path, off_t at) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  if (at < 0) at = lseek(fd, 0, SEEK_END) / 2;
  char c;
  bool ok = pread(fd, &c, 1, at) == 1;
  c ^= 0x5a;
  ok = ok && pwrite(fd, &c, 1, at) == 1;
  close(fd);
  return ok;
}

void reap_all(const std::vector<pid_t>& tasks) {
  for (pid_t p : tasks) {
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         std::chrono::steady_clock::now() < deadline;) {
      waitpid(p, nullptr, WNOHANG | __WALL);
      if (kill(p, 0) < 0 && errno == ESRCH) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_FALSE(kill(p, 0) == 0) << "pid " << p << " still held";
  }
}

void expect_dump_refused(Harness& h, const std::function<void()>& setup, const std::string& want) {
  const pid_t pid = spawn_paused(setup);
  ASSERT_TRUE(wait_until([&] { return read_text(fmt::format("/proc/{}/syscall", pid)).starts_with(
                                          fmt::format("{} ", SYS_pause)); }))
      << "the helper never paused";
  const std::string fds = fds_of(pid);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0) << "the dump took it: " << d.err;
  EXPECT_NE(d.err.find(want), std::string::npos) << d.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(proc_state(pid), 'S');
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_EQ(fds_of(pid), fds);
  kill(pid, SIGKILL);
  h.wait_child(pid);
}

}  // namespace e2e
