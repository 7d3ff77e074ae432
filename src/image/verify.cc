#include "image/verify.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <bit>
#include <set>

#include "arch/x86_64/cpu_features.h"
#include "arch/x86_64/page.h"
#include "arch/x86_64/regs.h"
#include "arch/x86_64/xsave.h"
#include "base/fs.h"
#include "files/file_id.h"
#include "files/unix_socket.h"
#include "files/kind.h"
#include "image/crc32c.h"
#include "image/messages.h"
#include "image/page_store.h"
#include "net/lock_name.h"

namespace ckpt::image {

namespace {

// Bytes of page data read per pread. Large enough that the syscall cost
// vanishes, small enough to stay in L2/L3 while its checksum is computed.
constexpr size_t kChunk = 8 << 20;

// pid_max is at most PID_MAX_LIMIT, and pids are below pid_max.
bool valid_pid(int64_t pid) { return pid > 0 && pid < kMaxPids; }

}  // namespace

// --- cross-references --------------------------------------------------------

namespace {

// The lock's name goes into nft and iptables commands at restore: only a
// name ckpt gives passes (net/lock_name.h).
Result<void> check_network_lock(const std::string& name, const img::NetLock& l) {
  if (!net::parse_lock_name(l.name()))
    return error(EINVAL, "{}: network lock \"{}\" is not a name ckpt gives", name, l.name().substr(0, 64));
  if (!img::NetLock::Method_IsValid(l.method()))
    return error(EINVAL, "{}: network lock {}: method {} is unknown", name, l.name(), static_cast<int>(l.method()));
  for (int i = 0; i < l.connections_size(); i++) {
    const img::NetLockConnection& c = l.connections(i);
    const size_t len = c.family() == AF_INET ? 4 : c.family() == AF_INET6 ? 16 : 0;
    if (len == 0 || c.local_addr().size() != len || c.remote_addr().size() != len || c.local_port() == 0 ||
        c.local_port() > 65535 || c.remote_port() == 0 || c.remote_port() > 65535)
      return error(EINVAL, "{}: network lock {}: connection {} (family {}, addresses of {} and {} bytes, ports {} "
                   "and {}) is no TCP connection", name, l.name(), i, c.family(), c.local_addr().size(),
                   c.remote_addr().size(), c.local_port(), c.remote_port());
  }
  return {};
}

}  // namespace

Result<void> check_inventory(const std::string& name, const img::Inventory& inv) {
  if (inv.format_version() < kOldestFormatVersion || inv.format_version() > kFormatVersion)
    return error(EINVAL, "{}: format_version {} is not one this ckpt reads ({}..{})", name, inv.format_version(),
                 kOldestFormatVersion, kFormatVersion);
  if (inv.page_size() != arch::kPageSize)
    return error(EINVAL, "{}: page size {}; this ckpt handles {}-byte pages", name, inv.page_size(), arch::kPageSize);
  if (inv.pids_size() == 0) return error(EINVAL, "{}: lists no pids", name);
  if (inv.pids_size() > kMaxPids) return error(EINVAL, "{}: lists {} pids, more than a system can have", name, inv.pids_size());
  std::map<int32_t, int> seen;  // pid -> entry
  for (int i = 0; i < inv.pids_size(); i++) {
    int32_t p = inv.pids(i);
    if (!valid_pid(p)) return error(EINVAL, "{}: pid entry {} holds {}, not a valid pid", name, i, p);
    auto [it, fresh] = seen.emplace(p, i);
    if (!fresh) return error(EINVAL, "{}: pid {} is listed twice (entries {} and {})", name, p, it->second, i);
  }
  if (!seen.contains(inv.root_pid()))
    return error(EINVAL, "{}: root pid {} is not among the listed pids", name, inv.root_pid());
  if (inv.cpu().cpuid_size() != 0 && inv.cpu().cpuid_size() != arch::kCpuidWordCount)
    return error(EINVAL, "{}: {} CPUID words, this ckpt records {}", name, inv.cpu().cpuid_size(),
                 arch::kCpuidWordCount);
  if (inv.has_network_lock()) TRY(check_network_lock(name, inv.network_lock()));
  return {};
}

int system_pid_max() {
  static const int cached = [] {
    auto text = read_file("/proc/sys/kernel/pid_max");
    int v = text ? std::atoi(text->c_str()) : 0;
    return v > 0 && v <= kMaxPids ? v : kMaxPids;
  }();
  return cached;
}

namespace {

// What no user task can have in its registers: the kernel would refuse them
// (and the restorer fail half-way), or the task would fault at its first
// instruction after a restore that looked fine.
Result<void> check_regs(const std::string& name, pid_t pid, const img::ThreadCore& th) {
  const img::GpRegs& r = th.regs();
  auto bad = [&](std::string_view what) { return error(EINVAL, "{}: task {} thread {}: {}", name, pid, th.tid(), what); };
  if (r.cs() != arch::kUserCs64)
    return bad(fmt::format("cs {:#x} is not the 64-bit user code selector {:#x}", r.cs(), arch::kUserCs64));
  if (r.ss() != arch::kUserSs)
    return bad(fmt::format("ss {:#x} is not the user stack selector {:#x}", r.ss(), arch::kUserSs));
  if (r.rip() >= arch::kUserAddressEnd)
    return bad(fmt::format("rip {:#x} is not a canonical user address (below {:#x})", r.rip(), arch::kUserAddressEnd));
  if (uint64_t extra = r.eflags() & ~arch::kEflagsUserBits)
    return bad(fmt::format("eflags {:#x} has bits no user task holds ({:#x}: {})", r.eflags(), extra,
                           arch::eflags_names(extra)));
  return {};
}

}  // namespace

Result<void> check_core(const std::string& name, const img::TaskCore& core, pid_t pid) {
  if (core.pid() != pid) return error(EINVAL, "{}: holds pid {}, the inventory says {}", name, core.pid(), pid);
  if (core.threads_size() < 1) return error(EINVAL, "{}: has no threads", name);
  if (core.threads_size() > kMaxPids) return error(EINVAL, "{}: has {} threads, more than a system can have", name,
                                                  core.threads_size());
  if (core.threads(0).tid() != pid)
    return error(EINVAL, "{}: thread 0 is {}, it must be the main thread {}", name, core.threads(0).tid(), pid);
  std::set<int32_t> tids;
  auto check_sig = [&](const img::SigInfo& s, const std::string& where) -> Result<void> {
    if (s.signo() < 1 || s.signo() > 64) return error(EINVAL, "{}: {}: signal {} is out of range", name, where, s.signo());
    if (s.raw().size() != kSiginfoBytes)
      return error(EINVAL, "{}: {}: siginfo of signal {} has {} bytes, not {}", name, where, s.signo(),
                   s.raw().size(), kSiginfoBytes);
    return {};
  };
  const int pid_max = system_pid_max();
  for (int i = 0; i < core.threads_size(); i++) {
    const img::ThreadCore& th = core.threads(i);
    if (!valid_pid(th.tid()) || !tids.insert(th.tid()).second)
      return error(EINVAL, "{}: thread {} has tid {}, invalid or repeated", name, i, th.tid());
    if (th.tid() >= pid_max)
      return error(EINVAL, "{}: task {} thread {}: tid {} is not below this system's pid_max {} "
                   "(/proc/sys/kernel/pid_max)", name, pid, i, th.tid(), pid_max);
    if (th.xsave().size() < arch::kXsaveMinSize || th.xsave().size() > kMaxXsaveBytes)
      return error(EINVAL, "{}: thread {}: xsave area of {} bytes ({}..{} expected)", name, th.tid(),
                   th.xsave().size(), arch::kXsaveMinSize, kMaxXsaveBytes);
    TRY(check_regs(name, pid, th));
    for (const img::SigInfo& s : th.pending())
      TRY(check_sig(s, fmt::format("pending signal of thread {}", th.tid())));
  }
  for (const img::SigInfo& s : core.shared_pending()) TRY(check_sig(s, "shared pending signal"));
  std::set<int32_t> handled;
  for (const img::SigAction& a : core.sigactions()) {
    if (a.signo() < 1 || a.signo() > 64)
      return error(EINVAL, "{}: task {}: sigaction for signal {}, out of range (1..64)", name, pid, a.signo());
    if (a.signo() == SIGKILL || a.signo() == SIGSTOP)
      return error(EINVAL, "{}: task {}: sigaction for signal {}, whose action can't be changed", name, pid, a.signo());
    if (!handled.insert(a.signo()).second)
      return error(EINVAL, "{}: task {}: two sigactions for signal {}", name, pid, a.signo());
  }
  if (core.mm().auxv().size() % 16 || core.mm().auxv().size() > 64 * 1024)
    return error(EINVAL, "{}: auxv of {} bytes is not an auxiliary vector", name, core.mm().auxv().size());
  if (core.cwd().size() > kMaxPathLen || core.mm().exe_path().size() > kMaxPathLen)
    return error(EINVAL, "{}: cwd or executable path longer than {} bytes", name, kMaxPathLen);
  return {};
}

Result<void> check_mm(const std::string& name, const img::MmImage& mm) {
  if (mm.vmas_size() > kMaxVmas) return error(EINVAL, "{}: {} VMAs, more than a process can have", name, mm.vmas_size());
  uint64_t prev_end = 0;
  for (int i = 0; i < mm.vmas_size(); i++) {
    const img::Vma& v = mm.vmas(i);
    if (v.start() % arch::kPageSize || v.end() % arch::kPageSize || v.start() >= v.end() || v.end() > arch::kTaskSize)
      return error(EINVAL, "{}: VMA {} has a bad range {:#x}-{:#x}", name, i, v.start(), v.end());
    if (v.start() < prev_end) return error(EINVAL, "{}: VMA {} at {:#x} overlaps the one before", name, i, v.start());
    if (!img::Vma::Kind_IsValid(v.kind())) return error(EINVAL, "{}: VMA {} has unknown kind {}", name, i, v.kind());
    if (v.prot() & ~static_cast<uint32_t>(PROT_READ | PROT_WRITE | PROT_EXEC))
      return error(EINVAL, "{}: VMA {} ({:#x}-{:#x}) has unknown protection bits {:#x}", name, i, v.start(), v.end(),
                   v.prot());
    if (v.pgoff() % arch::kPageSize)
      return error(EINVAL, "{}: VMA {} ({:#x}-{:#x}) has a file offset {:#x} that is not page aligned", name, i,
                   v.start(), v.end(), v.pgoff());
    if (v.path().size() > kMaxPathLen)
      return error(EINVAL, "{}: VMA {} ({:#x}-{:#x}) has a path of {} bytes", name, i, v.start(), v.end(),
                   v.path().size());
    prev_end = v.end();
  }
  return {};
}

Result<uint64_t> check_pagemap(const std::string& name, const img::PageMap& pm, const img::MmImage& mm) {
  uint64_t pages = 0, prev_end = 0;
  int v = 0;
  for (int i = 0; i < pm.runs_size(); i++) {
    const img::PageRun& r = pm.runs(i);
    if (r.vaddr() % arch::kPageSize || r.nr_pages() == 0 || r.vaddr() >= arch::kTaskSize ||
        r.nr_pages() > (arch::kTaskSize - r.vaddr()) / arch::kPageSize)
      return error(EINVAL, "{}: run {} ({:#x}, {} pages) is out of range", name, i, r.vaddr(), r.nr_pages());
    const uint64_t end = r.vaddr() + r.nr_pages() * arch::kPageSize;
    if (r.vaddr() < prev_end)
      return error(EINVAL, "{}: run {} ({:#x}, {} pages) overlaps or comes before run {}", name, i, r.vaddr(),
                   r.nr_pages(), i - 1);
    while (v < mm.vmas_size() && mm.vmas(v).end() <= r.vaddr()) v++;
    if (v == mm.vmas_size() || mm.vmas(v).start() > r.vaddr() || mm.vmas(v).end() < end ||
        (mm.vmas(v).kind() != img::Vma::ANON_PRIVATE && mm.vmas(v).kind() != img::Vma::FILE_PRIVATE))
      return error(EINVAL, "{}: run {} ({:#x}, {} pages) is not inside a private VMA", name, i, r.vaddr(),
                   r.nr_pages());
    if (stored(r)) pages += r.nr_pages();
    prev_end = end;
  }
  if (pm.total_pages() != pages)
    return error(EINVAL, "{}: total_pages says {}, the runs hold {}", name, pm.total_pages(), pages);
  return pages;
}

Result<void> check_files(const std::string& name, const img::Files& files) {
  std::map<int32_t, int> seen;  // fd -> entry
  for (int i = 0; i < files.fds_size(); i++) {
    const img::FdEntry& e = files.fds(i);
    if (e.fd() < 0 || e.fd() >= kMaxFd)
      return error(EINVAL, "{}: entry {} has fd {}, not a valid descriptor", name, i, e.fd());
    auto [it, fresh] = seen.emplace(e.fd(), i);
    if (!fresh) return error(EINVAL, "{}: fd {} appears twice (entries {} and {})", name, e.fd(), it->second, i);
    if (e.desc() == 0) return error(EINVAL, "{}: fd {} refers to no file description", name, e.fd());
  }
  return {};
}

Result<uint64_t> check_task(const std::string& dir, const TaskImageSet& t) {
  auto file = [&](const std::string& n) { return dir + "/" + n; };
  TRY(check_core(file(core_name(t.pid)), t.core, t.pid));
  TRY(check_mm(file(mm_name(t.pid)), t.mm));
  uint64_t pages = TRY(check_pagemap(file(pagemap_name(t.pid)), t.pagemap, t.mm));
  TRY(check_files(file(files_name(t.pid)), t.files));
  return pages;
}

Result<void> check_mapped_files(const std::string& name, const img::MmImage& mm, const img::TaskCore& core) {
  std::set<std::pair<std::string, files::Compare>> done;
  auto check = [&](const std::string& path, std::string_view use, const img::FileId& id,
                   files::Compare how) -> Result<void> {
    UniqueFd fd = TRY(open_file(path, O_RDONLY | O_CLOEXEC));
    return files::check_file_id(path, use, fd.get(), id, how);
  };
  for (const img::Vma& v : mm.vmas()) {
    if (!v.has_file_id() || !done.emplace(v.path(), files::compare_for(v)).second) continue;
    TRY_CTX(check(v.path(), fmt::format("mapped at {:#x}-{:#x}", v.start(), v.end()), v.file_id(),
                  files::compare_for(v)),
            "{}", name);
  }
  if (core.mm().has_exe_id())
    TRY_CTX(check(core.mm().exe_path(), "the executable", core.mm().exe_id(), files::Compare::Content), "{}", name);
  return {};
}

// --- page data -----------------------------------------------------------------

img::PageMap stored_runs(const img::PageMap& pm) {
  img::PageMap out;
  out.set_total_pages(pm.total_pages());
  for (const img::PageRun& r : pm.runs())
    if (stored(r)) *out.add_runs() = r;
  return out;
}

Result<uint64_t> verify_page_data(const std::string& name, int fd, const img::PageMap& pm) {
  // Runs are consecutive in the file; walk them while streaming the file
  // through the buffers, so that a run may span chunks and a chunk many runs.
  const int nruns = pm.runs_size();
  uint64_t data_bytes = 0, pages = 0;
  for (const img::PageRun& r : pm.runs()) {
    uint64_t b;
    if (__builtin_mul_overflow(r.nr_pages(), arch::kPageSize, &b) || __builtin_add_overflow(data_bytes, b, &data_bytes))
      return error(EINVAL, "{}: the page map's runs add up to more bytes than a file can hold", name);
    pages += r.nr_pages();
  }
  if (data_bytes == 0) return 0;
  (void)posix_fadvise(fd, kPagesDataOffset, static_cast<off_t>(data_bytes), POSIX_FADV_SEQUENTIAL);

  // Two buffers: a helper thread preads the next chunk while this thread sums
  // the current one (copying out of the page cache and CRC-32C take about as
  // long each, so this halves the time). A file of one chunk is read inline.
  const size_t chunk = std::min<uint64_t>(kChunk, data_bytes);
  const auto policy = data_bytes > chunk ? std::launch::async : std::launch::deferred;
  auto bufs = std::make_unique_for_overwrite<char[]>(data_bytes > chunk ? 2 * chunk : chunk);
  const uint64_t end = kPagesDataOffset + data_bytes;
  auto read_chunk = [&, data = bufs.get()](uint64_t off, uint64_t b) {
    return std::async(policy, [=] {
      return pread_full(fd, data + b * chunk, std::min<uint64_t>(chunk, end - off), static_cast<off_t>(off));
    });
  };

  int run = 0;
  uint64_t run_off = kPagesDataOffset;                         // file offset of run `run`
  uint64_t left = pm.runs(0).nr_pages() * arch::kPageSize;           // its bytes not yet summed
  uint32_t crc = 0;
  // Compares the finished run(s) and moves on; zero-length runs finish at once.
  auto finish_runs = [&]() -> Result<void> {
    while (run < nruns && left == 0) {
      const img::PageRun& r = pm.runs(run);
      if (crc != r.crc32c())
        return error(EINVAL, "{}: checksum mismatch in run {} ({:#x}, {} pages) at offset {}", name, run, r.vaddr(),
                     r.nr_pages(), run_off);
      run_off += r.nr_pages() * arch::kPageSize;
      crc = 0;
      if (++run < nruns) left = pm.runs(run).nr_pages() * arch::kPageSize;
    }
    return {};
  };
  TRY(finish_runs());
  // The future's destructor waits for a read in flight, so an early return
  // never leaves the helper writing into freed buffers.
  std::future<Result<size_t>> pending = read_chunk(kPagesDataOffset, 0);
  for (uint64_t off = kPagesDataOffset, b = 0; off < end; b = 1 - b) {
    const size_t want = std::min<uint64_t>(chunk, end - off);
    const size_t got = TRY_CTX(pending.get(), "{}", name);
    if (got < want)
      return error(EINVAL, "{}: truncated at offset {}: run {} ({:#x}, {} pages) needs data up to offset {}", name,
                   off + got, run, pm.runs(run).vaddr(), pm.runs(run).nr_pages(),
                   run_off + pm.runs(run).nr_pages() * arch::kPageSize);
    if (off + got < end) pending = read_chunk(off + got, 1 - b);
    const char* data = bufs.get() + b * chunk;
    for (size_t p = 0; p < got;) {
      const size_t take = std::min<uint64_t>(left, got - p);
      crc = crc32c(crc, data + p, take);
      p += take;
      left -= take;
      TRY(finish_runs());
    }
    off += got;
  }
  return pages;
}

Result<uint64_t> verify_pages_file(const std::string& name, int fd, const img::PageMap& pm) {
  const uint64_t bytes = TRY(check_pages_file(name, fd));
  uint64_t need = 0;
  for (const img::PageRun& r : pm.runs()) {
    uint64_t b;
    if (__builtin_mul_overflow(r.nr_pages(), arch::kPageSize, &b) || __builtin_add_overflow(need, b, &need))
      return error(EINVAL, "{}: the page map's runs add up to more bytes than a file can hold", name);
  }
  if (bytes != need)
    return error(EINVAL, "{}: holds {} bytes of page data (header at offset 16), the page map's runs need {}", name,
                 bytes, need);
  return verify_page_data(name, fd, pm);
}

// --- a whole directory -----------------------------------------------------------

namespace {

bool exists(const ImageDir& dir, const std::string& name) { return dir.exists(name); }

Result<void> read_listed(const ImageDir& dir, const std::string& name, ImageKind kind,
                         google::protobuf::MessageLite* msg, pid_t pid) {
  if (!exists(dir, name))
    return error(ENOENT, "{} is missing ({} lists pid {})", dir.file(name), kInventoryName, pid);
  return dir.read(name, kind, msg);
}

// A file that is not one of the inventory's tasks' images: its framing only.
Result<void> check_other(const ImageDir& dir, const std::string& name) {
  if (name.starts_with("pages-")) {
    UniqueFd fd = TRY(dir.open_read(name));
    TRY(check_pages_file(dir.file(name), fd.get()));
    return {};
  }
  const Buffer bytes = TRY(dir.read_bytes(name));
  ImageKind kind = TRY(peek_kind(dir.file(name), bytes.view()));
  auto msg = new_message(kind);
  if (!msg) return error(EINVAL, "{}: unknown image kind {} at offset 12", dir.file(name), static_cast<uint32_t>(kind));
  return unframe(dir.file(name), bytes.view(), kind, msg.get());
}

}  // namespace

Result<tree::ProcessTree> load_tree(const ImageDir& dir, const img::Inventory& inv) {
  const std::string name = dir.file(kTreeName);
  if (!dir.exists(kTreeName)) {
    if (inv.pids_size() != 1) return error(ENOENT, "{} is missing ({} lists {} tasks)", name, kInventoryName,
                                           inv.pids_size());
    return tree::ProcessTree::make({{.pid = inv.root_pid()}});
  }
  img::ProcessTree image;
  TRY(dir.read(kTreeName, ImageKind::Tree, &image));
  tree::ProcessTree t = TRY_CTX(tree::ProcessTree::from_image(image), "{}", name);
  TRY_CTX(t.plan_joins(true), "{}", name);
  if (t.root().pid != inv.root_pid())
    return error(EINVAL, "{}: the root is pid {}, {} says {}", name, t.root().pid, kInventoryName, inv.root_pid());
  std::vector<pid_t> alive = t.alive();
  std::vector<pid_t> listed(inv.pids().begin(), inv.pids().end());
  std::sort(alive.begin(), alive.end());
  std::sort(listed.begin(), listed.end());
  if (alive != listed)
    return error(EINVAL, "{}: its {} live tasks are not the {} pids {} lists", name, alive.size(), listed.size(),
                 kInventoryName);
  return t;
}

namespace {

// What restore needs of a pipe to create it safely: a capacity the kernel
// gives (4096 times a power of two, up to its 2^31 limit), data it holds,
// packets of at most a page that add up to the data.
Result<void> check_pipe(const img::FileDesc& d) {
  const img::Pipe& p = d.pipe();
  const uint64_t size = p.size();
  if (size < arch::kPageSize || size > (1ULL << 31) || (size & (size - 1)) != 0)
    return error(EINVAL, "pipe capacity {} is not 4096 times a power of two up to 2^31", size);
  if (p.data().size() > size) return error(EINVAL, "pipe holds {} bytes, more than its capacity {}", p.data().size(), size);
  if (p.packets_size() > 0) {
    if (static_cast<uint64_t>(p.packets_size()) > size / arch::kPageSize)
      return error(EINVAL, "{} packets in a pipe of {} pages", p.packets_size(), size / arch::kPageSize);
    uint64_t sum = 0;
    for (uint32_t len : p.packets()) {
      if (len == 0 || len > arch::kPageSize) return error(EINVAL, "a packet of {} bytes", len);
      sum += len;
    }
    if (sum != p.data().size()) return error(EINVAL, "packets of {} bytes for {} bytes of data", sum, p.data().size());
  }
  if (p.fifo_path().size() > kMaxPathLen || (!p.fifo_path().empty() && p.fifo_path()[0] != '/'))
    return error(EINVAL, "FIFO path of {} bytes, not absolute", p.fifo_path().size());
  if (p.fifo_path().empty() && (p.inode() == 0 || p.inode() > UINT32_MAX))
    return error(EINVAL, "pipe inode {} is not one of pipefs (32 bits)", p.inode());
  const uint32_t acc = d.flags() & O_ACCMODE;
  if (acc != O_RDONLY && acc != O_WRONLY && acc != O_RDWR) return error(EINVAL, "access mode {:#o}", acc);
  return {};
}

}  // namespace

Result<img::FileDescs> load_file_descs(const ImageDir& dir,
                                       std::span<const std::pair<pid_t, const img::Files*>> tasks) {
  img::FileDescs descs;
  const std::string name = dir.file(kFileDescsName);
  TRY(dir.read(kFileDescsName, ImageKind::FileDescs, &descs));
  for (int i = 0; i < descs.descs_size(); i++) {
    const img::FileDesc& d = descs.descs(i);
    if (d.id() != static_cast<uint32_t>(i) + 1) return error(EINVAL, "{}: description {} has id {}", name, i, d.id());
    if (d.kind_case() == img::FileDesc::KIND_NOT_SET)
      return error(EINVAL, "{}: description {} is of a kind this ckpt does not know", name, d.id());
    const std::string& path = d.has_regular() ? d.regular().path() : d.has_terminal() ? d.terminal().path() : "";
    if (path.size() > kMaxPathLen) return error(EINVAL, "{}: description {} has a path of {} bytes", name, d.id(), path.size());
    if (const files::Kind* kind = files::kind_of(d))
      TRY_CTX(kind->verify(d), "{}: description {} ({})", name, d.id(), kind->name());
    if (d.has_pipe()) TRY_CTX(check_pipe(d), "{}: description {}", name, d.id());
  }
  TRY_CTX(files::check_unix_sockets(descs), "{}", name);
  for (const auto& [pid, files] : tasks)
    for (const img::FdEntry& e : files->fds())
      if (e.desc() > static_cast<uint32_t>(descs.descs_size()))
        return error(EINVAL, "{}: fd {} refers to file description {}, which {} lacks", dir.file(files_name(pid)),
                     e.fd(), e.desc(), name);
  return descs;
}

Result<img::ShmemImage> load_shmem(const ImageDir& dir, std::span<const img::MmImage* const> mms) {
  img::ShmemImage image;
  const std::string name = dir.file(kShmemName);
  if (dir.exists(kShmemName)) TRY(dir.read(kShmemName, ImageKind::Shmem, &image));
  for (int i = 0; i < image.objects_size(); i++) {
    const img::ShmemObject& o = image.objects(i);
    if (o.id() != static_cast<uint32_t>(i) + 1) return error(EINVAL, "{}: object {} has id {}", name, i, o.id());
    if (!img::ShmemObject::Kind_IsValid(o.kind()))
      return error(EINVAL, "{}: object {} has unknown kind {}", name, o.id(), static_cast<int>(o.kind()));
    if (o.size() == 0 || o.size() >= arch::kTaskSize) return error(EINVAL, "{}: object {} has size {}", name, o.id(), o.size());
    if (o.name().size() > 249) return error(EINVAL, "{}: object {} has a name of {} bytes", name, o.id(), o.name().size());
    if (const uint64_t huge = o.hugetlb_page_size();
        huge && (!std::has_single_bit(huge) || huge <= arch::kPageSize || huge > (1ull << 30) || o.size() % huge))
      return error(EINVAL, "{}: object {} of {} bytes has a bad hugetlb page size {}", name, o.id(), o.size(), huge);
    if ((o.kind() == img::ShmemObject::SYSV) != o.has_sysv())
      return error(EINVAL, "{}: object {} is{} a System V segment but has{} its key and id", name, o.id(),
                   o.has_sysv() ? " not" : "", o.has_sysv() ? "" : " not");
    if (o.has_sysv()) {
      const img::SysvShm& sv = o.sysv();
      if (sv.shmid() < 0 || (sv.mode() & ~07777u) || (sv.mode() & 04000u))
        return error(EINVAL, "{}: object {}: System V segment with id {} and mode {:o}", name, o.id(), sv.shmid(),
                     sv.mode());
      for (int j = 0; j < i; j++)
        if (image.objects(j).has_sysv() && image.objects(j).sysv().shmid() == sv.shmid())
          return error(EINVAL, "{}: objects {} and {} are both System V segment {}", name, j + 1, o.id(), sv.shmid());
    }
    uint64_t pages = 0, prev_end = 0;
    for (const img::PageRun& r : o.pages().runs()) {
      if (r.vaddr() % arch::kPageSize || r.nr_pages() == 0 || r.vaddr() < prev_end || r.vaddr() >= o.size() ||
          r.nr_pages() > (o.size() - r.vaddr() + arch::kPageSize - 1) / arch::kPageSize)
        return error(EINVAL, "{}: object {}: run at {:#x} ({} pages) is out of order or outside its {} bytes", name,
                     o.id(), r.vaddr(), r.nr_pages(), o.size());
      prev_end = r.vaddr() + r.nr_pages() * arch::kPageSize;
      pages += r.nr_pages();
    }
    if (pages != o.pages().total_pages())
      return error(EINVAL, "{}: object {}: total_pages says {}, the runs hold {}", name, o.id(),
                   o.pages().total_pages(), pages);
  }
  for (const img::MmImage* mm : mms)
    for (const img::Vma& v : mm->vmas()) {
      if (v.shmem_id() == 0) continue;
      if (v.shmem_id() > static_cast<uint32_t>(image.objects_size()) ||
          (v.kind() != img::Vma::FILE_SHARED && v.kind() != img::Vma::FILE_PRIVATE))
        return error(EINVAL, "VMA {:#x}-{:#x} maps shared memory object {}, which {} lacks", v.start(), v.end(),
                     v.shmem_id(), name);
      // An attach of a System V segment: shared, and inside the segment.
      const img::ShmemObject& o = image.objects(static_cast<int>(v.shmem_id()) - 1);
      const uint64_t span = arch::page_up(o.size());
      if (o.kind() == img::ShmemObject::SYSV &&
          (v.kind() != img::Vma::FILE_SHARED || v.pgoff() % arch::kPageSize || v.pgoff() > span ||
           v.end() - v.start() > span - v.pgoff() || v.start() < v.pgoff()))
        return error(EINVAL, "VMA {:#x}-{:#x} attaches System V segment object {} at offset {:#x}, outside it",
                     v.start(), v.end(), v.shmem_id(), v.pgoff());
    }
  return image;
}

Result<VerifySummary> verify_dir(const ImageDir& dir, bool check_files) {
  VerifySummary sum;
  if (!exists(dir, kInventoryName))
    return error(ENOENT, "{} holds no checkpoint: {} is missing", dir.path(), kInventoryName);
  img::Inventory inv;
  TRY(dir.read(kInventoryName, ImageKind::Inventory, &inv));
  TRY(check_inventory(dir.file(kInventoryName), inv));
  std::set<std::string> done = {kInventoryName};
  sum.images++;
  const tree::ProcessTree tree = TRY(load_tree(dir, inv));
  if (dir.exists(kTreeName)) {
    done.insert(kTreeName);
    sum.images++;
  }

  std::vector<std::unique_ptr<img::Files>> files;
  std::vector<std::unique_ptr<img::MmImage>> mms;
  std::vector<std::pair<pid_t, const img::Files*>> shared;
  for (pid_t pid : tree.alive()) {
    TaskImageSet t;
    t.pid = pid;
    TRY(read_listed(dir, core_name(pid), ImageKind::Core, &t.core, pid));
    TRY(read_listed(dir, mm_name(pid), ImageKind::Mm, &t.mm, pid));
    TRY(read_listed(dir, pagemap_name(pid), ImageKind::PageMap, &t.pagemap, pid));
    TRY(read_listed(dir, files_name(pid), ImageKind::Files, &t.files, pid));
    TRY(check_task(dir.path(), t));
    if (check_files) TRY(check_mapped_files(dir.file(mm_name(pid)), t.mm, t.core));
    const std::string pages = pages_name(pid);
    if (!exists(dir, pages))
      return error(ENOENT, "{} is missing ({} lists pid {})", dir.file(pages), kInventoryName, pid);
    UniqueFd fd = TRY(dir.open_read(pages));
    sum.pages += TRY(verify_pages_file(dir.file(pages), fd.get(), stored_runs(t.pagemap)));
    for (const std::string& n : {core_name(pid), mm_name(pid), pagemap_name(pid), files_name(pid), pages}) done.insert(n);
    sum.images += 5;
    files.push_back(std::make_unique<img::Files>(std::move(t.files)));
    mms.push_back(std::make_unique<img::MmImage>(std::move(t.mm)));
    shared.emplace_back(pid, files.back().get());
  }
  TRY(load_file_descs(dir, shared));
  done.insert(kFileDescsName);
  sum.images++;
  std::vector<const img::MmImage*> mm_ptrs;
  for (const auto& mm : mms) mm_ptrs.push_back(mm.get());
  const img::ShmemImage shmem = TRY(load_shmem(dir, mm_ptrs));
  if (dir.exists(kShmemName)) {
    done.insert(kShmemName);
    sum.images++;
  }
  for (const img::ShmemObject& o : shmem.objects()) {
    const std::string pages = shmem_pages_name(o.id());
    UniqueFd fd = TRY(dir.open_read(pages));
    sum.pages += TRY(verify_pages_file(dir.file(pages), fd.get(), o.pages()));
    done.insert(pages);
    sum.images++;
  }

  // Everything else (stats, leftovers): an image must at least be intact.
  for (const std::string& n : TRY(dir.list_images())) {
    if (done.contains(n)) continue;
    TRY(check_other(dir, n));
    sum.images++;
  }
  return sum;
}

}  // namespace ckpt::image
