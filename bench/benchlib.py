"""What the bench scripts share: starting bench_dirty the same way."""

import os
import time


def start_dirty(build, work, mib, rate):
    """bench_dirty of `mib` MiB rewriting `rate` MiB/s, in a session of its
    own with /dev/null on 0-2 (a child of the caller); returns its pid once
    it is ready (every page written once)."""
    dirty = os.path.join(build, "bench", "bench_dirty")
    ready = os.path.join(work, "ready")
    if os.path.exists(ready):
        os.unlink(ready)
    null = os.open(os.devnull, os.O_RDWR)
    pid = os.posix_spawn(dirty, [dirty, ready, str(mib), str(rate)], os.environ, setsid=True,
                         file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                       (os.POSIX_SPAWN_DUP2, null, 2)])
    os.close(null)
    deadline = time.time() + 120
    while not os.path.exists(ready):
        if time.time() > deadline:
            raise RuntimeError("bench_dirty never got ready")
        time.sleep(0.05)
    return pid
