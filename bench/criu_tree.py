#!/usr/bin/env python3
"""ckpt and CRIU on the same process trees, interleaved: issue 12's ratio.

    bench/criu_tree.py --criu /var/tmp/criu-src/criu/criu [--ckpt build/ckpt] [-n 50] [--reps 5]

../shared/criu-anchor/compare.py times single processes (tiny, mem1g,
thrN); this does the same for bench_tree N (a root and N-1 workers it
forked, all asleep, the root a session leader). Each rep, for each tool in
turn: start a new tree, dump it (kill mode), reap it, restore it with -d,
check every pid came back with its parent, SIGTERM the root (each task
checks its memory; exit 0 required), and free every pid. Prints the median
wall time of each tool (range), ckpt/CRIU, and the target (< 0.40x each).
"""

import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib

TARGET = 0.40
libc = ctypes.CDLL(None, use_errno=True)


def ppid_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def one(exe, bench, n, work):
    """(dump ms, restore ms) of one new tree."""
    d = tempfile.mkdtemp(dir=work)
    ready, img = f"{d}/ready", f"{d}/img"
    os.mkdir(img)
    null = os.open(os.devnull, os.O_RDWR)
    tree_bin = os.path.join(bench, "bench_tree")
    os.posix_spawn(tree_bin, [tree_bin, ready, str(n)], os.environ, setsid=True,
                   file_actions=[(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)])
    os.close(null)
    deadline = time.time() + 60
    while not (os.path.exists(ready) and os.path.getsize(ready)):
        if time.time() > deadline:
            raise RuntimeError("bench_tree never got ready")
        time.sleep(0.005)
    root = int(open(ready).read().split()[0])
    tree = benchlib.tree_of(root)
    parents = {p: ppid_of(p) for p in tree}
    try:
        t0 = time.perf_counter()
        r = subprocess.run([exe, "dump", "-t", str(root), "-D", img, "-o", "dump.log"], capture_output=True, text=True)
        dump_ms = (time.perf_counter() - t0) * 1000
        if r.returncode:
            raise RuntimeError(f"{exe} dump: {r.stderr.strip()[-300:]}")
        benchlib.reap(tree)
        t0 = time.perf_counter()
        r = subprocess.run([exe, "restore", "-D", img, "-d", "-o", "restore.log"], capture_output=True, text=True)
        restore_ms = (time.perf_counter() - t0) * 1000
        if r.returncode:
            raise RuntimeError(f"{exe} restore: {r.stderr.strip()[-300:]}")
        for p in tree:
            want = os.getpid() if p == root else parents[p]
            if ppid_of(p) != want:
                raise RuntimeError(f"{exe}: restored pid {p} has parent {ppid_of(p)}, not {want}")
        benchlib.expect_passes(root, exe)
        benchlib.reap(tree)
        return dump_ms, restore_ms
    finally:
        benchlib.kill_all(tree)
        shutil.rmtree(d, ignore_errors=True)


def main():
    # --work /dev/shm: tmpfs, without ext4's cost of reusing inodes just deleted.
    a = benchlib.criu_args(__doc__, "tree", 50, "tasks in the tree", reps=5, work="/var/tmp").parse_args()
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: restored -d roots come back to us
    tools = {"ckpt": os.path.abspath(a.ckpt), "CRIU": os.path.abspath(a.criu)}
    times = {t: ([], []) for t in tools}
    work = tempfile.mkdtemp(prefix="ckpt-criu-tree-", dir=a.work)
    try:
        for _ in range(a.reps):
            for t, exe in tools.items():
                dm, rm = one(exe, a.bench, a.n, work)
                times[t][0].append(dm)
                times[t][1].append(rm)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def cell(v):
        return f"{statistics.median(v):.1f} ms ({min(v):.1f} .. {max(v):.1f})"
    print(f"**{a.n}-task tree** (bench_tree), median of {a.reps} interleaved runs (range)\n")
    print("| tool | dump | restore -d |")
    print("|---|---:|---:|")
    for t, (dm, rm) in times.items():
        print(f"| {t} | {cell(dm)} | {cell(rm)} |")
    ratio = [statistics.median(times["ckpt"][i]) / statistics.median(times["CRIU"][i]) for i in (0, 1)]
    print(f"| ckpt / CRIU | {ratio[0]:.2f}x | {ratio[1]:.2f}x |")
    print(f"\nTarget < {TARGET:.2f}x each: dump {'met' if ratio[0] < TARGET else 'NOT met'}, "
          f"restore {'met' if ratio[1] < TARGET else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
