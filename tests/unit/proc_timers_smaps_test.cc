// /proc/PID/timers and the VmFlags of /proc/PID/smaps, on text captured here.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "base/fs.h"
#include "proc/maps.h"
#include "proc/smaps.h"
#include "proc/timers.h"
#include "children.h"

namespace ckpt::proc {
namespace {

TEST(Timers, ParsesEveryNotifyKind) {
  constexpr std::string_view kText =
      "ID: 3\nsignal: 39/00000000000015b3\nnotify: none/pid.8173\nClockID: 1\n"
      "ID: 0\nsignal: 37/0000000000001092\nnotify: signal/pid.8173\nClockID: 0\n"
      "ID: 7\nsignal: 34/0000000000000000\nnotify: signal/tid.8175\nClockID: -6\n";
  auto t = parse_timers(kText);
  ASSERT_TRUE(t) << t.error().str();
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].id, 3);
  EXPECT_EQ((*t)[0].signo, 39);
  EXPECT_EQ((*t)[0].sival, 0x15b3u);
  EXPECT_EQ((*t)[0].notify, SIGEV_NONE);
  EXPECT_EQ((*t)[1].notify, SIGEV_SIGNAL);
  EXPECT_EQ((*t)[1].notify_pid, 8173);
  EXPECT_EQ((*t)[2].notify, SIGEV_SIGNAL | SIGEV_THREAD_ID);
  EXPECT_EQ((*t)[2].notify_pid, 8175);
  EXPECT_EQ((*t)[2].clock, -6);
}

TEST(Timers, RejectsGarbage) {
  for (std::string_view bad : {"signal: 1/0\n", "ID: x\n", "ID: 1\nsignal: 1\n", "ID: 1\nnotify: bogus/pid.1\n",
                               "ID: 1\nnotify: signal/who.1\n", "ID: 1\nClockID: one\n", "garbage\n"}) {
    auto t = parse_timers(bad);
    EXPECT_FALSE(t) << bad;
    if (!t) {
      EXPECT_NE(t.error().msg.find("/proc timers line"), std::string::npos);
    }
  }
  EXPECT_TRUE(parse_timers(""));
}

TEST(SmapsVmFlags, TakesEachVmaWithItsFlags) {
  constexpr std::string_view kText =
      "7f385de71000-7f385e671000 rw-p 00000000 00:00 0 \n"
      "Size:               8192 kB\n"
      "VmFlags: rd wr mr mw me ac nh \n"
      "7ffe8e614000-7ffe8e635000 rw-p 00000000 00:00 0                          [stack]\n"
      "Rss:                  16 kB\n"
      "VmFlags: rd wr mr mw me gd ac\n"
      "7ffe8e700000-7ffe8e701000 r--s 00001000 08:01 1234                       /a file with spaces\n"
      "VmFlags: rd ?? zz sh\n";
  auto s = parse_smaps(kText);
  ASSERT_TRUE(s) << s.error().str();
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ((*s)[0].map.start, 0x7f385de71000u);
  EXPECT_EQ((*s)[0].map.end, 0x7f385e671000u);
  EXPECT_EQ((*s)[0].flags, (VmFlags{"rd", "wr", "mr", "mw", "me", "ac", "nh"}));
  EXPECT_TRUE((*s)[1].flags.has("gd"));
  EXPECT_FALSE((*s)[1].flags.has("nh"));
  EXPECT_EQ((*s)[1].map.path, "[stack]");
  // The header is maps' line: the same entry parse_map_line gives.
  const proc::MapEntry& f = (*s)[2].map;
  EXPECT_TRUE(f.read && f.shared && !f.write);
  EXPECT_EQ(f.offset, 0x1000u);
  EXPECT_EQ(f.inode, 1234u);
  EXPECT_EQ(f.path, "/a file with spaces");
  // Names of two lowercase letters are bits, alphabetical; others as printed.
  std::vector<std::string> names;
  (*s)[2].flags.for_each([&](std::string_view n) { names.emplace_back(n); });
  EXPECT_EQ(names, (std::vector<std::string>{"rd", "sh", "zz", "??"}));
  EXPECT_EQ((*s)[2].flags.without(VmFlags{"rd", "sh"}), (VmFlags{"zz", "??"}));
  EXPECT_TRUE((*s)[2].flags.without(VmFlags{"rd", "sh", "zz", "??"}).empty());
  EXPECT_FALSE(parse_smaps("VmFlags: rd\n"));
  EXPECT_FALSE(parse_smaps("not-a-range rw-p 0 00:00 0\n"));
}

TEST(SmapsVmFlags, AddRemoveHas) {
  VmFlags f{"ht", "de", "rd"};
  f.remove("ht");
  f.remove("de");
  f.remove("xx");  // absent: nothing
  EXPECT_EQ(f, VmFlags{"rd"});
  f.add("??");
  f.add("??");
  EXPECT_TRUE(f.has("??"));
  f.remove("??");
  EXPECT_EQ(f, VmFlags{"rd"});
  EXPECT_FALSE(VmFlags{}.has("rd"));
  EXPECT_TRUE(VmFlags{}.empty());
  EXPECT_TRUE((VmFlags{"zz", "aa"}).has("zz"));
}

TEST(SmapsPageSizes, TakesKernelPageSizeOfEachVma) {
  // A MAP_HUGETLB mapping of 2 MiB pages after a normal one, as 6.18 shows them.
  constexpr std::string_view kText =
      "7f8c40000000-7f8c40400000 rw-p 00000000 00:10 37                         /anon_hugepage (deleted)\n"
      "Size:               4096 kB\n"
      "KernelPageSize:     2048 kB\n"
      "MMUPageSize:        2048 kB\n"
      "VmFlags: rd wr mr mw me de ht \n"
      "7ffe8e614000-7ffe8e635000 rw-p 00000000 00:00 0                          [stack]\n"
      "KernelPageSize:        4 kB\n"
      "VmFlags: rd wr mr mw me gd ac\n";
  auto s = parse_smaps(kText);
  ASSERT_TRUE(s) << s.error().str();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].page_kib, 2048u);
  EXPECT_EQ((*s)[1].page_kib, 4u);
  EXPECT_FALSE(parse_smaps("KernelPageSize: 4 kB\n"));
  EXPECT_FALSE(parse_smaps("7ffe8e614000-7ffe8e635000 rw-p 0 00:00 0\nKernelPageSize: x kB\n"));
}

// On this very process: every VMA has its flags and page size, and a mapping
// made here comes back with its range, protection and madvise flag. (Not
// compared with a read of maps: this process's mappings may change between
// two reads, as ASan's do.)
TEST(SmapsVmFlags, LiveOnSelf) {
  constexpr size_t kLen = 3 * 4096;
  void* m = mmap(nullptr, kLen, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED) << strerror(errno);
  ASSERT_EQ(madvise(m, kLen, MADV_DONTDUMP), 0) << strerror(errno);
  auto s = read_smaps(getpid());
  munmap(m, kLen);
  ASSERT_TRUE(s) << s.error().str();
  for (const SmapsVma& v : *s) {
    EXPECT_FALSE(v.flags.empty()) << v.map.path;
    EXPECT_NE(v.page_kib, 0u) << v.map.path;
  }
  const uint64_t at = reinterpret_cast<uintptr_t>(m);
  auto it = std::ranges::find_if(*s, [&](const SmapsVma& v) { return v.map.start == at; });
  ASSERT_NE(it, s->end());
  EXPECT_EQ(it->map.end, at + kLen);
  EXPECT_TRUE(it->map.read && !it->map.write && !it->map.shared);
  EXPECT_TRUE(it->flags.has("dd"));
  EXPECT_TRUE(it->flags.has("rd"));
  EXPECT_FALSE(it->flags.has("wr"));
}

// Read a chunk at a time, the smaps of 3,000 VMAs (over 2 MB, many chunks)
// give what the whole text gives, and what maps gives: a stopped child's,
// so that nothing changes between the reads.
TEST(SmapsVmFlags, ChunkedReadOfManyVmasIsTheWholeText) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (int i = 0; i < 3000; i++) {
      // Alternate protections so that neighbours never merge.
      void* m = mmap(nullptr, 4096, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) _exit(1);
    }
    raise(SIGSTOP);
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(st));
  auto whole = read_file(fmt::format("/proc/{}/smaps", child));
  auto chunked = read_smaps(child);
  auto maps = read_maps(child);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_TRUE(whole) << whole.error().str();
  ASSERT_TRUE(chunked) << chunked.error().str();
  ASSERT_TRUE(maps) << maps.error().str();
  EXPECT_GT(whole->size(), 1u << 20);
  auto parsed = parse_smaps(*whole);
  ASSERT_TRUE(parsed) << parsed.error().str();
  EXPECT_GE(chunked->size(), 3000u);
  EXPECT_EQ(*chunked, *parsed);
  ASSERT_EQ(chunked->size(), maps->size());
  for (size_t i = 0; i < maps->size(); i++) EXPECT_EQ((*chunked)[i].map, (*maps)[i]) << i;
}

TEST(ForEachLine, LinesAcrossChunksLongLinesAndNoLastNewline) {
  // A memfd, read through its /proc path: no file to clean up.
  UniqueFd file(memfd_create("lines", MFD_CLOEXEC));
  ASSERT_TRUE(file) << strerror(errno);
  std::vector<std::string> want;
  for (int i = 0; i < 40000; i++) want.push_back(std::string(static_cast<size_t>(i % 13), 'a' + i % 26));
  want.push_back(std::string(600 * 1024, 'x'));  // longer than the buffer
  want.push_back("");
  want.push_back("last, without a newline");
  std::string text;
  for (const std::string& l : want) text += l + "\n";
  text.pop_back();
  ASSERT_TRUE(write_all(file.get(), text.data(), text.size()));
  std::vector<std::string> got;
  auto r = for_each_line(fmt::format("/proc/self/fd/{}", file.get()), [&](std::string_view l) -> Result<void> {
    got.emplace_back(l);
    return {};
  });
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(got, want);
}

// A short file is read without faulting in the whole buffer meant for a
// long one (64 pages, each fault dear on a VM: a tiny dump read smaps so).
TEST(ForEachLine, ShortFileFaultsInFewPages) {
  if (!tests::kFaultsCount) GTEST_SKIP() << tests::kFaultsDontCount;
  const long faults = tests::in_child([] {
    int lines = 0;
    auto count = [&](std::string_view) -> Result<void> {
      lines++;
      return {};
    };
    if (!for_each_line("/proc/self/status", count)) return -1L;  // the code's own pages
    // Held, so that the next read's buffer is new memory, not the one the
    // first read faulted in.
    void* volatile held = malloc(256 * 1024);
    const long before = tests::minor_faults();
    const bool read = for_each_line("/proc/self/status", count).has_value();
    const long faults = tests::minor_faults() - before;
    free(held);
    return read && lines > 20 ? faults : -1L;
  });
  ASSERT_GE(faults, 0) << "the child could not read /proc/self/status";
  EXPECT_LT(faults, 8);
}

}  // namespace
}  // namespace ckpt::proc
