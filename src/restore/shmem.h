// Shared memory objects at restore (dump/shmem.h): each created once, in
// ckpt, with its content checked and in place before any task exists; every
// VMA that maps it, in any task, maps the same object through a dup of its
// fd. Anonymous shared memory is created as the kernel creates it for
// MAP_SHARED|MAP_ANONYMOUS (so /proc/PID/maps names it "/dev/zero
// (deleted)" again, or "/anon_hugepage (deleted)" for huge pages), a memfd
// with memfd_create and its name.
#pragma once

#include <cstdint>
#include <map>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"

namespace ckpt::restore {

using ShmemFds = std::map<uint32_t, UniqueFd>;  // object id -> an fd on it, read-write

Result<ShmemFds> create_shmem(const image::ImageDir& dir, const img::ShmemImage& image);

}  // namespace ckpt::restore
