// Checking a checkpoint without restoring it: `ckpt verify` runs all of this,
// restore runs the same checks on what it loads before it creates any task
// (DESIGN.md, "Read and verify all images before touching anything").
//
// Three layers, each usable alone:
//   - framing: every image's header, length and checksum (image::unframe);
//   - page data: every run's crc32c (pagemap-PID.img) against its bytes in
//     pages-PID.img, read in large chunks;
//   - cross-references on decoded images: the inventory's pids each have
//     their images, VMAs are page aligned, sorted and disjoint, page runs lie
//     inside private VMAs and fill the pages file exactly, fds are unique and
//     share only with earlier fds, and nothing has an absurd size.
// Errors name the file and, where there is one, the offset or the entry.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"
#include "tree/tree.h"

namespace ckpt::image {

// Above these a count or a size is damage, not a process.
inline constexpr int kMaxPids = 4 << 20;          // PID_MAX_LIMIT: every pid is below it
inline constexpr int kMaxVmas = 1 << 24;          // vm.max_map_count is 65530 by default
inline constexpr int kMaxFd = 2147483584;         // the kernel's sysctl_nr_open_max
inline constexpr size_t kMaxPathLen = 4096;       // PATH_MAX
inline constexpr size_t kMaxXsaveBytes = 1 << 20;
inline constexpr size_t kSiginfoBytes = 128;

// --- cross-references on decoded images; `name` is the file for messages ---

Result<void> check_inventory(const std::string& name, const img::Inventory& inv);
// /proc/sys/kernel/pid_max (read once), or PID_MAX_LIMIT when it can't be read.
int system_pid_max();
// `pid` is the inventory's pid the core image belongs to. Besides sizes and
// counts: tids below system_pid_max(); registers a user task can hold (cs,
// ss, rip, eflags: arch/x86_64/regs.h); one sigaction per signal, 1..64.
Result<void> check_core(const std::string& name, const img::TaskCore& core, pid_t pid);
Result<void> check_mm(const std::string& name, const img::MmImage& mm);
// Runs in order, each inside one private VMA of `mm` (checked with check_mm);
// total_pages agrees. Returns the number of pages.
Result<uint64_t> check_pagemap(const std::string& name, const img::PageMap& pm, const img::MmImage& mm);
Result<void> check_files(const std::string& name, const img::Files& files);

// The decoded images of one task, and all of the above on them (file names
// for messages are `dir`/core-PID.img and so on).
struct TaskImageSet {
  pid_t pid = 0;
  img::TaskCore core;
  img::MmImage mm;
  img::PageMap pagemap;
  img::Files files;
};
Result<uint64_t> check_task(const std::string& dir, const TaskImageSet& t);

// --- the tree ---

// tree.img, checked (tree::ProcessTree::make, sessions and groups a restore
// can recreate) and agreeing with the inventory: its live tasks are exactly
// the inventory's pids, its root the inventory's root. Images without a
// tree.img (older ones) hold one task, restored into ckpt's session.
Result<tree::ProcessTree> load_tree(const ImageDir& dir, const img::Inventory& inv);
// fdesc.img: ids 1..N in order, kinds this ckpt knows, sane sizes; and
// every fd of `tasks` names one of its descriptions.
Result<img::FileDescs> load_file_descs(const ImageDir& dir,
                                       std::span<const std::pair<pid_t, const img::Files*>> tasks);

// --- shared memory ---

// shmem.img if the checkpoint has one (else none): ids 1..N in order, kinds
// known, sizes sane, each object's runs page-aligned, in order and inside
// it; and every VMA of `mms` that names an object names one of them.
Result<img::ShmemImage> load_shmem(const ImageDir& dir, std::span<const img::MmImage* const> mms);

// --- page data ---

// The runs whose bytes are in the task's own pages file, in file order
// (PageRun.inherited ones are the parent's).
img::PageMap stored_runs(const img::PageMap& pm);

// Checks every run's crc32c against its bytes in the open pages file `fd`
// (named `name`), whose header check_pages_file() has accepted and whose data
// size matches the runs. Reads sequentially in large chunks; a mismatch names
// the run and the file offset it starts at:
//   "pages-123.img: checksum mismatch in run 4 (0x7f0000000000, 16 pages) at offset 69632"
// Returns the number of pages checked.
Result<uint64_t> verify_page_data(const std::string& name, int fd, const img::PageMap& pm);
// check_pages_file(), the data size against the runs, then verify_page_data().
Result<uint64_t> verify_pages_file(const std::string& name, int fd, const img::PageMap& pm);

// --- a whole directory ---

struct VerifySummary {
  size_t images = 0;   // files checked
  uint64_t pages = 0;  // pages whose checksum was checked
};
// The files the task maps and its executable, as found at their paths now,
// against the identity recorded at dump (files/file_id.h); `name` (the mm
// image) prefixes errors. VMAs of older images, without one, are skipped.
Result<void> check_mapped_files(const std::string& name, const img::MmImage& mm, const img::TaskCore& core);

// Every *.img file of the directory (framing and checksum), and for each pid
// of the inventory its images' cross-references and page data; with
// `check_files`, also the files its tasks map (check_mapped_files).
Result<VerifySummary> verify_dir(const ImageDir& dir, bool check_files = true);

}  // namespace ckpt::image
