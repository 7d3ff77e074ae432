#include "arch/x86_64/start.h"

extern "C" long ckpt_clone3_thread(clone_args* args, size_t size, uint64_t entry, uint64_t arg);

// System V arguments: rdi args, rsi size, rdx entry, rcx arg. The syscall
// takes rdi and rsi as they are and clobbers rcx and r11, so entry and arg
// wait in r8 and r9, which the kernel keeps (and the child inherits).
asm(R"(
  .pushsection .text
  .globl ckpt_clone3_thread
  .type ckpt_clone3_thread, @function
ckpt_clone3_thread:
  mov %rdx, %r8
  mov %rcx, %r9
  mov $435, %eax          /* __NR_clone3 */
  syscall
  test %rax, %rax
  jnz 1f
  mov %r9, %rdi
  jmp *%r8
1:
  ret
  .popsection
)");

namespace ckpt::arch {

long clone3_thread(clone_args* args, size_t size, uint64_t entry, uint64_t arg) {
  return ckpt_clone3_thread(args, size, entry, arg);
}

void switch_stack_and_jump(uint64_t stack_top, uint64_t entry, uint64_t arg) {
  asm volatile(
      "mov %0, %%rsp\n\t"
      "jmp *%1\n\t" ::"r"(stack_top),
      "r"(entry), "D"(arg)
      : "memory");
  __builtin_unreachable();
}

}  // namespace ckpt::arch
