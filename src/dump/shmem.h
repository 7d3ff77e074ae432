// Shared memory objects the tree maps: anonymous shared memory
// (MAP_SHARED|MAP_ANONYMOUS, inherited through fork or not) and memfds. Each
// is stored once, however many tasks and VMAs map it: its content is read
// through the object itself (/proc/PID/map_files), not through one task's
// page tables, so pages no task has touched since a fork are there too.
// Restore creates each object once and every mapping maps it
// (restore/shmem.h): what one task writes, the others see.
//
// A System V shared memory segment is one more kind of object: found by its
// id (the inode number maps shows) in /proc/sysvipc/shm, with its key, mode
// and owner; its content is read the same way, which attaches nothing.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "base/result.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"
#include "proc/maps.h"

namespace ckpt::dump {

// The kind of object a mapping maps, if it is one of ours.
std::optional<img::ShmemObject::Kind> shmem_kind(const proc::MapEntry& m);

class ShmemCollector {
 public:
  // Gives every VMA of `mm` (pid's, its tree frozen) that maps a shared
  // memory object the object's id; an object seen for the first time has
  // its content written to the images directory.
  Result<void> collect(pid_t pid, img::MmImage* mm, image::ImageDir& dir);
  // A memfd of huge pages (MFD_HUGETLB) that fd `fd` of `pid` holds (`link`
  // its /proc/PID/fd link, `st` its stat) and no VMA seen so far maps: an
  // object too, so that restore makes it with its page size and fills it
  // through a mapping (hugetlbfs files can't be written), and the fd comes
  // back on it (files/memfd.cc). Any other fd is left to its kind.
  Result<void> collect_hugetlb_memfd(pid_t pid, int fd, std::string_view link, const struct stat& st,
                                     image::ImageDir& dir);
  // Every object's pages file, renamed into place with the other images.
  Result<void> commit_pages(image::ImageDir& dir);
  const img::ShmemImage& image() const { return image_; }
  bool empty() const { return image_.objects().empty(); }
  // Every System V segment the tree attaches is the tree's alone: attached
  // outside it too (nattch counts more VMAs than the tree's), it is refused.
  // Call once every task is collected, the tree still frozen.
  Result<void> check_sysv() const;
  // Once the tree is killed: its segments go with it (IPC_RMID), else a
  // restore would find their keys and ids taken.
  Result<void> remove_sysv() const;
  // Every object's id, by (device, inode).
  const std::map<std::pair<uint64_t, uint64_t>, uint32_t>& objects() const { return ids_; }

 private:
  img::ShmemImage image_;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> ids_;  // (dev, inode) -> id
  std::map<uint32_t, uint64_t> sysv_vmas_;                  // id -> VMAs of the tree that attach it
  std::vector<TempFile> pages_;                             // complete, not yet in place
};

}  // namespace ckpt::dump
