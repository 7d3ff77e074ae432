/* prefork: a pre-fork server. The master fills MiB (argument 1, default 64)
 * of private memory, then forks workers (argument 2, default 4) that only
 * read it, except worker 0, which changes its first 16 pages, and worker 2,
 * which drops the 16 after those (MADV_DONTNEED: zero since); worker 1
 * forks a worker of its own (three generations share the pages).
 *
 * Every task checks every page on SIGTERM (the master passes it on and
 * judges its children). The images should hold the shared pages once: the
 * e2e test checks their size.
 */
#include "workload.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096

static unsigned char *mem;
static size_t len;
static pid_t kids[64];
static int nkids;
static int changed;  /* pages at the start this task changed */
static int dropped;  /* pages after the first 16 this task dropped */

static unsigned char pattern(size_t i, int mine) { return (unsigned char)(mine ? i * 3 + 1 : i * 7 + (i >> 12)); }

static void verify(void)
{
	for (size_t i = 0; i < len; i++) {
		int zero = i >= 16 * PAGE && i < (size_t)(16 + dropped) * PAGE;
		unsigned char want = zero ? 0 : pattern(i, i < (size_t)changed * PAGE);
		if (mem[i] != want) {
			wl_fail("byte %zu is %#x, want %#x", i, mem[i], want);
			break;
		}
	}
	for (int k = 0; k < nkids; k++) {
		int st = 0;
		kill(kids[k], SIGTERM);
		WL_CHECK(waitpid(kids[k], &st, 0) == kids[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			 "child %d failed (status %#x)", kids[k], st);
	}
}

static int ready_w;

__attribute__((noreturn)) static void worker(int changes, int drops, int forks)
{
	nkids = 0;
	changed = changes;
	dropped = drops;
	for (size_t i = 0; i < (size_t)changes * PAGE; i++)
		mem[i] = pattern(i, 1);
	if (drops && madvise(mem + 16 * PAGE, (size_t)drops * PAGE, MADV_DONTNEED) < 0)
		_exit(4);
	if (forks) {
		pid_t g = fork();
		if (g == 0)
			worker(0, 0, 0);
		kids[nkids++] = g;
	}
	if (write(ready_w, "x", 1) != 1)
		_exit(3);
	close(ready_w);
	while (!wl_stop)
		wl_sleep_ms(10);
	verify();
	if (wl_fail_count) {
		wl_printf("FAIL prefork worker %d: %s\n", getpid(), wl_fail_msg);
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "prefork");
	len = (size_t)(argc > 2 ? atoi(argv[2]) : 64) << 20;
	int n = argc > 3 ? atoi(argv[3]) : 4;
	if (n < 2 || n > 60)
		wl_die("bad worker count %d", n);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		wl_die("mmap: %s", wl_errname(errno));
	for (size_t i = 0; i < len; i++)
		mem[i] = pattern(i, 0);
	int p[2];
	if (pipe(p) < 0)
		wl_die("pipe: %s", wl_errname(errno));
	ready_w = p[1];
	for (int k = 0; k < n; k++) {
		pid_t c = fork();
		if (c < 0)
			wl_die("fork: %s", wl_errname(errno));
		if (c == 0) {
			close(p[0]);
			worker(k == 0 ? 16 : 0, k == 2 ? 16 : 0, k == 1);
		}
		kids[nkids++] = c;
	}
	close(p[1]);
	char buf[64];
	for (int got = 0; got < n + 1;) {
		ssize_t r = read(p[0], buf, sizeof(buf));
		if (r <= 0)
			wl_die("a worker failed to start");
		got += (int)r;
	}
	close(p[0]);
	wl_ready();
	while (!wl_stop)
		wl_sleep_ms(10);
	verify();
	wl_finish();
}
