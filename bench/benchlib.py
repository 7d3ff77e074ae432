"""What the bench scripts share: starting bench_dirty the same way, the
command line of the scripts that time ckpt against CRIU, waiting for a
workload's ready file and for a killed task's (or tree's) PIDs to be free."""

import argparse
import os
import signal
import time


def criu_args(doc, workload, n, what, reps, work):
    """An argument parser for a ckpt-against-CRIU script (`doc`: its
    docstring) on bench_`workload`: --criu, --ckpt, --bench, -n (`what`,
    default `n`), --reps and --work (where the images go)."""
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--criu", required=True, help="a CRIU binary")
    ap.add_argument("--ckpt", default=os.path.join(here, "..", "build", "ckpt"))
    ap.add_argument("--bench", default=os.path.join(here, "..", "build", "bench"), help=f"where bench_{workload} is")
    ap.add_argument("-n", type=int, default=n, help=what)
    ap.add_argument("--reps", type=int, default=reps)
    ap.add_argument("--work", default=work, help="where the images go")
    return ap


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


def wait_pid_file(path, timeout=30):
    """The pid a workload wrote to its ready file `path`, once it is there."""
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read().split()[0])
        time.sleep(0.005)
    raise SystemExit(f"{path} never appeared")


def free(pid, sig=signal.SIGKILL):
    """Sends `sig` to `pid` and reaps what comes back to the caller (a child
    subreaper) until the pid is free (10 s at most)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    end = time.time() + 10
    while os.path.exists(f"/proc/{pid}") and time.time() < end:
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.002)


def reap(pids, timeout=10):
    """Reap what came back to us (a child subreaper) until every pid of `pids` is free."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if not any(os.path.exists(f"/proc/{p}") for p in pids):
            return
        time.sleep(0.005)
    raise RuntimeError(f"pids still held: {[p for p in pids if os.path.exists(f'/proc/{p}')]}")


def tree_of(root):
    """`root` and its descendants."""
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        for t in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{t}/children") as f:
                todo += [int(c) for c in f.read().split()]
    return out


def expect_passes(root, what):
    """SIGTERMs `root`, a restored workload that checks itself then, and
    requires its exit status 0."""
    os.kill(root, signal.SIGTERM)
    _, st = os.waitpid(root, 0)
    if os.waitstatus_to_exitcode(st) != 0:
        raise RuntimeError(f"{what}: the restored root exited with {os.waitstatus_to_exitcode(st)}")


def kill_all(pids):
    """SIGKILLs what is left of `pids` and reaps them."""
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap(pids)
