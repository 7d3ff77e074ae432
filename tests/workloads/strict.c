/* strict: a process in seccomp strict mode (only read, write, _exit and
 * rt_sigreturn allowed) is restored in strict mode.
 *
 * After ready it enters SECCOMP_MODE_STRICT and spins (no sleeping: nanosleep
 * is forbidden) until SIGTERM. It cannot look at itself any more without
 * being killed, so the e2e test checks "Seccomp: 1" in /proc/PID/status from
 * outside; the workload checks what it still can: its counter kept going and
 * its memory is intact. It reports with write() and leaves with _exit (not
 * exit_group, which strict mode forbids).
 */
#include "workload.h"

#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static volatile uint64_t spins;
static uint64_t pattern[512];

int main(int argc, char **argv)
{
	wl_init(argc, argv, "strict");
	for (int i = 0; i < 512; i++)
		pattern[i] = wl_mix64(i);
	wl_ready();
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0)
		wl_die("PR_SET_SECCOMP strict: %s", strerror(errno));
	while (!wl_stop)
		spins++;

	const char *msg = "PASS strict\n";
	for (int i = 0; i < 512; i++)
		if (pattern[i] != wl_mix64(i))
			msg = "FAIL strict: memory pattern changed\n";
	if (spins == 0)
		msg = "FAIL strict: never ran\n";
	syscall(SYS_write, 1, msg, strlen(msg));
	syscall(SYS_exit, msg[0] == 'P' ? 0 : 1);
	return 1;
}
