#include "restore/sysv_shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "proc/sysvipc.h"
#include "restore/shmem.h"

namespace ckpt::restore {

namespace {

constexpr const char* kNextId = "/proc/sys/kernel/shm_next_id";

std::string describe(const img::SysvShm& s) {
  return fmt::format("System V shared memory segment {} (key {:#x}{})", s.shmid(), static_cast<uint32_t>(s.name_key()),
                     s.mode() & proc::kShmDest ? ", destroyed" : "");
}

// The id the next shmget of this IPC namespace gets. The kernel resets the
// knob to -1 once an id is allocated, but not when shmget fails before that
// (EEXIST): the guard puts it back to -1 whatever happened.
class NextId {
 public:
  static Result<NextId> set(int id) {
    auto fd = open_file(kNextId, O_RDWR);
    if (!fd && fd.error().err == ENOENT)
      return error(ENOENT, "{} is missing: this kernel can't give a System V segment its id back "
                   "(CONFIG_CHECKPOINT_RESTORE)", kNextId);
    NextId n(TRY(std::move(fd)));
    TRY_CTX(n.write(id), "{}", kNextId);
    return n;
  }
  NextId(NextId&&) = default;
  ~NextId() {
    if (fd_.get() < 0) return;
    char buf[16] = {};
    if (pread(fd_.get(), buf, sizeof buf - 1, 0) > 0 && std::string_view(buf).starts_with("-1")) return;
    (void)write(-1);
  }

 private:
  explicit NextId(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<void> write(int id) {
    const std::string text = fmt::format("{}", id);
    return pwrite_all(fd_.get(), text.data(), text.size(), 0);
  }
  UniqueFd fd_;
};

// shmget as the segment's creator: the kernel records the caller's euid and
// egid (cuid, cgid), which nothing changes later; a child of ckpt takes them
// for that one call when they are not ckpt's.
Result<int> shmget_as_creator(const img::SysvShm& s, int32_t key, uint64_t size) {
  const int flags = IPC_CREAT | IPC_EXCL | static_cast<int>(s.mode() & 0777);
  if (s.cuid() == geteuid() && s.cgid() == getegid()) {
    const int id = shmget(key, size, flags);
    if (id < 0) return sys_error("shmget");
    return id;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return sys_error("pipe");
  UniqueFd r(p[0]), w(p[1]);
  const pid_t pid = fork();
  if (pid < 0) return sys_error("fork to shmget as creator {}:{}", s.cuid(), s.cgid());
  if (pid == 0) {
    int out[2] = {-1, 0};
    if (setresgid(-1, s.cgid(), -1) == 0 && setresuid(-1, s.cuid(), -1) == 0) out[0] = shmget(key, size, flags);
    out[1] = errno;
    _exit(write(w.get(), out, sizeof out) == sizeof out ? 0 : 1);
  }
  w.reset();
  int out[2] = {-1, EIO};
  const ssize_t n = read(r.get(), out, sizeof out);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (n != sizeof out) return error(EIO, "shmget as creator {}:{}: no answer from the child", s.cuid(), s.cgid());
  if (out[0] < 0) return error(out[1], "shmget as creator {}:{}", s.cuid(), s.cgid());
  return out[0];
}

// Refused before anything is made: an id or a key in use by a segment of
// this system (the original, after a dump --leave-running).
Result<void> check_free(const img::ShmemImage& image, const std::vector<proc::SysvShm>& now) {
  for (const img::ShmemObject& o : image.objects()) {
    if (o.kind() != img::ShmemObject::SYSV) continue;
    const img::SysvShm& s = o.sysv();
    for (const proc::SysvShm& n : now) {
      const bool same_id = n.shmid == s.shmid(), same_key = s.key() != 0 && n.key == s.key();
      if (!same_id && !same_key) continue;
      return error(EEXIST, "{}: {} is taken by a segment of this system (id {}, key {:#x}, {} bytes, creator pid {}, "
                   "{} attached VMAs): remove it (ipcrm -m {}) to restore", describe(s),
                   same_id && same_key ? "its id and its key"
                   : same_id           ? "its id"
                                       : "its key",
                   n.shmid, static_cast<uint32_t>(n.key), n.size, n.cpid, n.nattch, n.shmid);
    }
  }
  return {};
}

}  // namespace

ShmAttach& ShmAttach::operator=(ShmAttach&& o) noexcept {
  if (this != &o) {
    reset();
    at_ = std::exchange(o.at_, nullptr);
  }
  return *this;
}

void ShmAttach::reset() {
  if (at_) shmdt(at_);
  at_ = nullptr;
}

SysvSegments::SysvSegments(SysvSegments&& o) noexcept
    : made_(std::exchange(o.made_, {})), own_(std::exchange(o.own_, {})) {}

SysvSegments& SysvSegments::operator=(SysvSegments&& o) noexcept {
  if (this != &o) {
    remove();
    made_ = std::exchange(o.made_, {});
    own_ = std::exchange(o.own_, {});
  }
  return *this;
}

SysvSegments::~SysvSegments() { remove(); }

void SysvSegments::remove() {
  for (int id : made_) shmctl(id, IPC_RMID, nullptr);
  made_.clear();
  own_.clear();
}

Result<SysvSegments> SysvSegments::create(const image::ImageDir& dir, const img::ShmemImage& image, Log& log) {
  SysvSegments out;
  bool any = false;
  for (const img::ShmemObject& o : image.objects()) any |= o.kind() == img::ShmemObject::SYSV;
  if (!any) return out;
  const std::vector<proc::SysvShm> now = TRY(proc::read_sysvipc_shm());
  TRY(check_free(image, now));
  std::set<int32_t> keys;  // of this system's segments: a destroyed one of ours can't take one for its name
  for (const proc::SysvShm& n : now) keys.insert(n.key);
  // Destroyed ones first: their creation key is free again at once.
  for (bool destroyed : {true, false})
    for (const img::ShmemObject& o : image.objects()) {
      if (o.kind() != img::ShmemObject::SYSV || ((o.sysv().mode() & proc::kShmDest) != 0) != destroyed) continue;
      const img::SysvShm& s = o.sysv();
      const std::string what = describe(s);
      // A destroyed segment is made under the key it was created with, so
      // that maps names it as before ("/SYSV<key>"); if another holds that
      // key now, as a private one ("/SYSV00000000").
      const int32_t key = !destroyed ? s.key() : keys.contains(s.name_key()) ? IPC_PRIVATE : s.name_key();
      int id;
      {
        NextId next = TRY_CTX(NextId::set(s.shmid()), "{}", what);
        id = TRY_CTX(shmget_as_creator(s, key, o.size()), "{}: key {:#x}, {} bytes, id set in {}", what,
                     static_cast<uint32_t>(key), o.size(), kNextId);
      }
      out.made_.push_back(id);
      if (id != s.shmid())
        return error(EEXIST, "{}: the kernel gave id {} (a segment of this system holds its slot, or took it meanwhile)",
                     what, id);
      log.debug("{}: made (shmget key {:#x}, {} bytes)", what, static_cast<uint32_t>(key), o.size());
      shmid_ds ds{};
      if (shmctl(id, IPC_STAT, &ds) < 0) return sys_error("{}: IPC_STAT", what);
      ds.shm_perm.uid = s.uid();
      ds.shm_perm.gid = s.gid();
      ds.shm_perm.mode = s.mode() & 0777;
      if (shmctl(id, IPC_SET, &ds) < 0) return sys_error("{}: IPC_SET owner {}:{}, mode {:o}", what, s.uid(), s.gid(),
                                                         s.mode() & 0777);
      void* at = shmat(id, nullptr, 0);
      if (at == reinterpret_cast<void*>(-1)) return sys_error("{}: attach it in ckpt", what);
      ShmAttach mine(at);
      TRY_CTX(fill_object(dir, o, mine.data()), "{}", what);
      if ((s.mode() & proc::kShmLocked) && shmctl(id, SHM_LOCK, nullptr) < 0) return sys_error("{}: SHM_LOCK", what);
      if (!destroyed) continue;
      // ckpt's attach keeps it until the tasks have theirs; they are not
      // forked with it.
      if (madvise(mine.data(), arch::page_up(o.size()), MADV_DONTFORK) < 0)
        return sys_error("{}: madvise(MADV_DONTFORK) ckpt's attach", what);
      if (shmctl(id, IPC_RMID, nullptr) < 0) return sys_error("{}: IPC_RMID", what);
      out.made_.pop_back();  // goes with its last attach now
      out.own_.push_back(std::move(mine));
    }
  return out;
}

}  // namespace ckpt::restore
