#!/usr/bin/env python3
"""Restore the same images with two ckpt builds, interleaved: A, B, A, B, ...

    bench/restore_ab.py --a OLD/ckpt --b build/ckpt --workload tree -n 50 --reps 12
    bench/restore_ab.py --a OLD/ckpt --b build/ckpt --workload threads -n 10000 --reps 3 -- --no-breakpoints

One workload (bench_tree or bench_threads with N tasks or threads) is started
and dumped once with B (kill mode, every task reaped); then each rep restores
it with A and with B in turn (`restore -d --stats`, the extra arguments after
`--` appended), checks and stops the restored tree, and frees every PID before
the next restore. On a shared machine whose load comes and goes, the two
builds then meet the same load, which a run of run.py per build (minutes
apart) does not give. Prints, per build, the median, min and max wall time,
the median `--stats` restore time and phases, the ptrace stops per thread
(max and mean), and the CPU time of ckpt (its rusage: its threads and the
children it reaped) and of the restored tasks until they were checked
(their schedstat, from their creation: the forks a parent made count as
its own). Dump and restore of one image format: A must read B's images.
"""

import argparse
import ctypes
import os
import shutil
import signal
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (the driver's Driver, tree and stats helpers)


def restore_once(d, exe, img, tree, extra):
    """One restore -d; the restored tree checked, then stopped and reaped. Returns the Run with .stats."""
    pidfile = os.path.join(d.work, "restored.pid")
    argv = [exe, "restore", "-D", img, "-d", "--stats", "--pidfile", pidfile, *extra]
    d.live.update(tree)
    r = d.run(argv, check=False)
    if r.code != 0:
        R.kill_tree(d, tree)
        raise R.BenchError("restore failed: " + r.describe())
    r.stats = R.parse_stats(r.err)
    R.check_tree(tree, f"restored by {exe}")
    root = next(iter(tree))
    r.task_cpu = {p: task_cpu_ms(p) for p in tree}
    r.root = root
    d.stop_verified(root, f"restored by {exe}", timeout=60)
    R.kill_tree(d, tree)
    return r


def task_cpu_ms(pid):
    """CPU time the task has run since it was created (every thread's, /proc/PID/task/TID/schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e6


def summary(name, runs):
    walls = [r.wall * 1e3 for r in runs]
    times = [r.stats.get("restore time", 0.0) for r in runs]
    phases = {p: statistics.median(dict(r.stats["phases"]).get(p, 0.0) for r in runs) for p, _ in runs[0].stats["phases"]}
    stops = [s for r in runs for s, _, _ in r.stats["stops"]]
    per_run = len(runs[0].stats["stops"])
    return (f"{name}: restore -d wall median {statistics.median(walls):.1f} ms (min {min(walls):.1f}, max "
            f"{max(walls):.1f}), --stats restore time median {statistics.median(times):.1f} ms; phases "
            + ", ".join(f"{p} {v:.1f}" for p, v in phases.items())
            + f"; ptrace stops per thread max {max(stops)} mean {sum(stops) / len(stops):.2f} ({per_run} threads)"
            + "; CPU median ckpt {:.1f} ms, restored tasks {:.1f} ms (root {:.1f})".format(
                statistics.median((r.rusage.ru_utime + r.rusage.ru_stime) * 1e3 for r in runs),
                statistics.median(sum(r.task_cpu.values()) for r in runs),
                statistics.median(r.task_cpu[r.root] for r in runs)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="ckpt binary A (e.g. a build of the base commit)")
    ap.add_argument("--b", required=True, help="ckpt binary B (dumps the workload too)")
    ap.add_argument("--build", default="build", help="where bench/bench_* are")
    ap.add_argument("--workload", choices=["tree", "threads"], default="tree")
    ap.add_argument("-n", type=int, default=50, help="tasks (tree) or threads (threads)")
    ap.add_argument("--reps", type=int, default=9, help="restores per build")
    ap.add_argument("--tmp", default="/var/tmp")
    ap.add_argument("extra", nargs="*", help="ckpt restore arguments, after --")
    a = ap.parse_args()
    ctypes.CDLL(None, use_errno=True).prctl(R.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    work = tempfile.mkdtemp(dir=a.tmp, prefix="ckpt-ab-")
    d = R.Driver(os.getcwd(), os.path.abspath(a.build), work)
    d.ckpt = os.path.abspath(a.b)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    runs = {"A": [], "B": []}
    try:
        pid = d.start(a.workload, [str(a.n)], timeout=R.TREE_TIMEOUT)
        tree = R.tree_of(pid)
        d.live.update(tree)
        img = os.path.join(work, "img")
        d.dump(pid, img, timeout=R.TREE_TIMEOUT)
        R.reap_tree(d, tree, 30, f"dumped {a.workload}")
        for i in range(a.reps):
            for name, exe in (("A", a.a), ("B", a.b)):
                runs[name].append(restore_once(d, os.path.abspath(exe), img, tree, a.extra))
            R.log(f"rep {i + 1}/{a.reps}: A {runs['A'][-1].wall * 1e3:.1f} ms, B {runs['B'][-1].wall * 1e3:.1f} ms")
        print(f"{a.workload} of {a.n}, {a.reps} interleaved restores each, load average {os.getloadavg()[0]:.2f} after")
        print(summary(f"A {a.a}", runs["A"]))
        print(summary(f"B {a.b}", runs["B"]))
        return 0
    except R.BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        d.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
