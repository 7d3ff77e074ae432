/* shmem: memory shared between a parent and its child, as a pre-fork
 * server's scoreboard is: anonymous shared memory (MAP_SHARED|MAP_ANONYMOUS,
 * inherited through fork) and a memfd mapped shared by both, plus a private
 * mapping of the same memfd with a page changed privately; and a regular
 * file mapped shared by the parent before the fork and by the child again
 * after it (two mappings of one file, not one inherited).
 *
 * Pages only the child wrote since the fork, and pages nobody touched, must
 * come back too. After the restore, on SIGTERM, the parent writes a ping
 * into each shared region and waits for the child's pong there: the regions
 * are still shared, not copies.
 */
#include "workload.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096
#define ANON_PAGES 16
#define MEMFD_PAGES 4

static volatile unsigned char *anon, *memfd_shared, *memfd_private, *file_shared;
static char file_path[PATH_MAX];
static pid_t child;

static unsigned char pattern(int region, size_t i) { return (unsigned char)(i * 31 + region * 7 + 1); }

static void check_page(volatile unsigned char *p, int region, size_t page, const char *what)
{
	for (size_t i = page * PAGE; i < (page + 1) * PAGE; i++)
		if (p[i] != pattern(region, i)) {
			wl_fail("%s: page %zu differs at byte %zu: %#x, want %#x", what, page, i, p[i],
				pattern(region, i));
			return;
		}
}

/* Waits (5 s at most) until *p == want. */
static int wait_for(volatile unsigned char *p, unsigned char want)
{
	for (int i = 0; i < 5000 && *p != want; i++)
		wl_sleep_ms(1);
	return *p == want;
}

static void child_main(void)
{
	/* Written only here, after the fork: the parent never mapped it in. */
	for (size_t i = 5 * PAGE; i < 6 * PAGE; i++)
		anon[i] = pattern(0, i);
	int fd = open(file_path, O_RDWR);
	volatile unsigned char *file_own = fd < 0 ? MAP_FAILED :
		mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (file_own == MAP_FAILED)
		wl_die("child: map %s: %s", file_path, wl_errname(errno));
	close(fd);
	anon[0] = 1; /* ready */
	while (!wl_stop) {
		if (anon[PAGE] == 'p') {
			anon[2 * PAGE] = 'P';
			memfd_shared[2 * PAGE] = 'P';
		}
		if (file_own[0] == 'p')
			file_own[PAGE] = 'P';
		wl_sleep_ms(1);
	}
	check_page(anon, 0, 3, "child: anon");
	check_page(memfd_shared, 1, 1, "child: memfd");
	if (wl_fail_count) {
		wl_printf("FAIL shmem child: %s\n", wl_fail_msg);
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "shmem");
	anon = mmap(NULL, ANON_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int fd = memfd_create("ckpt-test-memfd", MFD_CLOEXEC);
	if (anon == MAP_FAILED || fd < 0 || ftruncate(fd, MEMFD_PAGES * PAGE) < 0)
		wl_die("set up: %s", wl_errname(errno));
	memfd_shared = mmap(NULL, MEMFD_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	memfd_private = mmap(NULL, MEMFD_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (memfd_shared == MAP_FAILED || memfd_private == MAP_FAILED)
		wl_die("map the memfd: %s", wl_errname(errno));
	/* The memfd is reached through its mappings only (fds are not dumped yet). */
	close(fd);
	wl_aux_path(file_path, sizeof(file_path), "mapped");
	fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, 2 * PAGE) < 0)
		wl_die("create %s: %s", file_path, wl_errname(errno));
	file_shared = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (file_shared == MAP_FAILED)
		wl_die("map %s: %s", file_path, wl_errname(errno));
	close(fd);
	for (size_t page = 3; page < 5; page++)
		for (size_t i = page * PAGE; i < (page + 1) * PAGE; i++)
			anon[i] = pattern(0, i);
	for (size_t i = 0; i < MEMFD_PAGES * PAGE; i++)
		memfd_shared[i] = pattern(1, i);
	/* Private copy of page 3: differs from the object from now on. */
	for (size_t i = 3 * PAGE; i < 4 * PAGE; i++)
		memfd_private[i] = pattern(2, i);

	child = fork();
	if (child < 0)
		wl_die("fork: %s", wl_errname(errno));
	if (child == 0)
		child_main();
	if (!wait_for(anon, 1))
		wl_die("the child did not start");
	wl_ready();

	while (!wl_stop)
		wl_sleep_ms(5);

	check_page(anon, 0, 3, "anon");
	check_page(anon, 0, 4, "anon");
	check_page(anon, 0, 5, "anon (written by the child only)");
	for (size_t i = 6 * PAGE; i < ANON_PAGES * PAGE; i++)
		if (anon[i] != 0) {
			wl_fail("anon: untouched byte %zu is %#x", i, anon[i]);
			break;
		}
	check_page(memfd_shared, 1, 0, "memfd");
	check_page(memfd_shared, 1, 3, "memfd");
	check_page(memfd_private, 1, 0, "private memfd mapping (from the object)");
	check_page(memfd_private, 2, 3, "private memfd mapping (changed privately)");
	/* Still shared with the child? */
	anon[PAGE] = 'p';
	WL_CHECK(wait_for(anon + 2 * PAGE, 'P'), "anon: the child's pong never came: not shared");
	WL_CHECK(wait_for(memfd_shared + 2 * PAGE, 'P'), "memfd: the child's pong never came: not shared");
	file_shared[0] = 'p';
	WL_CHECK(wait_for(file_shared + PAGE, 'P'), "file: the child's pong never came through its own mapping");
	/* An unchanged page of a private mapping shows the object as it is now. */
	WL_CHECK(memfd_private[2 * PAGE] == 'P', "private memfd mapping: page 2 does not show the object's");
	kill(child, SIGTERM);
	int st = 0;
	WL_CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %#x", st);
	wl_finish();
}
