#!/usr/bin/env python3
"""ckpt and CRIU dumping a process of N fds or N VMAs, interleaved: issue 16's ratios.

    bench/criu_scale.py --criu /var/tmp/criu-src/criu/criu fds [-n 10000] [--reps 11]
    bench/criu_scale.py --criu /var/tmp/criu-src/criu/criu vmas [-n 30000] [--reps 11]

bench_fds N holds N fds (every other one a file of its own at an offset of
its own, the next its dup); bench_vmas N has N VMAs of one present page
each. Each is a session leader of its own. Each rep, for each tool in turn:
start a new one, dump it (kill mode), reap it. Prints the median wall time
of each (range), ckpt/CRIU, and the target (fds <= 0.50x, VMAs <= 0.80x).
"""

import ctypes
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import benchlib

WORKLOADS = {"fds": (10000, 0.50), "vmas": (30000, 0.80)}  # default N, target
PR_SET_CHILD_SUBREAPER = 36


def one(exe, bench, workload, n, work):
    """Wall ms of one dump of a new bench_`workload`."""
    d = tempfile.mkdtemp(dir=work)
    ready, img = f"{d}/ready", f"{d}/img"
    os.mkdir(img)
    p = subprocess.Popen([os.path.join(bench, f"bench_{workload}"), ready, str(n)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not os.path.exists(ready):
            if time.time() > deadline or p.poll() is not None:
                raise RuntimeError(f"bench_{workload} never got ready")
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
    ap = benchlib.criu_args(__doc__, "fds or bench_vmas", None, "fds or VMAs (default: 10000 fds, 30000 VMAs)",
                            reps=11, work="/dev/shm")
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    a = ap.parse_args()
    n = a.n or WORKLOADS[a.workload][0]
    target = WORKLOADS[a.workload][1]
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    times = {"ckpt": [], "criu": []}
    for _ in range(a.reps):
        for tool, exe in (("ckpt", a.ckpt), ("criu", a.criu)):
            times[tool].append(one(exe, a.bench, a.workload, n, a.work))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"| {n} {a.workload}, dump | ckpt | CRIU | ckpt/CRIU | target |")
    print("|---|---:|---:|---:|---:|")
    rng = {k: f"{min(v):.1f}-{max(v):.1f}" for k, v in times.items()}
    print(f"| median (range) ms | {med['ckpt']:.1f} ({rng['ckpt']}) | {med['criu']:.1f} ({rng['criu']}) "
          f"| {med['ckpt'] / med['criu']:.2f}x | <= {target:.2f}x |")


if __name__ == "__main__":
    main()
