// Shared memory objects at restore (dump/shmem.h): each created once, in
// ckpt, with its content checked and in place before any task exists; every
// VMA that maps it, in any task, maps the same object through a dup of its
// fd. Anonymous shared memory is created as the kernel creates it for
// MAP_SHARED|MAP_ANONYMOUS (so /proc/PID/maps names it "/dev/zero
// (deleted)" again, or "/anon_hugepage (deleted)" for huge pages), a memfd
// with memfd_create and its name. A System V segment is made with its key
// and id (restore/sysv_shm.h), and each task attaches it by id.
#pragma once

#include <cstdint>
#include <map>

#include "base/log.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"
#include "restore/sysv_shm.h"

namespace ckpt::restore {

using ShmemFds = std::map<uint32_t, UniqueFd>;  // object id -> an fd on it, read-write

struct ShmemObjects {
  ShmemFds fds;       // anonymous shared memory and memfds
  SysvSegments sysv;  // System V segments
};

Result<ShmemObjects> create_shmem(const image::ImageDir& dir, const img::ShmemImage& image, Log& log);

// The object's content, run by run, into `dst` (the object mapped in ckpt):
// read straight into place, checked where it landed.
Result<void> fill_object(const image::ImageDir& dir, const img::ShmemObject& o, char* dst);

}  // namespace ckpt::restore
