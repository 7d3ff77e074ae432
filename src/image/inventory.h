// inventory.img, what every checkpoint (dump or pre-dump) says of itself.
#pragma once

#include <sys/types.h>

#include <vector>

#include "ckpt.pb.h"

namespace ckpt::image {

// The fields every round fills the same way: format, tasks, where and when
// it was made. The caller adds what is its own (parent, pre-dump, CPU).
img::Inventory new_inventory(pid_t root, const std::vector<pid_t>& pids);

}  // namespace ckpt::image
