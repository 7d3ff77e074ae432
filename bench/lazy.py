#!/usr/bin/env python3
"""Lazy restore benchmark: a process of --mib MiB (default 1 GiB, bench_dirty
rewriting random pages at --rate MiB/s) is dumped (kill mode), then
restored --reps times with `ckpt restore -d` and --reps times with `ckpt
lazy-pages` + `ckpt restore -d --lazy-pages`, alternately. Prints one
markdown table (medians, ranges in parentheses):

  - "to first instruction": from the end of the dump (the images written)
    until ckpt restore -d returned, which it does once the process has taken
    its first step of its own code (README). For the lazy restore this
    includes starting the daemon (it loads and checks the metadata images,
    then listens) and connecting to it;
  - "restore -d": the wall time of the ckpt restore -d command alone, and
    of it ckpt's own "restore time" (--stats: from main() to the process
    running, without the exec and exit of ckpt);
  - "all pages in": from the end of the dump until the daemon exited (every
    page in; lazy only).

Each restored process then gets SIGTERM and checks every page itself
(bench_dirty exits 0 only if all are right).

    bench/lazy.py [--build build] [--tmp /var/tmp] [--mib 1024] [--rate 8] [--reps 3]

Run as root. The driver is a child subreaper, so the restored process (ckpt
restore -d) is its child and is reaped here.
"""

import argparse
import ctypes
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import start_dirty

PR_SET_CHILD_SUBREAPER = 36


def log(msg):
    print(f"lazy: {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, a):
        self.a = a
        self.ckpt = os.path.join(a.build, "ckpt")
        self.work = tempfile.mkdtemp(prefix="ckpt-lazy-", dir=a.tmp)
        os.chmod(self.work, 0o700)
        self.dir = os.path.join(self.work, "img")

    def start(self):
        return start_dirty(self.a.build, self.work, self.a.mib, self.a.rate)

    def dump(self):
        """A fresh checkpoint; returns the pid and when the dump ended."""
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        pid = self.start()
        time.sleep(1)
        r = subprocess.run([self.ckpt, "dump", "-t", str(pid), "-D", self.dir], capture_output=True, text=True)
        end = time.monotonic()
        if r.returncode != 0:
            raise RuntimeError(f"dump: {r.stderr}")
        os.waitpid(pid, 0)
        return pid, end

    def verify(self, pid):
        os.kill(pid, signal.SIGTERM)
        _, st = os.waitpid(pid, 0)
        return os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0

    def restore(self, lazy):
        pid, dumped = self.dump()
        daemon = None
        if lazy:
            daemon = subprocess.Popen([self.ckpt, "lazy-pages", "-D", self.dir], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
            sock = os.path.join(self.dir, "lazy-pages.sock")
            while not os.path.exists(sock):
                if daemon.poll() is not None:
                    raise RuntimeError(f"lazy-pages: {daemon.stderr.read()}")
                time.sleep(0.0005)
        t = time.monotonic()
        r = subprocess.run([self.ckpt, "restore", "-D", self.dir, "-d", "--stats"] +
                           (["--lazy-pages"] if lazy else []), capture_output=True, text=True)
        end = time.monotonic()
        if r.returncode != 0:
            raise RuntimeError(f"restore: {r.stderr}")
        m = re.search(r"restore time\s+([0-9.]+)", r.stderr)
        row = {"first": (end - dumped) * 1000, "restore": (end - t) * 1000, "all": float("nan"),
               "stats": float(m.group(1)) if m else float("nan")}
        if daemon:
            _, err = daemon.communicate(timeout=300)
            if daemon.returncode != 0:
                raise RuntimeError(f"lazy-pages: {err}")
            row["all"] = (time.monotonic() - dumped) * 1000
        row["ok"] = self.verify(pid)
        return row


def cell(vals):
    vals = [v for v in vals if v == v]
    if not vals:
        return "-"
    return f"{statistics.median(vals):.1f} ({min(vals):.1f}-{max(vals):.1f})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build")
    p.add_argument("--tmp", default="/var/tmp")
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--rate", type=float, default=8)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    b = Bench(a)
    rows = {False: [], True: []}
    try:
        for i in range(a.reps):
            for lazy in (False, True):
                row = b.restore(lazy)
                log(f"{'lazy' if lazy else 'plain'} {i + 1}: {row}")
                rows[lazy].append(row)
    finally:
        shutil.rmtree(b.work, ignore_errors=True)
    print(f"| restore ({a.mib} MiB) | to first instruction (ms) | restore -d (ms) | of which restore() (--stats, ms) "
          "| all pages in (ms) | verified |")
    print("|---|---:|---:|---:|---:|---|")
    for lazy in (False, True):
        rs = rows[lazy]
        print(f"| {'--lazy-pages' if lazy else 'plain'} | {cell([r['first'] for r in rs])} | "
              f"{cell([r['restore'] for r in rs])} | {cell([r['stats'] for r in rs])} | {cell([r['all'] for r in rs])} | "
              f"{'yes' if all(r['ok'] for r in rs) else 'NO'} |")


if __name__ == "__main__":
    main()
