// What a ckpt knows about the network locks it made, kept where the next
// ckpt finds it after a SIGKILL: one small file per lock in
// /run/ckpt/netlock/ (tmpfs, cleared at boot with the ruleset it describes),
// named after the lock:
//
//   method nftables
//   images /srv/ckpt/web-1         <- only once a dump handed it to images
//
// The life of a lock, each step safe to be killed after:
//   1. record written (no images line), then the lock installed;
//   2. kill or --leave-stopped dump: "images DIR" added before the inventory
//      that names the lock is written;
//   3. removed: the lock first, then its record.
// A lock is stale when its maker (net/lock_name.h) is dead and no images
// directory holds it: no images line, or DIR has no inventory naming it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "net/backend.h"

namespace ckpt::net {

struct LockRecord {
  std::string name;
  Method method = Method::Nftables;
  std::string images_dir;  // empty: not handed to a checkpoint
};

inline constexpr const char* kRecordsDir = "/run/ckpt/netlock";

// Written whole (a temporary renamed over the name); creates the directory (0700).
Result<void> write_record(const LockRecord& r);
Result<void> remove_record(const std::string& name);
// Every record there; one that can't be read is skipped.
Result<std::vector<LockRecord>> list_records();
std::optional<LockRecord> read_record(const std::string& name);

// Whether the ckpt that made lock `name` still runs.
bool owner_alive(const std::string& name);
// The name of a lock made by this process.
Result<std::string> own_lock_name();

}  // namespace ckpt::net
