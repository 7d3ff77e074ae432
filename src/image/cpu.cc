#include "image/cpu.h"

#include <fmt/ranges.h>

#include "arch/x86_64/cpu_features.h"

namespace ckpt::image {

img::CpuFeatures record_cpu(uint64_t xfeatures_in_use) {
  const arch::CpuFeatures f = arch::host_cpu_features();
  img::CpuFeatures c;
  for (uint32_t w : f.cpuid) c.add_cpuid(w);
  c.set_xcr0(f.xcr0);
  c.set_xfeatures_in_use(xfeatures_in_use);
  return c;
}

Result<void> check_cpu(const img::CpuFeatures& cpu, const std::string& name) {
  if (cpu.cpuid_size() == 0) return {};
  if (cpu.cpuid_size() != arch::kCpuidWordCount)
    return error(EINVAL, "{}: {} CPUID words, this ckpt records {}", name, cpu.cpuid_size(), arch::kCpuidWordCount);
  arch::CpuFeatures want;
  for (size_t i = 0; i < arch::kCpuidWordCount; ++i) want.cpuid[i] = cpu.cpuid(static_cast<int>(i));
  want.xcr0 = cpu.xcr0();
  const auto missing = arch::missing_cpu_features(want, cpu.xfeatures_in_use(), arch::host_cpu_features());
  if (missing.empty()) return {};
  return error(ENOTSUP, "the process was dumped on a CPU with {} that this one lacks ({}); it would die of SIGILL "
               "when it used them (--skip-cpu-check restores it anyway)",
               missing.size() == 1 ? "a feature" : "features", fmt::join(missing, ", "));
}

}  // namespace ckpt::image
