/* sysvshm: a System V shared memory segment attached by a parent and its
 * child, as a legacy database's buffer pool is.
 *
 * The parent attaches it read-write twice: once whole, once with its second
 * page unmapped and its first made read-only (an attach in three VMAs: one
 * shmat, two parts and a hole); the child inherits both and attaches it a
 * third time read-only (SHM_RDONLY). With "rmid" the parent marks it
 * destroyed (IPC_RMID) once all are attached: it must come back so.
 *
 * On SIGTERM: the parent checks the segment's id, key, size, mode and
 * attach count, owner and creator (shmctl IPC_STAT, as at ready; a child
 * running as uid and gid 4321 created it), every page's content through
 * every attach (a page nobody wrote stays zero, the bytes past the size
 * too), then writes a ping the child must see through its read-only attach
 * and answer through its own read-write one: the memory is one segment, not
 * copies. The child checks its view and that its read-only attach can't be
 * made writable. The id and key are in <ready-file>.shm.
 */
#include "workload.h"

#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define PAGE 4096
#define SIZE (5 * PAGE + 100)
#define MODE 0640

static volatile unsigned char *whole, *parts, *ro;
static int shmid;
static key_t key;
static int rmid;
static pid_t child;

#define CREATOR 4321

/* Made by a child as CREATOR: the segment's cuid and cgid, which nothing
 * changes later. */
static int create_as_creator(void)
{
	pid_t c = fork();
	if (c < 0)
		return -1;
	if (c == 0) {
		if (setresgid(CREATOR, CREATOR, CREATOR) < 0 || setresuid(CREATOR, CREATOR, CREATOR) < 0)
			_exit(1);
		_exit(shmget(key, SIZE, IPC_CREAT | IPC_EXCL | MODE) < 0 ? 2 : 0);
	}
	int st = 0;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		errno = EEXIST;
		return -1;
	}
	return shmget(key, 0, 0);
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 13 + 5); }

/* Pages 0, 2 and 4 hold the pattern (page 4 up to SIZE); 1 is the child's,
 * 3 is for ping and pong, the rest is zero. */
static unsigned char expected(size_t i)
{
	if (i >= SIZE)
		return 0;
	switch (i / PAGE) {
	case 0: case 2: case 4: return pattern(i);
	case 1: return (unsigned char)(i * 7 + 1);
	default: return 0;
	}
}

static void check_view(volatile unsigned char *p, size_t from, size_t to, const char *who, const char *what)
{
	for (size_t i = from; i < to; i++) {
		if (i / PAGE == 3 && i % PAGE < 16)
			continue; /* ping and pong */
		if (p[i] != expected(i)) {
			wl_fail("%s: %s: byte %zu is %#x, want %#x", who, what, i, p[i], expected(i));
			return;
		}
	}
}

static int wait_for(volatile unsigned char *p, unsigned char want)
{
	for (int i = 0; i < 5000 && *p != want; i++)
		wl_sleep_ms(1);
	return *p == want;
}

static void child_main(void)
{
	ro = shmat(shmid, NULL, SHM_RDONLY);
	if (ro == (void *)-1) {
		wl_printf("FAIL sysvshm child: shmat SHM_RDONLY: %s\n", wl_errname(errno));
		_exit(1);
	}
	for (size_t i = PAGE; i < 2 * PAGE; i++)
		whole[i] = expected(i);
	whole[3 * PAGE + 8] = 1; /* ready */
	while (!wl_stop) {
		if (ro[3 * PAGE] == 'p')
			whole[3 * PAGE + 8] = 'P';
		wl_sleep_ms(1);
	}
	check_view(ro, 0, 6 * PAGE, "child", "read-only attach");
	check_view(whole, 0, 6 * PAGE, "child", "inherited attach");
	WL_CHECK(mprotect((void *)ro, PAGE, PROT_READ | PROT_WRITE) < 0 && errno == EACCES,
		 "child: the read-only attach could be made writable (%s)", wl_errname(errno));
	if (wl_fail_count) {
		wl_printf("FAIL sysvshm child: %s\n", wl_fail_msg);
		_exit(1);
	}
	_exit(0);
}

static void check_stat(const struct shmid_ds *before)
{
	struct shmid_ds ds;
	if (shmctl(shmid, IPC_STAT, &ds) < 0) {
		wl_fail("IPC_STAT of segment %d: %s", shmid, wl_errname(errno));
		return;
	}
	WL_CHECK(ds.shm_segsz == SIZE, "size %zu, want %d", ds.shm_segsz, SIZE);
	WL_CHECK(ds.shm_perm.__key == before->shm_perm.__key, "key %#x, want %#x", ds.shm_perm.__key,
		 before->shm_perm.__key);
	WL_CHECK(ds.shm_perm.mode == before->shm_perm.mode, "mode %o, want %o", ds.shm_perm.mode,
		 before->shm_perm.mode);
	WL_CHECK(ds.shm_perm.uid == before->shm_perm.uid && ds.shm_perm.gid == before->shm_perm.gid,
		 "owner %u:%u, want %u:%u", ds.shm_perm.uid, ds.shm_perm.gid, before->shm_perm.uid,
		 before->shm_perm.gid);
	WL_CHECK(ds.shm_perm.cuid == CREATOR && ds.shm_perm.cgid == CREATOR, "creator %u:%u, want %u:%u",
		 ds.shm_perm.cuid, ds.shm_perm.cgid, CREATOR, CREATOR);
	WL_CHECK(ds.shm_nattch == before->shm_nattch, "nattch %lu, want %lu", ds.shm_nattch, before->shm_nattch);
	if (!rmid)
		WL_CHECK(shmget(key, 0, 0) == shmid, "key %#x finds segment %d, want %d", key, shmget(key, 0, 0), shmid);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "sysvshm");
	rmid = argc > 2 && strcmp(argv[2], "rmid") == 0;
	key = (key_t)(0x5c000000 | (getpid() & 0xffffff));
	/* A stale one of an earlier run with our pid goes first. */
	shmctl(shmget(key, 0, 0), IPC_RMID, NULL);
	shmid = create_as_creator();
	if (shmid < 0)
		wl_die("shmget: %s", wl_errname(errno));
	whole = shmat(shmid, NULL, 0);
	parts = shmat(shmid, NULL, 0);
	if (whole == (void *)-1 || parts == (void *)-1)
		wl_die("shmat: %s", wl_errname(errno));
	if (munmap((void *)(parts + PAGE), PAGE) < 0 || mprotect((void *)parts, PAGE, PROT_READ) < 0)
		wl_die("munmap, mprotect a part: %s", wl_errname(errno));
	for (size_t i = 0; i < SIZE; i++)
		if (i / PAGE != 1 && expected(i))
			whole[i] = expected(i);

	child = fork();
	if (child < 0)
		wl_die("fork: %s", wl_errname(errno));
	if (child == 0)
		child_main();
	if (!wait_for(whole + 3 * PAGE + 8, 1))
		wl_die("the child did not start");
	if (rmid && shmctl(shmid, IPC_RMID, NULL) < 0)
		wl_die("IPC_RMID: %s", wl_errname(errno));
	struct shmid_ds before;
	if (shmctl(shmid, IPC_STAT, &before) < 0)
		wl_die("IPC_STAT: %s", wl_errname(errno));
	char path[PATH_MAX + 8], text[64];
	wl_aux_path(path, sizeof path, "shm");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int n = snprintf(text, sizeof text, "%d %d\n", shmid, (int)key);
	if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) < 0)
		wl_die("write %s: %s", path, wl_errname(errno));
	wl_ready();

	while (!wl_stop)
		wl_sleep_ms(5);

	check_stat(&before);
	check_view(whole, 0, 6 * PAGE, "parent", "whole attach");
	check_view(parts, 0, PAGE, "parent", "read-only part of the second attach");
	check_view(parts, 2 * PAGE, 6 * PAGE, "parent", "second part of the second attach");
	/* Still one segment with the child? */
	whole[3 * PAGE] = 'p';
	WL_CHECK(wait_for(whole + 3 * PAGE + 8, 'P'), "the child's pong never came: not shared");
	WL_CHECK(parts[3 * PAGE + 8] == 'P', "the second attach does not see the child's pong");
	kill(child, SIGTERM);
	int st = 0;
	WL_CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %#x", st);
	if (!rmid)
		shmctl(shmid, IPC_RMID, NULL);
	wl_finish();
}
