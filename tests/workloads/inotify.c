/* inotify: watches with their wds and masks.
 *
 * Setup: <ready>.dir and <ready>.f; an inotify (IN_NONBLOCK) with wd 1 on
 * the directory (IN_CREATE|IN_DELETE), wd 2 added and removed (a gap), wd 3
 * on the file (IN_MODIFY|IN_CLOSE_WRITE); every event read (none queued).
 * Verification: the "inotify wd:..." lines of fdinfo as at setup; a file
 * created in the directory is reported on wd 1 with its name, a write to
 * the file on wd 3; the next watch gets wd 4.
 */
#include "workload.h"

#include <sys/inotify.h>
#include <sys/stat.h>

static char at_setup[4096];
static char dir[PATH_MAX + 16], file[PATH_MAX + 16];

static void watches(int fd, char *out, size_t cap)
{
	char text[4096];
	out[0] = '\0';
	if (!wl_fdinfo(fd, text, sizeof(text)))
		return;
	char *w = strstr(text, "inotify ");
	snprintf(out, cap, "%s", w ? w : "");
}

static void drain(int in)
{
	char buf[4096];
	while (read(in, buf, sizeof(buf)) > 0)
		;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "inotify");
	wl_aux_path(dir, sizeof(dir), "dir");
	wl_aux_path(file, sizeof(file), "f");
	if (mkdir(dir, 0700) < 0)
		wl_die("mkdir: %s", wl_errname(errno));
	int f = open(file, O_CREAT | O_WRONLY, 0600);
	if (f < 0)
		wl_die("create: %s", wl_errname(errno));
	close(f);
	int in = inotify_init1(IN_NONBLOCK);
	if (in < 0)
		wl_die("inotify_init1: %s", wl_errname(errno));
	int wd1 = inotify_add_watch(in, dir, IN_CREATE | IN_DELETE);
	int wd2 = inotify_add_watch(in, file, IN_ATTRIB);
	if (wd1 != 1 || wd2 != 2 || inotify_rm_watch(in, wd2) < 0)
		wl_die("watches: %d %d %s", wd1, wd2, wl_errname(errno));
	int wd3 = inotify_add_watch(in, file, IN_MODIFY | IN_CLOSE_WRITE);
	if (wd3 != 3)
		wl_die("third watch got wd %d", wd3);
	drain(in);
	watches(in, at_setup, sizeof(at_setup));
	wl_ready();

	wl_run_until_sigterm(0);

	char now[4096];
	watches(in, now, sizeof(now));
	WL_CHECK(strcmp(now, at_setup) == 0, "watches: expected %s, got %s", at_setup, now);
	char created[PATH_MAX + 32];
	snprintf(created, sizeof(created), "%s/new", dir);
	int c = open(created, O_CREAT | O_WRONLY, 0600);
	close(c);
	f = open(file, O_WRONLY);
	WL_CHECK(write(f, "x", 1) == 1, "write: %s", wl_errname(errno));
	close(f);
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n = read(in, buf, sizeof(buf));
	int saw_create = 0, saw_modify = 0;
	for (ssize_t at = 0; at < n;) {
		struct inotify_event *e = (struct inotify_event *)(buf + at);
		if (e->wd == 1 && (e->mask & IN_CREATE) && e->len && strcmp(e->name, "new") == 0)
			saw_create = 1;
		if (e->wd == 3 && (e->mask & IN_MODIFY))
			saw_modify = 1;
		at += (ssize_t)sizeof(*e) + e->len;
	}
	WL_CHECK(saw_create, "no IN_CREATE of \"new\" on wd 1 (%zd bytes of events)", n);
	WL_CHECK(saw_modify, "no IN_MODIFY on wd 3 (%zd bytes of events)", n);
	int wd4 = inotify_add_watch(in, created, IN_ATTRIB);
	WL_CHECK(wd4 == 4, "the next watch got wd %d, expected 4", wd4);
	unlink(created);
	wl_finish();
}
