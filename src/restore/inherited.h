// Restore's side of dump/inherited.h: where the pages a task inherited
// unchanged lie, followed through its ancestors' page maps down to the pages
// file that holds them. A damaged chain (a run no ancestor covers) is an
// error before any task exists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/result.h"
#include "restore/images.h"
#include "restore/page_origin.h"

namespace ckpt::restore {


// Per live task of `t` (TreeImages::tasks order).
Result<std::vector<std::vector<InheritedPages>>> resolve_inherited(const TreeImages& t);

}  // namespace ckpt::restore
