// What the spawner (src/pie/spawner.cc, in the restorer blob) is told: the
// tasks of the tree and every step each takes from its fork to its
// restorer, as plain records in memory every task inherits. Offsets are from
// the SpawnPlan's start; addresses and fd numbers are the tasks' own.
// Bump kSpawnAbiVersion on any layout change.
#pragma once

#include <stdint.h>

namespace ckpt::abi {

inline constexpr uint32_t kSpawnAbiVersion = 2;

// Where the tasks meet: in memory shared by ckpt and every task.
struct SpawnBarrier {
  uint32_t arrived;      // tasks that exist, with the sessions and groups they lead
  uint32_t joined;       // tasks in their groups: helpers may exit
  uint32_t failed;       // a task failed: the others give up
  uint32_t late_opened;  // ckpt opened the descriptions that need the tasks (files.h: open_late)
};

// One syscall of a task's fd moves (restore/fd_moves.h plans them).
struct FdOp {
  enum Kind : uint8_t {
    kCloseRange,  // close_range(a, b): fds a..b (b -1: to the end)
    kSetFlags,    // fcntl(a, F_SETFD): an fd already at its number
    kDup,         // dup3(a, b)
    kClose,       // close(a)
    kDupLowest,   // fcntl(a, F_DUPFD_CLOEXEC, 0) gives b, then close(a)
  };
  Kind kind;
  bool cloexec = false;
  bool watched = false;  // b is where the watched fd is now
  int32_t a = 0, b = 0;
};

// What a task does once its fds are in place (files/kind.h: InTaskStep).
struct StepArg {
  enum Op : uint32_t { kEpollAdd, kPosixLock };
  uint32_t op;
  int32_t fd;      // the epoll, the locked file
  int32_t target;  // kEpollAdd: the target's fd number
  int32_t source;  // kEpollAdd: where the task holds it if `target` was closed since, or -1
  uint32_t events;
  uint32_t write;  // kPosixLock: F_WRLCK, else F_RDLCK
  uint64_t data;   // kEpollAdd: epoll_event.data
  uint64_t start, len;
};

// Memory a task lays out before it forks (restore/premap.h).
struct PremapReadArg {
  int32_t fd;
  uint32_t check;  // compare with crc32c once read
  uint64_t vaddr, len, off;
  uint32_t crc32c;
  uint32_t file;  // its path, in the strings
};
struct PremapSlotArg {
  uint64_t at;          // in the window
  uint64_t start, end;  // the VMA
  uint32_t create;      // map it (else the parent's, inherited)
  uint32_t map_flags;
  uint32_t first_read, nr_reads;
  uint32_t first_drop, nr_drops;  // ranges [start, end) of the VMA the task lacks
};

struct SpawnThreadArg {
  int32_t tid;
  uint32_t pad;
  uint64_t stack_top, stack_size, arg;
};

// SpawnTaskArg::flags
inline constexpr uint32_t kSpawnZombie = 1 << 0;
inline constexpr uint32_t kSpawnHelper = 1 << 1;
inline constexpr uint32_t kSpawnNewSession = 1 << 2;
inline constexpr uint32_t kSpawnLeadGroup = 1 << 3;
inline constexpr uint32_t kSpawnJoinRestorerGroup = 1 << 4;

struct SpawnTaskArg {
  int32_t pid;
  uint32_t flags;
  int32_t join_group;  // 0: none
  int32_t exit_status;  // a zombie's
  char comm[16];        // a zombie's
  int32_t ctty_fd;      // a session leader's terminal (ckpt's fd), or -1
  int32_t foreground;   // and its foreground group, or 0
  uint32_t first_child, nr_children;  // indices in the tasks
  // A live task: its status pipe (ckpt's number until the fds move), its fd
  // moves, the fds it takes from ckpt once the tree exists, its steps.
  int32_t status_fd;
  uint32_t cwd;  // in the strings
  uint32_t first_fd_op, nr_fd_ops;
  uint32_t first_late, nr_late;
  uint32_t first_step, nr_steps;
  uint32_t first_slot, nr_slots;
  // The boot region: the blob (blob_size bytes), then the data staged at
  // data_src, at data_offset.
  uint64_t boot_start, boot_size, data_offset, data_src, data_size;
  uint64_t stack_top, entry, args, thread_entry, threads_ready;
  uint32_t first_thread, nr_threads;
};

// What a task that fails writes on its status pipe instead of its "R"
// (one write: under PIPE_BUF, whole or not at all).
struct SpawnFailure {
  int32_t err;  // errno of the call that failed, 0: none
  char what[252];
};

struct SpawnPlan {
  uint32_t version;
  uint32_t nr_tasks;  // [0] the root; helpers after the tree's tasks
  int32_t temp_fd_base;
  int32_t restorer_pgid;
  int32_t ckpt_pidfd;  // -1: no late descriptions
  uint32_t nr_keep;
  uint64_t barrier;   // SpawnBarrier*
  int32_t blob_fd;    // a memfd of the restorer blob, which the spawner runs from
  uint32_t crc32c_hw;  // the CPU has SSE4.2's crc32 (arch/x86_64/crc32c.h)
  uint64_t blob_size;  // page multiple: each task maps it at its boot region's start
  uint64_t keep[16][2];          // what the root keeps of ckpt's memory, sorted
  uint64_t tasks, children, fd_ops, late, steps, slots, reads, drops, threads, strings;
};

}  // namespace ckpt::abi
