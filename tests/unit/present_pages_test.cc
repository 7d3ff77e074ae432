// Both ways of finding the pages to store agree, on a mapping of our own.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "children.h"
#include "dump/present_pages.h"

namespace ckpt::dump {
namespace {

using Stretches = std::vector<std::pair<uint64_t, uint64_t>>;

Stretches find(bool use_ioctl, const img::Vma& v) {
  auto pp = PresentPages::open(getpid(), use_ioctl);
  EXPECT_TRUE(pp) << pp.error().str();
  EXPECT_EQ(pp->uses_scan_ioctl(), use_ioctl);
  Stretches out;
  auto r = pp->scan(v, [&](uint64_t s, uint64_t e) {
    if (!out.empty() && out.back().second == s) out.back().second = e;
    else out.emplace_back(s, e);
  });
  EXPECT_TRUE(r) << r.error().str();
  return out;
}

// The page frame of our own page at `addr` (root sees PFNs in pagemap).
uint64_t pfn_of(const void* addr) {
  uint64_t e = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY);
  EXPECT_EQ(pread(fd, &e, 8, reinterpret_cast<uintptr_t>(addr) / 4096 * 8), 8);
  close(fd);
  return e & ((1ULL << 55) - 1);
}

// PAGEMAP_SCAN is Linux 6.7's; before it, open() quietly falls back to
// pagemap, and a test of the ioctl would test pagemap instead.
bool have_scan_ioctl() {
  auto pp = PresentPages::open(getpid());
  return pp && pp->uses_scan_ioctl();
}
constexpr const char* kNoScanIoctl = "this kernel has no PAGEMAP_SCAN ioctl (Linux 6.7): ckpt reads pagemap";

TEST(PresentPages, ScanIoctlAndPagemapAgree) {
  if (!have_scan_ioctl()) GTEST_SKIP() << kNoScanIoctl << ", there is nothing to compare it with";
  constexpr size_t kPages = 64;
  auto* p = static_cast<char*>(mmap(nullptr, kPages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  for (size_t i : {1, 2, 3, 10, 40, 41}) p[i * 4096] = 1;
  // Read faults map the zero page, nothing to store, on kernels that use it
  // here: then both pages share its frame.
  volatile char sink = p[20 * 4096] + p[30 * 4096];
  (void)sink;
  const bool zero_page = pfn_of(p + 20 * 4096) != 0 && pfn_of(p + 20 * 4096) == pfn_of(p + 30 * 4096);
  img::Vma v;
  v.set_start(reinterpret_cast<uint64_t>(p));
  v.set_end(v.start() + kPages * 4096);
  v.set_kind(img::Vma::ANON_PRIVATE);
  const uint64_t b = v.start();
  Stretches want = {{b + 4096, b + 4 * 4096}, {b + 10 * 4096, b + 11 * 4096}, {b + 40 * 4096, b + 42 * 4096}};
  Stretches by_ioctl = find(true, v), by_pagemap = find(false, v);
  if (zero_page) {
    // pagemap shows the zero page as present, the ioctl may not: storing it
    // costs a page, not the truth. The only difference allowed.
    for (Stretches* s : {&by_ioctl, &by_pagemap})
      for (size_t i : {20, 30}) std::erase(*s, std::make_pair(b + i * 4096, b + (i + 1) * 4096));
  } else {
    want.insert(want.begin() + 2, {{b + 20 * 4096, b + 21 * 4096}, {b + 30 * 4096, b + 31 * 4096}});
  }
  EXPECT_EQ(by_ioctl, want) << "zero page in use: " << zero_page;
  EXPECT_EQ(by_pagemap, want);
  munmap(p, kPages * 4096);
}

// One walk over many VMAs finds what one scan per VMA finds, each stretch
// given to its own VMA: the kernel merges neighbouring pages of equal
// categories across VMAs, scan_all cuts them apart. A VMA it must not scan
// (`wanted` false) is not reported, its pages present or not.
TEST(PresentPages, ScanAllCutsAtVmaBounds) {
  constexpr size_t kPages = 48;
  auto* p = static_cast<char*>(mmap(nullptr, kPages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  for (size_t i = 0; i < kPages; i++)
    if (i % 3 != 2) p[i * 4096] = 1;
  // VMAs of 4 pages, every other one read-only: 12 VMAs the kernel can't merge.
  img::MmImage mm;
  for (size_t i = 0; i < kPages; i += 4) {
    if ((i / 4) % 2) {
      ASSERT_EQ(mprotect(p + i * 4096, 4 * 4096, PROT_READ), 0);
    }
    img::Vma* v = mm.add_vmas();
    v->set_start(reinterpret_cast<uint64_t>(p) + i * 4096);
    v->set_end(v->start() + 4 * 4096);
    v->set_kind(img::Vma::ANON_PRIVATE);
  }
  auto wanted = [&](const img::Vma& v) { return v.start() != mm.vmas(5).start(); };
  for (bool use_ioctl : {true, false}) {
    if (use_ioctl && !have_scan_ioctl()) continue;
    auto pp = PresentPages::open(getpid(), use_ioctl);
    ASSERT_TRUE(pp) << pp.error().str();
    std::vector<Stretches> got(mm.vmas_size());
    auto r = pp->scan_all(mm, wanted, [&](int k, uint64_t s, uint64_t e) {
      ASSERT_GE(s, mm.vmas(k).start());
      ASSERT_LE(e, mm.vmas(k).end());
      if (!got[k].empty() && got[k].back().second == s) got[k].back().second = e;
      else got[k].emplace_back(s, e);
    });
    ASSERT_TRUE(r) << r.error().str();
    for (int k = 0; k < mm.vmas_size(); k++)
      EXPECT_EQ(got[k], k == 5 ? Stretches{} : find(use_ioctl, mm.vmas(k))) << "VMA " << k << " ioctl " << use_ioctl;
    EXPECT_EQ(got[0], (Stretches{{mm.vmas(0).start(), mm.vmas(0).start() + 2 * 4096},
                                 {mm.vmas(0).start() + 3 * 4096, mm.vmas(0).end()}}));
  }
  munmap(p, kPages * 4096);
}

// A scan that gets a few answers faults in no more of its buffer for them
// (96 KiB, 24 pages, meant for thousands of answers).
TEST(PresentPages, FewAnswersFaultInFewPages) {
  if (!tests::kFaultsCount) GTEST_SKIP() << tests::kFaultsDontCount;
  if (!have_scan_ioctl()) GTEST_SKIP() << kNoScanIoctl;
  auto* p = static_cast<char*>(mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(p, MAP_FAILED);
  p[0] = p[2 * 4096] = 1;
  img::MmImage mm;
  img::Vma* v = mm.add_vmas();
  v->set_start(reinterpret_cast<uint64_t>(p));
  v->set_end(v->start() + 4 * 4096);
  v->set_kind(img::Vma::ANON_PRIVATE);
  auto all = [](const img::Vma&) { return true; };
  const long faults = tests::in_child([&] {
    // The first scan faults in the code's own pages; its buffer stays held,
    // so that the second scan's is new memory.
    auto first = PresentPages::open(getpid()), second = PresentPages::open(getpid());
    int found = 0;
    auto count = [&](int, uint64_t, uint64_t) { found++; };
    if (!first || !second || !first->scan_all(mm, all, count)) return -1L;
    const long before = tests::minor_faults();
    const bool scanned = second->scan_all(mm, all, count).has_value();
    const long faults = tests::minor_faults() - before;
    return scanned && found == 4 ? faults : -1L;
  });
  munmap(p, 4 * 4096);
  ASSERT_GE(faults, 0) << "the child's scan failed or found other than the 2 pages";
  EXPECT_LT(faults, 8);
}

TEST(PresentPages, HugeSparseReservationIsCheap) {
  // pagemap would read 1 GiB to answer: the cheapness is the ioctl's.
  if (!have_scan_ioctl()) GTEST_SKIP() << kNoScanIoctl;
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
