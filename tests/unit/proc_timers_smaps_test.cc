// /proc/PID/timers and the VmFlags of /proc/PID/smaps, on text captured here.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "base/fs.h"
#include "proc/smaps.h"
#include "proc/timers.h"

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

TEST(SmapsVmFlags, TakesTheFlagsOfEachVma) {
  constexpr std::string_view kText =
      "7f385de71000-7f385e671000 rw-p 00000000 00:00 0 \n"
      "Size:               8192 kB\n"
      "VmFlags: rd wr mr mw me ac nh \n"
      "7ffe8e614000-7ffe8e635000 rw-p 00000000 00:00 0                          [stack]\n"
      "Rss:                  16 kB\n"
      "VmFlags: rd wr mr mw me gd ac\n";
  auto s = parse_smaps(kText);
  ASSERT_TRUE(s) << s.error().str();
  const VmFlags* f = &s->flags;
  ASSERT_EQ(f->size(), 2u);
  EXPECT_EQ(f->at(0x7f385de71000), (std::vector<std::string>{"rd", "wr", "mr", "mw", "me", "ac", "nh"}));
  EXPECT_EQ(f->at(0x7ffe8e614000).back(), "ac");
  EXPECT_FALSE(parse_smaps("VmFlags: rd\n"));
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
  EXPECT_EQ(s->page_kib, (PageSizes{{0x7f8c40000000, 2048}, {0x7ffe8e614000, 4}}));
  EXPECT_FALSE(parse_smaps("KernelPageSize: 4 kB\n"));
  EXPECT_FALSE(parse_smaps("7ffe8e614000-7ffe8e635000 rw-p 0 00:00 0\nKernelPageSize: x kB\n"));
  auto self = read_smaps(getpid());
  ASSERT_TRUE(self) << self.error().str();
  EXPECT_FALSE(self->page_kib.empty());
}

TEST(SmapsVmFlags, LiveOnSelf) {
  auto f = read_smaps(getpid());
  ASSERT_TRUE(f) << f.error().str();
  EXPECT_FALSE(f->flags.empty());
}

// Read a chunk at a time, the smaps of 3,000 VMAs (over 2 MB, many chunks)
// give what the whole text gives: a stopped child's, so that nothing
// changes between the two reads.
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
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_TRUE(whole) << whole.error().str();
  ASSERT_TRUE(chunked) << chunked.error().str();
  EXPECT_GT(whole->size(), 1u << 20);
  auto parsed = parse_smaps(*whole);
  ASSERT_TRUE(parsed) << parsed.error().str();
  EXPECT_GE(chunked->flags.size(), 3000u);
  EXPECT_EQ(chunked->flags, parsed->flags);
  EXPECT_EQ(chunked->page_kib, parsed->page_kib);
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

}  // namespace
}  // namespace ckpt::proc
