#include "ptrace/on_cpu.h"

namespace ckpt {

OnCpu::OnCpu() {
  const int here = sched_getcpu();
  if (here < 0 || sched_getaffinity(0, sizeof mask_, &mask_) < 0) return;
  cpus_.push_back(here);
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (c != here && CPU_ISSET(c, &mask_)) cpus_.push_back(c);
}

OnCpu::~OnCpu() {
  if (held_on_ >= 0) (void)sched_setaffinity(0, sizeof mask_, &mask_);
}

void OnCpu::go(int cpu) {
  if (cpu == held_on_ || cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask_)) return;
  cpu_set_t there;
  CPU_ZERO(&there);
  CPU_SET(cpu, &there);
  if (sched_setaffinity(0, sizeof there, &there) == 0) held_on_ = cpu;
}

}  // namespace ckpt
