#include "image/image_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "base/fs.h"

namespace ckpt::image {

std::string core_name(pid_t pid) { return fmt::format("core-{}.img", pid); }
std::string mm_name(pid_t pid) { return fmt::format("mm-{}.img", pid); }
std::string pagemap_name(pid_t pid) { return fmt::format("pagemap-{}.img", pid); }
std::string pages_name(pid_t pid) { return fmt::format("pages-{}.img", pid); }
std::string files_name(pid_t pid) { return fmt::format("files-{}.img", pid); }
std::string shmem_pages_name(uint32_t id) { return fmt::format("pages-shmem-{}.img", id); }

namespace {

std::string user_name(uid_t uid) {
  // ckpt is single-threaded when it opens its images directory.
  if (const passwd* pw = getpwuid(uid)) return fmt::format("{} (uid {})", pw->pw_name, uid);
  return fmt::format("uid {}", uid);
}

// See SharedDir. ACLs aside, owner and mode tell who else can write here.
Result<void> check_private(const Dir& dir, SharedDir shared) {
  const struct stat st = TRY(dir.stat());
  if (shared == SharedDir::Allow) return {};
  const uid_t me = geteuid();
  const bool others_write = st.st_mode & (S_IWGRP | S_IWOTH);
  if (st.st_uid == me && !others_write) return {};
  return error(EPERM, "images directory {} is owned by {} with mode {:04o}: {} could plant links or swap images in "
               "it; use a directory owned by {} that only its owner can write (chmod 0700), or pass "
               "--allow-shared-images-dir", dir.path(), user_name(st.st_uid), st.st_mode & 07777,
               others_write ? "other users" : "its owner", user_name(me));
}

}  // namespace

Result<ImageDir> ImageDir::create(const std::string& path, SharedDir shared) {
  if (::mkdir(path.c_str(), 0700) < 0 && errno != EEXIST) return sys_error("create image directory {}", path);
  Dir dir = TRY(Dir::open(path));
  TRY(check_private(dir, shared));
  if (dir.exists(kInventoryName))
    return error(EEXIST, "{} already holds a checkpoint ({} exists); remove it or choose another directory", path,
                 kInventoryName);
  return ImageDir(std::move(dir));
}

Result<ImageDir> ImageDir::open(const std::string& path, SharedDir shared) {
  Dir dir = TRY_CTX(Dir::open(path), "image directory");
  TRY(check_private(dir, shared));
  return ImageDir(std::move(dir));
}

Result<void> ImageDir::commit(TempFile& tmp, TempFile::Replace replace) {
  TRY(tmp.commit(durable_, replace));
  {
    std::lock_guard held(written_->lock);
    written_->names.push_back(tmp.name());
  }
  if (durable_) {
    // The rename is a change of the directory: it is durable once the
    // directory is synced (ext4 and xfs make no promise before that).
    if (fsync(fd()) < 0) return sys_error("sync directory {}", path());
    if (tmp.name() == kInventoryName) TRY(sync_parent());
  }
  return {};
}

void ImageDir::remove_written() {
  // Best effort, on a failure path that has its own error to report.
  if (!written_) return;  // moved from
  std::lock_guard held(written_->lock);
  for (const std::string& n : written_->names) (void)dir_.remove(n);
  written_->names.clear();
}

Result<void> ImageDir::sync_parent() const {
  // The checkpoint directory may have been created by this dump. ".." of the
  // directory we hold, whatever its path leads to now.
  int fd = openat(dir_.fd(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error("open the directory holding {}", path());
  UniqueFd parent(fd);
  if (fsync(parent.get()) < 0) return sys_error("sync the directory holding {}", path());
  return {};
}

Result<void> ImageDir::write(const std::string& name, ImageKind kind, const google::protobuf::MessageLite& msg,
                             TempFile::Replace replace) {
  TempFile tmp = TRY(write_temp(name, kind, msg));
  return commit(tmp, replace);
}

Result<TempFile> ImageDir::write_temp(const std::string& name, ImageKind kind,
                                      const google::protobuf::MessageLite& msg) {
  const size_t size = kHeaderSize + msg.ByteSizeLong();
  // Nor may it be larger than a reader takes.
  if (size > kMaxImageBytes)
    return error(EFBIG, "{}: {} bytes, more than a metadata image may hold ({})", file(name), size, kMaxImageBytes);
  Buffer bytes = TRY_CTX(Buffer::make(size), "{}", file(name));
  frame_into(kind, msg, bytes.data());
  // An image that restore could not read back must fail the dump, while the
  // task lives: proto3 refuses strings that are not UTF-8, and a file or a
  // thread may well have such a name.
  std::unique_ptr<google::protobuf::MessageLite> back(msg.New());
  if (!back->ParseFromArray(bytes.data() + kHeaderSize, static_cast<int>(bytes.size() - kHeaderSize)))
    return error(EILSEQ, "{}: would not read back: a name in it (of a file, a thread, a directory) is not UTF-8, "
                 "which ckpt can't store yet", file(name));
  TempFile tmp = TRY(create_temp(name));
  TRY_CTX(write_all(tmp.fd(), bytes.data(), bytes.size()), "{}", file(tmp.temp_name()));
  return tmp;
}

Result<Buffer> ImageDir::read_bytes(const std::string& name) const {
  struct stat st;
  UniqueFd fd = TRY(dir_.open_read(name, &st));
  if (static_cast<uint64_t>(st.st_size) > kMaxImageBytes)
    return error(EINVAL, "{}: {} bytes, too large for a metadata image (at most {})", file(name), st.st_size,
                 kMaxImageBytes);
  // Its size as the open saw it: the frame says how long it must be, and
  // unframe() refuses anything shorter or longer.
  Buffer bytes = TRY_CTX(Buffer::make(static_cast<size_t>(st.st_size)), "{}", file(name));
  bytes.shrink(TRY_CTX(pread_full(fd.get(), bytes.data(), bytes.size(), 0), "read {}", file(name)));
  return bytes;
}

Result<std::vector<std::string>> ImageDir::list_images() const {
  // A second open file description: readdir moves its offset, not ours.
  int dfd = openat(fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return sys_error("open image directory {}", path());
  std::unique_ptr<DIR, int (*)(DIR*)> d(fdopendir(dfd), closedir);
  if (!d) {
    close(dfd);
    return sys_error("open image directory {}", path());
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* e = readdir(d.get());
    if (!e) {
      if (errno) return sys_error("read image directory {}", path());
      break;
    }
    std::string n = e->d_name;
    if (n.ends_with(".img") && n[0] != '.') names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<void> ImageDir::read(const std::string& name, ImageKind kind, google::protobuf::MessageLite* msg) const {
  const Buffer bytes = TRY(read_bytes(name));
  return unframe(file(name), bytes.view(), kind, msg);
}

}  // namespace ckpt::image
