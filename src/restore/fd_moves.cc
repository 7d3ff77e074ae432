#include "restore/fd_moves.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>


namespace ckpt::restore {


Result<std::vector<FdOp>> plan_fd_moves(std::span<const FdMove> moves, int watch) {
  std::vector<FdOp> ops;
  // 1. Only the `from`s stay open.
  std::vector<int> froms;
  froms.reserve(moves.size());
  int top = 0;
  for (const FdMove& m : moves) {
    froms.push_back(m.from);
    top = std::max({top, m.from, m.to});
  }
  std::sort(froms.begin(), froms.end());
  froms.erase(std::unique(froms.begin(), froms.end()), froms.end());
  unsigned next = 0;
  for (int f : froms) {
    if (static_cast<unsigned>(f) > next) ops.push_back({FdOp::kCloseRange, false, false, static_cast<int>(next), f - 1});
    next = f + 1;
  }
  ops.push_back({FdOp::kCloseRange, false, false, static_cast<int>(next), -1});

  // Per source (a distinct `from`): where a copy that is no `to` of its own
  // sits (-1: none), and its moves not done yet. An fd holds at most one
  // such copy (`occupant`) and blocks at most one move (`blocked`); `open`
  // is the task's fd table as it will be, for what F_DUPFD gives: its lowest
  // free number, at or above `low` (every fd below it is open), which drops
  // to an fd as it is closed.
  const size_t slots = static_cast<size_t>(top) + 2;  // a relocated copy lands at most at top + 1
  std::vector<int> source_of(slots, -1), occupant(slots, -1), blocked(slots, -1);
  std::vector<int> loose(froms.size(), -1), pending(froms.size(), 0);
  std::vector<bool> open(slots, false);
  size_t low = 0;
  auto close_fd = [&](int fd) {
    open[fd] = false;
    low = std::min(low, static_cast<size_t>(fd));
  };
  for (size_t s = 0; s < froms.size(); s++) {
    source_of[froms[s]] = static_cast<int>(s);
    open[froms[s]] = true;
  }
  std::vector<bool> done(moves.size(), false);
  const int watched = watch >= 0 && watch < static_cast<int>(slots) ? source_of[watch] : -1;
  for (size_t s = 0; s < froms.size(); s++) loose[s] = froms[s];
  for (size_t i = 0; i < moves.size(); i++) {
    const FdMove& m = moves[i];
    const int s = source_of[m.from];
    if (m.from != m.to) {
      pending[s]++;
      continue;
    }
    // Already at its number: only its close-on-exec flag to set.
    ops.push_back({FdOp::kSetFlags, m.cloexec, false, m.to, 0});
    done[i] = true;
    loose[s] = -1;
  }
  for (size_t s = 0; s < froms.size(); s++)
    if (loose[s] >= 0) occupant[loose[s]] = static_cast<int>(s);
  // Any fd that holds source s: its loose copy, or a `to` of its done moves.
  std::vector<int> holder(froms);

  std::vector<size_t> ready;
  for (size_t i = 0; i < moves.size(); i++) {
    if (done[i]) continue;
    if (occupant[moves[i].to] < 0) ready.push_back(i);
    else blocked[moves[i].to] = static_cast<int>(i);
  }
  size_t scan = 0;  // moves before it are done or blocked: where a cycle is looked for
  for (size_t left = std::count(done.begin(), done.end(), false); left > 0;) {
    // 2. Every move whose `to` is free.
    while (!ready.empty()) {
      const size_t i = ready.back();
      ready.pop_back();
      const FdMove& m = moves[i];
      const int s = source_of[m.from];
      ops.push_back({FdOp::kDup, m.cloexec, s == watched, holder[s], m.to});
      open[m.to] = true;
      done[i] = true;
      left--;
      const int copy = loose[s];
      if (--pending[s] > 0 || copy < 0) {
        holder[s] = copy >= 0 ? copy : m.to;
        continue;
      }
      // Its last move: the loose copy goes, which may free another's `to`.
      holder[s] = m.to;
      ops.push_back({FdOp::kClose, false, false, copy, 0});
      close_fd(copy);
      loose[s] = -1;
      occupant[copy] = -1;
      if (blocked[copy] >= 0) ready.push_back(blocked[copy]), blocked[copy] = -1;
    }
    if (left == 0) break;
    // 3. Only cycles are left: one of them is opened.
    while (done[scan]) scan++;
    const int to = moves[scan].to;
    const int s = occupant[to];
    while (low < slots && open[low]) low++;
    if (s < 0 || low == slots) return error(EINVAL, "plan the fd moves: fd {} is blocked by nothing", to);  // can't happen
    const int moved = static_cast<int>(low);
    ops.push_back({FdOp::kDupLowest, true, s == watched, to, moved});
    open[moved] = true;
    close_fd(to);
    occupant[to] = -1;
    occupant[moved] = s;
    loose[s] = holder[s] = moved;
    ready.push_back(scan);
    blocked[to] = -1;
  }
  return ops;
}

}  // namespace ckpt::restore
