/* uffduser: a process that uses userfaultfd itself: it registers 1 MiB of
 * its memory for write-protection (not protected: writes go on), keeps
 * writing it, and at SIGTERM checks that its registration is still its own
 * (UFFDIO_UNREGISTER succeeds) and its data intact. ckpt pre-dump must
 * refuse it without touching that (docs/migration.md). Not restorable: no
 * dump test uses it. */
#include "workload.h"

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

enum { kLen = 1 << 20 };

int main(int argc, char **argv)
{
	wl_init(argc, argv, "uffduser");
	uint64_t *mem = mmap(NULL, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		wl_die("mmap: %s", strerror(errno));
	for (size_t i = 0; i < kLen / 8; i++)
		mem[i] = wl_mix64(i);
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		wl_die("userfaultfd: %s", strerror(errno));
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(uffd, UFFDIO_API, &api) != 0)
		wl_die("UFFDIO_API: %s", strerror(errno));
	struct uffdio_register reg = { .range = { (uint64_t)mem, kLen }, .mode = UFFDIO_REGISTER_MODE_WP };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
		wl_die("UFFDIO_REGISTER: %s", strerror(errno));

	wl_ready();

	uint64_t n = 0;
	while (!wl_stop) {
		size_t i = (size_t)(wl_mix64(n++) % (kLen / 8));
		mem[i] = wl_mix64(i);
		wl_sleep_ms(1);
	}
	for (size_t i = 0; i < kLen / 8; i++)
		if (mem[i] != wl_mix64(i)) {
			wl_fail("word %zu changed", i);
			break;
		}
	struct uffdio_range r = { (uint64_t)mem, kLen };
	WL_CHECK(ioctl(uffd, UFFDIO_UNREGISTER, &r) == 0, "UFFDIO_UNREGISTER: %s", strerror(errno));
	wl_finish();
}
