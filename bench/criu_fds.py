#!/usr/bin/env python3
"""ckpt and CRIU dumping a process of N fds, interleaved: issue 16's ratio.

    bench/criu_fds.py --criu /var/tmp/criu-src/criu/criu [--ckpt build/ckpt] [-n 10000] [--reps 11]

bench_fds N holds N fds (every other one a file of its own at an offset of
its own, the next its dup), a session leader of its own. Each rep, for each
tool in turn: start a new bench_fds, dump it (kill mode), reap it. Prints the median wall time of each (range),
ckpt/CRIU, and the target (<= 0.50x).
"""

import ctypes
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import benchlib

TARGET = 0.50
PR_SET_CHILD_SUBREAPER = 36


def one(exe, bench, n, work):
    """Wall ms of one dump of a new bench_fds."""
    d = tempfile.mkdtemp(dir=work)
    ready, img = f"{d}/ready", f"{d}/img"
    os.mkdir(img)
    p = subprocess.Popen([os.path.join(bench, "bench_fds"), ready, str(n)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not os.path.exists(ready):
            if time.time() > deadline or p.poll() is not None:
                raise RuntimeError("bench_fds never got ready")
            time.sleep(0.005)
        t0 = time.perf_counter()
        r = subprocess.run([exe, "dump", "-t", str(p.pid), "-D", img, "-o", "dump.log"], capture_output=True,
                           text=True)
        ms = (time.perf_counter() - t0) * 1000
        if r.returncode:
            raise RuntimeError(f"{exe} dump: {r.stderr.strip()[-300:]}")
        return ms
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    a = benchlib.criu_args(__doc__, "fds", 10000, "fds", reps=11, work="/dev/shm").parse_args()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    times = {"ckpt": [], "criu": []}
    for _ in range(a.reps):
        for tool, exe in (("ckpt", a.ckpt), ("criu", a.criu)):
            times[tool].append(one(exe, a.bench, a.n, a.work))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"| {a.n} fds, dump | ckpt | CRIU | ckpt/CRIU | target |")
    print("|---|---:|---:|---:|---:|")
    rng = {k: f"{min(v):.1f}-{max(v):.1f}" for k, v in times.items()}
    print(f"| median (range) ms | {med['ckpt']:.1f} ({rng['ckpt']}) | {med['criu']:.1f} ({rng['criu']}) "
          f"| {med['ckpt'] / med['criu']:.2f}x | <= {TARGET:.2f}x |")


if __name__ == "__main__":
    main()
