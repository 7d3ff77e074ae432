/* sharedmap: a file mapped shared and written through the mapping. The file
 * is data the process writes, so it may change between dump and restore
 * (here the test changes it, as the task itself could after a dump with
 * --leave-running): restore must accept it as long as it is the same file.
 *
 * The file <ready-file>.data (2 pages) is mapped MAP_SHARED read-write; the
 * loop increments a counter in its first 8 bytes every 5 ms.
 *
 * Its second page is mapped again, MAP_SHARED read-only, from the same
 * read-write fd.
 *
 * Verification: the counter advanced since ready; the mapping and the file
 * (pread) hold the same counter (the mapping is the file's page cache); the
 * read-only mapping can be made writable (mprotect) and a write through it
 * reaches the file.
 */
#include "workload.h"

#include <sys/mman.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, "sharedmap");
	char path[PATH_MAX + 16];
	wl_aux_path(path, sizeof path, "data");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 8192) != 0)
		wl_die("create %s: %s", path, strerror(errno));
	volatile uint64_t *counter = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (counter == MAP_FAILED)
		wl_die("mmap %s: %s", path, strerror(errno));
	/* Its second page again, read-only, from the same read-write fd: the
	 * mapping may be made writable later (VM_MAYWRITE), after restore too. */
	char *second = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
	if (second == MAP_FAILED)
		wl_die("mmap %s read-only: %s", path, strerror(errno));
	close(fd);
	*counter = 1;
	uint64_t at_ready = *counter;

	wl_ready();
	while (!wl_stop) {
		(*counter)++;
		wl_sleep_ms(5);
	}

	WL_CHECK(*counter > at_ready, "counter did not advance: %llu", (unsigned long long)*counter);
	uint64_t in_file = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	WL_CHECK(fd >= 0 && pread(fd, &in_file, sizeof in_file, 0) == sizeof in_file, "read %s: %s", path,
		 strerror(errno));
	WL_CHECK(in_file == *counter, "the file holds %llu, the mapping %llu", (unsigned long long)in_file,
		 (unsigned long long)*counter);
	if (mprotect(second, 4096, PROT_READ | PROT_WRITE) != 0) {
		wl_fail("mprotect(PROT_WRITE) of the read-only shared mapping: %s", wl_errname(errno));
	} else {
		second[0] = 'w';
		char c = 0;
		WL_CHECK(fd >= 0 && pread(fd, &c, 1, 4096) == 1 && c == 'w',
			 "a write through the mapping made writable is not in the file");
	}
	wl_finish();
}
