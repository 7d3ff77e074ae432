#!/usr/bin/env python3
"""Where a dump's and a restore's time goes, workload by workload.

    bench/phases.py [--build build] [-n 50] [--threads 1000] [--fds 10000] [--mib 256] [--reps 5] [--work /dev/shm]

Each rep, for each workload in turn (bench_tiny; bench_tree of -n tasks;
bench_threads; bench_fds; bench_mem of --mib MiB): start it in a session of
its own, dump it (kill mode) with --stats, free its PIDs, restore it with
-d --stats, SIGTERM it (it checks itself: exit 0 required) and free its
PIDs again. Prints two tables, dump and restore: the median of each phase
ckpt's --stats reports (ms), its total, and the wall time of the command,
whose difference is the exec, loader and exit ckpt's own clock can't see.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import ctypes

import benchlib

PHASE_RE = re.compile(r"^\s+phase (\S+)\s+([\d.]+) ms", re.M)
TOTAL_RE = re.compile(r"^\s+(dump|restore) time\s+([\d.]+) ms", re.M)
DUMP_PHASES = ["start-up", "proc", "parasite", "memory", "cure", "files", "images"]
RESTORE_PHASES = ["start-up", "load", "prepare", "spawn", "completion", "finish"]


def run(cmd):
    """(wall ms, {phase: ms}, --stats total ms) of one ckpt command."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()[-400:]}")
    total = TOTAL_RE.search(r.stderr)
    return wall, {k: float(v) for k, v in PHASE_RE.findall(r.stderr)}, float(total.group(2)) if total else 0.0


def one(ckpt, exe, args, work):
    """The dump's and the restore's run() of one new process (tree) `exe args`."""
    d = tempfile.mkdtemp(dir=work)
    ready, img = f"{d}/ready", f"{d}/img"
    os.mkdir(img)
    null = os.open(os.devnull, os.O_RDWR)
    os.posix_spawn(exe, [exe, ready] + args, os.environ, setsid=True,
                   file_actions=[(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)])
    os.close(null)
    root = benchlib.wait_pid_file(ready, 120)
    tree = benchlib.tree_of(root)
    try:
        dump = run([ckpt, "dump", "-t", str(root), "-D", img, "--stats"])
        benchlib.reap(tree)
        restore = run([ckpt, "restore", "-D", img, "-d", "--stats"])
        benchlib.expect_passes(root, exe)
        return dump, restore
    finally:
        benchlib.kill_all(tree)
        shutil.rmtree(d, ignore_errors=True)


def table(title, names, results, phases):
    """Markdown: a row per phase, a column per workload, medians in ms."""
    print(f"\n**{title}** (median ms)\n")
    print("| phase | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))

    def med(f):
        return " | ".join(f"{statistics.median(f(r) for r in results[n]):.1f}" for n in names)
    for p in phases:
        print(f"| {p} | " + med(lambda r, p=p: r[1].get(p, 0.0)) + " |")
    print("| --stats total | " + med(lambda r: r[2]) + " |")
    print("| wall | " + med(lambda r: r[0]) + " |")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(here, "..", "build"))
    ap.add_argument("-n", type=int, default=50, help="tasks of the tree")
    ap.add_argument("--threads", type=int, default=1000)
    ap.add_argument("--fds", type=int, default=10000)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work", default="/dev/shm", help="where the images go")
    a = ap.parse_args()
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: restored -d roots come back to us
    ckpt = os.path.join(a.build, "ckpt")
    bench = os.path.join(a.build, "bench")
    workloads = {
        "tiny": ("bench_tiny", []),
        f"tree {a.n}": ("bench_tree", [str(a.n)]),
        f"{a.threads} threads": ("bench_threads", [str(a.threads)]),
        f"{a.fds} fds": ("bench_fds", [str(a.fds)]),
        f"{a.mib} MiB": ("bench_mem", [str(a.mib)]),
    }
    results = {n: ([], []) for n in workloads}
    work = tempfile.mkdtemp(prefix="ckpt-phases-", dir=a.work)
    try:
        for _ in range(a.reps):
            for name, (exe, args) in workloads.items():
                dump, restore = one(ckpt, os.path.join(bench, exe), args, work)
                results[name][0].append(dump)
                results[name][1].append(restore)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = list(workloads)
    print(f"# {os.uname().release}, load {os.getloadavg()[0]:.2f}, {a.reps} reps, images in {a.work}")
    table("dump (kill mode)", names, {n: results[n][0] for n in names}, DUMP_PHASES)
    table("restore -d", names, {n: results[n][1] for n in names}, RESTORE_PHASES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
