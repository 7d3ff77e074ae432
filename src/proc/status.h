// /proc/PID/status and /proc/PID/stat: the fields ckpt needs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ckpt::proc {

struct Status {
  std::string name;
  char state = '?';
  uint32_t umask = 0;
  pid_t tgid = 0, pid = 0, ppid = 0, tracer_pid = 0;
  int threads = 0;
  uint64_t sig_pnd = 0, shd_pnd = 0, sig_blk = 0, sig_ign = 0, sig_cgt = 0;
  std::vector<pid_t> nspid;  // NSpid: outermost first
  int seccomp = 0;           // 0 none, 1 strict, 2 filter
  // Credentials: real, effective, saved, fs; then the supplementary groups.
  std::vector<uid_t> uids;
  std::vector<gid_t> gids, groups;
  uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
  bool no_new_privs = false;
  // x86_Thread_features: the x86 user features arch_prctl(ARCH_SHSTK_ENABLE)
  // turned on ("shstk", "wrss"), blank-separated; empty without the line.
  std::vector<std::string> x86_thread_features;
  uint64_t vm_lck_kib = 0;    // VmLck: the size of its locked mappings
  uint64_t rss_kib = 0;       // VmRSS: all its memory in RAM (none for a kernel thread)
  uint64_t rss_anon_kib = 0;  // RssAnon: of which anonymous
};

Result<Status> parse_status(std::string_view text);
Result<Status> read_status(pid_t pid);

// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
Result<uint32_t> read_cap_last_cap();

// /proc/PID/stat. Field numbers in comments are proc(5)'s, 1-based.
struct Stat {
  pid_t pid = 0;          // 1
  std::string comm;       // 2, without parentheses (may contain ')' and spaces)
  char state = '?';       // 3
  pid_t ppid = 0;         // 4
  pid_t pgrp = 0;         // 5
  pid_t session = 0;      // 6
  uint64_t flags = 0;     // 9 (PF_KTHREAD = 0x00200000)
  uint64_t start_code = 0, end_code = 0, start_stack = 0;   // 26, 27, 28
  uint64_t start_data = 0, end_data = 0, start_brk = 0;     // 45, 46, 47
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;  // 48..51
  int exit_code = 0;      // 52: of a zombie, the status its parent's wait() gets
  uint64_t tty_nr = 0;    // 7: the controlling terminal's device number (as st_rdev), 0 for none
};

Result<Stat> parse_stat(std::string_view text);
Result<Stat> read_stat(pid_t pid);
// One thread's (/proc/TID/task/TID/stat): its own state, and none of the
// whole group's sums, which /proc/TID/stat adds up over every thread.
Result<Stat> read_thread_stat(pid_t tid);

// /proc/PID/fdinfo/FD
struct FdInfo {
  uint64_t pos = 0;
  uint32_t flags = 0;  // octal in the file
  int mnt_id = 0;
  uint64_t ino = 0;
};

Result<FdInfo> parse_fdinfo(std::string_view text);
Result<FdInfo> read_fdinfo(pid_t pid, int fd);

// Numeric entries of a /proc directory (task/, fd/), sorted.
Result<std::vector<int>> list_numeric_dir(const std::string& path);
// /proc/PID/task/TID/children of every thread, sorted.
Result<std::vector<pid_t>> children(pid_t pid);

}  // namespace ckpt::proc
