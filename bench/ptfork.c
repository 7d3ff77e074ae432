// What page tables cost a fork and its child: K regions of touched
// anonymous memory, `step` bytes apart (1 GiB apart: a PMD page each; 512
// GiB apart: a PUD page each), then 300 forks whose child unmaps them all.
// Prints the parent's CPU per fork and the child's CPU for its munmaps.
//
//   build/bench/bench_ptfork K PAGES STEP
//   build/bench/bench_ptfork 4 2 1073741824
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s REGIONS PAGES STEP\n", argv[0]);
    return 2;
  }
  const int k = atoi(argv[1]), pages = atoi(argv[2]), forks = 300;
  const long step = atol(argv[3]);
  const size_t len = (size_t)pages * 4096;
  char* base = (char*)0x200000000000UL;
  char* r[64];
  if (k < 1 || k > 64 || pages < 1) return 2;
  for (int i = 0; i < k; i++) {
    r[i] = mmap(base + i * step, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (r[i] == MAP_FAILED) {
      perror("mmap");
      return 1;
    }
    memset(r[i], 1, len);
  }
  double* child = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (child == MAP_FAILED) return 1;
  double fork_us = 0, unmap_us = 0;
  for (int n = 0; n < forks; n++) {
    const double t0 = cpu_us();
    const pid_t p = fork();
    if (p == 0) {
      // The code both calls run faulted in first (a fork copies no page
      // table of a file mapping): only the unmapping is timed.
      (void)cpu_us();
      (void)munmap(NULL, 0);
      const double t1 = cpu_us();
      for (int i = 0; i < k; i++) munmap(r[i], len);
      child[0] = cpu_us() - t1;
      _exit(0);
    }
    if (p < 0) return 1;
    fork_us += cpu_us() - t0;
    waitpid(p, NULL, 0);
    unmap_us += child[0];
  }
  printf("regions %d x %d pages, %ld bytes apart: fork %.1f us CPU, child's munmap %.1f us CPU\n", k, pages, step,
         fork_us / forks, unmap_us / forks);
  return 0;
}
