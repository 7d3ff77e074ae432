#include "files/files.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <ranges>
#include <set>
#include <unordered_map>

#include "base/fs.h"
#include "files/locks.h"
#include "files/probe.h"
#include "proc/record.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {

// An fd of a task, in the order kcmp(KCMP_FILE) gives open file
// descriptions: the kernel compares their (obfuscated, bijectively) struct
// file pointers and answers 0 (same), 1 (less) or 2 (greater), a total order
// that is the same whichever tasks hold them. Sorting by (device, inode,
// offset, flags, that order) puts the fds that share a description next to
// each other: O(N log N) kcmp calls at most, and only between fds on one
// inode at one offset with the same flags.
struct FdRef {
  const FdProbe* p;
  size_t task;  // index in the tasks
  int entry;    // index in its table
};

class ByDescription {
 public:
  // Negative, zero or positive, as the descriptions of a and b compare.
  int compare(const FdRef& a, const FdRef& b) {
    const FdProbe &x = *a.p, &y = *b.p;
    if (x.st.st_dev != y.st.st_dev) return x.st.st_dev < y.st.st_dev ? -1 : 1;
    if (x.st.st_ino != y.st.st_ino) return x.st.st_ino < y.st.st_ino ? -1 : 1;
    // One description has one offset and one set of status flags (the task
    // is frozen): fds that differ in them differ, without asking the kernel.
    if (x.info.pos != y.info.pos) return x.info.pos < y.info.pos ? -1 : 1;
    const uint32_t fa = x.info.flags, fb = y.info.flags;  // without O_CLOEXEC, the fd's own
    if (fa != fb) return fa < fb ? -1 : 1;
    // The runs ask again what the sort asked (a dup next to its fd).
    const bool swapped = std::less<const FdProbe*>()(b.p, a.p);
    const std::pair key{swapped ? b.p : a.p, swapped ? a.p : b.p};
    auto [it, asked] = kcmp_.try_emplace(key, 0);
    if (asked) {
      constexpr int kKcmpFile = 0;
      const FdProbe &l = *key.first, &r = *key.second;
      const long got = syscall(SYS_kcmp, l.pid, r.pid, kKcmpFile, l.fd, r.fd);
      if (got < 0 && !failed_)
        failed_ = Error{errno, fmt::format("kcmp of fd {} of pid {} and fd {} of pid {}", l.fd, l.pid, r.fd, r.pid)};
      // On failure the sort goes on safely (a merge); its result is thrown away.
      it->second = got <= 0 ? 0 : got == 1 ? -1 : 1;
    }
    return swapped ? -it->second : it->second;
  }

  // Stable (equal descriptions keep their order: the first fd of a run is the
  // lowest one of the earliest task) and memory-safe whatever the kernel
  // answers: a bottom-up merge sort.
  Result<void> sort(std::vector<FdRef>& v) {
    std::vector<FdRef> tmp(v.size());
    for (size_t w = 1; w < v.size(); w *= 2) {
      for (size_t lo = 0; lo < v.size(); lo += 2 * w) {
        const size_t mid = std::min(lo + w, v.size()), hi = std::min(lo + 2 * w, v.size());
        std::merge(v.begin() + lo, v.begin() + mid, v.begin() + mid, v.begin() + hi, tmp.begin() + lo,
                   [this](const FdRef& a, const FdRef& b) { return compare(a, b) < 0; });
      }
      v.swap(tmp);
    }
    if (failed_) return std::unexpected(*failed_);
    return {};
  }

  // The runs [first, last) of sorted fds on one description.
  Result<std::vector<std::pair<size_t, size_t>>> runs(const std::vector<FdRef>& v) {
    std::vector<std::pair<size_t, size_t>> out;
    for (size_t i = 0; i < v.size();) {
      size_t j = i + 1;
      while (j < v.size() && compare(v[j - 1], v[j]) == 0) j++;
      out.emplace_back(i, j);
      i = j;
    }
    if (failed_) return std::unexpected(*failed_);
    return out;
  }

 private:
  struct PairHash {
    size_t operator()(const std::pair<const FdProbe*, const FdProbe*>& k) const {
      return std::hash<const void*>()(k.first) * 31 + std::hash<const void*>()(k.second);
    }
  };
  std::unordered_map<std::pair<const FdProbe*, const FdProbe*>, int, PairHash> kcmp_;  // by (lower, higher) address
  std::optional<Error> failed_;
};

// Who gets SIGIO and SIGURG for it (F_SETOWN), and with which signal.
Result<void> collect_owner(const FdProbe& p, img::FileDesc* d) {
  if (p.info.flags & O_PATH) return {};
  UniqueFd f = TRY(take_file(p));
  f_owner_ex own{};
  if (fcntl(f.get(), F_GETOWN_EX, &own) < 0) return sys_error("F_GETOWN_EX");
  if (own.pid != 0) {
    if (own.type == F_OWNER_TID)
      return error(EOPNOTSUPP, "its SIGIO goes to thread {} (F_SETOWN_EX F_OWNER_TID): not supported yet", own.pid);
    // dnotify (F_NOTIFY) makes the task a directory's owner, and its watch
    // shows nowhere ckpt could read it (no fdinfo line): restored, the
    // directory would be owned but watch nothing.
    if (S_ISDIR(p.st.st_mode))
      return error(EOPNOTSUPP, "the directory has an owner for SIGIO (pid {}), as a dnotify watch (F_NOTIFY) "
                   "gives it, and a dnotify watch can't be read to restore it: not supported", own.pid);
    d->set_owner(own.type == F_OWNER_PGRP ? -own.pid : own.pid);
  }
  const int sig = fcntl(f.get(), F_GETSIG);
  if (sig < 0) return sys_error("F_GETSIG");
  d->set_owner_signal(sig);
  return {};
}

}  // namespace

Result<UniqueFd> take_file(const FdProbe& p) { return TRY_CTX(take_task_fd(p.pidfd, p.pid, p.fd), "{}", p.link); }

Result<void> refuse_unread_events(const FdProbe& p) {
  UniqueFd own = TRY(take_file(p));
  int queued = 0;
  if (ioctl(own.get(), FIONREAD, &queued) < 0) return sys_error("FIONREAD");
  if (queued > 0)
    return error(EOPNOTSUPP, "{} bytes of events not yet read, which restore could not queue again: not supported",
                 queued);
  return {};
}

namespace {

// The kind that claims the fd `p` (probe.h).
Result<const Kind*> claim(const FdProbe& p, const DumpFlags& flags) {
  auto claims = [&](const Kind* k) { return k->claims(p, flags); };
  auto kind = std::ranges::find_if(kinds(), claims);
  if (kind != kinds().end()) return *kind;
  const bool tty = S_ISCHR(p.st.st_mode) && is_tty_dev(p.st.st_rdev);
  return error(EOPNOTSUPP, "fd {} is {}: this kind of file is not supported yet{}", p.fd, p.link,
               tty ? " (a terminal: use --shell-job)" : "");
}

}  // namespace

Result<TaskFds> scan_fds(pid_t pid, const DumpFlags& flags) {
  TaskFds out;
  out.pid = pid;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return sys_error("pid {}: pidfd_open", pid);
  out.pidfd = UniqueFd(pidfd);
  out.probes = TRY(probe_fds(pid, pidfd));
  out.kinds.reserve(out.probes.size());
  for (const FdProbe& p : out.probes) {
    out.kinds.push_back(TRY(claim(p, flags)));
    img::FdEntry* e = out.table.add_fds();
    e->set_fd(p.fd);
    e->set_cloexec(p.cloexec.value_or(false));  // if not known, the parasite's to tell (dump.cc)
    // Its POSIX locks are the task's; flock and OFD locks the description's.
    for (img::FileLock& l : TRY_CTX(parse_locks(p.fdinfo), "fd {} ({})", p.fd, p.link))
      if (l.kind() == img::FileLock::POSIX) *e->add_locks() = std::move(l);
  }
  return out;
}

Result<img::FileDescs> collect_descriptions(std::span<TaskFds* const> tasks, const CollectContext& ctx) {
  std::vector<FdRef> refs;
  for (size_t t = 0; t < tasks.size(); t++)
    for (size_t i = 0; i < tasks[t]->probes.size(); i++) {
      tasks[t]->probes[i].ctx = &ctx;
      refs.push_back({&tasks[t]->probes[i], t, static_cast<int>(i)});
    }
  ByDescription by;
  TRY_CTX(by.sort(refs), "find the files the tasks share");
  const auto runs = TRY_CTX(by.runs(refs), "find the files the tasks share");
  img::FileDescs out;
  std::vector<const FdProbe*> firsts;
  for (const auto& [first, last] : runs) {
    const FdRef& f = refs[first];
    const Kind* kind = tasks[f.task]->kinds[f.entry];
    auto where = [&] { return fmt::format("pid {}: fd {} ({})", f.p->pid, f.p->fd, f.p->link); };
    img::FileDesc* d = out.add_descs();
    d->set_id(out.descs_size());
    d->set_flags(f.p->info.flags);
    d->set_pos(f.p->info.pos);
    TRY_CTX(kind->collect(*f.p, d), "{}", where());
    TRY_CTX(collect_owner(*f.p, d), "{}", where());
    for (img::FileLock& l : TRY_CTX(parse_locks(f.p->fdinfo), "{}", where()))
      if (l.kind() != img::FileLock::POSIX) *d->add_locks() = std::move(l);
    if (!kind->describes(d->kind_case()))
      return error(EINVAL, "pid {}: fd {}: the {} kind did not describe it", f.p->pid, f.p->fd, kind->name());
    firsts.push_back(f.p);
    for (size_t k = first; k < last; k++) tasks[refs[k].task]->table.mutable_fds(refs[k].entry)->set_desc(d->id());
  }
  // What refers to other descriptions, now that all are numbered.
  class Index final : public FdIndex {
   public:
    explicit Index(std::span<TaskFds* const> tasks) : tasks_(tasks) {}
    uint32_t desc_of(pid_t pid, int fd) const override {
      for (const TaskFds* t : tasks_) {
        if (t->pid != pid) continue;
        const auto& fds = t->table.fds();
        auto it = std::lower_bound(fds.begin(), fds.end(), fd, [](const img::FdEntry& e, int n) { return e.fd() < n; });
        return it != fds.end() && it->fd() == fd ? it->desc() : 0;
      }
      return 0;
    }

   private:
    std::span<TaskFds* const> tasks_;
  } index(tasks);
  for (int i = 0; i < out.descs_size(); i++) {
    const FdProbe& p = *firsts[i];
    TRY_CTX(kind_of(out.descs(i))->link(p, index, out.mutable_descs(i)), "pid {}: fd {} ({})", p.pid, p.fd, p.link);
  }
  // Across descriptions, kind by kind.
  for (const Kind* kind : kinds()) {
    std::vector<const img::FileDesc*> descs;
    std::vector<const FdProbe*> probes;
    for (int i = 0; i < out.descs_size(); i++)
      if (out.descs(i).kind_case() == kind->tag()) {
        descs.push_back(&out.descs(i));
        probes.push_back(firsts[i]);
      }
    if (!descs.empty()) TRY(kind->check(descs, probes));
  }
  return out;
}

namespace {

// ckpt's own fds while it restores (stdio, log, images directory, each
// task's pipe ends): the slack above what the task itself needs.
constexpr int kCkptOwnFds = 24;
// Per task: status and go pipes (both ends in ckpt), pages image, executable.
constexpr int kTempFdsPerTask = 6;

// What open() can't say: O_NONBLOCK, O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME
// (F_SETFL takes these and ignores the rest), and the signal for SIGIO.
Result<void> set_status(int fd, const img::FileDesc& d) {
  if (d.kind_case() == img::FileDesc::kTerminal) return {};  // the restoring terminal's own
  if (d.flags() & O_PATH) return {};                          // no status to set
  const int now = fcntl(fd, F_GETFL);
  if (now < 0) return sys_error("F_GETFL");
  constexpr int kSettable = O_NONBLOCK | O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME;
  const int want = (now & ~kSettable) | (static_cast<int>(d.flags()) & kSettable);
  if (want != now && fcntl(fd, F_SETFL, want) < 0) return sys_error("set status flags {:#o}", want & kSettable);
  if (d.owner_signal() != 0 && fcntl(fd, F_SETSIG, d.owner_signal()) < 0)
    return sys_error("F_SETSIG {}", d.owner_signal());
  return {};
}

// A new description of `d`, with its status flags and its flock and OFD locks.
Result<UniqueFd> open_description(const img::FileDesc& d, const Kind& kind, OpenState& state) {
  UniqueFd fd = TRY(kind.open(d, state));
  TRY(set_status(fd.get(), d));
  for (const img::FileLock& l : d.locks()) TRY(take_lock(fd.get(), l));
  return fd;
}

}  // namespace

int restore_fd_slots(const img::Files& files, const img::MmImage& mm) {
  int top = -1;
  for (const img::FdEntry& e : files.fds()) top = std::max(top, e.fd());
  std::set<std::pair<std::string, bool>> mapped;  // as restore opens them: one per file and mode
  for (const img::Vma& v : mm.vmas())
    if (v.kind() == img::Vma::FILE_PRIVATE || v.kind() == img::Vma::FILE_SHARED)
      mapped.emplace(v.path(), v.kind() == img::Vma::FILE_SHARED);
  return top + 1 + kTempFdsPerTask + static_cast<int>(mapped.size()) + kCkptOwnFds;
}

int restorer_fd_slots(const img::FileDescs& descs, int tasks) {
  // While they are opened, a pipe's holder and the end of its pipe(2) no
  // description took yet (pipe.cc): two more at most per description.
  const auto pipes = std::ranges::count_if(descs.descs(), [](const img::FileDesc& d) { return d.has_pipe(); });
  // A TCP connection in repair mode: one more, held until the tree runs.
  const auto repaired = std::ranges::count_if(descs.descs(), [](const img::FileDesc& d) { return d.inet().has_tcp(); });
  return descs.descs_size() + 2 * static_cast<int>(pipes) + static_cast<int>(repaired) + tasks * kTempFdsPerTask +
         kCkptOwnFds;
}

Result<NofileLimit> read_nofile_limit(pid_t pid) {
  const std::string path = fmt::format("/proc/{}/limits", pid);
  const std::string text = TRY(proc::read_record(path));
  for (std::string_view line : std::views::split(text, '\n') | std::views::transform([](auto r) {
                                 return std::string_view(r.begin(), r.end());
                               })) {
    if (!line.starts_with("Max open files")) continue;
    // "Max open files            1024                 524288               files"
    char soft[32] = "", hard[32] = "";
    if (sscanf(std::string(line.substr(14)).c_str(), "%31s %31s", soft, hard) != 2)
      return error(EINVAL, "{}: cannot parse \"{}\"", path, line);
    auto value = [](std::string_view v) { return v == "unlimited" ? RLIM_INFINITY : strtoull(v.data(), nullptr, 10); };
    return NofileLimit{value(soft), value(hard)};
  }
  return error(EINVAL, "{}: no \"Max open files\" line", path);
}

Result<void> check_restore_fits(pid_t pid, const img::Files& files, const img::MmImage& mm) {
  const NofileLimit limit = TRY(read_nofile_limit(pid));
  const int need = restore_fd_slots(files, mm);
  const int top = files.fds_size() ? files.fds(files.fds_size() - 1).fd() : -1;
  if (limit.hard != RLIM_INFINITY && limit.hard < static_cast<uint64_t>(need))
    return error(EMFILE, "pid {}: its restore needs {} fd slots (its fds up to {}, then {} for ckpt's temporary "
                 "fds) but its RLIMIT_NOFILE hard limit is {}: raise it (prlimit --nofile) and dump again",
                 pid, need, top, need - top - 1, limit.hard);
  return {};
}

Result<PreparedFds> prepare_fds(const img::FileDescs& descs,
                                std::span<const std::pair<pid_t, const img::Files*>> tasks,
                                const std::map<uint32_t, UniqueFd>& shmem, bool check_files, bool tcp_close) {
  PreparedFds out;
  out.open.reserve(descs.descs_size());
  OpenState state(shmem, check_files);
  state.tcp_close = tcp_close;
  state.repaired = &out.repaired;
  for (const Kind* kind : kinds()) {
    std::vector<const img::FileDesc*> of_kind;
    for (const img::FileDesc& d : descs.descs())
      if (d.kind_case() == kind->tag()) of_kind.push_back(&d);
    if (!of_kind.empty()) TRY_CTX(kind->prepare(of_kind, state), "restore the {}s", kind->name());
  }
  for (const img::FileDesc& d : descs.descs()) {
    const Kind* kind = kind_of(d);
    if (!kind) return error(EINVAL, "file description {}: unknown kind {}", d.id(), static_cast<int>(d.kind_case()));
    if (kind->needs_tasks()) {
      // Its number, held until open_late puts the description there.
      int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return sys_error("file description {} ({}): open /dev/null to hold its place", d.id(), kind->name());
      out.open.emplace_back(fd);
      out.late.push_back(d.id());
      continue;
    }
    out.open.push_back(TRY_CTX(open_description(d, *kind, state), "file description {} ({})", d.id(), kind->name()));
  }
  out.tasks.resize(tasks.size());
  std::vector<bool> stepped(out.open.size());  // its in-task steps are planned
  for (size_t j = 0; j < tasks.size(); j++) {
    const auto& [pid, files] = tasks[j];
    TaskFdPlan& plan = out.tasks[j];
    plan.fds.reserve(files->fds_size());
    for (const img::FdEntry& e : files->fds()) {
      if (e.desc() == 0 || e.desc() > out.open.size())
        return error(EINVAL, "pid {} fd {}: file description {}, which the images lack", pid, e.fd(), e.desc());
      const bool late = std::ranges::find(out.late, e.desc()) != out.late.end();
      plan.fds.push_back({e.fd(), e.cloexec(), out.open[e.desc() - 1].get(), late});
      for (const img::FileLock& l : e.locks())
        plan.steps.push_back({.op = InTaskStep::Op::PosixLock, .fd = e.fd(), .write = l.write(), .start = l.start(),
                              .len = l.len()});
      if (stepped[e.desc() - 1]) continue;
      stepped[e.desc() - 1] = true;
      const img::FileDesc& d = descs.descs(static_cast<int>(e.desc()) - 1);
      TRY_CTX(kind_of(d)->in_task(d, e.fd(), *files, &plan.steps), "pid {} fd {}", pid, e.fd());
    }
  }
  return out;
}

Result<void> open_late(const img::FileDescs& descs, PreparedFds& fds) {
  const std::map<uint32_t, UniqueFd> no_shmem;  // no late kind maps shared memory
  OpenState state(no_shmem, false);
  for (uint32_t id : fds.late) {
    const img::FileDesc& d = descs.descs(static_cast<int>(id) - 1);
    const Kind& kind = *kind_of(d);
    UniqueFd fd = TRY_CTX(open_description(d, kind, state), "file description {} ({})", id, kind.name());
    if (dup3(fd.get(), fds.open[id - 1].get(), O_CLOEXEC) < 0)
      return sys_error("file description {} ({}): put it at fd {}", id, kind.name(), fds.open[id - 1].get());
  }
  return {};
}

Result<void> set_owners(const img::FileDescs& descs, const PreparedFds& fds,
                        const std::function<pid_t(pid_t)>& outside) {
  for (const img::FileDesc& d : descs.descs()) {
    if (d.owner() == 0) continue;
    // A group's id is its leader's pid.
    f_owner_ex own{d.owner() < 0 ? F_OWNER_PGRP : F_OWNER_PID, outside(d.owner() < 0 ? -d.owner() : d.owner())};
    if (fcntl(fds.open[d.id() - 1].get(), F_SETOWN_EX, &own) < 0)
      return sys_error("file description {}: F_SETOWN {}", d.id(), d.owner());
  }
  return {};
}

}  // namespace ckpt::files
