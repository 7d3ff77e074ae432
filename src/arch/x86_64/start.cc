#include "arch/x86_64/start.h"

#include "arch/x86_64/clone3_thread.h"

extern "C" long ckpt_clone3_thread(clone_args* args, size_t size, uint64_t entry, uint64_t arg);

asm(CKPT_CLONE3_THREAD_ASM("ckpt_clone3_thread"));

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
