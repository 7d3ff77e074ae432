// clone3(args, size) for a thread that starts at `entry` with `arg` as its
// first argument, on the stack `args` gives it, as a function named `name`:
//   extern "C" long name(clone_args* args, uint64_t size, uint64_t entry, uint64_t arg);
// The child never returns from it: it must not unwind through frames that
// live on the parent's stack. Returns the child's tid, or the negative
// errno, in the parent. Assembly only, for ckpt and the freestanding blobs
// alike: System V arguments arrive in rdi, rsi, rdx and rcx; the syscall
// takes rdi and rsi as they are and clobbers rcx and r11, so entry and arg
// wait in r8 and r9, which the kernel keeps (and the child inherits).
#pragma once

#define CKPT_CLONE3_THREAD_ASM(name) \
  ".pushsection .text\n"             \
  ".globl " name "\n"                \
  ".type " name ", @function\n"      \
  name ":\n"                         \
  "  mov %rdx, %r8\n"                \
  "  mov %rcx, %r9\n"                \
  "  mov $435, %eax\n" /* clone3 */  \
  "  syscall\n"                      \
  "  test %rax, %rax\n"              \
  "  jnz 1f\n"                       \
  "  mov %r9, %rdi\n"                \
  "  jmp *%r8\n"                     \
  "1:\n"                             \
  "  ret\n"                          \
  ".popsection\n"
