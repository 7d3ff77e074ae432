// The xsave area in standard format (what PTRACE_GETREGSET NT_X86_XSTATE
// gives): components at fixed offsets (CPUID leaf 0xD), a header at 512
// whose XSTATE_BV says which components hold anything but their init state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ckpt::arch {

inline constexpr size_t kXsaveHeaderOffset = 512;
inline constexpr size_t kXsaveMinSize = kXsaveHeaderOffset + 64;
// A buffer for PTRACE_GETREGSET NT_X86_XSTATE that no CPU's area outgrows
// (AMX tiles included, ~11 KiB); the kernel says how much it filled.
inline constexpr size_t kXsaveMaxRegsetSize = 16384;

// Bytes up to the end of the last component in `features` (CPUID 0xD).
size_t xsave_size_for(uint64_t features);
// The components `xsave` has out of their init state (XSTATE_BV).
uint64_t xsave_state_bv(std::span<const uint8_t> xsave);
// Bytes worth storing: past the last non-init component everything is
// ignored by XRSTOR. On this CPU that is ~2.7 KiB of 11 KiB when the AMX
// tiles are unused, for every thread of a checkpoint.
size_t xsave_used_size(std::span<const uint8_t> xsave);
// What PTRACE_SETREGSET NT_X86_XSTATE wants: the size for every feature
// the kernel enabled (XCR0), as CPUID 0xD reports it.
size_t xsave_regset_size();

}  // namespace ckpt::arch
