// /proc/PID/numa_maps: whether every VMA runs under the default policy.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "proc/numa_maps.h"

namespace ckpt::proc {
namespace {

TEST(NumaMaps, DefaultOnlyWhenEveryVmaIs) {
  constexpr std::string_view kDefault =
      "5581a9b1c000 default file=/usr/bin/cat mapped=2 N0=2 kernelpagesize_kB=4\n"
      "7f2a4c000000 default anon=3 dirty=3 N0=3 kernelpagesize_kB=4\n"
      "7ffd5e2f1000 default stack anon=3 dirty=3 N0=3 kernelpagesize_kB=4\n";
  auto all = parse_numa_maps_all_default(kDefault);
  ASSERT_TRUE(all) << all.error().str();
  EXPECT_TRUE(*all);
  for (std::string_view policy : {"bind:0", "interleave=static:0-1", "prefer=relative:0", "local"}) {
    const std::string text = fmt::format("{}7f2a4c400000 {} anon=4 dirty=4 N0=4 kernelpagesize_kB=4\n", kDefault, policy);
    auto some = parse_numa_maps_all_default(text);
    ASSERT_TRUE(some) << some.error().str();
    EXPECT_FALSE(*some) << policy;
  }
  EXPECT_TRUE(*parse_numa_maps_all_default(""));
}

TEST(NumaMaps, RejectsGarbage) {
  for (std::string_view bad : {"garbage default\n", "7f2a4c000000\n", "7f2a4c000000 \n"}) {
    auto t = parse_numa_maps_all_default(bad);
    EXPECT_FALSE(t) << bad;
    if (!t) {
      EXPECT_NE(t.error().msg.find("/proc numa_maps line"), std::string::npos) << t.error().msg;
    }
  }
}

// This process: default everywhere, until a VMA of its own is bound to a node.
TEST(NumaMaps, SeesAVmaBoundByMbind) {
  auto before = all_default_policies(getpid());
  ASSERT_TRUE(before) << before.error().str();
  if (!before->has_value()) GTEST_SKIP() << "no /proc/PID/numa_maps: a kernel without NUMA";
  if (!**before) GTEST_SKIP() << "the test runs under a memory policy of its own";
  const size_t len = 4 * sysconf(_SC_PAGESIZE);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  unsigned long node0 = 1;
  constexpr int kMpolBind = 2;
  ASSERT_EQ(syscall(SYS_mbind, p, len, kMpolBind, &node0, 64, 0), 0) << strerror(errno);
  auto bound = all_default_policies(getpid());
  munmap(p, len);
  ASSERT_TRUE(bound) << bound.error().str();
  ASSERT_TRUE(bound->has_value());
  EXPECT_FALSE(**bound);
  auto after = all_default_policies(getpid());
  ASSERT_TRUE(after && after->has_value());
  EXPECT_TRUE(**after);
}

}  // namespace
}  // namespace ckpt::proc
