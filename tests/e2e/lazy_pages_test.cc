// restore --lazy-pages with ckpt lazy-pages -D DIR (lazy/daemon.h,
// restore/lazy.h): the process runs before its memory is in, every page it
// reads is the one it had (or zeros where it had none, or dropped it), the
// daemon exits once all is in, and a daemon that dies kills the process
// with a message instead of leaving it on wrong memory or hung. The same
// with the pages on another host (lazy-pages --page-server).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "base/fs.h"
#include "harness.h"
#include "image/image_file.h"

using namespace e2e;

namespace {

const std::string kWorkload = "lazymem";

// VMAs of `pid` registered with a userfaultfd for missing pages.
int uffd_missing_vmas(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/smaps", pid));
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmFlags:") && line.find(" um") != std::string::npos) n++;
  return n;
}

bool holds_userfaultfd(pid_t pid) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec))
    if (std::filesystem::read_symlink(e.path(), ec).string().find("userfaultfd") != std::string::npos) return true;
  return false;
}

// Starts the daemon on images() (with CKPT_FAULT=`fault` if given) and
// waits until it listens; `extra` is appended to its command line.
pid_t start_daemon(Harness& h, const std::string& fault = "", const std::vector<std::string>& extra = {}) {
  std::vector<std::string> prefix;
  if (!fault.empty()) prefix = {"/usr/bin/env", "CKPT_FAULT=" + fault};
  std::vector<std::string> args = {"lazy-pages", "-D", h.images(), "-v4", "-o", "lazy.log"};
  args.insert(args.end(), extra.begin(), extra.end());
  pid_t d = h.ckpt_background(args, prefix);
  EXPECT_TRUE(wait_until([&] {
    struct stat st;
    return stat((h.images() + "/lazy-pages.sock").c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
  })) << "the daemon never listened";
  return d;
}

class LazyPages : public ::testing::TestWithParam<bool> {};

// 64 MiB of a known pattern, with holes: restored lazily, it runs at once,
// the daemon fills everything and exits, and the process then finds every
// page as it was (it moves one MiB and drops another before checking).
TEST_P(LazyPages, TouchesEverythingAndVerifies) {
  Harness h;
  const pid_t pid = h.dump_workload(kWorkload);
  ASSERT_GT(pid, 0);
  const pid_t daemon = start_daemon(h);
  const pid_t r = h.restore_background(pid, GetParam(), {"--lazy-pages"});
  ASSERT_GT(r, 0);
  CkptRun d = h.wait_ckpt(daemon, std::chrono::seconds(60));
  EXPECT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/lazy.log");
  // The daemon's word reached the watcher, which dropped its copy: nothing
  // is registered any more, and the task never held the fd.
  EXPECT_TRUE(wait_until([&] { return uffd_missing_vmas(pid) == 0; })) << uffd_missing_vmas(pid) << " VMAs still registered";
  EXPECT_FALSE(holds_userfaultfd(pid));
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log(kWorkload)) << rr.err;
  EXPECT_NE(read_text(h.workload_log(kWorkload)).find("PASS"), std::string::npos);
}

// The same while the daemon is slow to push (300 ms a MiB): the process
// moves, drops and reads its memory while most of it is still pending.
TEST_P(LazyPages, ChecksWhileMostPagesArePending) {
  Harness h;
  const pid_t pid = h.dump_workload(kWorkload);
  ASSERT_GT(pid, 0);
  const pid_t daemon = start_daemon(h, "slow:lazy-push");
  const pid_t r = h.restore_background(pid, GetParam(), {"--lazy-pages"});
  ASSERT_GT(r, 0);
  EXPECT_GT(uffd_missing_vmas(pid), 0);
  EXPECT_FALSE(holds_userfaultfd(pid));
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log(kWorkload)) << rr.err;
  EXPECT_NE(read_text(h.workload_log(kWorkload)).find("PASS"), std::string::npos);
  // Its pages end with it: the daemon finishes too.
  CkptRun d = h.wait_ckpt(daemon, std::chrono::seconds(60));
  EXPECT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/lazy.log");
}

// The daemon is killed with most pages pending: the restored process is
// killed by the watcher (not left waiting for ever, not fed zeros), and
// ckpt restore says why.
TEST_P(LazyPages, DaemonKilled) {
  Harness h;
  const pid_t pid = h.dump_workload("dirtier");
  ASSERT_GT(pid, 0);
  const pid_t daemon = start_daemon(h, "slow:lazy-push");
  const pid_t r = h.restore_background(pid, GetParam(), {"--lazy-pages"});
  ASSERT_GT(r, 0);
  ASSERT_GT(uffd_missing_vmas(pid), 0);
  kill(daemon, SIGKILL);
  h.wait_child(daemon);
  CkptRun rr = h.wait_ckpt(r, std::chrono::seconds(20));
  EXPECT_TRUE(WIFEXITED(rr.status) && WEXITSTATUS(rr.status) == 128 + SIGKILL) << rr.status << rr.err;
  EXPECT_NE(rr.err.find("the lazy-pages daemon died"), std::string::npos) << rr.err;
  EXPECT_FALSE(alive(pid));
}

// The same after restore -d: ckpt restore is gone, the watcher still kills
// the process, and says why in DIR/lazy-watch.log.
TEST(LazyPagesDetached, DaemonKilled) {
  Harness h;
  const pid_t pid = h.dump_workload("dirtier");
  ASSERT_GT(pid, 0);
  const pid_t daemon = start_daemon(h, "slow:lazy-push");
  const std::string pidfile = h.dir() + "/restored.pid";
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d", "--lazy-pages", "--pidfile", pidfile});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  ASSERT_TRUE(h.wait_restored(pid, pidfile));
  ASSERT_GT(uffd_missing_vmas(pid), 0);
  kill(daemon, SIGKILL);
  h.wait_child(daemon);
  // The test is a subreaper: the restored process, orphaned, is its child.
  const int st = h.wait_child(pid, std::chrono::seconds(20));
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
  EXPECT_TRUE(wait_until([&] {
    return read_text(h.images() + "/lazy-watch.log").find("the lazy-pages daemon died") != std::string::npos;
  })) << read_text(h.images() + "/lazy-watch.log");
}

// A pre-fork tree (its workers inherited the master's pages unchanged, which
// the images hold once): every task's pages come from the master's pages
// file, served lazily, and every task checks every page.
TEST_P(LazyPages, TreeWithInheritedPages) {
  Harness h;
  const pid_t root = h.start_workload("prefork", {"64", "4"});
  ASSERT_GT(root, 0);
  const std::vector<pid_t> tasks = tree_of(root);
  ASSERT_EQ(tasks.size(), 6u);
  CkptRun dump = h.ckpt({"dump", "-t", std::to_string(root), "-D", h.images()});
  ASSERT_EQ(dump.exit_code(), 0) << dump.err;
  h.wait_child(root);
  reap_all(tasks);
  const pid_t daemon = start_daemon(h);
  const pid_t r = h.restore_background(root, GetParam(), {"--lazy-pages"});
  ASSERT_GT(r, 0);
  CkptRun d = h.wait_ckpt(daemon, std::chrono::seconds(60));
  EXPECT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/lazy.log");
  EXPECT_NE(read_text(h.images() + "/lazy.log").find(fmt::format("{} tasks", tasks.size())), std::string::npos)
      << read_text(h.images() + "/lazy.log");
  kill(root, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log("prefork")) << rr.err;
  EXPECT_NE(read_text(h.workload_log("prefork")).find("PASS"), std::string::npos);
}

// A task that forks before its pages are all in is refused: the daemon gives
// up and the watcher kills the tree, saying why.
TEST_P(LazyPages, ForkBeforeAllInKillsTheTree) {
  Harness h;
  const pid_t pid = h.start_workload(kWorkload, {"64", "fork"});
  ASSERT_GT(pid, 0);
  CkptRun dump = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(dump.exit_code(), 0) << dump.err;
  h.wait_child(pid);
  const pid_t daemon = start_daemon(h, "slow:lazy-push");
  const pid_t r = h.restore_background(pid, GetParam(), {"--lazy-pages"});
  ASSERT_GT(r, 0);
  kill(pid, SIGTERM);  // it forks now
  CkptRun rr = h.wait_ckpt(r, std::chrono::seconds(30));
  EXPECT_TRUE(WIFEXITED(rr.status) && WEXITSTATUS(rr.status) == 128 + SIGKILL) << rr.status << rr.err;
  EXPECT_NE(rr.err.find("forked with"), std::string::npos) << rr.err;
  CkptRun d = h.wait_ckpt(daemon, std::chrono::seconds(30));
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_FALSE(alive(pid));
}

INSTANTIATE_TEST_SUITE_P(Modes, LazyPages, ::testing::Bool(),
                         [](const auto& i) { return i.param ? "breakpoint" : "syscalltrace"; });

// Post-copy from another host (lazy/remote_pages.h): the checkpoint is
// dumped into src/, every image of it but the pages files is copied to
// images(), and the pages come on demand from ckpt page-server --lazy-pages
// on src/, under TLS keyed by a key both ends hold.
struct RemoteLazyRun {
  // Moves the images of a dump to src() and copies them, pages files
  // aside, back into images(); starts the page server on src().
  void split_images() {
    std::filesystem::rename(h.images(), src());
    std::filesystem::create_directory(h.images());
    chmod(h.images().c_str(), 0700);
    for (const auto& e : std::filesystem::directory_iterator(src()))
      if (e.path().extension() == ".img" && !e.path().filename().string().starts_with("pages-"))
        std::filesystem::copy_file(e.path(), h.images() + "/" + e.path().filename().string());
    srv.emplace(h, src(), key, std::vector<std::string>{"--lazy-pages", "--tls"});
  }
  pid_t start_daemon(const std::string& fault = "") {
    return ::start_daemon(h, fault, {"--page-server", "--address", "127.0.0.1", "--port", std::to_string(srv->port),
                                     "--psk-file", key, "--tls"});
  }
  // Restores `root` lazily from the page server; returns ckpt
  // restore's pid once the daemon and the page server are both done.
  pid_t restore_all_in(pid_t root, bool breakpoints) {
    const pid_t daemon = start_daemon();
    const pid_t r = h.restore_background(root, breakpoints, {"--lazy-pages"});
    if (r < 0) return r;
    CkptRun d = h.wait_ckpt(daemon, std::chrono::seconds(60));
    EXPECT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/lazy.log");
    CkptRun s = h.wait_ckpt(srv->pid, std::chrono::seconds(10));
    EXPECT_EQ(s.exit_code(), 0) << s.err;
    return r;
  }
  std::string src() const { return h.dir() + "/src"; }
  bool pages_files_left() const {
    for (const auto& e : std::filesystem::directory_iterator(h.images()))
      if (e.path().filename().string().starts_with("pages-")) return true;
    return false;
  }

  Harness h;
  const std::string key = key_file(h, "key", "a secret both hosts hold");
  std::optional<PageServerRun> srv;
};

class LazyPagesRemote : public ::testing::TestWithParam<bool>, protected RemoteLazyRun {};

// Every page the process reads came from the other "host", checked; the
// server and the daemon end once all is in, and the holed pages files go.
TEST_P(LazyPagesRemote, TouchesEverythingAndVerifies) {
  const pid_t pid = h.dump_workload(kWorkload);
  ASSERT_GT(pid, 0);
  split_images();
  const pid_t r = restore_all_in(pid, GetParam());
  ASSERT_GT(r, 0);
  EXPECT_FALSE(pages_files_left());
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log(kWorkload)) << rr.err;
  EXPECT_NE(read_text(h.workload_log(kWorkload)).find("PASS"), std::string::npos);
}

// A pre-fork tree: the workers' memory lies in the master's pages file;
// six tasks fault it in from the page server, and each checks every page.
TEST_P(LazyPagesRemote, TreeWithInheritedPages) {
  const pid_t root = h.start_workload("prefork", {"64", "4"});
  ASSERT_GT(root, 0);
  const std::vector<pid_t> tasks = tree_of(root);
  CkptRun dump = h.ckpt({"dump", "-t", std::to_string(root), "-D", h.images()});
  ASSERT_EQ(dump.exit_code(), 0) << dump.err;
  h.wait_child(root);
  reap_all(tasks);
  split_images();
  const pid_t r = restore_all_in(root, GetParam());
  ASSERT_GT(r, 0);
  kill(root, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log("prefork")) << rr.err;
  EXPECT_NE(read_text(h.workload_log("prefork")).find("PASS"), std::string::npos);
}

// The page server dies with most pages still there: the process is killed
// (never fed zeros, never left hanging), and ckpt restore names the server.
TEST_P(LazyPagesRemote, PageServerKilled) {
  const pid_t pid = h.dump_workload("dirtier");
  ASSERT_GT(pid, 0);
  split_images();
  const pid_t daemon = start_daemon("slow:lazy-push");
  const pid_t r = h.restore_background(pid, GetParam(), {"--lazy-pages"});
  ASSERT_GT(r, 0);
  ASSERT_GT(uffd_missing_vmas(pid), 0);
  kill(srv->pid, SIGKILL);
  h.wait_child(srv->pid);
  CkptRun rr = h.wait_ckpt(r, std::chrono::seconds(20));
  EXPECT_TRUE(WIFEXITED(rr.status) && WEXITSTATUS(rr.status) == 128 + SIGKILL) << rr.status << rr.err;
  EXPECT_NE(rr.err.find("page server 127.0.0.1"), std::string::npos) << rr.err;
  EXPECT_FALSE(alive(pid));
  CkptRun d = h.wait_ckpt(daemon, std::chrono::seconds(20));
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_FALSE(pages_files_left());
}

// The page server SIGKILLed at random moments of a remote lazy restore (0
// to 300 ms after the process runs): the process either got every page
// before (and then checks them all) or is killed, with the page server
// named; never left running on pages that did not come, never hung.
TEST(LazyPagesRemoteKillLoop, PageServerKilledAtRandomMoments) {
  std::mt19937 rng(std::random_device{}());
  int whole = 0, killed = 0;
  for (int i = 0; i < 10; i++) {
    RemoteLazyRun r;
    const pid_t pid = r.h.start_workload("dirtier", {"64", "16"});
    ASSERT_GT(pid, 0);
    CkptRun d = r.h.ckpt({"dump", "-t", std::to_string(pid), "-D", r.h.images()});
    ASSERT_EQ(d.exit_code(), 0) << d.err;
    r.h.wait_child(pid);
    r.split_images();
    const pid_t daemon = r.start_daemon();
    const pid_t rst = r.h.restore_background(pid, true, {"--lazy-pages"});
    ASSERT_GT(rst, 0);
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 300'000)(rng)));
    kill(r.srv->pid, SIGKILL);
    r.h.wait_child(r.srv->pid);
    CkptRun dd = r.h.wait_ckpt(daemon, std::chrono::seconds(30));
    if (dd.exit_code() == 0) {
      kill(pid, SIGTERM);
      CkptRun rr = r.h.wait_ckpt(rst);
      EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(r.h.workload_log("dirtier"));
      EXPECT_NE(read_text(r.h.workload_log("dirtier")).find("PASS"), std::string::npos);
      whole++;
    } else {
      CkptRun rr = r.h.wait_ckpt(rst, std::chrono::seconds(20));
      EXPECT_TRUE(WIFEXITED(rr.status) && WEXITSTATUS(rr.status) == 128 + SIGKILL) << rr.status << rr.err;
      EXPECT_NE(rr.err.find("page server"), std::string::npos) << rr.err;
      EXPECT_FALSE(alive(pid));
      killed++;
    }
    EXPECT_FALSE(r.pages_files_left());
  }
  std::printf("page server killed 10 times: %d restores had every page first, %d trees killed, 0 lost\n", whole,
              killed);
}

INSTANTIATE_TEST_SUITE_P(Modes, LazyPagesRemote, ::testing::Bool(),
                         [](const auto& i) { return i.param ? "breakpoint" : "syscalltrace"; });

// A daemon without the server's key gets nothing: both say why, and no
// pages file appears.
TEST(LazyPagesRemoteBadInput, WrongKey) {
  Harness h;
  const pid_t pid = h.dump_workload(kWorkload);
  ASSERT_GT(pid, 0);
  PageServerRun srv(h, h.images(), key_file(h, "server.key", "the server's own secret"), {"--lazy-pages"});
  const std::string dst = h.dir() + "/dst";
  mkdir(dst.c_str(), 0700);
  CkptRun d = h.ckpt({"lazy-pages", "-D", dst, "--page-server", "--address", "127.0.0.1", "--port",
                      std::to_string(srv.port), "--psk-file", key_file(h, "guess.key", "a guess of the attacker")});
  EXPECT_EQ(d.exit_code(), 1);
  EXPECT_NE(d.err.find("key"), std::string::npos) << d.err;
  CkptRun s = h.wait_ckpt(srv.pid, std::chrono::seconds(10));
  EXPECT_EQ(s.exit_code(), 1);
  EXPECT_TRUE(std::filesystem::is_empty(dst));
}

// The options go together; a page server refuses a directory without a
// checkpoint before it listens.
TEST(LazyPagesRemoteBadInput, Options) {
  Harness h;
  mkdir(h.images().c_str(), 0700);
  CkptRun no_port = h.ckpt({"lazy-pages", "-D", h.images(), "--page-server", "--address", "127.0.0.1"});
  EXPECT_EQ(no_port.exit_code(), 2);
  EXPECT_NE(no_port.err.find("--page-server needs --address and --port"), std::string::npos) << no_port.err;
  CkptRun stray = h.ckpt({"lazy-pages", "-D", h.images(), "--port", "1234"});
  EXPECT_EQ(stray.exit_code(), 2);
  CkptRun empty = h.ckpt({"page-server", "-D", h.images(), "--port", std::to_string(free_port()), "--lazy-pages"});
  EXPECT_EQ(empty.exit_code(), 1);
  EXPECT_NE(empty.err.find("holds no checkpoint"), std::string::npos) << empty.err;
}

// Page runs hold at most 4 MiB (dump/memory.cc plan_runs): a lazy
// restore's first fault in a large buffer waits for one run's check, not
// for the whole buffer's. wl_dirtier's 256 MiB buffer, every page of it
// present, is in runs of 4 MiB that still cover it all.
TEST(PageRuns, AtMostFourMiBEach) {
  Harness h;
  const pid_t pid = h.dump_workload("dirtier");
  ASSERT_GT(pid, 0);
  const std::string name = fmt::format("pagemap-{}.img", pid);
  auto bytes = ckpt::read_file(h.images() + "/" + name);
  ASSERT_TRUE(bytes) << bytes.error().str();
  ckpt::img::PageMap pm;
  ASSERT_TRUE(ckpt::image::unframe(name, *bytes, ckpt::image::ImageKind::PageMap, &pm));
  uint64_t pages = 0, full = 0;
  for (const ckpt::img::PageRun& r : pm.runs()) {
    EXPECT_LE(r.nr_pages(), 1024u) << "run at " << std::hex << r.vaddr();
    pages += r.nr_pages();
    full += r.nr_pages() == 1024;
  }
  EXPECT_GE(pages * 4096, 256u << 20);
  EXPECT_GE(full, 60u);
}

// No daemon: restore fails before any task exists, and says what to start.
TEST(LazyPagesBadInput, NoDaemon) {
  Harness h;
  const pid_t pid = h.dump_workload(kWorkload);
  ASSERT_GT(pid, 0);
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "--lazy-pages"});
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_NE(r.err.find("no ckpt lazy-pages daemon listens on"), std::string::npos) << r.err;
  EXPECT_FALSE(alive(pid));
}

// A directory that holds no checkpoint: the daemon says so and exits.
TEST(LazyPagesBadInput, NotACheckpoint) {
  Harness h;
  mkdir(h.images().c_str(), 0700);
  CkptRun r = h.ckpt({"lazy-pages", "-D", h.images()});
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_NE(r.err.find("holds no checkpoint"), std::string::npos) << r.err;
  CkptRun missing = h.ckpt({"lazy-pages", "-D", h.dir() + "/nowhere"});
  EXPECT_EQ(missing.exit_code(), 1);
  EXPECT_NE(missing.err.find("nowhere"), std::string::npos) << missing.err;
}

// A damaged page run: the daemon refuses to serve it, and the process is
// killed before it reads a byte of it.
TEST(LazyPagesBadInput, DamagedPagesKillTheProcess) {
  Harness h;
  const pid_t pid = h.dump_workload(kWorkload);
  ASSERT_GT(pid, 0);
  const std::string pages = fmt::format("{}/pages-{}.img", h.images(), pid);
  {
    std::fstream f(pages, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(32 << 20);  // in the 64 MiB buffer, whatever precedes it
    ASSERT_TRUE(f);
    f.put('\x5a');
  }
  const pid_t daemon = start_daemon(h);
  const pid_t r = h.ckpt_background({"restore", "-D", h.images(), "--lazy-pages"});
  CkptRun d = h.wait_ckpt(daemon, std::chrono::seconds(60));
  EXPECT_EQ(d.exit_code(), 1);
  EXPECT_NE(d.err.find("checksum mismatch"), std::string::npos) << d.err;
  CkptRun rr = h.wait_ckpt(r, std::chrono::seconds(20));
  EXPECT_NE(rr.exit_code(), 0);
  EXPECT_NE(rr.err.find("checksum mismatch"), std::string::npos) << rr.err;
  EXPECT_FALSE(alive(pid));
}

}  // namespace
