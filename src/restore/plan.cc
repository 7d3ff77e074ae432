#include "restore/plan.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <optional>
#include <cstring>
#include <tuple>

#include "arch/x86_64/page.h"
#include "base/check.h"
#include "base/fs.h"
#include "image/crc32c.h"
#include "image/mempolicy.h"
#include "image/page_store.h"
#include "pie/restorer_blob.h"
#include "proc/status.h"
#include "restore/traps.h"

namespace ckpt::restore {

namespace {

constexpr uint32_t kMapDroppable = 0x08;  // <linux/mman.h> of Linux 6.11; not in this libc's headers

struct SpecialVmas {
  std::vector<SpecialMove> moves;
  std::vector<Range> current;  // where they are in ckpt (and so in its child)
};

// [vvar], [vvar_vclock] and [vdso] go to their dumped addresses together: the
// vDSO code finds its data at fixed offsets (pitfall 2).
Result<SpecialVmas> plan_specials(const img::MmImage& mm, const std::vector<proc::MapEntry>& own) {
  SpecialVmas out;
  for (const img::Vma& v : mm.vmas()) {
    const char* name = v.kind() == img::Vma::VDSO          ? "[vdso]"
                       : v.kind() == img::Vma::VVAR        ? "[vvar]"
                       : v.kind() == img::Vma::VVAR_VCLOCK ? "[vvar_vclock]"
                                                           : nullptr;
    if (!name) continue;
    auto it = std::find_if(own.begin(), own.end(), [&](const proc::MapEntry& m) { return m.path == name; });
    if (it == own.end() || it->end - it->start != v.end() - v.start())
      return error(EINVAL, "the dump's {} ({} bytes) does not match this kernel's{}: restoring onto another kernel "
                   "version is not supported yet", name, v.end() - v.start(), it == own.end() ? " (none)" : "");
    out.moves.push_back({{it->start, it->end}, v.start()});
  }
  for (const proc::MapEntry& m : own)
    if (kernel_special(m)) out.current.push_back({m.start, m.end});
  return out;
}

// The task's shmat calls, one per (segment, address it began at): the VMAs
// of one attach are its parts, at their offsets in the segment.
struct SysvPlan {
  std::vector<abi::SysvAttachArg> attaches;
  std::vector<uint32_t> of_vma;  // per VMA of the mm: 1 + its attach, or 0
};

SysvPlan plan_attaches(const img::MmImage& mm, const img::ShmemImage& shmem) {
  SysvPlan p;
  p.of_vma.assign(mm.vmas_size(), 0);
  std::map<std::pair<uint32_t, uint64_t>, uint32_t> index;
  for (int i = 0; i < mm.vmas_size(); i++) {
    const img::Vma& v = mm.vmas(i);
    if (!attaches_sysv(v, shmem)) continue;
    const Range whole = sysv_attach(v, shmem);
    auto [it, fresh] = index.try_emplace({v.shmem_id(), whole.start}, p.attaches.size() + 1);
    if (fresh)
      p.attaches.push_back({whole.start, whole.len(),
                            shmem.objects(static_cast<int>(v.shmem_id()) - 1).sysv().shmid(), SHM_RDONLY, PROT_READ,
                            0});
    abi::SysvAttachArg& a = p.attaches[it->second - 1];
    // A read-write attach is VM_MAYWRITE ("mw") in every part, whatever
    // mprotect made of them since; a read-only one in none.
    if (v.may_write() || (v.prot() & PROT_WRITE)) {
      a.shmflg &= ~SHM_RDONLY;
      a.prot |= PROT_WRITE;
    }
    if (v.prot() & PROT_EXEC) {
      a.shmflg |= SHM_EXEC;
      a.prot |= PROT_EXEC;
    }
    p.of_vma[i] = it->second;
  }
  return p;
}

Result<std::vector<abi::VmaArg>> vma_args(const TaskImages& ti, const MappingFiles& mf, const SysvPlan& sysv,
                                          const TaskPremap& premap, int first_map_fd) {
  std::vector<abi::VmaArg> vmas;
  size_t run = 0;
  for (int i = 0; i < ti.mm.vmas_size(); i++) {
    const img::Vma& v = ti.mm.vmas(i);
    abi::VmaArg va{};
    va.start = v.start();
    va.end = v.end();
    va.prot = v.prot();
    va.fd = -1;
    switch (v.kind()) {
      case img::Vma::ANON_PRIVATE:
        va.map_flags = (v.droppable() ? kMapDroppable : MAP_PRIVATE) | MAP_ANONYMOUS;
        break;
      case img::Vma::FILE_PRIVATE:
      case img::Vma::FILE_SHARED: {
        bool shared = v.kind() == img::Vma::FILE_SHARED;
        va.map_flags = shared ? MAP_SHARED : MAP_PRIVATE;
        va.attach = sysv.of_vma[i];
        if (!va.attach) va.fd = first_map_fd + static_cast<int>(mf.index.at(mapping_key(v)));
        va.pgoff = v.pgoff();
        break;
      }
      default: continue;  // special mappings are moved, not mapped
    }
    // MAP_HUGETLB with the page size's log2 in bits 26-31 (MAP_HUGE_SHIFT);
    // a VMA of a shared memory object (shared, or a private mapping of a
    // memfd) maps the object, whose pages are of that size already.
    if (v.hugetlb_page_size()) {
      const bool shared_object =
          (v.kind() == img::Vma::FILE_SHARED || v.kind() == img::Vma::FILE_PRIVATE) && v.shmem_id() != 0;
      if ((v.kind() != img::Vma::ANON_PRIVATE && !shared_object) || !std::has_single_bit(v.hugetlb_page_size()) ||
          v.hugetlb_page_size() < arch::kPageSize || (v.start() | v.end() | v.pgoff()) % v.hugetlb_page_size())
        return error(EINVAL, "mm image: VMA {:#x}-{:#x} has a bad hugetlb page size {}", v.start(), v.end(),
                     v.hugetlb_page_size());
      if (!shared_object)
        va.map_flags |= MAP_HUGETLB | static_cast<uint32_t>(std::countr_zero(v.hugetlb_page_size())) << MAP_HUGE_SHIFT;
    }
    if (v.growsdown()) va.map_flags |= MAP_GROWSDOWN;
    if (v.noreserve()) va.map_flags |= MAP_NORESERVE;
    static constexpr std::pair<img::MadviseBits, uint8_t> kAdvice[] = {
        {img::NO_HUGEPAGE, MADV_NOHUGEPAGE}, {img::HUGEPAGE, MADV_HUGEPAGE},     {img::DONT_FORK, MADV_DONTFORK},
        {img::DONT_DUMP, MADV_DONTDUMP},     {img::WIPE_ON_FORK, MADV_WIPEONFORK}, {img::SEQUENTIAL, MADV_SEQUENTIAL},
        {img::RANDOM, MADV_RANDOM},          {img::MERGEABLE, MADV_MERGEABLE}};
    static_assert(std::size(kAdvice) <= std::size(abi::VmaArg{}.advice));
    for (auto [bit, advice] : kAdvice)
      if (v.madvise() & bit) va.advice[va.nr_advice++] = advice;
    if (v.locked()) va.lock = v.lock_on_fault() ? abi::kLockOnFault : abi::kLockNow;
    va.seal = v.sealed();
    va.premapped = premap.covers(v.start(), v.end() - v.start());
    // Charged once writable (VM_ACCOUNT): only a writable mmap charges it.
    va.map_writable = v.accounted();
    while (run < static_cast<size_t>(ti.pagemap.runs_size()) && ti.pagemap.runs(run).vaddr() < v.end()) {
      va.has_pages = 1;
      run++;
    }
    vmas.push_back(va);
  }
  return vmas;
}

// Copies `n` plain structs into the boot region; returns their address there.
template <typename T>
Result<uint64_t> put(BootRegion& boot, const T* items, size_t n) {
  uint8_t* w;
  uint64_t at = TRY(boot.alloc(n * sizeof(T), 8, &w));
  if (n) std::memcpy(w, items, n * sizeof(T));
  return at;
}

// The signals the restorer queues: all but those ckpt queues once it no
// longer traps (restore/traps.h). Returns where they are and how many.
Result<std::pair<uint64_t, uint32_t>> put_siginfo(BootRegion& boot, const google::protobuf::RepeatedPtrField<img::SigInfo>& sigs) {
  std::vector<abi::SigInfoArg> v;
  for (const img::SigInfo& s : sigs) {
    if (queued_late(s)) continue;
    abi::SigInfoArg si{};
    std::memcpy(si.raw, s.raw().data(), std::min(s.raw().size(), sizeof si.raw));
    si.signo = s.signo();
    v.push_back(si);
  }
  return std::pair{TRY(put(boot, v.data(), v.size())), static_cast<uint32_t>(v.size())};
}

Result<uint64_t> put_seccomp(const img::ThreadCore& th, BootRegion& boot) {
  std::vector<abi::SeccompFilterArg> filters;
  for (const img::SeccompFilter& f : th.seccomp_filters()) {
    // Whole sock_filter instructions, no more than the kernel takes.
    if (f.program().empty() || f.program().size() % sizeof(sock_filter) ||
        f.program().size() / sizeof(sock_filter) > BPF_MAXINSNS)
      return error(EINVAL, "core image: a seccomp filter of {} bytes is not a BPF program", f.program().size());
    abi::SeccompFilterArg a{};
    a.len = f.program().size() / sizeof(sock_filter);
    a.insns = TRY(put(boot, reinterpret_cast<const uint64_t*>(f.program().data()), a.len));
    a.flags = f.flags();
    filters.push_back(a);
  }
  return put(boot, filters.data(), filters.size());
}

Result<std::optional<uint32_t>> read_own_loginuid() {
  auto text = read_file("/proc/self/loginuid");
  if (!text) {
    if (text.error().err == ENOENT) return std::nullopt;
    return std::unexpected(text.error());
  }
  uint32_t uid = 0;
  if (std::from_chars(text->data(), text->data() + text->size(), uid).ec != std::errc())
    return error(EINVAL, "/proc/self/loginuid: not a number: '{}'", *text);
  return uid;
}

Result<void> put_creds(const img::Creds& c, const OwnCreds& own, BootRegion& boot, abi::ThreadArg* t) {
  if (c.uids_size() != 4 || c.gids_size() != 4) return error(EINVAL, "core image: credentials need 4 uids and 4 gids");
  for (int i = 0; i < 4; i++) t->uids[i] = c.uids(i), t->gids[i] = c.gids(i);
  std::vector<uint32_t> groups(c.groups().begin(), c.groups().end());
  t->nr_groups = groups.size();
  t->groups = TRY(put(boot, groups.data(), groups.size()));
  t->cap_inh = c.cap_inh(), t->cap_prm = c.cap_prm(), t->cap_eff = c.cap_eff();
  t->cap_bnd = c.cap_bnd(), t->cap_amb = c.cap_amb();
  t->securebits = c.securebits();
  t->last_cap = own.last_cap;
  const proc::Status& s = own.status;
  auto same_ids = [](const auto& img_ids, const auto& mine) {
    return std::equal(img_ids.begin(), img_ids.end(), mine.begin(), mine.end());
  };
  t->creds_change = !(same_ids(c.uids(), s.uids) && same_ids(c.gids(), s.gids) && same_ids(c.groups(), s.groups) &&
                      c.cap_inh() == s.cap_inh && c.cap_prm() == s.cap_prm && c.cap_eff() == s.cap_eff &&
                      c.cap_bnd() == s.cap_bnd && c.cap_amb() == s.cap_amb && c.securebits() == own.securebits);
  return {};
}

abi::KTimeval timeval_of(uint64_t us) {
  return {static_cast<int64_t>(us / 1000000), static_cast<int64_t>(us % 1000000)};
}
abi::KTimespec timespec_of(uint64_t ns) {
  return {static_cast<int64_t>(ns / 1000000000), static_cast<int64_t>(ns % 1000000000)};
}

Result<void> put_timers_and_limits(const img::TaskCore& core, BootRegion& boot) {
  std::vector<abi::PosixTimerArg> timers;
  for (const img::PosixTimer& pt : core.posix_timers()) {
    abi::PosixTimerArg t{};
    t.id = pt.id();
    t.clock = pt.clock();
    t.sival = pt.sival();
    t.signo = pt.signo();
    t.notify = pt.notify();
    t.notify_tid = pt.notify_tid();
    t.interval = timespec_of(pt.interval_ns());
    // A disarmed timer stays disarmed; an armed one gets its remaining time.
    t.value = timespec_of(pt.value_ns());
    timers.push_back(t);
  }
  uint64_t timers_at = TRY(put(boot, timers.data(), timers.size()));
  abi::RestorerArgs* a = boot.args();
  a->nr_timers = timers.size();
  a->timers = timers_at;
  for (const img::ITimer& it : core.itimers()) {
    if (it.which() < 0 || it.which() > 2) return error(EINVAL, "core image: unknown interval timer {}", it.which());
    a->itimers[it.which()] = {timeval_of(it.interval_us()), timeval_of(it.value_us())};
  }
  for (const img::RLimit& rl : core.rlimits()) {
    if (rl.resource() < 0 || rl.resource() >= static_cast<int>(std::size(a->rlimits)))
      return error(EINVAL, "core image: unknown resource limit {}", rl.resource());
    a->rlimits[rl.resource()] = {rl.cur(), rl.max()};
    a->nr_rlimits = std::max<uint32_t>(a->nr_rlimits, rl.resource() + 1);
  }
  a->personality = core.personality();
  a->dumpable = core.has_prctl() ? core.prctl().dumpable() : 1;
  a->child_subreaper = core.prctl().child_subreaper();
  a->thp_disable = core.prctl().thp_disable();
  // PR_GET_THP_DISABLE's bit 1 is PR_SET_THP_DISABLE's arg3 flag.
  if (core.prctl().has_thp_disable_flags()) a->thp_disable_flags = core.prctl().thp_disable_flags() & ~1u;
  a->mdwe = core.prctl().mdwe();
  a->memory_merge = core.prctl().memory_merge();
  a->mlockall = core.mm().mlockall();
  a->membarrier = core.membarrier();
  return {};
}

}  // namespace

Result<OwnCreds> read_own_creds() {
  // Each read before the braces (TRY, base/result.h).
  proc::Status status = TRY(proc::read_status(getpid()));
  const auto last_cap = TRY(proc::read_cap_last_cap());
  const auto loginuid = TRY(read_own_loginuid());
  return OwnCreds{std::move(status), static_cast<uint32_t>(prctl(PR_GET_SECUREBITS)), last_cap, loginuid};
}

bool attaches_sysv(const img::Vma& v, const img::ShmemImage& shmem) {
  return v.shmem_id() != 0 && v.shmem_id() <= static_cast<uint32_t>(shmem.objects_size()) &&
         shmem.objects(static_cast<int>(v.shmem_id()) - 1).kind() == img::ShmemObject::SYSV;
}

Range sysv_attach(const img::Vma& v, const img::ShmemImage& shmem) {
  const uint64_t base = v.start() - v.pgoff();
  return {base, base + arch::page_up(shmem.objects(static_cast<int>(v.shmem_id()) - 1).size())};
}

Result<int> TreeFiles::open(const FileKey& key, const std::string& path, int flags) {
  auto it = fds_.find(key);
  if (it == fds_.end()) it = fds_.emplace(key, TRY(open_file(path, flags))).first;
  return it->second.get();
}

Result<MappingFiles> open_mapping_files(const img::MmImage& mm, const img::ShmemImage& shmem, const ShmemFds& fds,
                                        TreeFiles& files) {
  MappingFiles mf;
  for (const img::Vma& v : mm.vmas()) {
    if (v.kind() != img::Vma::FILE_PRIVATE && v.kind() != img::Vma::FILE_SHARED) continue;
    if (attaches_sysv(v, shmem)) continue;
    const bool rw = opened_rw(v);
    auto key = mapping_key(v);
    if (mf.index.count(key)) continue;
    // A shared memory object: reopened through its fd with the access the
    // mapping had (a read-only one must not become writable).
    const std::string path = v.shmem_id() ? fmt::format("/proc/self/fd/{}", fds.at(v.shmem_id()).get()) : v.path();
    const int fd = TRY_CTX(files.open(key, path, rw ? O_RDWR : O_RDONLY), "file of VMA {:#x}-{:#x} ({})", v.start(),
                           v.end(), v.path());
    mf.index[key] = mf.fds.size();
    mf.fds.push_back(fd);
  }
  return mf;
}

namespace {

// Everything in the boot region's data part. Runs twice (BootRegion's two
// passes): the same inputs must give the same allocations both times, so
// nothing here reads the system.
Result<std::vector<ThreadPlan>> lay_out_data(const TaskImages& ti, const SysvPlan& sysv, const MappingFiles& mf,
                                             const TempFds& fds, const std::vector<abi::InheritedRunArg>& inherited,
                                             const TaskPremap& premap, const OwnCreds& own_creds, BootRegion& boot) {
  const uint64_t nthreads = ti.core.threads_size();
  std::vector<ThreadPlan> threads;
  std::vector<abi::VmaArg> vmas = TRY(vma_args(ti, mf, sysv, premap, fds.first_mapping));
  uint64_t vmas_at = TRY(put(boot, vmas.data(), vmas.size()));
  uint64_t attaches_at = TRY(put(boot, sysv.attaches.data(), sysv.attaches.size()));
  std::vector<abi::PageRunArg> runs;
  for (const img::PageRun& r : ti.pagemap.runs())
    if (image::stored(r))
      runs.push_back({r.vaddr(), r.nr_pages(), r.crc32c(), premap.covers(r.vaddr(), r.nr_pages() * arch::kPageSize)});
  uint64_t runs_at = TRY(put(boot, runs.data(), runs.size()));
  uint64_t inherited_at = TRY(put(boot, inherited.data(), inherited.size()));
  std::vector<abi::MemPolicyArg> policies;
  for (const img::Vma& v : ti.mm.vmas())
    if (v.has_mempolicy())
      policies.push_back(TRY_CTX(image::from_image(v.mempolicy(), v.start(), v.end()), "core image: VMA {:#x}-{:#x}",
                                 v.start(), v.end()));
  uint64_t policies_at = TRY(put(boot, policies.data(), policies.size()));
  std::vector<abi::MoveArg> premapped;
  for (const PremapSlot& s : premap.slots) premapped.push_back({s.at, s.end - s.start, s.start});
  uint64_t premapped_at = TRY(put(boot, premapped.data(), premapped.size()));
  const auto [shared_sigs, nr_shared_sigs] = TRY(put_siginfo(boot, ti.core.shared_pending()));

  abi::RestorerArgs* a = boot.args();
  a->nr_vmas = vmas.size();
  a->vmas = vmas_at;
  a->nr_attaches = sysv.attaches.size();
  a->attaches = attaches_at;
  a->nr_runs = runs.size();
  a->runs = runs_at;
  a->nr_inherited = inherited.size();
  a->inherited = inherited_at;
  a->nr_policies = policies.size();
  a->policies = policies_at;
  a->nr_premapped = premapped.size();
  a->premapped = premapped_at;
  a->premap_start = premap.window.start;
  a->premap_end = premap.window.end;
  a->pages_fd = fds.pages;
  a->pages_off = image::kPagesDataOffset;
  a->temp_fd_base = fds.base;
  a->nr_siginfo = nr_shared_sigs;
  a->siginfo = shared_sigs;
  a->umask = ti.core.umask();

  const img::MmCore& mm = ti.core.mm();
  a->mm = {mm.start_code(), mm.end_code(), mm.start_data(), mm.end_data(), mm.start_brk(), mm.brk(),
           mm.start_stack(), mm.arg_start(), mm.arg_end(), mm.env_start(), mm.env_end(), 0,
           static_cast<uint32_t>(mm.auxv().size()), static_cast<uint32_t>(fds.exe)};
  if (mm.auxv().size() > sizeof a->auxv || mm.auxv().size() % 16)
    return error(EINVAL, "core image: auxv of {} bytes is not a valid auxiliary vector", mm.auxv().size());
  std::memcpy(a->auxv, mm.auxv().data(), mm.auxv().size());
  for (const img::SigAction& s : ti.core.sigactions()) {
    if (s.signo() < 1 || s.signo() > abi::kMaxSignals || s.signo() == SIGKILL || s.signo() == SIGSTOP) continue;
    a->sigactions[s.signo() - 1] = {s.handler(), s.flags(), s.restorer(), s.mask()};
    a->sigaction_mask |= 1ULL << (s.signo() - 1);
  }

  TRY(put_timers_and_limits(ti.core, boot));

  // Threads: ThreadArgs first (one array), then each one's signals. No
  // sigframe: ckpt loads each thread's registers, xsave and mask itself where
  // it stops before its rt_sigreturn (ptrace/completion.h), which never runs.
  std::vector<abi::ThreadArg> targs(nthreads);
  uint64_t threads_at = TRY(put(boot, targs.data(), targs.size()));
  uint32_t creds_barrier = 0;  // a thread other than the main one changes its credentials
  for (uint64_t i = 0; i < nthreads; i++) {
    const img::ThreadCore& th = ti.core.threads(i);
    ThreadPlan tp{th.tid(), arch::from_image(th.regs()), th.blocked(), threads_at + i * sizeof(abi::ThreadArg),
                  i == 0 ? boot.stack_top() : boot.thread_stack_top(i)};
    abi::ThreadArg t{};
    t.args = boot.args_addr();
    t.tid = th.tid();
    std::tie(t.siginfo, t.nr_siginfo) = TRY_CTX(put_siginfo(boot, th.pending()), "thread {}", th.tid());
    t.stack_top = tp.stack_top;
    t.ss_sp = th.altstack().sp();
    t.ss_flags = th.altstack().flags();
    t.ss_size = th.altstack().size();
    t.rseq_ptr = th.rseq().abi_pointer();
    t.rseq_len = th.rseq().abi_size();
    t.rseq_sig = th.rseq().signature();
    t.robust_list = th.robust_list();
    t.robust_len = th.robust_list_len();
    t.clear_child_tid = th.clear_child_tid();
    std::strncpy(t.comm, th.comm().c_str(), sizeof t.comm - 1);
    t.timerslack_ns = th.timerslack_ns();
    t.nr_cpu_words = static_cast<uint32_t>(std::min(th.cpu_affinity_size(), abi::kCpuMaskWords));
    for (uint32_t w = 0; w < t.nr_cpu_words; w++) t.cpu_affinity[w] = th.cpu_affinity(static_cast<int>(w));
    t.pdeathsig = th.pdeathsig();
    t.no_new_privs = th.no_new_privs();
    t.seccomp_mode = th.seccomp_mode();
    t.nr_filters = th.seccomp_filters_size();
    t.filters = TRY_CTX(put_seccomp(th, boot), "thread {}", th.tid());
    TRY_CTX(put_creds(th.creds(), own_creds, boot, &t), "thread {}", th.tid());
    for (int w = 0; w < std::min(th.speculation_size(), abi::kNumSpeculation); w++) t.speculation[w] = th.speculation(w);
    t.tsc_mode = th.has_tsc_mode() ? th.tsc_mode() : 0;
    t.mce_kill = th.has_mce_kill() ? th.mce_kill() : -1;
    t.cpuid_faulting = th.has_cpuid() && !th.cpuid();
    if (th.has_mempolicy()) {
      const abi::MemPolicyArg p = TRY_CTX(image::from_image(th.mempolicy(), 0, 0), "core image: thread {}", th.tid());
      t.mempolicy = TRY(put(boot, &p, 1));
    }
    // The thread starts with ckpt's: written only where it differs.
    if (th.has_loginuid() && th.loginuid() != own_creds.loginuid) {
      if (!own_creds.loginuid)
        return error(EOPNOTSUPP, "thread {} had loginuid {}, but this kernel has no /proc/self/loginuid (no audit)",
                     th.tid(), th.loginuid());
      t.set_loginuid = 1;
      t.loginuid = th.loginuid();
    }

    boot.write(tp.arg, &t, sizeof t);
    threads.push_back(tp);
    if (i > 0 && t.creds_change) creds_barrier = 1;
  }
  a = boot.args();
  a->nr_threads = nthreads;
  a->threads = threads_at;
  a->creds_barrier = creds_barrier;
  return threads;
}

}  // namespace

Result<Plan> build_plan(const TaskImages& ti, const img::ShmemImage& shmem, const std::vector<proc::MapEntry>& own,
                        const MappingFiles& mf, const TempFds& fds,
                        const std::vector<abi::InheritedRunArg>& inherited, const TaskPremap& premap,
                        const OwnCreds& own_creds, BootDataPool& pool) {
  const uint64_t blob_size = pie::restorer::k_blob_end;
  const uint64_t nthreads = ti.core.threads_size();
  SpecialVmas sp = TRY(plan_specials(ti.mm, own));
  const SysvPlan sysv = plan_attaches(ti.mm, shmem);

  // Pass 1 learns the exact size of the data, pass 2 writes it in place.
  BootRegion counting = BootRegion::counting(blob_size, nthreads);
  TRY(lay_out_data(ti, sysv, mf, fds, inherited, premap, own_creds, counting));
  std::vector<Range> busy;
  for (const img::Vma& v : ti.mm.vmas()) busy.push_back({v.start(), v.end()});
  for (const proc::MapEntry& m : own) busy.push_back({m.start, m.end});
  // An attach is made whole, holes included, before the rest is mapped.
  for (const abi::SysvAttachArg& at : sysv.attaches) busy.push_back({at.base, at.base + at.size});
  uint64_t at = TRY(find_hole(busy, BootRegion::size_for(blob_size, counting.data_used(), nthreads)));
  Plan p{TRY(BootRegion::in_pool(pool, at, blob_size, counting.data_used(), nthreads)), {}};
  BootRegion& boot = p.boot;
  p.threads = TRY(lay_out_data(ti, sysv, mf, fds, inherited, premap, own_creds, boot));

  abi::RestorerArgs* a = boot.args();
  a->version = abi::kRestorerAbiVersion;
  a->page_size = arch::kPageSize;
  a->crc32c_hw = crc32c_hw();
  a->boot_start = boot.start();
  a->boot_end = boot.end();
  a->bounce = boot.bounce();

  std::vector<Range> keep = sp.current;
  keep.push_back({boot.start(), boot.end()});
  if (!premap.slots.empty()) keep.push_back(premap.window);
  std::sort(keep.begin(), keep.end(), [](const Range& x, const Range& y) { return x.start < y.start; });
  CHECK(keep.size() <= std::size(a->keep));
  a->nr_keep = keep.size();
  for (size_t i = 0; i < keep.size(); i++) a->keep[i][0] = keep[i].start, a->keep[i][1] = keep[i].end;
  busy.push_back({boot.start(), boot.end()});
  auto moves = TRY(plan_special_moves(sp.moves, busy));
  if (moves.size() > std::size(a->moves)) return fail("too many special mappings to move");
  a->nr_moves = moves.size();
  for (size_t i = 0; i < moves.size(); i++) a->moves[i] = {moves[i].from.start, moves[i].from.len(), moves[i].to};

  return p;
}

}  // namespace ckpt::restore
