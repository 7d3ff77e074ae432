// Both ways of finding the pages to store agree, on a mapping of our own.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "dump/present_pages.h"

namespace ckpt::dump {
namespace {

using Stretches = std::vector<std::pair<uint64_t, uint64_t>>;

Stretches find(bool use_ioctl, const img::Vma& v) {
  auto pp = PresentPages::open(getpid(), use_ioctl);
  EXPECT_TRUE(pp) << pp.error().str();
  Stretches out;
  auto r = pp->scan(v, [&](uint64_t s, uint64_t e) {
    if (!out.empty() && out.back().second == s) out.back().second = e;
    else out.emplace_back(s, e);
  });
  EXPECT_TRUE(r) << r.error().str();
  return out;
}

TEST(PresentPages, ScanIoctlAndPagemapAgree) {
  constexpr size_t kPages = 64;
  auto* p = static_cast<char*>(mmap(nullptr, kPages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  for (size_t i : {1, 2, 3, 10, 40, 41}) p[i * 4096] = 1;
  volatile char sink = p[20 * 4096];  // a read fault maps the zero page: nothing to store
  (void)sink;
  img::Vma v;
  v.set_start(reinterpret_cast<uint64_t>(p));
  v.set_end(v.start() + kPages * 4096);
  v.set_kind(img::Vma::ANON_PRIVATE);
  const uint64_t b = v.start();
  const Stretches want = {{b + 4096, b + 4 * 4096}, {b + 10 * 4096, b + 11 * 4096}, {b + 40 * 4096, b + 42 * 4096}};
  EXPECT_EQ(find(true, v), want);
  Stretches by_pagemap = find(false, v);
  // pagemap shows the zero page as present: the only difference allowed.
  std::erase(by_pagemap, std::make_pair(b + 20 * 4096, b + 21 * 4096));
  EXPECT_EQ(by_pagemap, want);
  munmap(p, kPages * 4096);
}

TEST(PresentPages, HugeSparseReservationIsCheap) {
  const size_t len = 1ULL << 40;  // 1 TiB of PROT_NONE, one page touched
  auto* p = static_cast<char*>(mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  ASSERT_EQ(mprotect(p + (len / 2), 4096, PROT_READ | PROT_WRITE), 0);
  p[len / 2] = 7;
  img::Vma v;
  v.set_start(reinterpret_cast<uint64_t>(p));
  v.set_end(v.start() + len / 2);
  v.set_kind(img::Vma::ANON_PRIVATE);
  EXPECT_TRUE(find(true, v).empty());
  munmap(p, len);
}

}  // namespace
}  // namespace ckpt::dump
