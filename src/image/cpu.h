// The CPU a checkpoint needs: recorded at dump from the dumping machine,
// checked at restore against the restoring one (src/arch/x86_64/cpu_features.h).
#pragma once

#include <string>

#include "base/result.h"
#include "ckpt.pb.h"

namespace ckpt::image {

// This machine's features, with the xsave components any thread of the
// checkpoint has in use (the union of their XSTATE_BV).
img::CpuFeatures record_cpu(uint64_t xfeatures_in_use);
// Refuses a checkpoint that needs a feature this machine lacks, naming every
// missing one. A checkpoint without the record (older ckpt) passes.
Result<void> check_cpu(const img::CpuFeatures& cpu, const std::string& name);

}  // namespace ckpt::image
