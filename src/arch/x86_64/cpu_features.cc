#include "arch/x86_64/cpu_features.h"

#include <sys/platform/x86.h>

#include <array>

#include <fmt/format.h>

namespace ckpt::arch {

namespace {

enum Reg { EAX, EBX, ECX, EDX };

// A register of a CPUID leaf (the comment says which), read from glibc's
// record of it (<sys/platform/x86.h>): the loader ran that CPUID at start
// and keeps the raw registers.
struct CpuidWord {
  unsigned glibc_index;
  Reg reg;
};

// Index i of CpuFeatures::cpuid is read from kCpuidWords[i].
constexpr std::array<CpuidWord, kCpuidWordCount> kCpuidWords = {{
    {CPUID_INDEX_1, ECX},            // leaf 1
    {CPUID_INDEX_1, EDX},            // leaf 1
    {CPUID_INDEX_7, EBX},            // leaf 7, sub-leaf 0
    {CPUID_INDEX_7, ECX},            // leaf 7, sub-leaf 0
    {CPUID_INDEX_7, EDX},            // leaf 7, sub-leaf 0
    {CPUID_INDEX_7_ECX_1, EAX},      // leaf 7, sub-leaf 1
    {CPUID_INDEX_D_ECX_1, EAX},      // leaf 0xd, sub-leaf 1
    {CPUID_INDEX_80000001, ECX},     // leaf 0x80000001
    {CPUID_INDEX_80000001, EDX},     // leaf 0x80000001
}};

struct Feature {
  uint8_t word, bit;
  const char* name;  // as /proc/cpuinfo spells it
};

// Instruction-set extensions a program may probe for and then use.
constexpr Feature kFeatures[] = {
    {0, 0, "pni"},           {0, 1, "pclmulqdq"},      {0, 9, "ssse3"},          {0, 12, "fma"},
    {0, 13, "cx16"},         {0, 19, "sse4_1"},        {0, 20, "sse4_2"},        {0, 22, "movbe"},
    {0, 23, "popcnt"},       {0, 25, "aes"},           {0, 26, "xsave"},         {0, 28, "avx"},
    {0, 29, "f16c"},         {0, 30, "rdrand"},        {1, 15, "cmov"},          {1, 23, "mmx"},
    {1, 24, "fxsr"},         {1, 25, "sse"},           {1, 26, "sse2"},          {2, 0, "fsgsbase"},
    {2, 3, "bmi1"},          {2, 4, "hle"},            {2, 5, "avx2"},           {2, 8, "bmi2"},
    {2, 9, "erms"},          {2, 11, "rtm"},           {2, 16, "avx512f"},       {2, 17, "avx512dq"},
    {2, 18, "rdseed"},       {2, 19, "adx"},           {2, 21, "avx512ifma"},    {2, 23, "clflushopt"},
    {2, 24, "clwb"},         {2, 26, "avx512pf"},      {2, 27, "avx512er"},      {2, 28, "avx512cd"},
    {2, 29, "sha_ni"},       {2, 30, "avx512bw"},      {2, 31, "avx512vl"},      {3, 1, "avx512vbmi"},
    {3, 5, "waitpkg"},       {3, 6, "avx512_vbmi2"},   {3, 8, "gfni"},           {3, 9, "vaes"},
    {3, 10, "vpclmulqdq"},   {3, 11, "avx512_vnni"},   {3, 12, "avx512_bitalg"}, {3, 14, "avx512_vpopcntdq"},
    {3, 22, "rdpid"},        {3, 27, "movdiri"},       {3, 28, "movdir64b"},     {4, 2, "avx512_4vnniw"},
    {4, 3, "avx512_4fmaps"}, {4, 4, "fsrm"},           {4, 8, "avx512_vp2intersect"}, {4, 14, "serialize"},
    {4, 22, "amx_bf16"},     {4, 23, "avx512_fp16"},   {4, 24, "amx_tile"},      {4, 25, "amx_int8"},
    {5, 4, "avx_vnni"},      {5, 5, "avx512_bf16"},    {6, 0, "xsaveopt"},       {6, 1, "xsavec"},
    {6, 2, "xgetbv1"},       {7, 0, "lahf_lm"},        {7, 5, "abm"},            {7, 6, "sse4a"},
    {7, 8, "3dnowprefetch"}, {7, 11, "xop"},           {7, 16, "fma4"},          {7, 21, "tbm"},
    {8, 11, "syscall"},      {8, 27, "rdtscp"},        {8, 29, "lm"},
};

// XCR0 bits, as the kernel names the components.
constexpr const char* kXfeatureNames[] = {
    "x87",       "sse",         "avx",      "mpx_bndregs", "mpx_bndcsr", "avx512_opmask", "avx512_zmm_hi256",
    "avx512_hi16_zmm", "pt",    "pkru",     "pasid",       "cet_user",   "cet_supervisor", "hdc",
    "uintr",     "lbr",         "hwp",      "amx_tilecfg", "amx_tiledata",
};

}  // namespace

// Each CPUID traps to the hypervisor in a VM (7.7 us here): ckpt asks
// none, glibc's loader asked them all already.
CpuFeatures host_cpu_features() {
  CpuFeatures f;
  for (size_t i = 0; i < kCpuidWordCount; ++i)
    f.cpuid[i] = __x86_get_cpuid_feature_leaf(kCpuidWords[i].glibc_index)->cpuid_array[kCpuidWords[i].reg];
  if (CPU_FEATURE_PRESENT(OSXSAVE)) f.xcr0 = read_xcr0();
  return f;
}

std::vector<std::string> missing_cpu_features(const CpuFeatures& want, uint64_t xfeatures_in_use,
                                              const CpuFeatures& have) {
  std::vector<std::string> missing;
  for (const Feature& f : kFeatures) {
    const uint32_t bit = 1u << f.bit;
    if ((want.cpuid[f.word] & bit) && !(have.cpuid[f.word] & bit)) missing.emplace_back(f.name);
  }
  for (unsigned b = 0; b < 64; ++b) {
    if (!(xfeatures_in_use >> b & 1) || (have.xcr0 >> b & 1)) continue;
    missing.push_back(b < std::size(kXfeatureNames) ? fmt::format("xsave:{}", kXfeatureNames[b])
                                                    : fmt::format("xsave:{}", b));
  }
  return missing;
}

}  // namespace ckpt::arch
