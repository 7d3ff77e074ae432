// A file the task maps (here its executable) that changed between dump and
// restore: `ckpt verify` and `ckpt restore` refuse it, naming the file and
// what differs, before any task exists; `--skip-file-check` maps it anyway.
// The workload runs from a copy of its binary in the test's directory, so
// that the test can replace it.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "base/fs.h"
#include "harness.h"

namespace e2e {
namespace {

std::string workload_binary(const std::string& name) { return fmt::format("{}/wl_{}", CKPT_WORKLOADS, name); }

// Writes `content` to `path`: through a new file renamed over it (new inode),
// or into the same inode.
enum class Replace { Rename, InPlace };
void put_file(const std::string& path, const std::string& content, Replace how) {
  const std::string target = how == Replace::Rename ? path + ".new" : path;
  int fd = open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  ASSERT_GE(fd, 0) << target << ": " << strerror(errno);
  ASSERT_TRUE(ckpt::write_all(fd, content.data(), content.size()));
  close(fd);
  if (how == Replace::Rename) {
    ASSERT_EQ(rename(target.c_str(), path.c_str()), 0);
  }
}

// The counter workload, run from a copy of its binary and dumped.
struct DumpedCopy {
  Harness h;
  std::string exe = h.dir() + "/wl_counter";
  std::string original = ckpt::read_file(workload_binary("counter")).value_or("");
  pid_t pid = -1;

  DumpedCopy() {
    put_file(exe, original, Replace::InPlace);
    pid = h.start_workload_at(exe, "counter");
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
    EXPECT_EQ(d.exit_code(), 0) << d.err;
    h.wait_child(pid);
  }

  // verify and restore both refuse, with every string of `want` in the error.
  void expect_refused(const std::vector<std::string>& want, const std::vector<std::string>& not_want) {
    CkptRun v = h.ckpt({"verify", h.images()});
    EXPECT_NE(v.exit_code(), 0) << v.out;
    CkptRun r = h.ckpt({"restore", "-d", "-D", h.images()});
    EXPECT_NE(r.exit_code(), 0) << r.err;
    for (const CkptRun* run : {&v, &r}) {
      for (const std::string& s : want) EXPECT_NE(run->err.find(s), std::string::npos) << "no '" << s << "' in: " << run->err;
      for (const std::string& s : not_want) EXPECT_EQ(run->err.find(s), std::string::npos) << "'" << s << "' in: " << run->err;
    }
    EXPECT_FALSE(alive(pid)) << "restore left a process behind";
  }
};

TEST(FileCheck, ReplacedExecutableIsRefused) {
  DumpedCopy d;
  ASSERT_FALSE(testing::Test::HasFailure());
  auto other = ckpt::read_file(workload_binary("heap"));
  ASSERT_TRUE(other);
  put_file(d.exe, *other, Replace::Rename);
  d.expect_refused({d.exe + " (mapped at 0x", "is not the file that was dumped: size ", "inode ", "build-id ",
                    "--skip-file-check"},
                   {});
}

TEST(FileCheck, RewrittenInPlaceIsRefused) {
  DumpedCopy d;
  ASSERT_FALSE(testing::Test::HasFailure());
  auto other = ckpt::read_file(workload_binary("heap"));
  ASSERT_TRUE(other);
  put_file(d.exe, *other, Replace::InPlace);
  d.expect_refused({d.exe + " (mapped at 0x", "is not the file that was dumped: size ", "mtime ", "build-id "},
                   {"inode "});
}

TEST(FileCheck, SkipFileCheckMapsItAnyway) {
  DumpedCopy d;
  ASSERT_FALSE(testing::Test::HasFailure());
  // The same bytes in a new file: only inode and mtime differ.
  put_file(d.exe, d.original, Replace::Rename);
  d.expect_refused({d.exe + " (mapped at 0x", "is not the file that was dumped: ", "inode "}, {"build-id ", "size "});

  CkptRun v = d.h.ckpt({"verify", "--skip-file-check", d.h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;
  const std::string pidfile = d.h.dir() + "/restored.pid";
  pid_t r = d.h.ckpt_background({"restore", "--skip-file-check", "-D", d.h.images(), "--pidfile", pidfile});
  ASSERT_TRUE(d.h.wait_restored(d.pid, pidfile));
  kill(d.pid, SIGTERM);
  CkptRun done = d.h.wait_ckpt(r);
  EXPECT_EQ(done.exit_code(), 0) << done.err;
  EXPECT_EQ(done.err.find("is not the file"), std::string::npos) << done.err;
  EXPECT_NE(read_text(d.h.workload_log("counter")).find("PASS counter"), std::string::npos)
      << read_text(d.h.workload_log("counter"));
}

// A file the task maps shared is data it writes: changed size, mtime and
// content since the dump are its own doing, not a replaced file.
TEST(FileCheck, SharedMappedFileMayChange) {
  Harness h;
  pid_t pid = h.start_workload("sharedmap");
  ASSERT_GT(pid, 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  // As the task could have after a dump with --leave-running: more data, a
  // later mtime.
  const std::string data = h.dir() + "/sharedmap.ready.data";
  {
    int fd = open(data.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(write(fd, "more", 4), 4);
    close(fd);
  }
  CkptRun v = h.ckpt({"verify", h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;
  const std::string pidfile = h.dir() + "/restored.pid";
  pid_t r = h.ckpt_background({"restore", "-D", h.images(), "--pidfile", pidfile});
  ASSERT_TRUE(h.wait_restored(pid, pidfile)) << read_text(h.workload_log("sharedmap"));
  kill(pid, SIGTERM);
  CkptRun done = h.wait_ckpt(r);
  EXPECT_EQ(done.exit_code(), 0) << done.err << read_text(h.workload_log("sharedmap"));
  EXPECT_NE(read_text(h.workload_log("sharedmap")).find("PASS sharedmap"), std::string::npos);

  // Another file at its path is still refused.
  put_file(data, std::string(8192, '\0'), Replace::Rename);
  CkptRun again = h.ckpt({"restore", "-d", "-D", h.images()});
  EXPECT_NE(again.exit_code(), 0);
  EXPECT_NE(again.err.find(data + " (mapped at 0x"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("is not the file that was dumped: inode "), std::string::npos) << again.err;
  EXPECT_FALSE(alive(pid));
}

// Another filesystem at the path (as after a migration to another host, or
// a tmpfs mounted again): inode and device numbers say nothing there, and
// the same binary, by size, mtime and build-id, restores; another one is
// still refused, by content.
class TmpfsAt {
 public:
  explicit TmpfsAt(const std::string& dir) : dir_(dir) {
    mkdir(dir.c_str(), 0700);
    mount_again();
  }
  ~TmpfsAt() {
    for (; mounts_ > 0; mounts_--) umount2(dir_.c_str(), MNT_DETACH);
  }
  // Over the one before, which stays mounted: a tmpfs mounted after an
  // unmount may get the same device number back, and its first file the same
  // inode, as another host's never would.
  void mount_again() {
    ASSERT_EQ(mount("ckpt-test", dir_.c_str(), "tmpfs", 0, "mode=0700"), 0) << strerror(errno);
    mounts_++;
  }

 private:
  std::string dir_;
  int mounts_ = 0;
};

void put_binary(const std::string& path, const std::string& content, time_t mtime) {
  put_file(path, content, Replace::InPlace);
  const timespec times[2] = {{mtime, 0}, {mtime, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << strerror(errno);
}

TEST(FileCheck, SameBinaryOnAnotherFilesystemRestores) {
  Harness h;
  TmpfsAt fs(h.dir() + "/fs");
  const std::string exe = h.dir() + "/fs/wl_counter";
  const std::string original = ckpt::read_file(workload_binary("counter")).value_or("");
  ASSERT_FALSE(original.empty());
  put_binary(exe, original, 1700000000);
  pid_t pid = h.start_workload_at(exe, "counter");
  ASSERT_GT(pid, 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);

  // Another binary there, on another filesystem: refused by what it holds.
  fs.mount_again();
  put_binary(exe, original + "another build", 1700000000);
  CkptRun other = h.ckpt({"restore", "-d", "-D", h.images()});
  EXPECT_NE(other.exit_code(), 0);
  EXPECT_NE(other.err.find("is not the file that was dumped: size "), std::string::npos) << other.err;
  EXPECT_EQ(other.err.find("inode "), std::string::npos) << other.err;
  EXPECT_EQ(other.err.find("device "), std::string::npos) << other.err;
  EXPECT_FALSE(alive(pid));

  // The same binary, copied with its mtime, on yet another filesystem.
  fs.mount_again();
  put_binary(exe, original, 1700000000);
  CkptRun v = h.ckpt({"verify", h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;
  h.restore_expect_pass(pid, "counter");
}

}  // namespace
}  // namespace e2e
