/* epoll: watch lists, nested epolls, shared epoll descriptions.
 *
 * Setup:
 *   efd    eventfd, count 5 (readable)
 *   p[2]   a pipe, empty
 *   inner  epoll watching efd (EPOLLIN, data 0x1111)
 *   outer  epoll (EPOLL_CLOEXEC) watching inner (EPOLLIN, data 0xabcd0000abcd),
 *          p[0] (EPOLLIN|EPOLLET, data 0x2222) and p[1] (EPOLLOUT|EPOLLONESHOT,
 *          data 0x3333, fired once before the checkpoint: disarmed)
 *   fd 40  dup of outer: the same description
 *   moved  eventfd, added to inner under its fd M (EPOLLIN, data 0x4444),
 *          then moved to fd 42 (dup2, close M): watched, but under a number
 *          it no longer has
 *   reused eventfd opened at M since, added to inner under M too (EPOLLIN,
 *          data 0x5555): two targets under one number, each its own file
 * Verification: each epoll's "tfd/events/data" lines of fdinfo as at setup;
 * outer reports inner ready (and nothing else), inner reports efd; a byte
 * written to the pipe is reported with 0x2222; through fd 40, deleting p[0]
 * works (targets are keyed by their fd numbers) and re-arming p[1] (MOD)
 * reports 0x3333; a count written to `moved` (fd 42) is reported with 0x4444,
 * one written to `reused` with 0x5555, and M deletes `reused` alone.
 */
#include "workload.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#define SHARED_FD 40
#define MOVED_FD 42

static char inner_at_setup[2048], outer_at_setup[2048];

/* The targets of an epoll's fdinfo as "tfd events data|", sorted by tfd (the
 * kernel lists them in the order of its own tree). A disarmed one-shot target
 * can only be added again armed for EPOLLERR|EPOLLHUP (epoll_ctl adds those
 * to every mask): those two bits of a one-shot target are left out. */
static int by_tfd(const void *a, const void *b)
{
	return memcmp(a, b, 64);
}

static void targets_of(int fd, char *out, size_t cap)
{
	static char lines[32][64];
	char text[4096];
	out[0] = '\0';
	if (!wl_fdinfo(fd, text, sizeof(text)))
		return;
	int k = 0;
	for (char *line = strtok(text, "\n"); line && k < 32; line = strtok(NULL, "\n")) {
		int tfd;
		unsigned events;
		unsigned long long data;
		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
			continue;
		if (events & EPOLLONESHOT)
			events &= ~(unsigned)(EPOLLERR | EPOLLHUP);
		memset(lines[k], 0, sizeof(lines[k]));
		snprintf(lines[k], sizeof(lines[k]), "%08d %x %llx|", tfd, events, data);
		k++;
	}
	qsort(lines, (size_t)k, sizeof(lines[0]), by_tfd);
	size_t len = 0;
	for (int i = 0; i < k && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s", lines[i]);
}

static int add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "epoll");
	int efd = eventfd(5, EFD_NONBLOCK | EFD_CLOEXEC);
	int p[2];
	if (efd < 0 || pipe2(p, O_NONBLOCK) < 0)
		wl_die("eventfd/pipe: %s", wl_errname(errno));
	int inner = epoll_create1(0), outer = epoll_create1(EPOLL_CLOEXEC);
	if (inner < 0 || outer < 0)
		wl_die("epoll_create1: %s", wl_errname(errno));
	if (add(inner, efd, EPOLLIN, 0x1111) < 0 || add(outer, inner, EPOLLIN, 0xabcd0000abcdULL) < 0 ||
	    add(outer, p[0], EPOLLIN | EPOLLET, 0x2222) < 0 || add(outer, p[1], EPOLLOUT | EPOLLONESHOT, 0x3333) < 0)
		wl_die("epoll_ctl ADD: %s", wl_errname(errno));
	/* Fire the one-shot (the pipe is writable) and the inner epoll once. */
	struct epoll_event evs[8];
	int n = epoll_wait(outer, evs, 8, 0);
	int fired = 0;
	for (int i = 0; i < n; i++)
		fired |= evs[i].data.u64 == 0x3333;
	if (!fired)
		wl_die("the one-shot target did not fire");
	if (dup2(outer, SHARED_FD) != SHARED_FD)
		wl_die("dup2: %s", wl_errname(errno));
	int m = eventfd(0, EFD_NONBLOCK);
	if (m < 0 || add(inner, m, EPOLLIN, 0x4444) < 0 || dup2(m, MOVED_FD) != MOVED_FD || close(m) < 0)
		wl_die("moved eventfd: %s", wl_errname(errno));
	int reused = eventfd(0, EFD_NONBLOCK);
	if (reused != m || add(inner, reused, EPOLLIN, 0x5555) < 0)
		wl_die("reused eventfd at fd %d (got %d): %s", m, reused, wl_errname(errno));
	targets_of(inner, inner_at_setup, sizeof(inner_at_setup));
	targets_of(outer, outer_at_setup, sizeof(outer_at_setup));
	wl_ready();

	wl_run_until_sigterm(0);

	char now[2048];
	targets_of(inner, now, sizeof(now));
	WL_CHECK(strcmp(now, inner_at_setup) == 0, "inner targets: expected %s, got %s", inner_at_setup, now);
	targets_of(outer, now, sizeof(now));
	WL_CHECK(strcmp(now, outer_at_setup) == 0, "outer targets: expected %s, got %s", outer_at_setup, now);
	n = epoll_wait(outer, evs, 8, 0);
	WL_CHECK(n == 1 && evs[0].data.u64 == 0xabcd0000abcdULL && (evs[0].events & EPOLLIN),
		 "outer: expected only the inner epoll ready, got %d events (first data %#llx)", n,
		 n > 0 ? (unsigned long long)evs[0].data.u64 : 0ULL);
	n = epoll_wait(inner, evs, 8, 0);
	WL_CHECK(n == 1 && evs[0].data.u64 == 0x1111, "inner: expected the eventfd, got %d events", n);
	uint64_t count = 0;
	WL_CHECK(read(efd, &count, 8) == 8 && count == 5, "eventfd count: expected 5, got %llu",
		 (unsigned long long)count);
	WL_CHECK(write(p[1], "x", 1) == 1, "write the pipe: %s", wl_errname(errno));
	n = epoll_wait(outer, evs, 8, 0);
	WL_CHECK(n == 1 && evs[0].data.u64 == 0x2222, "outer after a write: expected the pipe, got %d events", n);
	WL_CHECK(epoll_ctl(SHARED_FD, EPOLL_CTL_DEL, p[0], NULL) == 0, "DEL the pipe's read end through fd %d: %s",
		 SHARED_FD, wl_errname(errno));
	struct epoll_event rearm = { .events = EPOLLOUT | EPOLLONESHOT, .data.u64 = 0x3333 };
	WL_CHECK(epoll_ctl(SHARED_FD, EPOLL_CTL_MOD, p[1], &rearm) == 0, "MOD the pipe's write end: %s",
		 wl_errname(errno));
	n = epoll_wait(outer, evs, 8, 0);
	WL_CHECK(n == 1 && evs[0].data.u64 == 0x3333, "outer after re-arming: expected the write end, got %d events", n);
	const uint64_t one = 1;
	WL_CHECK(write(MOVED_FD, &one, 8) == 8, "write the moved eventfd: %s", wl_errname(errno));
	n = epoll_wait(inner, evs, 8, 0);
	WL_CHECK(n == 1 && evs[0].data.u64 == 0x4444, "inner: expected the moved eventfd (0x4444), got %d events (first data %#llx)",
		 n, n > 0 ? (unsigned long long)evs[0].data.u64 : 0ULL);
	WL_CHECK(read(MOVED_FD, &count, 8) == 8 && write(reused, &one, 8) == 8, "moved/reused eventfd: %s",
		 wl_errname(errno));
	n = epoll_wait(inner, evs, 8, 0);
	WL_CHECK(n == 1 && evs[0].data.u64 == 0x5555, "inner: expected the reused eventfd (0x5555), got %d events (first data %#llx)",
		 n, n > 0 ? (unsigned long long)evs[0].data.u64 : 0ULL);
	WL_CHECK(epoll_ctl(inner, EPOLL_CTL_DEL, reused, NULL) == 0, "DEL fd %d: %s", reused, wl_errname(errno));
	targets_of(inner, now, sizeof(now));
	WL_CHECK(strstr(now, " 5555|") == NULL && strstr(now, " 4444|") != NULL,
		 "inner after DEL of fd %d: expected the moved eventfd alone under it, got %s", reused, now);
	wl_finish();
}
