// base/dir.h: files in a directory reached without following links, created
// exclusively, renamed into place without replacing, temporaries removed on
// every path that does not commit them.
#include "base/dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"

namespace ckpt {
namespace {

class DirTest : public testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/ckpt-dir-XXXXXX";
    root_ = mkdtemp(t);
    ASSERT_EQ(mkdir(path().c_str(), 0700), 0);
    auto d = Dir::open(path());
    ASSERT_TRUE(d) << d.error().str();
    dir_ = std::move(*d);
    write_text(victim(), "victim\n");
  }
  void TearDown() override { std::system(fmt::format("rm -rf {}", root_).c_str()); }

  std::string path() const { return root_ + "/d"; }
  std::string victim() const { return root_ + "/victim"; }
  std::string in(const std::string& n) const { return path() + "/" + n; }
  static void write_text(const std::string& p, const std::string& text) {
    UniqueFd fd(open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    ASSERT_TRUE(write_all(fd.get(), text.data(), text.size()));
  }
  void link_to_victim(const std::string& n) const { ASSERT_EQ(symlink(victim().c_str(), in(n).c_str()), 0); }
  bool is_link(const std::string& n) const {
    struct stat st;
    return lstat(in(n).c_str(), &st) == 0 && S_ISLNK(st.st_mode);
  }
  std::string victim_text() const { return read_file(victim()).value_or("?"); }

  std::string root_;
  Dir dir_;
};

TEST_F(DirTest, SymlinkedDirectoryIsRefused) {
  ASSERT_EQ(symlink(path().c_str(), (root_ + "/l").c_str()), 0);
  for (const std::string& p : {root_ + "/l", root_ + "/l/", root_ + "/l//"}) {
    auto d = Dir::open(p);
    ASSERT_FALSE(d) << p;
    EXPECT_EQ(d.error().err, ELOOP);
    EXPECT_NE(d.error().msg.find("is a symbolic link"), std::string::npos) << d.error().msg;
  }
  EXPECT_TRUE(Dir::open(path() + "/"));
}

TEST_F(DirTest, OpenReadRefusesLinksAndWhatIsNotAFile) {
  write_text(in("real"), "data");
  auto fd = dir_.open_read("real");
  ASSERT_TRUE(fd) << fd.error().str();
  EXPECT_EQ(read_fd(fd->get(), "real").value_or(""), "data");

  link_to_victim("link");
  auto l = dir_.open_read("link");
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().err, ELOOP);
  EXPECT_NE(l.error().msg.find(in("link") + ": refusing a symbolic link"), std::string::npos) << l.error().msg;

  // A link on the way, or a way out of the directory.
  ASSERT_EQ(symlink(root_.c_str(), in("up").c_str()), 0);
  EXPECT_FALSE(dir_.open_read("up/victim"));
  EXPECT_FALSE(dir_.open_read("../victim"));
  EXPECT_FALSE(dir_.open_read(victim()));

  // A FIFO does not hang the open.
  ASSERT_EQ(mkfifo(in("fifo").c_str(), 0600), 0);
  auto f = dir_.open_read("fifo");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().msg.find("not a regular file"), std::string::npos) << f.error().msg;
}

TEST_F(DirTest, CreateExclusiveNeverOpensWhatExists) {
  link_to_victim("link");
  ASSERT_EQ(symlink((root_ + "/nowhere").c_str(), in("dangling").c_str()), 0);
  write_text(in("file"), "old");
  for (const char* n : {"link", "dangling", "file"}) {
    auto fd = dir_.create_exclusive(n, O_WRONLY, 0600);
    ASSERT_FALSE(fd) << n;
    EXPECT_EQ(fd.error().err, EEXIST) << n;
  }
  EXPECT_NE(access((root_ + "/nowhere").c_str(), F_OK), 0) << "created through a dangling link";
  EXPECT_EQ(victim_text(), "victim\n");
  auto fd = dir_.create_exclusive("new", O_WRONLY, 0600);
  ASSERT_TRUE(fd) << fd.error().str();
  struct stat st;
  ASSERT_EQ(fstat(fd->get(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(DirTest, TempFileIsRemovedUnlessCommitted) {
  {
    auto t = TempFile::create(dir_, "a.img");
    ASSERT_TRUE(t) << t.error().str();
    EXPECT_EQ(access(in(".a.img.tmp").c_str(), F_OK), 0);
    // Moved: only the last owner removes it.
    TempFile moved = std::move(*t);
    EXPECT_EQ(access(in(".a.img.tmp").c_str(), F_OK), 0);
  }
  EXPECT_NE(access(in(".a.img.tmp").c_str(), F_OK), 0) << "an uncommitted temporary stayed";
  EXPECT_NE(access(in("a.img").c_str(), F_OK), 0);

  {
    auto t = TempFile::create(dir_, "b.img");
    ASSERT_TRUE(t);
    ASSERT_TRUE(write_all(t->fd(), "b", 1));
    ASSERT_TRUE(t->commit(true));
  }
  EXPECT_EQ(read_file(in("b.img")).value_or(""), "b");
  EXPECT_NE(access(in(".b.img.tmp").c_str(), F_OK), 0);
}

TEST_F(DirTest, TempFileReplacesAStaleLinkWithoutFollowingIt) {
  link_to_victim(".c.img.tmp");
  auto t = TempFile::create(dir_, "c.img");
  ASSERT_TRUE(t) << t.error().str();
  ASSERT_TRUE(write_all(t->fd(), "c", 1));
  ASSERT_TRUE(t->commit(false));
  EXPECT_EQ(victim_text(), "victim\n");
  EXPECT_FALSE(is_link("c.img"));
  EXPECT_EQ(read_file(in("c.img")).value_or(""), "c");
}

TEST_F(DirTest, TempFileReplacesAStaleTemporary) {
  // A run that died left its temporary, longer than what comes now.
  write_text(in(".s.img.tmp"), "stale and long");
  auto t = TempFile::create(dir_, "s.img");
  ASSERT_TRUE(t) << t.error().str();
  ASSERT_TRUE(write_all(t->fd(), "s", 1));
  ASSERT_TRUE(t->commit(false));
  EXPECT_EQ(read_file(in("s.img")).value_or(""), "s");
  EXPECT_NE(access(in(".s.img.tmp").c_str(), F_OK), 0);
}

TEST_F(DirTest, CommitNeverReplacesUnlessAsked) {
  link_to_victim("d.img");
  {
    auto t = TempFile::create(dir_, "d.img");
    ASSERT_TRUE(t);
    auto r = t->commit(false);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().err, EEXIST);
    EXPECT_NE(r.error().msg.find(in("d.img") + " exists and ckpt did not write it"), std::string::npos)
        << r.error().msg;
  }
  EXPECT_TRUE(is_link("d.img"));
  EXPECT_NE(access(in(".d.img.tmp").c_str(), F_OK), 0) << "a failed commit left its temporary";

  auto t = TempFile::create(dir_, "d.img");
  ASSERT_TRUE(t);
  ASSERT_TRUE(write_all(t->fd(), "d", 1));
  ASSERT_TRUE(t->commit(false, TempFile::Replace::Yes));
  EXPECT_FALSE(is_link("d.img")) << "the link itself is replaced";
  EXPECT_EQ(victim_text(), "victim\n");
}

TEST_F(DirTest, AppendOwnRefusesLinksAndHardLinks) {
  link_to_victim("log");
  auto l = dir_.open_append_own("log", 0600);
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().err, ELOOP);
  ASSERT_EQ(link(victim().c_str(), in("hard").c_str()), 0);
  auto h = dir_.open_append_own("hard", 0600);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().msg.find("hard links"), std::string::npos) << h.error().msg;
  EXPECT_FALSE(open_append_own(in("log"), 0600));
  EXPECT_EQ(victim_text(), "victim\n");

  auto fd = dir_.open_append_own("new.log", 0600);
  ASSERT_TRUE(fd) << fd.error().str();
  ASSERT_TRUE(write_all(fd->get(), "one\n", 4));
  fd = dir_.open_append_own("new.log", 0600);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(write_all(fd->get(), "two\n", 4));
  EXPECT_EQ(read_file(in("new.log")).value_or(""), "one\ntwo\n");
  struct stat st;
  ASSERT_EQ(stat(in("new.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(DirTest, ReplaceFileReplacesALinkNotItsTarget) {
  const std::string pidfile = root_ + "/pid";
  ASSERT_EQ(symlink(victim().c_str(), pidfile.c_str()), 0);
  ASSERT_TRUE(replace_file(pidfile, "42\n", 0644));
  EXPECT_EQ(read_file(pidfile).value_or(""), "42\n");
  EXPECT_EQ(victim_text(), "victim\n");
}

// Kernels before 5.6 have no openat2: the O_NOFOLLOW fallback still refuses
// a link, and refuses outright a name of more than one component (where a
// link on the way could not be caught). A seccomp filter makes openat2 ENOSYS.
TEST_F(DirTest, WithoutOpenat2LinksAreStillRefused) {
  link_to_victim("link");
  ASSERT_EQ(symlink(root_.c_str(), in("up").c_str()), 0);
  write_text(in("real"), "data");
  pid_t child = fork();
  if (child == 0) {
    sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) _exit(2);
    int failed = 0;
    auto expect = [&](bool ok, const char* what) {
      if (!ok) fmt::print(stderr, "not as expected: {}\n", what), failed++;
    };
    auto l = dir_.open_read("link");
    expect(!l && l.error().err == ELOOP, "a link is refused");
    auto up = dir_.open_read("up/victim");
    expect(!up && up.error().err == EXDEV, "a name of two components is refused");
    expect(!dir_.create_exclusive("link", O_WRONLY, 0600), "creating over a link fails");
    expect(dir_.open_read("real").has_value(), "a file opens");
    auto t = TempFile::create(dir_, "e.img");
    expect(t && t->commit(false), "a temporary is created and committed");
    _exit(failed ? 1 : 0);
  }
  int st;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_EQ(victim_text(), "victim\n");
  EXPECT_EQ(access(in("e.img").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace ckpt
