// Installing fds by a parallel move (restore/fd_moves.h), planned and then
// run on real fds of a forked child (the moves close every other fd of the
// process): each target ends up with its source's open file description and
// flag, cycles and shared sources included, in no more slots than the
// highest fd in play + 1, and every F_DUPFD gives the number planned.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <vector>

#include "pie/fd_ops.h"
#include "restore/fd_moves.h"

namespace ckpt::restore {
namespace {

bool same_file(int a, int b) { return syscall(SYS_kcmp, getpid(), getpid(), 0, a, b) == 0; }

// In a child: open a pipe end (a distinct description) at each source,
// keep a reference copy of each far up, apply the moves under an
// RLIMIT_NOFILE of the highest fd in play + 2 (a cycle may need one more
// slot), then check. Exit status 0 or the failed check.
int run(const std::vector<FdMove>& moves) {
  pid_t pid = fork();
  if (pid == 0) {
    std::map<int, int> ref;  // source -> its reference copy
    for (const FdMove& m : moves) {
      if (ref.count(m.from)) continue;
      int p[2];
      if (pipe(p) < 0 || dup2(p[0], m.from) < 0) _exit(10);
      if (p[0] != m.from) close(p[0]);
      close(p[1]);
      ref[m.from] = -1;
    }
    int next = 900;
    for (auto& [from, copy] : ref) copy = fcntl(from, F_DUPFD, next++);
    // The references are sources too (moved onto themselves), so they survive.
    std::vector<FdMove> all = moves;
    for (auto& [from, copy] : ref) all.push_back({copy, copy, false});
    int limit = 0;
    for (const FdMove& m : all) limit = std::max({limit, m.from + 2, m.to + 2});
    rlimit rl{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) _exit(11);
    int watch = moves[0].from;
    auto ops = plan_fd_moves(all, watch);
    if (!ops) _exit(12);
    for (const FdOp& op : *ops)
      if (pie::run_fd_op(op, &watch).failed) _exit(12);
    for (const FdMove& m : moves) {
      if (!same_file(m.to, ref[m.from])) _exit(13);
      if (((fcntl(m.to, F_GETFD) & FD_CLOEXEC) != 0) != m.cloexec) _exit(14);
    }
    if (!same_file(watch, ref[moves[0].from])) _exit(15);
    int open_fds = 0;
    for (int fd = 0; fd < limit; fd++) open_fds += fcntl(fd, F_GETFD) >= 0;
    if (open_fds != static_cast<int>(moves.size() + ref.size())) _exit(16);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

TEST(FdMoves, Cycles) {
  // 3 -> 4 -> 5 -> 3, and 6 <-> 7: every target held by another source.
  EXPECT_EQ(run({{3, 4, true}, {4, 5, false}, {5, 3, true}, {6, 7, false}, {7, 6, true}}), 0);
}

TEST(FdMoves, SharedSourcesInPlaceAndChains) {
  // 8 fans out to 3, 4 and itself; 9 -> 8 must wait until 8 is no more needed; 10 -> 9 -> ...
  EXPECT_EQ(run({{8, 3, false}, {8, 4, true}, {8, 8, true}, {9, 10, false}, {10, 11, false}, {12, 9, true}}), 0);
}

TEST(FdMoves, ManyFdsReversedWithinTheirOwnSlots) {
  // 2,000 fds 20..2019 reversed (1,000 swaps, each a cycle).
  std::vector<FdMove> moves;
  for (int i = 0; i < 2000; i++) moves.push_back({20 + i, 2019 - i, i % 2 == 0});
  EXPECT_EQ(run(moves), 0);
}

TEST(FdMoves, RandomPermutationsWithSharedSources) {
  // Sources 10..409 onto a shuffle of 5..404, every 7th source also onto a
  // slot above them all: chains, cycles and fan-out mixed, 20 seeds.
  for (unsigned seed = 1; seed <= 20; seed++) {
    unsigned state = seed;
    std::vector<int> to(400);
    for (int i = 0; i < 400; i++) to[i] = 5 + i;
    for (int i = 399; i > 0; i--) std::swap(to[i], to[rand_r(&state) % (i + 1)]);
    std::vector<FdMove> moves;
    for (int i = 0; i < 400; i++) {
      moves.push_back({10 + i, to[i], (i % 3) == 0});
      if (i % 7 == 0) moves.push_back({10 + i, 500 + i, false});
    }
    EXPECT_EQ(run(moves), 0) << "seed " << seed;
  }
}

}  // namespace
}  // namespace ckpt::restore
