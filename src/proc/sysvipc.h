// /proc/sysvipc/shm: the System V shared memory segments of ckpt's IPC
// namespace, one line each after a header (ipc/shm.c, sysvipc_shm_proc_show).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ckpt::proc {

struct SysvShm {
  int32_t key = 0;  // 0 (IPC_PRIVATE) for a private or destroyed segment
  int32_t shmid = 0;
  uint32_t mode = 0;  // permission bits, SHM_DEST (01000), SHM_LOCKED (02000)
  uint64_t size = 0;
  pid_t cpid = 0, lpid = 0;
  uint64_t nattch = 0;  // attached VMAs, not attaches: a split VMA counts twice
  uint32_t uid = 0, gid = 0, cuid = 0, cgid = 0;
};

inline constexpr uint32_t kShmDest = 01000;
inline constexpr uint32_t kShmLocked = 02000;

Result<std::vector<SysvShm>> parse_sysvipc_shm(std::string_view text);
Result<std::vector<SysvShm>> read_sysvipc_shm();
// The segment with this id, if any.
std::optional<SysvShm> find_shm(const std::vector<SysvShm>& all, int32_t shmid);

}  // namespace ckpt::proc
