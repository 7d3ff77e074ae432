/* Page-cache read into fresh anonymous memory: bench_readfresh FILE. For each of 3 runs, mmaps a
 * new private anonymous region the size of FILE (nothing populated) and preads the whole
 * (cached) file into it, as ckpt's restorer does with the pages image: every 4 KiB page costs a
 * page fault that allocates and zeroes it before the copy. Prints the best rate in GB/s. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s FILE\n", argv[0]);
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
		perror(argv[1]);
		return 1;
	}
	size_t size = st.st_size;
	double best = 1e30;
	for (int rep = 0; rep < 3; rep++) {
		char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		double t0 = now();
		for (size_t off = 0; off < size;) {
			ssize_t n = pread(fd, p + off, size - off, off);
			if (n <= 0) {
				perror("pread");
				return 1;
			}
			off += n;
		}
		double t = now() - t0;
		if (t < best)
			best = t;
		munmap(p, size);
	}
	printf("%.3f\n", size / best / 1e9);
	return 0;
}
