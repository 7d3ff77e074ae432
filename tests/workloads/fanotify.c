/* fanotify: a notification group (FAN_CLASS_NOTIF | FAN_NONBLOCK) with
 *
 *   an inode mark on <ready>.f: FAN_MODIFY | FAN_CLOSE_WRITE
 *   an inode mark on <ready>.d: FAN_ACCESS | FAN_ONDIR ignored (FAN_MARK_IGNORED_MASK |
 *                               FAN_MARK_IGNORED_SURV_MODIFY), nothing else
 *   a mount mark on the mount of the ready file's directory: FAN_OPEN
 *                               ignored only (no event of other processes)
 * and a second group (FAN_REPORT_FID, blocking) with a filesystem mark on
 * the ready file's filesystem, FAN_DELETE_SELF ignored only.
 *
 * Verification: F_GETFL and every "fanotify" line of each group's fdinfo as
 * at setup; a write to <ready>.f and its close give FAN_MODIFY and
 * FAN_CLOSE_WRITE events from our pid, with an fd on the file; then nothing
 * more (EAGAIN).
 */
#include "workload.h"

#include <sys/fanotify.h>
#include <sys/stat.h>

static int grp, fidgrp, fl[2];
static char lines[2][2048];
static char file_path[PATH_MAX], dir_path[PATH_MAX];

/* The "fanotify" lines of an fd's fdinfo, joined. */
static void lines_of(int fd, char *out, size_t n)
{
	char buf[4096];
	out[0] = '\0';
	if (!wl_fdinfo(fd, buf, sizeof(buf)))
		return;
	size_t used = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (!strncmp(line, "fanotify ", 9) && used < n)
			used += (size_t)snprintf(out + used, n - used, "%s|", line);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "fanotify");
	wl_aux_path(file_path, sizeof(file_path), "f");
	wl_aux_path(dir_path, sizeof(dir_path), "d");
	int f = open(file_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || close(f) != 0 || (mkdir(dir_path, 0700) != 0 && errno != EEXIST))
		wl_die("create %s, %s: %s", file_path, dir_path, strerror(errno));
	grp = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
	fidgrp = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID, O_RDONLY);
	if (grp < 0 || fidgrp < 0)
		wl_die("fanotify_init: %s", strerror(errno));
	if (fanotify_mark(grp, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, file_path) ||
	    fanotify_mark(grp, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_ACCESS | FAN_ONDIR,
			  AT_FDCWD, dir_path) ||
	    fanotify_mark(grp, FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY,
			  FAN_OPEN, AT_FDCWD, wl_dir) ||
	    fanotify_mark(fidgrp, FAN_MARK_ADD | FAN_MARK_FILESYSTEM | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY,
			  FAN_DELETE_SELF, AT_FDCWD, wl_dir))
		wl_die("fanotify_mark: %s", strerror(errno));
	const int fds[2] = { grp, fidgrp };
	for (int i = 0; i < 2; i++) {
		fl[i] = fcntl(fds[i], F_GETFL);
		lines_of(fds[i], lines[i], sizeof(lines[i]));
	}
	wl_ready();
	wl_run_until_sigterm(0);

	for (int i = 0; i < 2; i++) {
		char now[2048];
		int fl_now = fcntl(fds[i], F_GETFL);
		WL_CHECK(fl_now == fl[i], "group %d: F_GETFL %#o, expected %#o", i, fl_now, fl[i]);
		lines_of(fds[i], now, sizeof(now));
		WL_CHECK(!strcmp(now, lines[i]), "group %d: fdinfo '%s', expected '%s'", i, now, lines[i]);
	}
	f = open(file_path, O_WRONLY);
	if (f < 0 || write(f, "x", 1) != 1 || close(f) != 0)
		wl_fail("write %s: %s", file_path, wl_errname(errno));
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n = read(grp, buf, sizeof(buf));
	uint64_t seen = 0;
	for (struct fanotify_event_metadata *m = (void *)buf; n > 0 && FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
		char link[64], target[PATH_MAX] = "";
		snprintf(link, sizeof(link), "/proc/self/fd/%d", m->fd);
		ssize_t len = m->fd >= 0 ? readlink(link, target, sizeof(target) - 1) : -1;
		target[len < 0 ? 0 : len] = '\0';
		WL_CHECK(m->pid == getpid() && !strcmp(target, file_path), "event %#llx: pid %d, file %s",
			 (unsigned long long)m->mask, m->pid, target);
		seen |= m->mask;
		if (m->fd >= 0)
			close(m->fd);
	}
	WL_CHECK(seen == (FAN_MODIFY | FAN_CLOSE_WRITE), "events %#llx after a write and close, expected %#llx (read %zd%s)",
		 (unsigned long long)seen, (unsigned long long)(FAN_MODIFY | FAN_CLOSE_WRITE), n,
		 n < 0 ? wl_errname(errno) : "");
	n = read(grp, buf, sizeof(buf));
	WL_CHECK(n < 0 && errno == EAGAIN, "a read after the events gave %zd (%s)", n, n < 0 ? wl_errname(errno) : "data");
	wl_finish();
}
