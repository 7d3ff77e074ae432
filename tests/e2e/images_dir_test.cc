// The images directory against another user (issue 10): links planted for
// every name ckpt writes or reads there are never followed, a directory
// someone else owns or can write is refused unless --allow-shared-images-dir,
// logs and pidfiles are not written through links, and a dump that fails (a
// full disk) leaves no temporary behind. In every case the user's process
// goes on running, untraced.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kVictimText = "root's own file, not to be touched\n";

void expect_unharmed(pid_t pid) {
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(tracer_of(pid), 0) << "left traced";
}

uid_t nobody_uid() {
  const passwd* pw = getpwnam("nobody");
  return pw ? pw->pw_uid : 65534;
}

// Runs `f` in a child that has become `nobody`, as an attacker would; true if
// it returned true.
bool as_nobody(const std::function<bool()>& f) {
  pid_t c = fork();
  if (c == 0) {
    const uid_t u = nobody_uid();
    if (setgroups(0, nullptr) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(u, u, u) < 0) _exit(2);
    _exit(f() ? 0 : 1);
  }
  int st;
  waitpid(c, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// A root-owned file that the attacker's links point to.
struct Victim {
  std::string path;
  explicit Victim(const Harness& h) : path(h.dir() + "/victim") {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_EQ(write(fd, kVictimText, strlen(kVictimText)), static_cast<ssize_t>(strlen(kVictimText)));
    fchmod(fd, 0644);
    close(fd);
  }
  void expect_untouched() const {
    EXPECT_EQ(read_text(path), kVictimText) << "the link's target was written";
    struct stat st;
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0644u) << "the link's target was chmod'ed";
    EXPECT_EQ(st.st_uid, 0u);
  }
};

// A world-writable images directory, and a harness directory others may enter.
void make_shared_images_dir(const Harness& h) {
  ASSERT_EQ(chmod(h.dir().c_str(), 0711), 0);
  ASSERT_EQ(mkdir(h.images().c_str(), 0777), 0);
  ASSERT_EQ(chmod(h.images().c_str(), 0777), 0);
}

// Every name dump creates for `pid`, final and temporary.
std::vector<std::string> dump_names(pid_t pid) {
  std::vector<std::string> out;
  for (const char* p : {"core", "mm", "pagemap", "pages", "files"}) out.push_back(fmt::format("{}-{}.img", p, pid));
  out.push_back("inventory.img");
  out.push_back("stats-dump.img");
  std::vector<std::string> tmp;
  for (const std::string& n : out) tmp.push_back("." + n + ".tmp");
  out.insert(out.end(), tmp.begin(), tmp.end());
  return out;
}

bool plant_links(const std::string& dir, const std::vector<std::string>& names, const std::string& target) {
  for (const std::string& n : names)
    if (symlink(target.c_str(), (dir + "/" + n).c_str()) < 0) return false;
  return true;
}

// Names in `dir` ending in .tmp, hidden ones included.
std::vector<std::string> temps_in(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.ends_with(".tmp")) out.push_back(n);
  }
  closedir(d);
  return out;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ImagesDir, WorldWritableDirIsRefused) {
  Harness h;
  make_shared_images_dir(h);
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_TRUE(has(d.err, fmt::format("images directory {} is owned by root (uid 0) with mode 0777", h.images())))
      << d.err;
  EXPECT_TRUE(has(d.err, "--allow-shared-images-dir")) << d.err;
  expect_unharmed(pid);
  EXPECT_EQ(temps_in(h.images()), std::vector<std::string>{});
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
}

TEST(ImagesDir, GroupWritableOrForeignDirIsRefused) {
  Harness h;
  ASSERT_EQ(mkdir(h.images().c_str(), 0700), 0);
  ASSERT_EQ(chmod(h.images().c_str(), 0770), 0);
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_TRUE(has(d.err, "with mode 0770")) << d.err;
  expect_unharmed(pid);

  ASSERT_EQ(chmod(h.images().c_str(), 0700), 0);
  ASSERT_EQ(chown(h.images().c_str(), nobody_uid(), 65534), 0);
  d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_TRUE(has(d.err, fmt::format("is owned by nobody (uid {}) with mode 0700", nobody_uid()))) << d.err;
  EXPECT_TRUE(has(d.err, "--allow-shared-images-dir")) << d.err;
  expect_unharmed(pid);
}

TEST(ImagesDir, CreatedOwnerOnly) {
  Harness h;
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-o", "dump.log", "--leave-running"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  struct stat st;
  ASSERT_EQ(stat(h.images().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((h.images() + "/dump.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "the log";
  expect_unharmed(pid);
}

TEST(ImagesDir, RefusedProcessGetsNoDirectory) {
  Harness h;
  CkptRun d = h.ckpt({"dump", "-t", "4194000", "-D", h.images(), "-o", "dump.log"});
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_TRUE(has(d.err, "no process with pid 4194000")) << d.err;
  EXPECT_NE(access(h.images().c_str(), F_OK), 0) << "a directory was made for a dump refused at once";
}

TEST(ImagesDir, SymlinkedDirIsRefused) {
  Harness h;
  const std::string real = h.dir() + "/real", link = h.dir() + "/link";
  ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
  pid_t pid = h.start_workload("counter");
  for (const std::string& d : {link, link + "/"}) {
    CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", d});
    EXPECT_EQ(r.exit_code(), 1) << r.err;
    EXPECT_TRUE(has(r.err, fmt::format("open directory {}: it is a symbolic link", link))) << r.err;
    expect_unharmed(pid);
  }
  CkptRun good = h.ckpt({"dump", "-t", std::to_string(pid), "-D", real});
  ASSERT_EQ(good.exit_code(), 0) << good.err;
  h.wait_child(pid);
  CkptRun r = h.ckpt({"restore", "-D", link});
  EXPECT_EQ(r.exit_code(), 1) << r.err;
  EXPECT_TRUE(has(r.err, "it is a symbolic link")) << r.err;
  EXPECT_FALSE(alive(pid));
}

// An attacker links every name the dump will use to a file of root's (but
// inventory.img, which would make the directory look like a checkpoint).
TEST(ImagesDir, PlantedLinksInSharedDirAreRefused) {
  Harness h;
  Victim v(h);
  make_shared_images_dir(h);
  pid_t pid = h.start_workload("counter");
  std::vector<std::string> names = dump_names(pid);
  std::erase(names, "inventory.img");
  ASSERT_TRUE(as_nobody([&] { return plant_links(h.images(), names, v.path); }));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_TRUE(has(d.err, "--allow-shared-images-dir")) << d.err;
  v.expect_untouched();
  expect_unharmed(pid);
}

// Allowed to share the directory, ckpt still never writes through a link:
// with the final names taken the dump fails, the task runs on, and what is
// left is the attacker's links, not a file of ckpt's.
TEST(ImagesDir, PlantedLinksNeverFollowedWhenSharingIsAllowed) {
  Harness h;
  Victim v(h);
  make_shared_images_dir(h);
  pid_t pid = h.start_workload("counter");
  ASSERT_TRUE(as_nobody([&] { return plant_links(h.images(), dump_names(pid), v.path); }));
  const std::vector<std::string> args = {"dump", "-t", std::to_string(pid), "-D", h.images(),
                                         "--allow-shared-images-dir"};
  // inventory.img taken: the directory looks like a checkpoint.
  CkptRun d = h.ckpt(args);
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_TRUE(has(d.err, "already holds a checkpoint")) << d.err;
  v.expect_untouched();
  expect_unharmed(pid);

  // Without it: every image's name is taken, the first rename fails.
  ASSERT_TRUE(as_nobody([&] { return unlink((h.images() + "/inventory.img").c_str()) == 0; }));
  d = h.ckpt(args);
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_TRUE(has(d.err, fmt::format("{}/pages-{}.img exists and ckpt did not write it", h.images(), pid))) << d.err;
  EXPECT_TRUE(has(d.err, fmt::format("dump pid {}", pid))) << d.err;
  v.expect_untouched();
  expect_unharmed(pid);
  for (const std::string& n : temps_in(h.images())) {
    struct stat st;
    ASSERT_EQ(lstat((h.images() + "/" + n).c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode)) << n << ": a temporary of ckpt's was left";
  }
}

// Only the temporary names planted: they are removed (unlinking a link never
// touches its target), the dump succeeds, and the checkpoint verifies.
TEST(ImagesDir, PlantedTempLinksAreReplacedWhenSharingIsAllowed) {
  Harness h;
  Victim v(h);
  make_shared_images_dir(h);
  pid_t pid = h.start_workload("counter");
  std::vector<std::string> temps;
  for (const std::string& n : dump_names(pid))
    if (n[0] == '.') temps.push_back(n);
  ASSERT_TRUE(as_nobody([&] { return plant_links(h.images(), temps, v.path); }));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--allow-shared-images-dir"});
  EXPECT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  v.expect_untouched();
  EXPECT_EQ(temps_in(h.images()), std::vector<std::string>{});
  CkptRun r = h.ckpt({"verify", h.images()});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
}

// restore, verify and show alike.
TEST(ImagesDir, RestoreRefusesImagesReachedThroughLinks) {
  Harness h;
  pid_t pid = h.dump_workload("counter");
  const std::string aside = h.dir() + "/aside";
  ASSERT_EQ(mkdir(aside.c_str(), 0700), 0);
  for (const std::string& n : {fmt::format("core-{}.img", pid), fmt::format("pages-{}.img", pid),
                               std::string("inventory.img")}) {
    SCOPED_TRACE(n);
    const std::string in = h.images() + "/" + n, out = aside + "/" + n;
    ASSERT_EQ(rename(in.c_str(), out.c_str()), 0);
    ASSERT_EQ(symlink(out.c_str(), in.c_str()), 0);
    CkptRun r = h.ckpt({"restore", "-D", h.images()});
    EXPECT_EQ(r.exit_code(), 1) << r.err;
    EXPECT_TRUE(has(r.err, fmt::format("open {}: refusing a symbolic link", in))) << r.err;
    EXPECT_FALSE(alive(pid)) << "a refused restore left a process";
    CkptRun v = h.ckpt({"verify", h.images()});
    EXPECT_EQ(v.exit_code(), 1) << v.err;
    EXPECT_TRUE(has(v.err, "refusing a symbolic link")) << v.err;
    CkptRun s = h.ckpt({"show", h.images()});
    EXPECT_EQ(s.exit_code(), 1) << s.err;
    EXPECT_TRUE(has(s.err, "refusing a symbolic link")) << s.err;
    ASSERT_EQ(unlink(in.c_str()), 0);
    ASSERT_EQ(rename(out.c_str(), in.c_str()), 0);
  }
  CkptRun v = h.ckpt({"verify", h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;
}

TEST(ImagesDir, RestoreRefusesSharedDirUnlessAllowed) {
  Harness h;
  pid_t pid = h.dump_workload("counter");
  ASSERT_EQ(chmod(h.images().c_str(), 0777), 0);
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_EQ(r.exit_code(), 1) << r.err;
  EXPECT_TRUE(has(r.err, fmt::format("images directory {} is owned by root (uid 0) with mode 0777", h.images())))
      << r.err;
  EXPECT_TRUE(has(r.err, "--allow-shared-images-dir")) << r.err;
  EXPECT_FALSE(alive(pid));

  const std::string pidfile = h.dir() + "/restored.pid";
  pid_t c = h.ckpt_background({"restore", "-D", h.images(), "--allow-shared-images-dir", "--pidfile", pidfile});
  ASSERT_TRUE(h.wait_restored(pid, pidfile));
  kill(pid, SIGTERM);
  CkptRun done = h.wait_ckpt(c);
  EXPECT_EQ(done.exit_code(), 0) << done.err;
}

TEST(ImagesDir, LogThroughLinkIsRefused) {
  Harness h;
  Victim v(h);
  ASSERT_EQ(mkdir(h.images().c_str(), 0700), 0);
  ASSERT_EQ(symlink(v.path.c_str(), (h.images() + "/dump.log").c_str()), 0);
  const std::string abs_log = h.dir() + "/abs.log";
  ASSERT_EQ(symlink(v.path.c_str(), abs_log.c_str()), 0);
  pid_t pid = h.start_workload("counter");
  for (const std::string& log : {std::string("dump.log"), abs_log}) {
    SCOPED_TRACE(log);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-o", log, "-v4"});
    EXPECT_EQ(d.exit_code(), 1) << d.err;
    EXPECT_TRUE(has(d.err, "log file")) << d.err;
    EXPECT_TRUE(has(d.err, "refusing a symbolic link")) << d.err;
    EXPECT_TRUE(has(d.err, "ELOOP")) << d.err;
    v.expect_untouched();
    expect_unharmed(pid);
  }
  // Appending to a log of someone else's is refused too.
  const std::string foreign = h.dir() + "/foreign.log";
  ASSERT_EQ(close(open(foreign.c_str(), O_WRONLY | O_CREAT, 0666)), 0);
  ASSERT_EQ(chmod(foreign.c_str(), 0666), 0);
  ASSERT_EQ(chown(foreign.c_str(), nobody_uid(), 65534), 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-o", foreign});
  EXPECT_EQ(d.exit_code(), 1) << d.err;
  EXPECT_TRUE(has(d.err, fmt::format("owned by uid {}", nobody_uid()))) << d.err;
  EXPECT_EQ(read_text(foreign), "");
  expect_unharmed(pid);

  // restore's log, likewise.
  CkptRun good = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-o", "ok.log"});
  ASSERT_EQ(good.exit_code(), 0) << good.err;
  h.wait_child(pid);
  ASSERT_EQ(symlink(v.path.c_str(), (h.images() + "/restore.log").c_str()), 0);
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-o", "restore.log"});
  EXPECT_EQ(r.exit_code(), 1) << r.err;
  EXPECT_TRUE(has(r.err, "refusing a symbolic link")) << r.err;
  v.expect_untouched();
  EXPECT_FALSE(alive(pid));
}

TEST(ImagesDir, PidfileLinkIsReplacedNotFollowed) {
  Harness h;
  Victim v(h);
  pid_t pid = h.dump_workload("counter");
  const std::string pidfile = h.dir() + "/restored.pid";
  ASSERT_EQ(symlink(v.path.c_str(), pidfile.c_str()), 0);
  pid_t c = h.ckpt_background({"restore", "-D", h.images(), "--pidfile", pidfile});
  // Restored: the pidfile is a file of its own, the task runs untraced.
  struct stat st;
  bool restored = false;
  for (int i = 0; i < 10000 && !restored; i++) {
    restored = lstat(pidfile.c_str(), &st) == 0 && S_ISREG(st.st_mode) && alive(pid) && tracer_of(pid) == 0;
    if (!restored) std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(restored);
  EXPECT_EQ(read_text(pidfile), fmt::format("{}\n", pid));
  v.expect_untouched();
  kill(pid, SIGTERM);
  CkptRun done = h.wait_ckpt(c);
  EXPECT_EQ(done.exit_code(), 0) << done.err;
}

// --- a full disk -------------------------------------------------------------------

// A tmpfs of `pages` 4 KiB pages over the images directory, owner-only.
struct SmallFs {
  std::string path;
  SmallFs(const std::string& p, uint64_t pages) : path(p) {
    mkdir(path.c_str(), 0700);
    EXPECT_EQ(mount("tmpfs", path.c_str(), "tmpfs", 0, fmt::format("size={}k,mode=0700", pages * 4).c_str()), 0)
        << strerror(errno);
  }
  ~SmallFs() { umount2(path.c_str(), MNT_DETACH); }
  uint64_t used_pages() const {
    struct statvfs s;
    EXPECT_EQ(statvfs(path.c_str(), &s), 0);
    return (s.f_blocks - s.f_bfree) * s.f_frsize / 4096;
  }
};

// The disk fills at every step of the dump in turn (the page data, each
// metadata image, the inventory, the stats): the dump fails with ENOSPC, or
// succeeds when only the stats did not fit, and never leaves a temporary.
TEST(ImagesDir, FullDiskLeavesNoTemporaries) {
  Harness h;
  pid_t pid = h.start_workload("heap", {"4"});
  ASSERT_GT(pid, 0);
  uint64_t need;
  {
    SmallFs fs(h.images(), 16384);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"});
    ASSERT_EQ(d.exit_code(), 0) << d.err;
    need = fs.used_pages();
    expect_unharmed(pid);
  }
  ASSERT_GT(need, 1024u) << "4 MiB of heap";
  std::vector<uint64_t> sizes = {need / 2};
  for (uint64_t k = 1; k <= 8; k++) sizes.push_back(need - k);
  int failed = 0;
  for (uint64_t size : sizes) {
    SCOPED_TRACE(fmt::format("{} of {} pages", size, need));
    SmallFs fs(h.images(), size);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"});
    if (d.exit_code() != 0) {
      failed++;
      EXPECT_EQ(d.exit_code(), 1) << d.err;
      EXPECT_TRUE(has(d.err, "ENOSPC (No space left on device)")) << d.err;
      EXPECT_TRUE(has(d.err, fmt::format("dump pid {}", pid))) << d.err;
      EXPECT_TRUE(has(d.err, h.images() + "/")) << "the error names the file: " << d.err;
      EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
    }
    EXPECT_EQ(temps_in(h.images()), std::vector<std::string>{}) << d.err;
    expect_unharmed(pid);
  }
  EXPECT_GE(failed, 3) << "the disk should have been too small for most of these";
  {
    // The page data copied by ckpt (process_vm_readv + write) rather than spliced.
    SmallFs fs(h.images(), need / 2);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--page-transfer", "readv"});
    EXPECT_EQ(d.exit_code(), 1) << d.err;
    EXPECT_TRUE(has(d.err, fmt::format("pages of task {} into {}/.pages-{}.img.tmp", pid, h.images(), pid))) << d.err;
    EXPECT_TRUE(has(d.err, "ENOSPC (No space left on device)")) << d.err;
    EXPECT_EQ(temps_in(h.images()), std::vector<std::string>{});
    expect_unharmed(pid);
  }
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("heap"));
}

}  // namespace
}  // namespace e2e
