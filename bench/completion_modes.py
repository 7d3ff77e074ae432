#!/usr/bin/env python3
"""Restore completed on breakpoints against syscall tracing, by thread count.

    bench/completion_modes.py [--ckpt build/ckpt] [--threads 1,16,64,256,1000] [--reps 7]

For each N: bench_threads N is dumped once (kill mode); each rep restores it
with -d twice, on breakpoints and with --no-breakpoints, in turn, and kills
and reaps it after each. Prints the median wall time of each (ms), the
completion phase of each (--stats), and breakpoints / tracing. Restores
follow one another at once, so the kernel's perf hooks stay on (see
cold_restore.py for a restore after a quiet second).
"""

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free, wait_pid_file

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: restored -d tasks come back to us


def restore(ckpt, img, pid, extra):
    t0 = time.perf_counter()
    r = subprocess.run([ckpt, "restore", "-D", img, "-d", "--shell-job", "--stats"] + extra,
                       capture_output=True, text=True)
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode != 0 or not os.path.exists(f"/proc/{pid}"):
        raise SystemExit(f"restore failed: {r.stderr[-300:]}")
    free(pid)
    phase = [float(l.split()[2]) for l in r.stderr.splitlines() if l.strip().startswith("phase completion")]
    return ms, phase[0] if phase else float("nan")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(here, "..", "build", "ckpt"))
    ap.add_argument("--threads", default="1,16,64,256,1000")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--work", default="/dev/shm")
    a = ap.parse_args()
    bench = os.path.join(os.path.dirname(os.path.abspath(a.ckpt)), "bench")
    work = tempfile.mkdtemp(dir=a.work, prefix="modes-")
    print(f"# restore -d of bench_threads N, median of {a.reps} interleaved, ms (completion phase)")
    print("| threads | breakpoints | syscall tracing | breakpoints / tracing |")
    print("|---:|---:|---:|---:|")
    for n in [int(x) for x in a.threads.split(",")]:
        d = tempfile.mkdtemp(dir=work)
        wl = subprocess.Popen([f"{bench}/bench_threads", f"{d}/ready", str(n)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = wait_pid_file(f"{d}/ready")
        os.mkdir(f"{d}/img")
        subprocess.run([a.ckpt, "dump", "-t", str(pid), "-D", f"{d}/img", "--shell-job"], check=True)
        wl.wait()
        bp, tr = [], []
        for _ in range(a.reps):
            bp.append(restore(a.ckpt, f"{d}/img", pid, []))
            tr.append(restore(a.ckpt, f"{d}/img", pid, ["--no-breakpoints"]))
        b, t = statistics.median(x[0] for x in bp), statistics.median(x[0] for x in tr)
        bc, tc = statistics.median(x[1] for x in bp), statistics.median(x[1] for x in tr)
        print(f"| {n} | {b:.1f} ({bc:.1f}) | {t:.1f} ({tc:.1f}) | {b / t:.2f} |", flush=True)
        shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
