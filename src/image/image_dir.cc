#include "image/image_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

namespace ckpt::image {

std::string core_name(pid_t pid) { return fmt::format("core-{}.img", pid); }
std::string mm_name(pid_t pid) { return fmt::format("mm-{}.img", pid); }
std::string pagemap_name(pid_t pid) { return fmt::format("pagemap-{}.img", pid); }
std::string pages_name(pid_t pid) { return fmt::format("pages-{}.img", pid); }
std::string files_name(pid_t pid) { return fmt::format("files-{}.img", pid); }

namespace {
std::string temp_name(const std::string& name) { return "." + name + ".tmp"; }
}  // namespace

Result<ImageDir> ImageDir::create(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) < 0 && errno != EEXIST) return sys_error("create image directory {}", path);
  UniqueFd fd = TRY(open_file(path, O_RDONLY | O_DIRECTORY));
  if (faccessat(fd.get(), kInventoryName, F_OK, 0) == 0)
    return error(EEXIST, "{} already holds a checkpoint ({} exists); remove it or choose another directory", path,
                 kInventoryName);
  return ImageDir(path, std::move(fd));
}

Result<ImageDir> ImageDir::open(const std::string& path) {
  UniqueFd fd = TRY_CTX(open_file(path, O_RDONLY | O_DIRECTORY), "image directory");
  return ImageDir(path, std::move(fd));
}

Result<UniqueFd> ImageDir::create_temp(const std::string& name) const {
  std::string tmp = temp_name(name);
  int fd = openat(fd_.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error("create {}", file(tmp));
  UniqueFd f(fd);
  // A leftover of a failed dump keeps its mode through O_CREAT: images are
  // the process's memory and registers, readable by the owner only.
  if (fchmod(f.get(), 0600) < 0) return sys_error("chmod {}", file(tmp));
  return f;
}

Result<void> ImageDir::rename_into_place(const std::string& name) const {
  if (durable_) {
    // fsync through any fd of the file flushes its data and size (fsync(2)).
    int fd = openat(fd_.get(), temp_name(name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_error("open {} to sync it", file(temp_name(name)));
    UniqueFd f(fd);
    if (fsync(f.get()) < 0) return sys_error("sync {}", file(name));
  }
  if (renameat(fd_.get(), temp_name(name).c_str(), fd_.get(), name.c_str()) < 0)
    return sys_error("rename {} into place", file(name));
  if (durable_) {
    // The rename is a change of the directory: it is durable once the
    // directory is synced (ext4 and xfs make no promise before that).
    if (fsync(fd_.get()) < 0) return sys_error("sync directory {}", path_);
    if (name == kInventoryName) TRY(sync_parent());
  }
  return {};
}

Result<void> ImageDir::sync_parent() const {
  // The checkpoint directory may have been created by this dump.
  UniqueFd parent = TRY(open_file(path_ + "/..", O_RDONLY | O_DIRECTORY));
  if (fsync(parent.get()) < 0) return sys_error("sync the directory holding {}", path_);
  return {};
}

Result<void> ImageDir::write(const std::string& name, ImageKind kind, const google::protobuf::MessageLite& msg) const {
  std::string bytes = frame(kind, msg);
  UniqueFd fd = TRY(create_temp(name));
  TRY_CTX(write_all(fd.get(), bytes.data(), bytes.size()), "{}", file(name));
  return rename_into_place(name);
}

Result<std::string> ImageDir::read_bytes(const std::string& name) const {
  struct stat st;
  if (fstatat(fd_.get(), name.c_str(), &st, 0) < 0) return sys_error("open {}", file(name));
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > kMaxImageBytes)
    return error(EINVAL, "{}: {} bytes, too large for a metadata image (at most {})", file(name), st.st_size,
                 kMaxImageBytes);
  return read_file(file(name));
}

Result<void> ImageDir::read(const std::string& name, ImageKind kind, google::protobuf::MessageLite* msg) const {
  std::string bytes = TRY(read_bytes(name));
  return unframe(file(name), bytes, kind, msg);
}

}  // namespace ckpt::image
