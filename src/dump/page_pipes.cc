#include "dump/page_pipes.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>

#include <algorithm>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_store.h"

namespace ckpt::dump {

namespace {

// 16 MiB a pipe (4096 page slots) where ckpt may pass fs.pipe-max-size
// (CAP_SYS_RESOURCE): 64 pipes hold 1 GiB. Else pipe-max-size (1 MiB by
// default: 1024 pipes a GiB, each an fd; fill() raises ckpt's fd limit).
constexpr int kPipeBytes = 16 << 20;

int pipe_max_size() {
  auto text = read_file("/proc/sys/fs/pipe-max-size");
  return text ? std::atoi(text->c_str()) : 1 << 20;
}

// Room for `n` more fds, up to the hard limit.
Result<void> room_for_fds(size_t n) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return sys_error("getrlimit(RLIMIT_NOFILE)");
  const rlim_t want = static_cast<rlim_t>(n) + 256;  // ckpt's own
  if (rl.rlim_cur >= want) return {};
  if (rl.rlim_max < want)
    return error(EMFILE, "holding the pages needs {} pipe fds, ckpt's RLIMIT_NOFILE allows {}", n, rl.rlim_max);
  rl.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return sys_error("raise ckpt's RLIMIT_NOFILE to {}", want);
  return {};
}
constexpr size_t kReadChunk = 4 << 20;

uint64_t stored_bytes_of(const img::PageMap& map) {
  uint64_t n = 0;
  for (const img::PageRun& r : map.runs())
    if (image::stored(r)) n += r.nr_pages() * arch::kPageSize;
  return n;
}

}  // namespace

Result<int> PagePipes::new_pipe(pid_t tid) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return sys_error("task {}: pipe to hold its pages", tid);
  UniqueFd r(p[0]), w(p[1]);
  int size = fcntl(w.get(), F_SETPIPE_SZ, kPipeBytes);
  if (size < 0) size = fcntl(w.get(), F_SETPIPE_SZ, pipe_max_size());
  if (size < 0) size = fcntl(w.get(), F_GETPIPE_SZ);
  if (size < 0) return sys_error("task {}: size of a pipe to hold its pages", tid);
  pipes_.push_back(std::move(r));
  pipes_w_.push_back(std::move(w));
  return size;
}

Result<PagePipes> PagePipes::fill(Parasite& p, pid_t tid, int mem, const img::PageMap& map,
                                  const std::vector<bool>& readable) {
  PagePipes out;
  // Read ends for all, and the write end of the one being filled.
  TRY(room_for_fds(stored_bytes_of(map) / std::min(pipe_max_size(), kPipeBytes) + 2));
  std::vector<abi::DrainIov> batch;
  uint64_t room = 0;  // bytes the current pipe still holds
  auto flush = [&]() -> Result<void> {
    if (batch.empty()) return {};
    TRY(p.hold(batch, out.pipes_w_.back().get()));
    batch.clear();
    return {};
  };
  for (int i = 0; i < map.runs_size(); i++) {
    const img::PageRun& r = map.runs(i);
    if (!image::stored(r)) continue;
    uint64_t addr = r.vaddr(), len = r.nr_pages() * arch::kPageSize;
    out.bytes_ += len;
    if (!readable[i]) {
      Piece piece{i, len, -1, std::vector<char>(len)};
      size_t got = TRY_CTX(pread_full(mem, piece.copy.data(), len, static_cast<off_t>(addr)),
                           "read protected memory of task {}", tid);
      if (got != len) return error(EFAULT, "read protected memory of task {} at {:#x}: short read", tid, addr);
      out.pieces_.push_back(std::move(piece));
      continue;
    }
    while (len > 0) {
      if (room == 0) {
        TRY(flush());
        room = TRY(out.new_pipe(tid));
        // The daemon closes its copy of each pipe's write end when it takes
        // the next; ckpt's goes once the last is filled.
      }
      if (batch.size() == abi::kMaxDrainIov) TRY(flush());
      const uint64_t n = std::min(len, room);
      batch.push_back({addr, n, 0, 0});
      out.pieces_.push_back({i, n, static_cast<int>(out.pipes_.size()) - 1, {}});
      addr += n;
      len -= n;
      room -= n;
    }
  }
  TRY(flush());
  out.pipes_w_.clear();
  return out;
}

Result<void> PagePipes::write_out(image::PageSink& sink, img::PageMap* map) {
  std::vector<char> buf(kReadChunk);
  for (Piece& piece : pieces_) {
    img::PageRun* run = map->mutable_runs(piece.run);
    if (piece.pipe < 0) {
      run->set_crc32c(crc32c(run->crc32c(), piece.copy.data(), piece.len));
      TRY(sink.write(piece.copy.data(), piece.len));
      std::vector<char>().swap(piece.copy);
      continue;
    }
    const int fd = pipes_[piece.pipe].get();
    for (uint64_t left = piece.len; left > 0;) {
      ssize_t n = read(fd, buf.data(), std::min<uint64_t>(left, buf.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error("read held pages of run {:#x}", run->vaddr());
      if (n == 0) return error(EIO, "held pages of run {:#x}: the pipe ended {} bytes short", run->vaddr(), left);
      run->set_crc32c(crc32c(run->crc32c(), buf.data(), static_cast<size_t>(n)));
      TRY(sink.write(buf.data(), static_cast<size_t>(n)));
      left -= static_cast<uint64_t>(n);
    }
  }
  pipes_.clear();
  return {};
}

}  // namespace ckpt::dump
