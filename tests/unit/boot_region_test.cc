// The restorer's boot region: where it goes (find_hole), how the kernel's
// special mappings get to their dumped addresses (plan_special_moves, checked
// by replaying the plan on a simulated address space the way the restorer's
// mremap calls would), and the layout of the region itself (BootRegion).
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "proc/maps.h"
#include "restore/boot_region.h"

namespace ckpt::restore {
namespace {

constexpr uint64_t P = 4096;
constexpr uint64_t G4 = 1ULL << 32;              // find_hole's lowest address
constexpr uint64_t kTop = (1ULL << 47) - P;      // and its highest end

std::string show(const std::vector<Range>& rs) {
  std::string s;
  for (const Range& r : rs) s += fmt::format("[{:#x}-{:#x}) ", r.start, r.end);
  return s;
}
std::string show(const std::vector<SpecialMove>& ms) {
  std::string s;
  for (const SpecialMove& m : ms) s += fmt::format("{:#x}-{:#x} -> {:#x}\n", m.from.start, m.from.end, m.to);
  return s;
}

// ---------------------------------------------------------------------------
// find_hole

struct HoleCase {
  const char* name;
  std::vector<Range> busy;
  uint64_t len;
  std::optional<uint64_t> want;  // nullopt: no room
};
void PrintTo(const HoleCase& c, std::ostream* os) { *os << c.name; }

std::vector<HoleCase> hole_cases() {
  return {
      {"EmptyBusy", {}, P, G4},
      {"EmptyBusyLarge", {}, 1ULL << 40, G4},
      {"BelowLowestIgnored", {{0x400000, 0x500000}, {0x7000, 0x8000}}, P, G4},
      {"BusyAtLowest", {{G4, G4 + 3 * P}}, P, G4 + 3 * P},
      {"StraddlesLowest", {{G4 - P, G4 + P}}, 2 * P, G4 + P},
      {"UnalignedEndRoundsUp", {{G4, G4 + 0x1234}}, P, G4 + 2 * P},
      {"GapExactlyTheSize", {{G4, G4 + 2 * P}, {G4 + 5 * P, G4 + 6 * P}}, 3 * P, G4 + 2 * P},
      {"GapExactlyTheSizeUnsorted", {{G4 + 5 * P, G4 + 6 * P}, {G4, G4 + 2 * P}}, 3 * P, G4 + 2 * P},
      {"GapOnePageShort", {{G4 + 4 * P, G4 + 6 * P}, {G4, G4 + 2 * P}}, 3 * P, G4 + 6 * P},
      {"ManyUnsorted",
       {{G4 + 20 * P, G4 + 21 * P}, {G4 + 3 * P, G4 + 4 * P}, {G4, G4 + P}, {G4 + 10 * P, G4 + 12 * P},
        {G4 + 5 * P, G4 + 9 * P}},
       6 * P, G4 + 12 * P},
      {"FirstFitNotBestFit", {{G4 + 4 * P, G4 + 100 * P}, {G4 + 101 * P, G4 + 102 * P}}, P, G4},
      {"NestedRanges", {{G4, G4 + 8 * P}, {G4 + P, G4 + 2 * P}, {G4 + 3 * P, G4 + 9 * P}}, P, G4 + 9 * P},
      {"Duplicates", {{G4, G4 + P}, {G4, G4 + P}, {G4 + P, G4 + 2 * P}}, P, G4 + 2 * P},
      {"TypicalUserSpace",
       {{0x555555554000, 0x555555559000}, {0x7ffff7dd3000, 0x7ffff7fc5000}, {0x7ffffffde000, 0x7ffffffff000}},
       0x20000, G4},
      {"FitsJustBelowTop", {{G4, kTop - 2 * P}}, 2 * P, kTop - 2 * P},
      {"OnePageTooMuchForTop", {{G4, kTop - 2 * P}}, 3 * P, std::nullopt},
      {"AllTaken", {{G4, kTop}}, P, std::nullopt},
      {"AllTakenInPieces", {{G4 + (1ULL << 40), kTop}, {G4, G4 + (1ULL << 40)}}, P, std::nullopt},
      {"LargerThanAddressSpace", {}, 1ULL << 47, std::nullopt},
  };
}

class FindHole : public testing::TestWithParam<HoleCase> {};

TEST_P(FindHole, Finds) {
  const HoleCase& tc = GetParam();
  auto r = find_hole(tc.busy, tc.len);
  if (!tc.want) {
    ASSERT_FALSE(r) << fmt::format("got {:#x} for busy {}", *r, show(tc.busy));
    EXPECT_EQ(r.error().err, ENOMEM);
    EXPECT_NE(r.error().msg.find(fmt::format("{}", tc.len)), std::string::npos) << r.error().msg;
    return;
  }
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(*r, *tc.want) << fmt::format("got {:#x}, want {:#x}", *r, *tc.want);
  for (const Range& b : tc.busy) EXPECT_FALSE((Range{*r, *r + tc.len}.overlaps(b))) << show({b});
}

INSTANTIATE_TEST_SUITE_P(BootRegion, FindHole, testing::ValuesIn(hole_cases()),
                         [](const testing::TestParamInfo<HoleCase>& i) { return i.param.name; });

// Random busy sets: the answer is page aligned, at or above 4 GiB, clear of
// every busy range, below the top, and the lowest such address (which is 4 GiB
// or the page after the end of some busy range).
TEST(FindHoleProperty, LowestFreeAddress) {
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 2000; iter++) {
    std::vector<Range> busy;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; i++) {
      uint64_t s = G4 - 8 * P + (rng() % 64) * P + (rng() % 3 == 0 ? rng() % P : 0);
      uint64_t l = 1 + rng() % (8 * P);
      busy.push_back({s, s + l});
    }
    const uint64_t len = (1 + rng() % 6) * P;
    auto r = find_hole(busy, len);
    ASSERT_TRUE(r) << r.error().str();

    std::vector<uint64_t> candidates{G4};
    for (const Range& b : busy) candidates.push_back((b.end + P - 1) & ~(P - 1));
    std::sort(candidates.begin(), candidates.end());
    uint64_t want = 0;
    for (uint64_t c : candidates) {
      if (c < G4) continue;
      bool free = std::none_of(busy.begin(), busy.end(), [&](const Range& b) { return Range{c, c + len}.overlaps(b); });
      if (free) {
        want = c;
        break;
      }
    }
    ASSERT_EQ(*r, want) << fmt::format("len {:#x} busy {}", len, show(busy));
    EXPECT_EQ(*r % P, 0u);
  }
}

// ---------------------------------------------------------------------------
// plan_special_moves, replayed on a simulated address space.

struct Mapping {
  int id;
  Range at;
};

// What the restorer does with the plan: for each step, skip it when from ==
// to, else mremap(from, len, MREMAP_FIXED, to), which needs `from` to be one
// whole mapping and `to` to overlap no mapping at all (the kernel refuses an
// overlapping source and destination, and the plan must not clobber a
// mapping that is still to move). `fixed` are other ranges that stay put
// (the boot region): nothing may land on them.
struct Simulation {
  std::vector<Mapping> maps;
  std::vector<Range> fixed;
  std::vector<std::string> problems;

  void apply(const std::vector<SpecialMove>& plan) {
    for (const SpecialMove& m : plan) {
      if (m.from.start == m.to) continue;
      auto it = std::find_if(maps.begin(), maps.end(), [&](const Mapping& x) {
        return x.at.start == m.from.start && x.at.end == m.from.end;
      });
      if (it == maps.end()) {
        problems.push_back(fmt::format("{:#x}-{:#x}: no such mapping to move", m.from.start, m.from.end));
        continue;
      }
      Range dst{m.to, m.to + m.from.len()};
      for (const Mapping& x : maps)
        if (dst.overlaps(x.at))
          problems.push_back(fmt::format("move of #{} to {:#x}-{:#x} lands on #{} at {:#x}-{:#x}", it->id, dst.start,
                                         dst.end, x.id, x.at.start, x.at.end));
      for (const Range& f : fixed)
        if (dst.overlaps(f))
          problems.push_back(fmt::format("move of #{} to {:#x}-{:#x} lands on fixed {:#x}-{:#x}", it->id, dst.start,
                                         dst.end, f.start, f.end));
      it->at = dst;
    }
  }
};

struct MoveCase {
  const char* name;
  std::vector<Range> sources;  // [vvar], [vvar_vclock], [vdso] as in ckpt now
  int64_t delta;               // each goes to source + delta (the layout is the same)
  std::vector<Range> other_busy;
  bool expect_unchanged;
};
void PrintTo(const MoveCase& c, std::ostream* os) { *os << c.name; }

constexpr uint64_t A = 0x7ffff7fc0000;  // where ckpt's own specials are

// vvar 4 pages, vvar_vclock 2 pages, vdso 2 pages, as on a 6.x kernel.
std::vector<Range> three() { return {{A, A + 4 * P}, {A + 4 * P, A + 6 * P}, {A + 6 * P, A + 8 * P}}; }
std::vector<Range> two() { return {{A, A + 4 * P}, {A + 4 * P, A + 6 * P}}; }
// With a gap between them, and listed out of address order.
std::vector<Range> gapped() { return {{A + 6 * P, A + 8 * P}, {A, A + 2 * P}}; }

const Range kBoot{G4, G4 + 32 * P};

std::vector<MoveCase> move_cases() {
  const int64_t p = static_cast<int64_t>(P);
  return {
      {"FarAway", three(), -0x100000000, {kBoot}, true},
      {"FarAwayUp", three(), 0x10000000, {kBoot}, true},
      {"AlreadyInPlace", three(), 0, {kBoot}, true},
      {"AdjacentAbove", three(), 8 * p, {kBoot}, true},
      {"AdjacentBelow", three(), -8 * p, {kBoot}, true},
      {"UpOnePage", three(), p, {kBoot}, false},
      {"DownOnePage", three(), -p, {kBoot}, false},
      {"UpTwoPages", two(), 2 * p, {kBoot}, false},
      {"OntoNeighbourOnly", two(), 4 * p, {kBoot}, false},  // vvar's target is exactly vvar_vclock's source
      {"DownTwoPages", two(), -2 * p, {kBoot}, false},
      {"UpSevenPages", three(), 7 * p, {kBoot}, false},
      {"DownSevenPages", three(), -7 * p, {kBoot}, false},
      {"GappedIntoGap", gapped(), 2 * p, {kBoot}, true},  // targets fill the gap and above: no overlap
      {"GappedOntoOther", gapped(), 6 * p, {kBoot}, false},
      {"GappedNoOverlap", gapped(), 8 * p, {kBoot}, true},
      {"SingleOverlappingItself", {{A, A + 2 * P}}, p, {kBoot}, false},
      // The busy list holds the dumped VMAs and ckpt's mappings: the scratch
      // hole must avoid them all.
      {"ScratchAvoidsBusy", three(), p,
       {kBoot, {G4 + 32 * P, G4 + 100 * P}, {G4 + 101 * P, G4 + 103 * P}, {0x555555554000, 0x555555559000}},
       false},
  };
}

class PlanSpecialMoves : public testing::TestWithParam<MoveCase> {};

TEST_P(PlanSpecialMoves, ReachesTargetsWithoutClobbering) {
  const MoveCase& tc = GetParam();
  std::vector<SpecialMove> wanted;
  for (const Range& s : tc.sources) wanted.push_back({s, s.start + static_cast<uint64_t>(tc.delta)});
  // As restore.cc does: busy holds ckpt's own mappings (the specials among
  // them) and everything else that must not be used.
  std::vector<Range> busy = tc.other_busy;
  for (const Range& s : tc.sources) busy.push_back(s);

  auto r = plan_special_moves(wanted, busy);
  ASSERT_TRUE(r) << r.error().str();
  const std::vector<SpecialMove>& plan = *r;
  SCOPED_TRACE("plan:\n" + show(plan));

  if (tc.expect_unchanged) {
    EXPECT_EQ(show(plan), show(wanted));
  } else {
    // Through a scratch hole: every mapping moves twice.
    EXPECT_EQ(plan.size(), 2 * wanted.size());
  }

  Simulation sim;
  for (size_t i = 0; i < tc.sources.size(); i++) sim.maps.push_back({static_cast<int>(i), tc.sources[i]});
  sim.fixed = {kBoot};
  // Intermediate (scratch) destinations must also stay off every busy range.
  for (const SpecialMove& m : plan) {
    bool is_final = std::any_of(wanted.begin(), wanted.end(), [&](const SpecialMove& w) { return w.to == m.to; });
    if (is_final) continue;
    for (const Range& b : busy)
      EXPECT_FALSE((Range{m.to, m.to + m.from.len()}.overlaps(b)))
          << fmt::format("scratch {:#x} overlaps busy {:#x}-{:#x}", m.to, b.start, b.end);
  }
  sim.apply(plan);
  for (const std::string& p : sim.problems) ADD_FAILURE() << p;

  for (size_t i = 0; i < wanted.size(); i++) {
    EXPECT_EQ(sim.maps[i].at.start, wanted[i].to) << "mapping #" << i;
    EXPECT_EQ(sim.maps[i].at.len(), wanted[i].from.len()) << "mapping #" << i;
  }
  // Same relative layout at the end as at the start.
  for (size_t i = 0; i < wanted.size(); i++)
    for (size_t j = 0; j < wanted.size(); j++)
      EXPECT_EQ(sim.maps[i].at.start - sim.maps[j].at.start, tc.sources[i].start - tc.sources[j].start);
}

INSTANTIATE_TEST_SUITE_P(BootRegion, PlanSpecialMoves, testing::ValuesIn(move_cases()),
                         [](const testing::TestParamInfo<MoveCase>& i) { return i.param.name; });

// The scratch step keeps the group's layout too (vDSO code finds its data at
// fixed offsets, and the scratch copies must not overlap one another).
TEST(PlanSpecialMovesDetail, ScratchKeepsLayout) {
  std::vector<SpecialMove> wanted;
  for (const Range& s : three()) wanted.push_back({s, s.start + P});
  std::vector<Range> busy = three();
  auto r = plan_special_moves(wanted, busy);
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->size(), 6u);
  const uint64_t scratch = (*r)[0].to;
  EXPECT_EQ(scratch % P, 0u);
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ((*r)[i].from.start, wanted[i].from.start);
    EXPECT_EQ((*r)[i].to, scratch + (wanted[i].from.start - A));
    EXPECT_EQ((*r)[3 + i].from.start, (*r)[i].to);
    EXPECT_EQ((*r)[3 + i].from.len(), wanted[i].from.len());
    EXPECT_EQ((*r)[3 + i].to, wanted[i].to);
  }
}

TEST(PlanSpecialMovesDetail, Empty) {
  auto r = plan_special_moves({}, {kBoot});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->empty());
}

TEST(PlanSpecialMovesDetail, NoRoomForScratch) {
  std::vector<SpecialMove> wanted;
  for (const Range& s : three()) wanted.push_back({s, s.start + P});
  auto r = plan_special_moves(wanted, {{G4, kTop}});
  ASSERT_FALSE(r) << show(*r);
  EXPECT_EQ(r.error().err, ENOMEM);
}

// Random layout-preserving shifts of 1..3 mappings, with random gaps: the
// plan, replayed, always ends with each mapping at its target.
TEST(PlanSpecialMovesDetail, RandomShifts) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 3000; iter++) {
    const int n = 1 + static_cast<int>(rng() % 3);
    std::vector<Range> src;
    uint64_t at = A - 64 * P + (rng() % 32) * P;
    for (int i = 0; i < n; i++) {
      at += (rng() % 3) * P;
      uint64_t len = (1 + rng() % 4) * P;
      src.push_back({at, at + len});
      at += len;
    }
    std::shuffle(src.begin(), src.end(), rng);
    const int64_t delta = (static_cast<int64_t>(rng() % 41) - 20) * static_cast<int64_t>(P);
    std::vector<SpecialMove> wanted;
    for (const Range& s : src) wanted.push_back({s, s.start + static_cast<uint64_t>(delta)});
    std::vector<Range> busy = src;
    busy.push_back(kBoot);

    auto r = plan_special_moves(wanted, busy);
    ASSERT_TRUE(r) << r.error().str();
    Simulation sim;
    for (int i = 0; i < n; i++) sim.maps.push_back({i, src[i]});
    sim.fixed = {kBoot};
    sim.apply(*r);
    ASSERT_TRUE(sim.problems.empty()) << sim.problems[0] << "\nplan:\n" << show(*r);
    for (int i = 0; i < n; i++) ASSERT_EQ(sim.maps[i].at.start, wanted[i].to) << "plan:\n" << show(*r);
  }
}

// ---------------------------------------------------------------------------
// BootRegion layout

uint64_t page_up(uint64_t v) { return (v + P - 1) & ~(P - 1); }

struct LayoutCase {
  const char* name;
  uint64_t blob, data, threads;
};
void PrintTo(const LayoutCase& c, std::ostream* os) { *os << c.name; }

class BootRegionLayout : public testing::TestWithParam<LayoutCase> {};

TEST_P(BootRegionLayout, Layout) {
  const LayoutCase& tc = GetParam();
  const uint64_t start = G4 + 16 * P;
  BootRegion b(start, tc.blob, tc.data, tc.threads);
  const uint64_t stacks = BootRegion::kStackSize + (tc.threads - 1) * BootRegion::kThreadStackSize;
  EXPECT_EQ(b.start(), start);
  EXPECT_EQ(b.size(), BootRegion::size_for(tc.blob, tc.data, tc.threads));
  EXPECT_EQ(b.size(), page_up(tc.blob) + page_up(tc.data) + abi::kBounceSize + stacks);
  EXPECT_EQ(b.size() % P, 0u);
  EXPECT_EQ(b.end(), start + b.size());
  // The args follow the blob on the next page boundary.
  EXPECT_EQ(b.args_addr() % P, 0u);
  EXPECT_GE(b.args_addr(), start + tc.blob);
  EXPECT_LT(b.args_addr(), start + tc.blob + P);
  EXPECT_EQ(b.args_addr(), start + b.data_offset());
  EXPECT_EQ(b.data().size(), page_up(tc.data));
  const uint64_t data_end = b.args_addr() + b.data().size();
  // The bounce buffer right above the data, the stacks above it; the main
  // one grows down from the end.
  EXPECT_EQ(b.bounce(), data_end);
  const uint64_t bounce_end = data_end + abi::kBounceSize;
  EXPECT_EQ(b.stack_top(), b.end());
  EXPECT_EQ(b.stack_top() % 16, 0u);
  EXPECT_EQ(b.end() - bounce_end, stacks);
  // Each other thread has kThreadStackSize bytes of its own, below the main
  // stack, above the data, no two overlapping.
  std::vector<Range> used{{b.end() - BootRegion::kStackSize, b.end()}, {start, bounce_end}};
  for (uint64_t i = 1; i < tc.threads; i++) {
    const uint64_t top = b.thread_stack_top(i);
    EXPECT_EQ(top % 16, 0u) << "thread " << i;
    const Range stack{top - BootRegion::kThreadStackSize, top};
    EXPECT_GE(stack.start, bounce_end) << "thread " << i;
    EXPECT_LE(stack.end, b.end()) << "thread " << i;
    for (const Range& u : used)
      EXPECT_FALSE(stack.overlaps(u)) << fmt::format("thread {} stack {:#x}-{:#x} overlaps {:#x}-{:#x}", i,
                                                     stack.start, stack.end, u.start, u.end);
    used.push_back(stack);
  }
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(b.args()), b.data().data());
}

INSTANTIATE_TEST_SUITE_P(
    BootRegion, BootRegionLayout,
    testing::Values(LayoutCase{"Small", 100, sizeof(abi::RestorerArgs), 1}, LayoutCase{"BlobOnePage", P, 3 * P, 1},
                    LayoutCase{"BlobOnePagePlusOne", P + 1, 3 * P + 1, 1},
                    LayoutCase{"BlobOnePageMinusOne", P - 1, P - 1, 1},
                    LayoutCase{"Large", 37 * P + 123, 100 * P + 5, 1}, LayoutCase{"TwoThreads", 100, 2 * P, 2},
                    LayoutCase{"ManyThreads", 5000, 9 * P + 7, 17}),
    [](const testing::TestParamInfo<LayoutCase>& i) { return i.param.name; });

TEST(BootRegionAlloc, AlignedNonOverlappingAfterArgs) {
  const uint64_t start = G4;
  BootRegion b(start, 3 * P + 5, sizeof(abi::RestorerArgs) + 4 * P, 1);
  struct Step {
    uint64_t len, align;
  };
  const Step steps[] = {{3, 1}, {40, 8}, {1, 16}, {100, 64}, {7, 1}, {24, 8}, {2816, 64}, {16, 4096}, {1, 2}};
  uint64_t prev_end = b.args_addr() + sizeof(abi::RestorerArgs);
  for (const Step& s : steps) {
    uint8_t* p = nullptr;
    auto r = b.alloc(s.len, s.align, &p);
    ASSERT_TRUE(r) << r.error().str();
    const uint64_t addr = *r;
    EXPECT_EQ(addr % s.align, 0u) << "len " << s.len << " align " << s.align;
    EXPECT_GE(addr, prev_end) << "overlaps the previous allocation or the RestorerArgs";
    EXPECT_LT(addr - prev_end, s.align) << "wasted more than the alignment";
    // The pointer is where those bytes are in data(), which lands at args_addr().
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p, b.data().data() + (addr - b.args_addr()));
    EXPECT_EQ(b.staged(addr), p);
    EXPECT_LE(addr + s.len, b.args_addr() + b.data().size());
    std::fill(p, p + s.len, 0xab);  // writable (ASan would catch an overrun)
    prev_end = addr + s.len;
  }
}

TEST(BootRegionAlloc, ExactFitThenOverflowIsAnError) {
  const uint64_t data = sizeof(abi::RestorerArgs) + P;
  BootRegion b(G4, P, data, 1);
  uint8_t* p;
  const uint64_t room = b.data().size() - sizeof(abi::RestorerArgs);
  auto addr = b.alloc(room, 1, &p);
  ASSERT_TRUE(addr) << addr.error().str();
  EXPECT_EQ(*addr + room, b.args_addr() + b.data().size());
  auto over = b.alloc(1, 1, &p);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().err, ENOMEM);
  EXPECT_NE(over.error().msg.find("boot region data overflows"), std::string::npos) << over.error().msg;
  // A length that would wrap the offset is an error too, not a wrapped fit.
  EXPECT_FALSE(b.alloc(UINT64_MAX, 1, &p));
}

// The two passes: whatever a counting region takes, a real region sized by
// data_used() holds exactly, at the same offsets, wherever it is placed.
struct TwoPassCase {
  const char* name;
  uint64_t blob, threads;
  std::vector<std::pair<uint64_t, uint64_t>> steps;  // len, align
};
void PrintTo(const TwoPassCase& c, std::ostream* os) { *os << c.name; }

class BootRegionTwoPass : public testing::TestWithParam<TwoPassCase> {};

TEST_P(BootRegionTwoPass, CountedSizeFitsExactly) {
  const TwoPassCase& tc = GetParam();
  auto lay_out = [&](BootRegion& b) {
    std::vector<uint64_t> offs;
    for (auto [len, align] : tc.steps) {
      uint8_t* p = nullptr;
      auto r = b.alloc(len, align, &p);
      EXPECT_TRUE(r) << r.error().str();
      if (!r) return offs;
      std::fill(p, p + len, 0xcd);
      offs.push_back(*r - b.args_addr());
    }
    return offs;
  };
  BootRegion counting = BootRegion::counting(tc.blob, tc.threads);
  const std::vector<uint64_t> counted = lay_out(counting);
  const uint64_t used = counting.data_used();
  EXPECT_EQ(counting.size(), BootRegion::size_for(tc.blob, used, tc.threads));
  for (uint64_t start : {G4, G4 + 7 * P, uint64_t{0x7f0000000000}}) {
    BootRegion real(start, tc.blob, used, tc.threads);
    EXPECT_EQ(real.size(), BootRegion::size_for(tc.blob, used, tc.threads));
    EXPECT_EQ(lay_out(real), counted) << fmt::format("at {:#x}", start);
    EXPECT_EQ(real.data_used(), used);
    // Not a byte more fits than the first pass took, short of the page slack.
    uint8_t* p;
    EXPECT_FALSE(real.alloc(real.data().size() - used + 1, 1, &p)) << fmt::format("at {:#x}", start);
  }
}

INSTANTIATE_TEST_SUITE_P(
    BootRegion, BootRegionTwoPass,
    testing::Values(TwoPassCase{"Nothing", 100, 1, {}},
                    TwoPassCase{"OnePageExactly", P, 1, {{P - sizeof(abi::RestorerArgs), 1}}},
                    TwoPassCase{"Mixed", 3 * P + 5, 2, {{3, 1}, {40, 8}, {1, 16}, {100, 64}, {2816, 64}, {16, 4096}}},
                    TwoPassCase{"ManyPages", 5000, 17, {{10 * P + 3, 8}, {1, 64}, {5 * P, 4096}, {0, 64}, {7, 1}}}),
    [](const testing::TestParamInfo<TwoPassCase>& i) { return i.param.name; });

// BootDataPool: the tree's boot data staged in shared memory, so that a
// task forked from ckpt copies none of its page tables and sees its own part.

// The VMA of ckpt that holds `p`.
std::optional<proc::MapEntry> vma_of(const void* p) {
  auto maps = proc::read_maps(getpid());
  if (!maps) return std::nullopt;
  const auto a = reinterpret_cast<uint64_t>(p);
  for (const proc::MapEntry& m : *maps)
    if (a >= m.start && a < m.end) return m;
  return std::nullopt;
}

TEST(BootDataPool, RegionsStagedInSharedMemoryNotTheHeap) {
  auto pool = BootDataPool::reserve();
  ASSERT_TRUE(pool) << pool.error().str();
  // Tasks of all sizes, past the first chunk: none overlaps another.
  std::vector<BootRegion> regions;
  for (uint64_t data : std::initializer_list<uint64_t>{sizeof(abi::RestorerArgs), 3 * P + 1, 5 << 20, 2 * P, 9 << 20, 1}) {
    auto b = BootRegion::in_pool(*pool, G4 + regions.size() * (1ULL << 30), P, data, 1);
    ASSERT_TRUE(b) << b.error().str();
    ASSERT_GE(b->data().size(), data);
    EXPECT_TRUE(std::all_of(b->data().begin(), b->data().end(), [](uint8_t c) { return c == 0; }));
    regions.push_back(std::move(*b));
  }
  for (size_t i = 0; i < regions.size(); i++) {
    const auto vma = vma_of(regions[i].data().data());
    ASSERT_TRUE(vma);
    EXPECT_TRUE(vma->shared) << "region " << i << " staged in a private mapping";
    for (size_t j = 0; j < i; j++) {
      const uint8_t* a = regions[i].data().data();
      const uint8_t* b = regions[j].data().data();
      EXPECT_TRUE(a + regions[i].data().size() <= b || b + regions[j].data().size() <= a) << i << " and " << j;
    }
  }
  // What ckpt writes before the fork is what the child reads; a moved region
  // stages in the same place.
  regions[1].args()->boot_start = 0x1234;
  BootRegion moved = std::move(regions[1]);
  EXPECT_EQ(moved.args()->boot_start, 0x1234u);
  const pid_t child = fork();
  if (child == 0) _exit(moved.args()->boot_start == 0x1234 ? 0 : 1);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

// A region's data is in memory when it is handed out: ckpt writes all of it,
// one fault a page otherwise.
TEST(BootDataPool, TakenDataIsInMemory) {
  auto pool = BootDataPool::reserve();
  ASSERT_TRUE(pool) << pool.error().str();
  for (uint64_t len : {3 * P + 100, 2 * P}) {
    auto s = pool->take(len);
    ASSERT_TRUE(s) << s.error().str();
    const uint64_t from = reinterpret_cast<uint64_t>(s->data()) & ~(P - 1);
    std::vector<unsigned char> in((arch::page_up(reinterpret_cast<uint64_t>(s->data()) + len) - from) / P);
    ASSERT_EQ(mincore(reinterpret_cast<void*>(from), in.size() * P, in.data()), 0) << strerror(errno);
    for (size_t i = 0; i < in.size(); i++) EXPECT_TRUE(in[i] & 1) << "page " << i << " of " << len << " bytes";
  }
}

TEST(BootDataPool, WithoutAPoolARegionStagesItsOwnData) {
  BootRegion b(G4, P, 2 * P, 1);
  b.args()->boot_start = 7;
  BootRegion moved = std::move(b);
  EXPECT_EQ(moved.args()->boot_start, 7u);
  EXPECT_EQ(moved.data().size(), arch::page_up(2 * P));
}

}  // namespace
}  // namespace ckpt::restore
