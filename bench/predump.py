#!/usr/bin/env python3
"""Iterative dump benchmark: a process of --mib MiB (default 1 GiB) that
rewrites random 4 KiB pages at a fixed rate (bench_dirty), dumped plainly
(stop-and-copy) and iteratively (--rounds pre-dump rounds back to back, then
dump --prev-images-dir --track-mem), and moved with ckpt migrate into a
fresh PID namespace, at each rate of --rates (MiB/s). Prints
one markdown table: per round the time the process was frozen, the pages
stored and the round's whole time; the final dump's frozen time against the
plain dump's. Each iterative chain is restored and the process checks every
page itself (bench_dirty exits 0 only if all are right). A last table sets
the downtime of ckpt migrate (frozen on the source until running on the
destination) against stop-and-copy's (the plain dump's and its restore's
wall time), with the bytes it sent against the resident memory.

    bench/predump.py [--build build] [--tmp /var/tmp] [--mib 1024] [--rates 32,128] [--rounds 3] [--warmup 2]

Run as root. The driver is a child subreaper, so the restored process (ckpt
restore -d) is its child and is reaped here.
"""

import argparse
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import start_dirty

PR_SET_CHILD_SUBREAPER = 36


def log(msg):
    print(f"predump: {msg}", file=sys.stderr, flush=True)


def stat(text, name):
    m = re.search(rf"{name}\s+([0-9.]+)", text)
    return float(m.group(1)) if m else float("nan")


class Bench:
    def __init__(self, args):
        self.a = args
        self.ckpt = os.path.join(args.build, "ckpt")
        self.work = tempfile.mkdtemp(prefix="ckpt-predump-", dir=args.tmp)
        os.chmod(self.work, 0o700)
        self.migrations = []

    def start(self, rate):
        pid = start_dirty(self.a.build, self.work, self.a.mib, rate)
        time.sleep(self.a.warmup)  # it writes for a while first, as a service would
        return pid

    def ckpt_run(self, *argv):
        t = time.monotonic()
        r = subprocess.run([self.ckpt, *argv, "--stats"], capture_output=True, text=True)
        wall = time.monotonic() - t
        if r.returncode != 0:
            raise RuntimeError(f"ckpt {' '.join(argv)}: status {r.returncode}\n{r.stderr}")
        return {"frozen": stat(r.stderr, "frozen time"), "pages": int(stat(r.stderr, "pages written")),
                "wall": wall * 1000}

    def reap(self, pid, sig=None):
        if sig:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        _, st = os.waitpid(pid, 0)
        return st

    def one_rate(self, rate):
        rows = []
        d = lambda n: os.path.join(self.work, n)
        # Stop-and-copy: the downtime of a move is the dump and the restore.
        pid = self.start(rate)
        plain = self.ckpt_run("dump", "-t", str(pid), "-D", d("plain"))
        self.reap(pid)
        t = time.monotonic()
        r = subprocess.run([self.ckpt, "restore", "-D", d("plain"), "-d"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"restore: {r.stderr}")
        plain["restore"] = (time.monotonic() - t) * 1000
        self.reap(pid, signal.SIGTERM)
        shutil.rmtree(d("plain"))
        rows.append(("plain dump", plain))
        # Iterative.
        pid = self.start(rate)
        prev = None
        for i in range(1, self.a.rounds + 1):
            argv = ["pre-dump", "-t", str(pid), "-D", d(f"r{i}")]
            if prev:
                argv += ["--prev-images-dir", "../" + prev]
            rows.append((f"pre-dump {i}", self.ckpt_run(*argv)))
            prev = f"r{i}"
        final = self.ckpt_run("dump", "-t", str(pid), "-D", d("final"), "--prev-images-dir", "../" + prev,
                              "--track-mem")
        rows.append(("final dump", final))
        self.reap(pid)
        # The chain restores and every page is right.
        pidfile = d("restored.pid")
        r = subprocess.run([self.ckpt, "restore", "-D", d("final"), "-d", "--pidfile", pidfile],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"restore: {r.stderr}")
        time.sleep(0.5)
        st = self.reap(pid, signal.SIGTERM)
        ok = os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
        for n in os.listdir(self.work):
            p = d(n)
            if os.path.isdir(p):
                shutil.rmtree(p)
        return rows, plain, final, ok and self.migrate(rate, plain, False) and self.migrate(rate, plain, True)

    def migrate(self, rate, plain, lazy):
        """ckpt migrate into a fresh PID namespace over loopback, pre-copy or
        (lazy) pre-copy then post-copy: its downtime and bytes sent; the
        moved process checks every page."""
        d = lambda n: os.path.join(self.work, n)
        pid = self.start(rate)
        port = 20000 + os.getpid() % 20000
        dst = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", self.ckpt, "migrate", "--listen",
                                str(port), "--address", "127.0.0.1", "-D", d("dst")] + (["--lazy-pages"] if lazy else []),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while f":{port:04X} 00000000:0000 0A" not in open("/proc/net/tcp").read():
            if time.time() > deadline:
                raise RuntimeError("migrate --listen never listened")
            time.sleep(0.02)
        r = subprocess.run([self.ckpt, "migrate", "-t", str(pid), "--to", f"127.0.0.1:{port}", "-D", d("src")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"migrate: {r.stderr}")
        self.reap(pid)
        m = re.search(r"(\d+) pre-dump rounds, final dump (\d+) pages, (\d+) bytes sent, downtime ([0-9.]+) ms", r.stderr)
        # unshare -> ckpt -> the moved process (and with lazy, the daemon)
        children = lambda p: [int(c) for c in open(f"/proc/{p}/task/{p}/children").read().split()]
        ckpt_pid = children(dst.pid)[0]
        moved = next(c for c in children(ckpt_pid) if open(f"/proc/{c}/comm").read().strip() == "bench_dirty")
        time.sleep(0.5)
        os.kill(moved, signal.SIGTERM)
        ok = dst.wait(timeout=60) == 0
        for n in ("src", "dst"):
            shutil.rmtree(d(n), ignore_errors=True)
        self.migrations.append((rate, "post-copy" if lazy else "pre-copy", int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4)),
                                plain["wall"] + plain["restore"], ok))
        return ok

    def run(self):
        print(f"| rate | step | frozen (ms) | pages stored | step time (ms) |")
        print(f"|---|---|---:|---:|---:|")
        summary = []
        for rate in self.a.rates:
            log(f"{rate} MiB/s")
            rows, plain, final, ok = self.one_rate(rate)
            for name, s in rows:
                print(f"| {rate} MiB/s | {name} | {s['frozen']:.1f} | {s['pages']} | {s['wall']:.0f} |")
            summary.append((rate, plain, final, ok))
        print()
        print("| rate | plain dump frozen (ms) | final dump frozen (ms) | ratio | restored chain verified |")
        print("|---|---:|---:|---:|---|")
        for rate, plain, final, ok in summary:
            print(f"| {rate} MiB/s | {plain['frozen']:.1f} | {final['frozen']:.1f} | "
                  f"{final['frozen'] / plain['frozen']:.1%} | {'yes' if ok else 'NO'} |")
        print()
        rss = self.a.mib * 1024 * 1024
        print("| rate | migrate | stop-and-copy downtime (dump + restore, ms) | ckpt migrate downtime (ms) | ratio | "
              "rounds | final pages | bytes sent / resident | every page right |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for rate, how, rounds, pages, sent, down, plain_down, ok in self.migrations:
            print(f"| {rate} MiB/s | {how} | {plain_down:.0f} | {down:.0f} | {down / plain_down:.1%} | {rounds} | "
                  f"{pages} | {sent / rss:.2f} | {'yes' if ok else 'NO'} |")
        return all(ok for *_, ok in summary)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("--tmp", default="/var/tmp")
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--rates", default="32,128", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=float, default=2)
    a = p.parse_args()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    b = Bench(a)
    try:
        return 0 if b.run() else 1
    finally:
        shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
