// Restore's side of PageRun.in_parent: the chain of parent checkpoints a
// dump --prev-images-dir continues (each round's Inventory.parent_dir, a
// path relative to its own directory), loaded and checked before any task
// exists, and where each in_parent run's pages lie in it. A missing or
// damaged parent is an error that names it.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"
#include "restore/page_origin.h"

namespace ckpt::restore {

// One parent checkpoint's pages of the task.
struct ParentLevel {
  std::string name;  // "parent checkpoint REL (PATH)", for errors
  img::PageMap pagemap;
  UniqueFd pages;
  std::string pages_path;
};

// The chain above `dir` (whose inventory is `inv`) for task `pid`; empty
// when the checkpoint has no parent.
Result<std::vector<ParentLevel>> load_parent_chain(const image::ImageDir& dir, const img::Inventory& inv, pid_t pid);

// For ckpt verify of a pre-dump: the round at `path` itself as level 0,
// then its parents.
Result<std::vector<ParentLevel>> load_round_and_parents(const std::string& path, pid_t pid);

// Where the in_parent runs of `map` lie, level by level down the chain.
Result<std::vector<InheritedPages>> resolve_in_parent(std::span<const ParentLevel> chain, const img::PageMap& map,
                                                      pid_t pid);

// Every stored run's checksum of every level (restore checks them while the
// restorer reads, as it does the task's own).
Result<void> verify_parent_pages(const std::vector<ParentLevel>& chain);
// Only the runs that hold some of `pieces` (what a lazy restore's restorers
// read themselves, outside the memory the lazy-pages daemon checks and
// serves), run by run.
Result<void> verify_parent_runs(const std::vector<ParentLevel>& chain, std::span<const InheritedPages> pieces);

}  // namespace ckpt::restore
