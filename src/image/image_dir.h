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

#include <string>

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
// A metadata image larger than this is damage (the largest real ones, page
// maps of huge sparse processes, are a few MiB): refused before it is read.
inline constexpr size_t kMaxImageBytes = 256 << 20;

class ImageDir {
 public:
  // For dump: creates the directory (0700) if needed; refuses one that
  // already holds a checkpoint.
  static Result<ImageDir> create(const std::string& path);
  // For restore, show, verify.
  static Result<ImageDir> open(const std::string& path);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Durable mode (dump --fsync): every image is fsync'ed before it is renamed
  // into place and the directory after, so that an image that can be seen
  // has its data on disk; committing the inventory also syncs the parent
  // directory, so that the checkpoint's directory itself survives a crash.
  void set_durable(bool on) { durable_ = on; }
  bool durable() const { return durable_; }

  // Written under a temporary name and renamed into place (0600).
  Result<void> write(const std::string& name, ImageKind kind, const google::protobuf::MessageLite& msg) const;
  Result<void> read(const std::string& name, ImageKind kind, google::protobuf::MessageLite* msg) const;
  // Whole file; refuses one larger than kMaxImageBytes.
  Result<std::string> read_bytes(const std::string& name) const;
  // Creates `name` as a temporary file to stream into; commit with rename_into_place.
  Result<UniqueFd> create_temp(const std::string& name) const;
  Result<void> rename_into_place(const std::string& name) const;

 private:
  ImageDir(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  Result<void> sync_parent() const;
  std::string path_;
  UniqueFd fd_;
  bool durable_ = false;
};

}  // namespace ckpt::image
