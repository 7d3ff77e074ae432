// base/dir.h: files in a directory reached without following links, created
// exclusively, renamed into place without replacing, temporaries removed on
// every path that does not commit them.
#include "base/dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
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

}  // namespace
}  // namespace ckpt
