// An image directory: names of its files, atomic writes, typed reads.
//
//   inventory.img        written last: without it the directory is no checkpoint
//   core-PID.img         registers, signals, mm fields, ...
//   mm-PID.img           VMAs
//   pagemap-PID.img      runs of present pages
//   pages-PID.img        raw page data (see page_store.h)
//   files-PID.img        file descriptors
//   stats-dump.img, stats-restore.img
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "base/dir.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "image/image_file.h"

namespace ckpt::image {

std::string core_name(pid_t pid);
std::string mm_name(pid_t pid);
std::string pagemap_name(pid_t pid);
std::string pages_name(pid_t pid);
std::string files_name(pid_t pid);
inline constexpr const char* kInventoryName = "inventory.img";
inline constexpr const char* kTreeName = "tree.img";
inline constexpr const char* kShmemName = "shmem.img";
inline constexpr const char* kFileDescsName = "fdesc.img";
std::string shmem_pages_name(uint32_t id);
// A metadata image larger than this is damage (the largest real ones, page
// maps of huge sparse processes, are a few MiB): refused before it is read.
inline constexpr size_t kMaxImageBytes = 256 << 20;

// Whether an images directory that another user owns or can write is used.
// Such a user could plant links or swap images in it (see base/dir.h for what
// ckpt does against links; a swapped image would be restored as root), so
// dump and restore refuse it unless --allow-shared-images-dir.
enum class SharedDir { Refuse, Allow };

// Every file in the directory is opened through one directory handle
// (base/dir.h): no symlink is followed, new files are created exclusively
// and renamed into place without replacing anything.
class ImageDir {
 public:
  // For dump: creates the directory (0700) if needed; refuses a symlink, a
  // shared directory (see SharedDir) and one that already holds a checkpoint.
  static Result<ImageDir> create(const std::string& path, SharedDir shared);
  // For restore (SharedDir::Refuse), show and verify (read only: Allow).
  static Result<ImageDir> open(const std::string& path, SharedDir shared);

  const std::string& path() const { return dir_.path(); }
  int fd() const { return dir_.fd(); }
  const Dir& dir() const { return dir_; }
  std::string file(const std::string& name) const { return dir_.file(name); }

  // Durable mode (dump --fsync): every image is fsync'ed before it is renamed
  // into place and the directory after, so that an image that can be seen
  // has its data on disk; committing the inventory also syncs the parent
  // directory, so that the checkpoint's directory itself survives a crash.
  void set_durable(bool on) { durable_ = on; }
  bool durable() const { return durable_; }

  // Written under a temporary name and renamed into place (0600). Replace::No
  // (images) refuses a name that exists; stats-restore.img replaces the one
  // of an earlier restore.
  Result<void> write(const std::string& name, ImageKind kind, const google::protobuf::MessageLite& msg,
                     TempFile::Replace replace = TempFile::Replace::No);
  // write() up to the rename: an image made ahead, committed in its turn.
  Result<TempFile> write_temp(const std::string& name, ImageKind kind, const google::protobuf::MessageLite& msg);
  Result<void> read(const std::string& name, ImageKind kind, google::protobuf::MessageLite* msg) const;
  // Whole file; refuses one larger than kMaxImageBytes.
  Result<Buffer> read_bytes(const std::string& name) const;
  // An image to read from, a regular file reached without a symlink.
  Result<UniqueFd> open_read(const std::string& name, struct stat* st = nullptr) const {
    return dir_.open_read(name, st);
  }
  bool exists(const std::string& name) const { return dir_.exists(name); }
  // Names of the images in the directory (*.img, temporaries left out), sorted.
  Result<std::vector<std::string>> list_images() const;
  // `name` as a temporary file to stream into, unlinked unless committed.
  Result<TempFile> create_temp(const std::string& name) const { return TempFile::create(dir_, name); }
  Result<void> commit(TempFile& tmp, TempFile::Replace replace = TempFile::Replace::No);
  // Removes every file committed by this ImageDir (a failed dump's images).
  // write() and commit() may be called from several threads at once.
  void remove_written();

 private:
  explicit ImageDir(Dir dir) : dir_(std::move(dir)) {}
  Result<void> sync_parent() const;
  Dir dir_;
  bool durable_ = false;
  // Committed names; dump writes images from two threads at once.
  struct Written {
    std::mutex lock;
    std::vector<std::string> names;
  };
  std::unique_ptr<Written> written_ = std::make_unique<Written>();
};

}  // namespace ckpt::image
