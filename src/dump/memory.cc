#include "dump/memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_store.h"
#include "base/progress.h"
#include "image/page_sink.h"
#include "dump/present_pages.h"
#include "dump/shmem.h"
#include "files/file_id.h"
#include "pie/parasite_abi.h"
#include "proc/maps.h"
#include "proc/smaps.h"

namespace ckpt::dump {

namespace {

constexpr size_t kCopyBuffer = 8 << 20;  // bytes in flight: ckpt streams, it never holds a whole dump
constexpr uint64_t kMaxRunPages = (4 << 20) / arch::kPageSize;  // a page run's most (plan_runs)

// Memory the task cannot read itself (PROT_NONE, write-only) comes through
// /proc/PID/mem, which ignores protections.
Result<void> read_protected(int mem, pid_t tid, uint64_t addr, char* buf, size_t n) {
  size_t got = TRY_CTX(pread_full(mem, buf, n, static_cast<off_t>(addr)), "read protected memory of task {}", tid);
  if (got != n) return error(EFAULT, "read protected memory of task {} at {:#x}: short read", tid, addr);
  return {};
}
constexpr size_t kMaxIov = 1024;

Result<img::Vma> classify(const proc::MapEntry& m) {
  img::Vma v;
  v.set_start(m.start);
  v.set_end(m.end);
  v.set_prot((m.read ? PROT_READ : 0) | (m.write ? PROT_WRITE : 0) | (m.exec ? PROT_EXEC : 0));
  v.set_path(m.path);
  v.set_pgoff(m.offset);
  v.set_dev((static_cast<uint64_t>(m.dev_major) << 32) | m.dev_minor);
  v.set_inode(m.inode);
  auto range = [&] { return fmt::format("VMA {:#x}-{:#x} ({})", m.start, m.end, m.path.empty() ? "anonymous" : m.path); };
  if (m.path == "[vdso]") v.set_kind(img::Vma::VDSO);
  else if (m.path == "[vvar]") v.set_kind(img::Vma::VVAR);
  else if (m.path == "[vvar_vclock]") v.set_kind(img::Vma::VVAR_VCLOCK);
  else if (m.path.starts_with("[anon:"))  // PR_SET_VMA_ANON_NAME
    return error(EOPNOTSUPP, "{}: named anonymous memory is not supported yet (its name would be lost)", range());
  else if (m.path.starts_with("[anon_shmem:"))  // the same, on MAP_SHARED|MAP_ANONYMOUS memory
    return error(EOPNOTSUPP, "{}: named shared anonymous memory is not supported yet (its name would be lost)",
                 range());
  else if (m.inode == 0 && !m.shared) v.set_kind(img::Vma::ANON_PRIVATE);
  else if (shmem_kind(m)) v.set_kind(m.shared ? img::Vma::FILE_SHARED : img::Vma::FILE_PRIVATE);  // dump/shmem.h
  else if (m.inode == 0)
    return error(EOPNOTSUPP, "{}: shared anonymous memory without an object is not supported", range());
  else if (m.path.ends_with(" (deleted)"))
    return error(EOPNOTSUPP, "{}: mappings of deleted files are not supported yet", range());
  else if (m.path.empty() || m.path[0] != '/')
    return error(EOPNOTSUPP, "{}: this kind of mapping is not supported yet", range());
  else v.set_kind(m.shared ? img::Vma::FILE_SHARED : img::Vma::FILE_PRIVATE);
  // The stack VMA grows down; the kernel names it [stack] from mm->start_stack.
  if (m.path == "[stack]") v.set_growsdown(true);
  return v;
}


// Streams runs of pages from the task into the pages file through a bounded
// buffer: process_vm_readv fills it with up to kMaxIov remote pieces, one
// write() empties it. Pages the task itself cannot read (PROT_NONE, or
// write-only) come through /proc/PID/mem, which reads them by force.
class PageStreamer {
 public:
  // `stored`: the bytes the task has to store. The buffer holds no more of
  // them (each of its pages is a fault the first time it is written) and
  // is not cleared first.
  PageStreamer(Tracee& t, image::PageSink& out, int mem, uint64_t stored)
      : t_(t), out_(out), mem_(mem), size_(std::min<uint64_t>(std::max<uint64_t>(stored, 1), kCopyBuffer)),
        buf_(std::make_unique_for_overwrite<char[]>(size_)) {}

  // Queue [addr, addr+len) of run `run`.
  Result<void> add(img::PageRun* run, uint64_t addr, uint64_t len, bool readable) {
    while (len > 0) {
      if (fill_ == size_ || iov_.size() == kMaxIov) TRY(flush());
      uint64_t n = std::min<uint64_t>(len, size_ - fill_);
      if (!readable) {
        // Read now, into the buffer's tail: it goes out in order at flush.
        TRY(read_protected(mem_, t_.tid(), addr, buf_.get() + fill_, n));
      }
      iov_.push_back({reinterpret_cast<void*>(addr), n});
      remote_.push_back(readable);
      owners_.push_back(run);
      fill_ += n;
      addr += n;
      len -= n;
    }
    return {};
  }

  Result<void> flush() {
    if (iov_.empty()) return {};
    TRY(read_remote());
    // Checksums per run, while the data is in cache.
    size_t off = 0;
    for (size_t i = 0; i < iov_.size(); i++) {
      owners_[i]->set_crc32c(crc32c(owners_[i]->crc32c(), buf_.get() + off, iov_[i].iov_len));
      off += iov_[i].iov_len;
    }
    TRY(out_.write(buf_.get(), fill_));
    iov_.clear();
    remote_.clear();
    owners_.clear();
    fill_ = 0;
    return {};
  }

  uint64_t written() const { return out_.written(); }

 private:
  // One process_vm_readv per stretch of readable pieces, straight into place.
  Result<void> read_remote() {
    std::vector<iovec> local, remote;
    size_t off = 0;
    for (size_t i = 0; i < iov_.size(); off += iov_[i].iov_len, i++) {
      if (!remote_[i]) continue;
      local.push_back({buf_.get() + off, iov_[i].iov_len});
      remote.push_back(iov_[i]);
    }
    if (remote.empty()) return {};
    size_t want = 0;
    for (const iovec& v : remote) want += v.iov_len;
    ssize_t n = process_vm_readv(t_.tid(), local.data(), local.size(), remote.data(), remote.size(), 0);
    if (n < 0) return sys_error("read memory of task {} ({} pieces from {:#x})", t_.tid(), remote.size(),
                                reinterpret_cast<uint64_t>(remote[0].iov_base));
    if (static_cast<size_t>(n) != want)
      return error(EFAULT, "read memory of task {}: got {} of {} bytes from {:#x}", t_.tid(), n, want,
                   reinterpret_cast<uint64_t>(remote[0].iov_base));
    return {};
  }

  Tracee& t_;
  image::PageSink& out_;
  int mem_;
  size_t size_;
  std::unique_ptr<char[]> buf_;
  std::vector<iovec> iov_;
  std::vector<bool> remote_;
  std::vector<img::PageRun*> owners_;
  size_t fill_ = 0;
};

// Streams runs of pages into the sink through the parasite: it vmsplices
// the task's pages into a pipe (no copy) and checksums them while ckpt
// splices the pipe into the sink (one copy, into the page cache). Runs the
// task itself cannot read come through /proc/PID/mem.
class SpliceStreamer {
 public:
  SpliceStreamer(Parasite& p, pid_t tid, image::PageSink& out, int mem) : p_(p), tid_(tid), out_(out), mem_(mem) {}

  Result<void> add(img::PageRun* run, uint64_t addr, uint64_t len, bool readable) {
    if (!readable) return copy_protected(run, addr, len);
    if (pieces_.size() == abi::kMaxDrainIov) TRY(flush());
    pieces_.push_back({addr, len, 0, 0});
    owners_.push_back(run);
    return {};
  }

  Result<void> flush() {
    if (pieces_.empty()) return {};
    TRY_CTX(p_.drain(pieces_, out_.fd(), out_.progress()), "{}", out_.name());
    for (size_t i = 0; i < pieces_.size(); i++) {
      owners_[i]->set_crc32c(pieces_[i].crc32c);
      out_.count(pieces_[i].len);
    }
    pieces_.clear();
    owners_.clear();
    return {};
  }

  uint64_t written() const { return out_.written(); }

 private:
  Result<void> copy_protected(img::PageRun* run, uint64_t addr, uint64_t len) {
    TRY(flush());
    // One buffer for all such runs, sized by the largest so far.
    buf_.resize(std::max<size_t>(buf_.size(), std::min<uint64_t>(len, kCopyBuffer)));
    uint32_t crc = 0;
    for (uint64_t done = 0; done < len;) {
      const size_t n = std::min<uint64_t>(len - done, buf_.size());
      TRY(read_protected(mem_, tid_, addr + done, buf_.data(), n));
      crc = crc32c(crc, buf_.data(), n);
      TRY(out_.write(buf_.data(), n));
      done += n;
    }
    run->set_crc32c(crc);
    return {};
  }

  Parasite& p_;
  pid_t tid_;
  image::PageSink& out_;
  int mem_;
  std::vector<abi::DrainIov> pieces_;
  std::vector<img::PageRun*> owners_;
  std::vector<char> buf_;  // protected runs only
};

// The identity of the file a VMA maps (files/file_id.h), from the mapped file
// itself: map_files/ holds it even if its path has changed since. Without
// the capability that directory needs, from the path.
Result<img::FileId> identify_mapped(pid_t pid, const proc::MapEntry& m, files::FileIdCache& ids) {
  auto id = ids.identify_path(fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, m.start, m.end));
  if (id || (id.error().err != EPERM && id.error().err != EACCES)) return id;
  return ids.identify_path(m.path);
}

// What ckpt does with each VmFlag the kernel reports (fs/proc/task_mmu.c,
// show_smap_vma_flags(); Documentation/filesystems/proc.rst). A flag not in
// this table, or "??" (a bit the kernel has no name for), is refused.
enum class FlagUse {
  Derived,  // follows from what restore maps (prot, kind, the file's open mode and mount) or is the kernel's
  Restored, // recorded in the image and set again by restore
  Ignored,  // tracking state, not a property of the mapping
  Refused,  // ckpt can't restore it: the dump fails, naming it
};
struct FlagRule {
  const char* name;
  FlagUse use;
  const char* what;  // for a refusal
};
constexpr FlagRule kFlagRules[] = {
    {"rd", FlagUse::Derived, ""}, {"wr", FlagUse::Derived, ""}, {"ex", FlagUse::Derived, ""},
    {"sh", FlagUse::Derived, ""}, {"ms", FlagUse::Derived, ""},
    // VM_MAY*: mmap sets them from the file's open mode and its mount
    // (noexec); restore opens the same file the same way (mw: may_write).
    {"mr", FlagUse::Derived, ""}, {"mw", FlagUse::Derived, ""}, {"me", FlagUse::Derived, ""},
    {"gd", FlagUse::Restored, ""}, {"lo", FlagUse::Restored, ""}, {"lf", FlagUse::Restored, ""},
    {"sr", FlagUse::Restored, ""}, {"rr", FlagUse::Restored, ""}, {"dc", FlagUse::Restored, ""},
    {"ac", FlagUse::Restored, ""}, {"nr", FlagUse::Restored, ""}, {"wf", FlagUse::Restored, ""},
    {"dd", FlagUse::Restored, ""}, {"hg", FlagUse::Restored, ""}, {"nh", FlagUse::Restored, ""},
    {"mg", FlagUse::Restored, ""}, {"dp", FlagUse::Restored, ""}, {"sl", FlagUse::Restored, ""},
    // Soft-dirty: every new VMA starts soft-dirty; clear_refs is a tracker's.
    {"sd", FlagUse::Ignored, ""},
    {"pf", FlagUse::Refused, "a PFN mapping of device or driver memory (VM_PFNMAP)"},
    {"io", FlagUse::Refused, "a mapping of device I/O memory (VM_IO)"},
    {"mm", FlagUse::Refused, "a mixed PFN mapping of a driver (VM_MIXEDMAP)"},
    {"ar", FlagUse::Refused, "memory mapped with a PAT memory type by a driver (VM_PAT)"},
    {"de", FlagUse::Refused, "a driver's or kernel's mapping that may not be expanded (VM_DONTEXPAND)"},
    {"ht", FlagUse::Refused, "hugetlb memory (MAP_HUGETLB or hugetlbfs): not supported yet"},  // hugetlb_page_size() first
    {"sf", FlagUse::Refused, "a MAP_SYNC mapping of a DAX file: not supported yet"},
    {"um", FlagUse::Refused, "registered with userfaultfd (missing pages)"},
    {"uw", FlagUse::Refused, "registered with userfaultfd (write-protect; if by a ckpt pre-dump, go on with "
                             "--prev-images-dir, or kill its keeper to end the tracking)"},
    {"ui", FlagUse::Refused, "registered with userfaultfd (minor faults)"},
    {"ss", FlagUse::Refused, "a shadow stack (x86 user shadow stack): not supported yet"},
    {"bt", FlagUse::Refused, "arm64 BTI-guarded"},
    {"mt", FlagUse::Refused, "arm64 MTE-tagged"},
};

const FlagRule* rule_of(std::string_view f) {
  for (const FlagRule& r : kFlagRules)
    if (f == r.name) return &r;
  return nullptr;
}

// The flags ckpt restores, derives or ignores: a VMA with none other passes
// check_vmflags without a look at the rules.
const proc::VmFlags& accepted_flags() {
  static const proc::VmFlags accepted = [] {
    proc::VmFlags f;
    for (const FlagRule& r : kFlagRules)
      if (r.use != FlagUse::Refused) f.add(r.name);
    return f;
  }();
  return accepted;
}

// The kernel's own mappings ([vdso], [vvar], [vvar_vclock]) are moved, not
// mapped: their flags are the kernel's.
bool is_special(const proc::MapEntry& m) {
  return m.path == "[vdso]" || m.path == "[vvar]" || m.path == "[vvar_vclock]";
}

// A VmFlag ckpt can't put back fails the dump, naming it.
Result<void> check_vmflags(const proc::MapEntry& m, const proc::VmFlags& flags) {
  if (is_special(m)) return {};
  const proc::VmFlags refused = flags.without(accepted_flags());
  if (refused.empty()) return {};
  std::string first;
  refused.for_each([&](std::string_view f) {
    if (first.empty()) first = f;
  });
  const FlagRule* r = rule_of(first);
  return error(EOPNOTSUPP, "VMA {:#x}-{:#x} ({}) has VmFlags \"{}\": {}", m.start, m.end,
               m.path.empty() ? "anonymous" : m.path, first,
               r ? r->what : "a flag this ckpt does not know, so it can't restore it");
}

// The VmFlags that madvise(), mmap(), mlock() and mseal() set and restore
// must set again.
void apply_vmflags(const proc::VmFlags& flags, img::Vma* v) {
  static const std::pair<const char*, img::MadviseBits> kBits[] = {
      {"nh", img::NO_HUGEPAGE}, {"hg", img::HUGEPAGE},   {"dc", img::DONT_FORK}, {"dd", img::DONT_DUMP},
      {"wf", img::WIPE_ON_FORK}, {"sr", img::SEQUENTIAL}, {"rr", img::RANDOM},    {"mg", img::MERGEABLE}};
  for (auto [name, bit] : kBits)
    if (flags.has(name)) v->set_madvise(v->madvise() | bit);
  if (flags.has("nr")) v->set_noreserve(true);
  if (flags.has("mw") && v->kind() == img::Vma::FILE_SHARED) v->set_may_write(true);
  if (flags.has("gd")) v->set_growsdown(true);
  if (flags.has("lo")) v->set_locked(true);
  if (flags.has("lf")) v->set_lock_on_fault(true);
  if (flags.has("dp")) v->set_droppable(true);
  if (flags.has("sl")) v->set_sealed(true);
  if (flags.has("ac") && v->kind() != img::Vma::FILE_SHARED) v->set_accounted(true);
}

// Hugetlb memory: anonymous memory (MAP_HUGETLB, private or shared) and
// mappings of a memfd of huge pages (MFD_HUGETLB, shared or private) are
// restored with their page size (returned, in bytes; 0 for other memory).
// Files of a mounted hugetlbfs are refused as hugetlb, with their page size,
// before any other of their flags ("de": hugetlbfs sets VM_DONTEXPAND too)
// names them wrongly.
Result<uint64_t> hugetlb_page_size(const proc::SmapsVma& s) {
  if (!s.flags.has("ht")) return 0;
  const proc::MapEntry& m = s.map;
  const bool anon = m.path == "/anon_hugepage (deleted)";
  const bool memfd = m.path.starts_with("/memfd:") && m.path.ends_with(" (deleted)");
  if (s.page_kib != 0 && (anon || memfd)) return s.page_kib * 1024;
  const std::string size = s.page_kib == 0 ? "unknown size" : fmt::format("{} kB", s.page_kib);
  return error(EOPNOTSUPP, "VMA {:#x}-{:#x} ({}) has VmFlags \"ht\": hugetlb memory ({}{}, {} pages): "
               "not supported yet", m.start, m.end, m.path.empty() ? "anonymous" : m.path,
               anon ? "MAP_HUGETLB" : memfd ? "MFD_HUGETLB" : "hugetlbfs", m.shared ? ", shared" : ", private",
               size);
}

// The VmFlags of hugetlb memory but for the two the kernel sets on all of
// it: "ht" itself, and "de" (VM_DONTEXPAND).
proc::VmFlags without_hugetlb_flags(proc::VmFlags flags) {
  flags.remove("ht");
  flags.remove("de");
  return flags;
}

// A private MAP_HUGETLB VMA: anonymous memory of another page size, which
// hugetlbfs backs with an unlinked file ("/anon_hugepage (deleted)") and
// marks VM_DONTEXPAND ("de"), both of the kernel's making.
Result<img::Vma> hugetlb_vma(const proc::MapEntry& m, const proc::VmFlags& flags, uint64_t page_size) {
  const proc::VmFlags others = without_hugetlb_flags(flags);
  TRY(check_vmflags(m, others));
  img::Vma v;
  v.set_start(m.start);
  v.set_end(m.end);
  v.set_prot((m.read ? PROT_READ : 0) | (m.write ? PROT_WRITE : 0) | (m.exec ? PROT_EXEC : 0));
  v.set_path(m.path);
  v.set_kind(img::Vma::ANON_PRIVATE);
  v.set_hugetlb_page_size(page_size);
  apply_vmflags(others, &v);
  return v;
}

}  // namespace

Result<img::MmImage> collect_vmas(pid_t pid, bool ckpt_tracks, files::FileIdCache& file_ids,
                                  std::vector<proc::MapEntry>* maps) {
  img::MmImage mm;
  std::map<std::pair<uint64_t, uint64_t>, img::FileId> ids;  // (maps' dev, inode): one look per file
  std::vector<proc::SmapsVma> vmas = TRY(proc::read_smaps(pid));
  for (proc::SmapsVma& s : vmas) {
    const proc::MapEntry& m = s.map;
    if (maps) maps->push_back(m);
    if (m.path == "[vsyscall]") continue;  // fixed by the kernel, not ours to map
    const uint64_t huge = TRY(hugetlb_page_size(s));
    if (huge && !m.shared && !shmem_kind(m)) {
      *mm.add_vmas() = TRY(hugetlb_vma(m, s.flags, huge));
      continue;
    }
    // Shared hugetlb memory and memfds of huge pages are objects of the
    // checkpoint like any shared memory (dump/shmem.h), mapped with their
    // page size; a private mapping of a memfd keeps the pages the task wrote
    // (its own copies, stored as any private file mapping's) over the
    // memfd's.
    proc::VmFlags& f = s.flags;
    if (huge) f = without_hugetlb_flags(std::move(f));
    if (ckpt_tracks) f.remove("uw");
    TRY(check_vmflags(m, f));
    img::Vma* v = mm.add_vmas();
    *v = TRY(classify(m));
    v->set_hugetlb_page_size(huge);
    if (!is_special(m)) apply_vmflags(f, v);
    if ((v->kind() == img::Vma::FILE_PRIVATE || v->kind() == img::Vma::FILE_SHARED) && !shmem_kind(m)) {
      auto [it, fresh] = ids.try_emplace({v->dev(), v->inode()});
      if (fresh) it->second = TRY_CTX(identify_mapped(pid, m, file_ids), "VMA {:#x}-{:#x} ({})", m.start, m.end, m.path);
      *v->mutable_file_id() = it->second;
    }
  }
  return mm;
}

Result<std::vector<bool>> plan_runs(const PageSource& src, const img::MmImage& mm, img::PageMap* map) {
  const pid_t tid = src.task.tid();
  // Touching stretches merge into one run; runs don't cross VMAs (their
  // protections differ) nor change kind (stored, in the parent checkpoint),
  // and hold at most kMaxRunPages: a run's one checksum is checked whole
  // before any byte of it is used, so a lazy restore's first fault in a
  // page of a 1 GiB buffer (or of what the kernel merged with it: the main
  // thread's TLS, which it writes on the way back to user space) waits for
  // 4 MiB to be read, not for the whole buffer.
  std::vector<bool> readable;  // per run
  img::PageRun* last = nullptr;
  int last_vma = -1;
  auto add = [&](int vma, uint64_t start, uint64_t end, bool in_parent) {
    while (start < end) {
      if (last && last_vma == vma && last->in_parent() == in_parent && last->nr_pages() < kMaxRunPages &&
          last->vaddr() + last->nr_pages() * arch::kPageSize == start) {
        const uint64_t n = std::min<uint64_t>((end - start) / arch::kPageSize, kMaxRunPages - last->nr_pages());
        last->set_nr_pages(last->nr_pages() + n);
        start += n * arch::kPageSize;
        continue;
      }
      const uint64_t n = std::min<uint64_t>((end - start) / arch::kPageSize, kMaxRunPages);
      last = map->add_runs();
      last_vma = vma;
      last->set_vaddr(start);
      last->set_nr_pages(n);
      last->set_in_parent(in_parent);
      readable.push_back(mm.vmas(vma).prot() & PROT_READ);
      start += n * arch::kPageSize;
    }
  };
  auto stored_kind = [](const img::Vma& v) {
    return v.kind() == img::Vma::ANON_PRIVATE || v.kind() == img::Vma::FILE_PRIVATE;
  };
  PresentPages present = TRY(PresentPages::open(tid));
  if (!src.dirty) {
    TRY(present.scan_all(mm, stored_kind, [&](int vma, uint64_t s, uint64_t e) { add(vma, s, e, false); }));
  } else {
    // Stretches not written since the last round are in the parent
    // checkpoint, where its page map covers them (dump/dirty.h).
    TRY(present.scan_tracked(mm, stored_kind, src.dirty->tracked, src.dirty->protect,
                             [&](int vma, uint64_t s, uint64_t e, bool written) {
                               if (written || !src.dirty->parent) return add(vma, s, e, false);
                               ParentCover::Split split = src.dirty->parent->split(s, e);
                               for (const auto& [a, b, covered] : split) add(vma, a, b, covered);
                             }));
  }
  if (src.parent) TRY_CTX(mark_inherited(tid, *src.parent, map, &readable), "pages inherited from pid {}",
                          src.parent->pid);
  return readable;
}

namespace {

// The kernel writes the rseq area of the thread the parasite runs in
// (cpu_id, mm_cid; rseq_cs cleared) on the thread's returns to user space
// after it was moved or preempted: between the parasite's vmsplice of that
// page and ckpt's copy of it out of the pipe, the bytes stored could then
// differ from the checksum the parasite took, and no restore would take the
// images (a third of the dumps of tests/e2e/rseq_area_test.cc, where the
// thread is moved between CPUs meanwhile).
// The run holding it goes the way of a run the task can't read (`readable`
// false): copied, its checksum taken of the bytes stored.
void copy_kernel_written(const img::Rseq& rseq, const img::PageMap& map, std::vector<bool>* readable) {
  if (!rseq.abi_pointer()) return;
  const uint64_t from = rseq.abi_pointer(), to = from + std::max<uint32_t>(rseq.abi_size(), 1);
  for (int i = 0; i < map.runs_size(); i++) {
    const img::PageRun& r = map.runs(i);
    if (r.vaddr() < to && from < r.vaddr() + r.nr_pages() * arch::kPageSize) (*readable)[i] = false;
  }
}

}  // namespace

uint64_t stored_bytes(const img::PageMap& map) {
  uint64_t n = 0;
  for (const img::PageRun& r : map.runs())
    if (image::stored(r)) n += r.nr_pages() * arch::kPageSize;
  return n;
}

Result<PageStats> dump_pages(const PageSource& src, const img::MmImage& mm, image::PageSink& sink,
                             img::PageMap* map, const Faults& faults) {
  Tracee& t = src.task;
  // Runs first: the stream's header says how much follows, and protobuf's
  // repeated field does not move under the streamer's pointers.
  std::vector<bool> readable = TRY(plan_runs(src, mm, map));
  const uint64_t stored = stored_bytes(*map);
  const bool splice = src.parasite && stored > src.readv_up_to;
  if (splice) copy_kernel_written(src.rseq, *map, &readable);
  TRY(sink.begin(stored));
  std::optional<Progress> own;
  if (!src.progress) own.emplace(fmt::format("dump pid {}", t.tid()), stored);
  sink.show_progress(src.progress ? src.progress : &*own);
  const struct Unwatch {
    image::PageSink& s;
    ~Unwatch() { s.show_progress(nullptr); }
  } unwatch{sink};

  UniqueFd mem = TRY(open_file(fmt::format("/proc/{}/mem", t.tid()), O_RDONLY));
  auto stream = [&](auto& s) -> Result<PageStats> {
    PageStats st;
    for (int i = 0; i < map->runs_size(); i++) {
      img::PageRun* run = map->mutable_runs(i);
      if (!image::stored(*run)) continue;
      TRY(s.add(run, run->vaddr(), run->nr_pages() * arch::kPageSize, readable[i]));
      st.pages += run->nr_pages();
      if (i == map->runs_size() / 2) TRY(faults.at("memory", t.tid()));
    }
    TRY(s.flush());
    st.bytes = s.written();
    return st;
  };
  PageStats st;
  if (splice) {
    SpliceStreamer s(*src.parasite, t.tid(), sink, mem.get());
    st = TRY_CTX(stream(s), "pages of task {} into {}", t.tid(), sink.name());
  } else {
    PageStreamer s(t, sink, mem.get(), stored);
    st = TRY_CTX(stream(s), "pages of task {} into {}", t.tid(), sink.name());
  }
  map->set_total_pages(st.pages);
  TRY(sink.commit());
  return st;
}

}  // namespace ckpt::dump
