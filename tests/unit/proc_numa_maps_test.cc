// /proc/PID/numa_maps: whether every VMA runs under the default policy.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string_view>

#include <fmt/format.h>

#include "children.h"
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

// A child of this process, under the default policy whatever the test's
// own: default everywhere, until a VMA of its own is bound to a node, and
// again once that VMA is gone.
TEST(NumaMaps, SeesAVmaBoundByMbind) {
  constexpr long kNoFile = 8, kFailed = 16;
  const long seen = tests::in_child([]() -> long {
    constexpr int kMpolDefault = 0, kMpolBind = 2;
    if (syscall(SYS_set_mempolicy, kMpolDefault, nullptr, 0) < 0) return kFailed;
    auto is_default = [] {
      auto all = all_default_policies(getpid());
      if (!all) return kFailed;
      return all->has_value() ? long{**all} : kNoFile;
    };
    const long before = is_default();
    if (before == kNoFile || before == kFailed) return before;
    const size_t len = 4 * sysconf(_SC_PAGESIZE);
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned long node0 = 1;
    if (p == MAP_FAILED || syscall(SYS_mbind, p, len, kMpolBind, &node0, 64, 0) < 0) return kFailed;
    const long bound = is_default();
    munmap(p, len);
    const long after = is_default();
    if (bound == kFailed || after == kFailed) return kFailed;
    return before | bound << 1 | after << 2;
  });
  if (seen == kNoFile) GTEST_SKIP() << "no /proc/PID/numa_maps: a kernel without NUMA";
  ASSERT_NE(seen, kFailed) << "the child could not bind a VMA or read its numa_maps";
  ASSERT_GE(seen, 0) << "the child died";
  EXPECT_TRUE(seen & 1) << "default before the mbind";
  EXPECT_FALSE(seen & 2) << "the bound VMA not seen";
  EXPECT_TRUE(seen & 4) << "default again once the VMA is gone";
}

}  // namespace
}  // namespace ckpt::proc
