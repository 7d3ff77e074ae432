#!/usr/bin/env python3
"""A restore after the machine went quiet, against one right after another.

    bench/cold_restore.py [--ckpt build/ckpt] [--criu CRIU] [--reps 5] [--quiet-s 2] [--tree N]

A hardware breakpoint is a perf event bound to a task. The kernel enables
its scheduler hooks (a static key) for the first such event on the machine
and waits for an RCU grace period there (kernel/events/core.c,
account_event); it disables them again a second after the last one went.
So a restore that completes on breakpoints, right after another one, finds
the hooks on; one after a quiet second pays the grace period, in its
breakpoint probe. This prints both for a tiny process (bench_tiny, dumped
once in kill mode; each rep restores it with -d, checks it runs, kills and
reaps it): 'warm' restores follow the previous one at once, 'cold' ones
after --quiet-s seconds with no restore. --no-breakpoints rows show the
same without a breakpoint. CRIU (4.x restores on breakpoints too) if given.
--tree N does the same for bench_tree N (a root and N-1 workers; each rep
SIGTERMs the root, which ends its workers, and waits until all are gone).
"""

import argparse
import ctypes
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free, wait_pid_file

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: restored -d tasks come back to us


def dump(tool, exe, bench, work, tree):
    d = tempfile.mkdtemp(dir=work, prefix=f"{tool}-")
    cmd = ["setsid", f"{bench}/bench_tree", f"{d}/ready", str(tree)] if tree else [f"{bench}/bench_tiny", f"{d}/ready"]
    wl = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = wait_pid_file(f"{d}/ready")
    os.mkdir(f"{d}/img")
    r = subprocess.run([exe, "dump", "-t", str(pid), "-D", f"{d}/img", "--shell-job"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{tool} dump failed: {r.stderr[-300:]}")
    wl.wait()
    while tree:  # bench_tree's workers died with it, ours to reap (a subreaper)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return pid, f"{d}/img"


def restore(exe, img, pid, extra, tree):
    t0 = time.perf_counter()
    r = subprocess.run([exe, "restore", "-D", img, "-d", "--shell-job"] + extra, capture_output=True, text=True)
    ms = (time.perf_counter() - t0) * 1000
    ok = r.returncode == 0 and os.path.exists(f"/proc/{pid}")
    free(pid, signal.SIGTERM if tree else signal.SIGKILL)
    if not ok:
        raise SystemExit(f"restore failed: {r.stderr[-300:]}")
    return ms


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(here, "..", "build", "ckpt"))
    ap.add_argument("--criu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quiet-s", type=float, default=2.0)
    ap.add_argument("--work", default="/dev/shm")
    ap.add_argument("--tree", type=int, default=0, help="bench_tree of N tasks instead of bench_tiny")
    a = ap.parse_args()
    bench = os.path.join(os.path.dirname(os.path.abspath(a.ckpt)), "bench")
    work = tempfile.mkdtemp(dir=a.work, prefix="cold-")
    rows = [("ckpt", a.ckpt, []), ("ckpt --no-breakpoints", a.ckpt, ["--no-breakpoints"])]
    if a.criu:
        rows.append(("CRIU", a.criu, []))
    what = f"{a.tree}-task tree" if a.tree else "tiny process"
    print(f"# {what}, restore -d wall ms, median (range) of {a.reps}; cold: after {a.quiet_s:g} s quiet")
    print("| restore | warm | cold | cold - warm |")
    print("|---|---:|---:|---:|")
    for name, exe, extra in rows:
        pid, img = dump(name.split()[0].lower(), exe, bench, work, a.tree)
        warm, cold = [], []
        restore(exe, img, pid, extra, a.tree)  # the hooks on, if this tool turns them on
        for _ in range(a.reps):
            warm.append(restore(exe, img, pid, extra, a.tree))
            time.sleep(a.quiet_s)
            cold.append(restore(exe, img, pid, extra, a.tree))
        w, c = statistics.median(warm), statistics.median(cold)
        print(f"| {name} | {w:.1f} ({min(warm):.1f}-{max(warm):.1f}) | {c:.1f} ({min(cold):.1f}-{max(cold):.1f}) "
              f"| {c - w:+.1f} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
