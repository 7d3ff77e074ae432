// ckpt check: try, for real, each kernel feature ckpt uses, on throwaway
// children or on ckpt itself, and say in plain words what is there and what a
// missing one costs. Exit status 0 when everything dump and restore need is
// present, 1 otherwise.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "arch/x86_64/page.h"
#include "arch/x86_64/uapi.h"
#include "base/fs.h"
#include "base/mapping.h"
#include "base/log.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "cli/commands/commands.h"
#include "net/netlock.h"
#include "proc/maps.h"
#include "proc/text.h"
#include "ptrace/completion.h"
#include "ptrace/tracee.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

namespace ckpt::cli {

namespace {

enum class Need { Required, Optional, NotNeeded, Info };

struct Row {
  Row(std::string f, Need n) : feature(std::move(f)), need(n) {}
  std::string feature;
  Need need = Need::Optional;
  bool present = false;
  std::string detail;  // present: what was seen; missing: what it costs
  std::string why;     // missing: the error that showed it
};

constexpr auto kStopTimeout = std::chrono::seconds(5);

Tracee::Clock::time_point deadline() { return Tracee::Clock::now() + kStopTimeout; }

// A hint for the errno a probe most often meets, or "".
std::string hint(int err, std::string_view eperm, std::string_view enosys) {
  if (err == EPERM || err == EACCES) return std::string(eperm);
  if (err == ENOSYS || err == ENOTTY || err == EIO) return std::string(enosys);
  return "";
}

std::string why_of(const Error& e, std::string_view eperm = "", std::string_view enosys = "") {
  std::string h = hint(e.err, eperm, enosys);
  return h.empty() ? e.str() : fmt::format("{}; {}", e.str(), h);
}

// A child that sleeps in pause() until it is killed; killed and reaped when
// this object goes. Declare it before any Tracee of it, so the Tracee goes
// first.
class PausedChild {
 public:
  static Result<PausedChild> spawn() {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return sys_error("fork a probe child");
    if (pid == 0) {
      // Only async-signal-safe calls from here on.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      if (fcntl(0, F_GETFD) < 0) open("/dev/null", O_RDONLY);  // fd 0 for the pidfd_getfd probe
      for (;;) pause();
    }
    return PausedChild(pid);
  }
  PausedChild(PausedChild&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
  PausedChild& operator=(PausedChild&&) = delete;
  ~PausedChild() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, __WALL) < 0 && errno == EINTR) {
    }
  }
  pid_t pid() const { return pid_; }

 private:
  explicit PausedChild(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

// Brings a seized, running task to a PTRACE_EVENT_STOP.
Result<void> interrupt_and_wait(Tracee& t) {
  TRY(t.interrupt());
  Stop s = TRY(t.wait(deadline()));
  if (!s.stopped() || s.event() != PTRACE_EVENT_STOP)
    return fail("task {}: expected a ptrace interrupt stop, got: {}", t.tid(), s.describe());
  return {};
}

// --- probes --------------------------------------------------------------------

Row probe_ptrace() {
  Row row{"ptrace seize/interrupt", Need::Required};
  auto r = []() -> Result<void> {
    PausedChild c = TRY(PausedChild::spawn());
    Tracee t = TRY(Tracee::seize(c.pid()));
    return interrupt_and_wait(t);
  }();
  row.present = r.has_value();
  if (r) {
    row.detail = "a child stopped at PTRACE_EVENT_STOP";
  } else {
    row.detail = "ckpt cannot stop and inspect tasks: no dump, no restore";
    row.why = why_of(r.error(), "ptrace forbidden: kernel.yama.ptrace_scope, seccomp, or no CAP_SYS_PTRACE");
  }
  return row;
}

// struct clone_args up to set_tid_size and cgroup (CLONE_ARGS_SIZE_VER2, 5.7);
// declared here because glibc 2.36 has no clone3 and <linux/sched.h> clashes
// with <sched.h>.
struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
      cgroup;
};
static_assert(sizeof(CloneArgs) == 88);

// clone3() a child with PID `want` that exits at once; returns its PID.
Result<pid_t> clone3_with_pid(pid_t want) {
  CloneArgs a{};
  a.exit_signal = SIGCHLD;
  a.set_tid = reinterpret_cast<uint64_t>(&want);
  a.set_tid_size = 1;
  long r = syscall(SYS_clone3, &a, sizeof a);
  if (r == 0) _exit(0);  // the child: a copy of us, on our stack; leave at once
  if (r < 0) return sys_error("clone3 with set_tid {}", want);
  return static_cast<pid_t>(r);
}

Row probe_clone3_set_tid() {
  Row row{"clone3 with set_tid", Need::Required};
  auto r = []() -> Result<pid_t> {
    long last = 0, max = 32768;
    if (auto s = read_file("/proc/sys/kernel/ns_last_pid")) last = std::strtol(s->c_str(), nullptr, 10);
    else last = getpid();
    if (auto s = read_file("/proc/sys/kernel/pid_max")) max = std::strtol(s->c_str(), nullptr, 10);
    constexpr long kReserved = 300;  // the kernel's RESERVED_PIDS: no wrap below it
    Error last_err{0, "no free PID found above ns_last_pid"};
    for (long i = 0, tries = 0; i < 1000 && tries < 8; i++) {
      long want = last + 50 + i;
      if (want >= max) want = kReserved + (want - max);
      if (access(fmt::format("/proc/{}", want).c_str(), F_OK) == 0) continue;
      tries++;
      auto got = clone3_with_pid(static_cast<pid_t>(want));
      if (!got) {
        if (got.error().err == EEXIST) {  // taken meanwhile: try the next
          last_err = got.error();
          continue;
        }
        return std::unexpected(got.error());
      }
      int status = 0;
      while (waitpid(*got, &status, 0) < 0 && errno == EINTR) {
      }
      if (*got != want) return fail("clone3 asked for PID {} but the child got PID {}", want, *got);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fail("the clone3 child {} did not exit cleanly: status {:#x}", *got, status);
      return *got;
    }
    return std::unexpected(last_err);
  }();
  row.present = r.has_value();
  if (r) {
    row.detail = fmt::format("a child got PID {} as asked", *r);
  } else {
    row.detail = "restore cannot give tasks their original PIDs";
    row.why = why_of(r.error(), "needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over the PID namespace",
                     "clone3 needs Linux 5.3, set_tid 5.5");
  }
  return row;
}

Row probe_hw_breakpoints() {
  Row row{"hardware breakpoints", Need::Optional};
  BreakpointSupport b = probe_breakpoints();
  row.present = b.usable;
  if (b.usable) {
    row.detail = "restore completes at a breakpoint (3 ptrace stops)";
  } else {
    row.detail = "restore completes by tracing syscalls (slower, more ptrace stops)";
    row.why = b.why_not;
  }
  return row;
}

Row probe_rseq() {
  Row row{"ptrace rseq configuration", Need::Required};
  auto r = []() -> Result<RseqConfig> {
    PausedChild c = TRY(PausedChild::spawn());
    Tracee t = TRY(Tracee::seize(c.pid()));
    TRY(interrupt_and_wait(t));
    return t.rseq();
  }();
  row.present = r.has_value();
  if (r) {
    row.detail = r->abi_pointer
                     ? fmt::format("a child's rseq area: {} bytes at {:#x}, signature {:#x}", r->abi_size,
                                   r->abi_pointer, r->signature)
                     : std::string("works (the child had no rseq area registered)");
  } else {
    row.detail = "tasks that registered rseq (glibc 2.35+ does it in every thread) cannot be dumped";
    row.why = why_of(r.error(), "", "PTRACE_GET_RSEQ_CONFIGURATION needs Linux 5.13");
  }
  return row;
}

Row probe_pidfd() {
  Row row{"pidfd_open + pidfd_getfd", Need::Required};
  auto r = []() -> Result<void> {
    PausedChild c = TRY(PausedChild::spawn());
    long pfd = syscall(SYS_pidfd_open, c.pid(), 0);
    if (pfd < 0) return sys_error("pidfd_open of task {}", c.pid());
    UniqueFd pidfd(static_cast<int>(pfd));
    // The child may still be between fork and pause(), setting up its fd 0.
    UniqueFd fd;
    for (int i = 0; i < 100; i++) {
      long f = syscall(SYS_pidfd_getfd, pidfd.get(), 0, 0);
      if (f >= 0) {
        fd.reset(static_cast<int>(f));
        break;
      }
      if (errno != EBADF) return sys_error("pidfd_getfd of fd 0 of task {}", c.pid());
      usleep(1000);
    }
    if (!fd) return error(EBADF, "pidfd_getfd of fd 0 of task {}", c.pid());
    struct stat got, want;
    if (fstat(fd.get(), &got) < 0) return sys_error("fstat the fd taken from task {}", c.pid());
    if (stat(fmt::format("/proc/{}/fd/0", c.pid()).c_str(), &want) == 0 &&
        (got.st_dev != want.st_dev || got.st_ino != want.st_ino))
      return fail("pidfd_getfd of task {} returned another file than its fd 0", c.pid());
    return {};
  }();
  row.present = r.has_value();
  if (r) {
    row.detail = "took fd 0 of a child";
  } else {
    row.detail = "dump takes the parasite's memfd and socket from the task with it";
    row.why = why_of(r.error(), "", "pidfd_open needs Linux 5.3, pidfd_getfd 5.6");
  }
  return row;
}

// Two rows: userfaultfd itself, and its WP_ASYNC feature.
std::vector<Row> probe_userfaultfd() {
  Row uffd{"userfaultfd", Need::Optional};
  Row wp{"userfaultfd WP_ASYNC", Need::Optional};
  auto r = []() -> Result<uint64_t> {
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    if (fd < 0 && errno == EINVAL) fd = syscall(SYS_userfaultfd, O_CLOEXEC);  // before 5.11
    if (fd < 0) return sys_error("userfaultfd");
    UniqueFd f(static_cast<int>(fd));
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = 0;  // ask for nothing: the answer lists everything offered
    if (ioctl(f.get(), UFFDIO_API, &api) < 0) return sys_error("ioctl UFFDIO_API");
    return api.features;
  }();
  uffd.present = r.has_value();
  if (r) {
    uffd.detail = fmt::format("features offered: {:#x}", *r);
    wp.present = (*r & uapi::kUffdFeatureWpAsync) != 0;
    if (wp.present) {
      wp.detail = "offered: written pages can be tracked without a fault handler";
    } else {
      wp.detail = "no WP_ASYNC dirty tracking";
      wp.why = "the kernel does not offer UFFD_FEATURE_WP_ASYNC (needs Linux 6.7)";
    }
  } else {
    uffd.detail = "no lazy restore / no WP_ASYNC dirty tracking";
    uffd.why = why_of(r.error(), "vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE", "needs CONFIG_USERFAULTFD");
    wp.detail = "no WP_ASYNC dirty tracking";
    wp.why = "userfaultfd is unavailable";
  }
  return {uffd, wp};
}

// A private anonymous mapping of `pages` pages, by page.
class ScratchMapping {
 public:
  static Result<ScratchMapping> make(size_t pages) { return ScratchMapping(TRY(Mapping::anonymous(pages * arch::kPageSize))); }
  char* page(size_t i) const { return m_.data() + i * arch::kPageSize; }
  uint64_t addr(size_t i) const { return reinterpret_cast<uint64_t>(page(i)); }
  void touch(size_t i) const { *static_cast<volatile char*>(page(i)) = 1; }

 private:
  explicit ScratchMapping(Mapping m) : m_(std::move(m)) {}
  Mapping m_;
};

Row probe_pagemap_scan() {
  Row row{"PAGEMAP_SCAN ioctl", Need::Optional};
  auto r = []() -> Result<void> {
    ScratchMapping m = TRY(ScratchMapping::make(4));
    m.touch(0);
    m.touch(2);
    UniqueFd pm = TRY(open_file("/proc/self/pagemap", O_RDONLY));
    uapi::page_region vec[4]{};
    uapi::pm_scan_arg arg{};
    arg.size = sizeof arg;
    arg.start = m.addr(0);
    arg.end = m.addr(4);
    arg.vec = reinterpret_cast<uint64_t>(vec);
    arg.vec_len = 4;
    arg.category_mask = uapi::kPageIsPresent;
    arg.return_mask = uapi::kPageIsPresent;
    int n = ioctl(pm.get(), uapi::kPagemapScan, &arg);
    if (n < 0) return sys_error("ioctl PAGEMAP_SCAN on /proc/self/pagemap");
    // Pages 0 and 2 were touched, 1 and 3 not: two one-page present regions.
    auto is = [&](int i, size_t page) {
      return vec[i].start == m.addr(page) && vec[i].end == m.addr(page + 1) &&
             (vec[i].categories & uapi::kPageIsPresent);
    };
    if (n != 2 || !is(0, 0) || !is(1, 2))
      return fail("PAGEMAP_SCAN answered {} regions, not the two touched pages (first: {:#x}-{:#x} {:#x})", n,
                  vec[0].start, vec[0].end, vec[0].categories);
    return {};
  }();
  row.present = r.has_value();
  if (r) {
    row.detail = "found exactly the 2 touched pages of a 4-page mapping";
  } else {
    row.detail = "present pages are found by reading /proc/PID/pagemap, 8 bytes per page";
    row.why = why_of(r.error(), "", "PAGEMAP_SCAN needs Linux 6.7");
  }
  return row;
}

Row probe_soft_dirty() {
  Row row{"soft-dirty bits", Need::NotNeeded};
  constexpr std::string_view kNotUsed = "not used: dirty tracking would use userfaultfd WP_ASYNC";
  auto r = []() -> Result<bool> {
    ScratchMapping m = TRY(ScratchMapping::make(1));
    m.touch(0);
    UniqueFd cr = TRY(open_file("/proc/self/clear_refs", O_WRONLY));
    TRY_CTX(write_all(cr.get(), "4", 1), "/proc/self/clear_refs");
    m.touch(0);  // dirties the page again: bit 55 is set, if the kernel tracks it
    UniqueFd pm = TRY(open_file("/proc/self/pagemap", O_RDONLY));
    uint64_t entry = 0;
    size_t got = TRY(pread_full(pm.get(), &entry, sizeof entry, static_cast<off_t>(m.addr(0) / arch::kPageSize * 8)));
    if (got != sizeof entry) return fail("short read of /proc/self/pagemap");
    return (entry & uapi::kPmSoftDirty) != 0;
  }();
  row.present = r.has_value() && *r;
  if (row.present) {
    row.detail = fmt::format("present ({})", kNotUsed);
  } else {
    row.detail = fmt::format("absent ({})", kNotUsed);
    if (!r) row.why = r.error().str();
  }
  return row;
}

Row probe_vdso() {
  Row row{"vDSO layout", Need::Info};
  auto maps = proc::read_maps(getpid());
  if (!maps) {
    row.detail = "unknown";
    row.why = maps.error().str();
    return row;
  }
  std::string out;
  for (std::string_view name : {"[vdso]", "[vvar]", "[vvar_vclock]"}) {
    uint64_t size = 0;
    for (const auto& e : *maps)
      if (e.path == name) size += e.end - e.start;
    if (!out.empty()) out += ", ";
    out += size ? fmt::format("{} {} KiB", name, size / 1024) : fmt::format("{} absent", name);
  }
  row.present = true;
  row.detail = out;
  return row;
}

// The parasite runs from a memfd mapping: vm.memfd_noexec=2 forbids that.
Row probe_memfd_exec() {
  Row row{"executable memfd", Need::Required};
  auto v = read_file("/proc/sys/vm/memfd_noexec");
  if (!v) {
    row.present = true;
    row.detail = "no vm.memfd_noexec (before Linux 6.3): every memfd can be mapped executable";
    return row;
  }
  std::string_view text = *v;
  int level = -1;
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!proc::parse_num(text, 10, level)) {
    row.detail = fmt::format("vm.memfd_noexec reads \"{}\", not a number", text);
    row.why = "cannot tell whether the parasite's memfd may be mapped executable";
    return row;
  }
  row.present = level < 2;
  row.detail = fmt::format("vm.memfd_noexec = {}", level);
  if (!row.present) row.why = "the parasite's memfd could not be mapped executable; set vm.memfd_noexec to 0 or 1";
  return row;
}

// System V segments come back with their ids through shm_next_id
// (restore/sysv_shm.h), which CONFIG_CHECKPOINT_RESTORE provides.
Row probe_shm_next_id() {
  Row row{"System V shm ids", Need::Optional};
  constexpr const char* kKnob = "/proc/sys/kernel/shm_next_id";
  auto v = read_file(kKnob);
  row.present = v && access(kKnob, W_OK) == 0;
  if (row.present) {
    std::string_view now = *v;
    while (!now.empty() && now.back() == '\n') now.remove_suffix(1);
    row.detail = fmt::format("{} (now {})", kKnob, now);
  } else {
    row.detail = "a tree attached to System V shared memory can't be restored";
    row.why = v ? fmt::format("{} is not writable", kKnob) : why_of(v.error());
  }
  return row;
}

// Which network lock (net/netlock.h) dump would use: the first method that
// works, tried for real (a lock made and removed), and why those before it
// don't.
Row probe_network_lock(Log& log) {
  Row row{"network lock", Need::Optional};
  std::vector<std::string> works, fails;
  for (const net::MethodProbe& p : net::probe_methods(log)) {
    if (p.works) works.emplace_back(net::method_name(p.method));
    else fails.push_back(fmt::format("{}: {}", net::method_name(p.method), p.works.error().str()));
  }
  row.present = !works.empty();
  if (row.present)
    row.detail = fmt::format("{} (dump's choice)", works[0]);
  else
    row.detail = "TCP connections can be dumped only with --network-lock skip";
  if (!fails.empty()) row.why = fmt::format("{}", fmt::join(fails, "; "));
  return row;
}

std::string_view status_of(const Row& r) {
  switch (r.need) {
    case Need::Info: return "info";
    case Need::NotNeeded: return "not needed";
    default: return r.present ? "ok" : "MISSING";
  }
}

}  // namespace

int run_check(Log& log) {
  std::vector<Row> rows;
  auto run = [&](std::string_view what, auto probe) {
    log.debug("check: probing {}", what);
    if constexpr (std::is_same_v<decltype(probe()), Row>) rows.push_back(probe());
    else
      for (Row& r : probe()) rows.push_back(std::move(r));
  };
  run("ptrace", probe_ptrace);
  run("clone3 set_tid", probe_clone3_set_tid);
  run("rseq", probe_rseq);
  run("hardware breakpoints", probe_hw_breakpoints);
  run("pidfd", probe_pidfd);
  run("executable memfd", probe_memfd_exec);
  run("userfaultfd", probe_userfaultfd);
  run("PAGEMAP_SCAN", probe_pagemap_scan);
  run("soft-dirty", probe_soft_dirty);
  run("vDSO", probe_vdso);
  run("System V shm ids", probe_shm_next_id);
  // Stale locks first (a killed ckpt's), so that the probe runs on a clean ruleset.
  sweep_network_locks(true, log);
  run("network lock", [&] { return probe_network_lock(log); });

  size_t width = 0;
  for (const Row& r : rows) width = std::max(width, r.feature.size());
  width += 2;
  constexpr size_t kStatusWidth = 12;
  std::vector<std::string> needed_missing, optional_missing;
  for (const Row& r : rows) {
    std::string_view status = status_of(r);
    std::string line = fmt::format("  {:<{}}{:<{}}{}", r.feature, width, status, kStatusWidth, r.detail);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    fmt::print("{}\n", line);
    if (!r.why.empty()) fmt::print("  {:<{}}{:<{}}why: {}\n", "", width, "", kStatusWidth, r.why);
    if (!r.present && r.need == Need::Required) needed_missing.push_back(r.feature);
    if (!r.present && r.need == Need::Optional) optional_missing.push_back(r.feature);
  }

  std::string optional =
      optional_missing.empty()
          ? std::string("all optional features present")
          : fmt::format("{} optional feature{} missing: {}", optional_missing.size(),
                        optional_missing.size() == 1 ? "" : "s", fmt::join(optional_missing, ", "));
  if (needed_missing.empty()) {
    fmt::print("\nckpt check: dump and restore can work here ({}).\n", optional);
    std::fflush(stdout);
    return 0;
  }
  fmt::print("\nckpt check: dump/restore CANNOT work here: missing {} ({}).\n", fmt::join(needed_missing, ", "),
             optional);
  std::fflush(stdout);
  return 1;
}

}  // namespace ckpt::cli
