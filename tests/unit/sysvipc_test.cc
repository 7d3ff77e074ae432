// /proc/sysvipc/shm: lines captured on this 6.18 kernel (a live segment, the
// same destroyed), malformed ones, and a live read of one of our own.
#include <sys/shm.h>

#include <gtest/gtest.h>

#include "proc/sysvipc.h"

namespace ckpt::proc {
namespace {

constexpr const char* kCaptured =
    "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      "
    "dtime      ctime                   rss                  swap\n"
    " 305441741          1   640                 20580 23273 23273      4     0     0     0     0 1796325325 "
    "1796325325 1796325325                  4096                     0\n"
    "         0          7  1640                 20580 23273 23274      5  1000   100     0     0 1796325325 "
    "1796325325 1796325325                  4096                     0\n"
    "-559038737      32769   600               1048576 16801 16801      0     0     0     0     0 0 0 0 0 0\n";

TEST(SysvIpc, Captured) {
  auto all = parse_sysvipc_shm(kCaptured);
  ASSERT_TRUE(all) << all.error().str();
  ASSERT_EQ(all->size(), 3u);
  const SysvShm& a = (*all)[0];
  EXPECT_EQ(a.key, 0x1234abcd);
  EXPECT_EQ(a.shmid, 1);
  EXPECT_EQ(a.mode, 0640u);
  EXPECT_EQ(a.size, 20580u);
  EXPECT_EQ(a.cpid, 23273);
  EXPECT_EQ(a.nattch, 4u);
  const SysvShm& d = (*all)[1];
  EXPECT_EQ(d.key, 0);
  EXPECT_EQ(d.mode, 0640u | kShmDest);
  EXPECT_EQ(d.lpid, 23274);
  EXPECT_EQ(d.uid, 1000u);
  EXPECT_EQ(d.gid, 100u);
  EXPECT_EQ((*all)[2].key, static_cast<int32_t>(0xdeadbeef));
  EXPECT_EQ((*all)[2].shmid, 32769);
  EXPECT_TRUE(find_shm(*all, 7));
  EXPECT_FALSE(find_shm(*all, 8));
}

TEST(SysvIpc, HeaderOnly) {
  auto all = parse_sysvipc_shm("       key      shmid perms\n");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
}

TEST(SysvIpc, Malformed) {
  for (const char* bad : {"h\n 1 2 999 4 5 6 7 8 9 10 11\n", "h\n 1 2 600 4 5\n", "h\n x 2 600 4 5 6 7 8 9 10 11\n"}) {
    auto r = parse_sysvipc_shm(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().str().find("/proc/sysvipc/shm: can't read line 2"), std::string::npos) << r.error().str();
  }
}

TEST(SysvIpc, LiveSegment) {
  const int id = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0604);
  ASSERT_GE(id, 0);
  auto all = read_sysvipc_shm();
  shmctl(id, IPC_RMID, nullptr);
  ASSERT_TRUE(all) << all.error().str();
  auto s = find_shm(*all, id);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->size, 8192u);
  EXPECT_EQ(s->mode, 0604u);
  EXPECT_EQ(s->cpid, getpid());
}

}  // namespace
}  // namespace ckpt::proc
