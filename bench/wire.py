#!/usr/bin/env python3
"""What the page server's transport costs: a process of --mib MiB
(bench_dirty, not writing: --rate 0) is dumped --leave-running --reps times
in each of four ways, interleaved:

  - local:    into the images directory (no page server);
  - plain:    through `ckpt page-server` on 127.0.0.1 (splice into the socket);
  - psk:      the same with --psk-file on both ends (the handshake only);
  - tls:      the same with --psk-file --tls on both ends (TLS 1.3, AES-128-GCM,
              through the relay of image/wire_tls.h).

Prints one markdown table: the dump's wall time (median, range) and the
rate of page data it moved, against two limits measured here: memcpy
bandwidth (bench_memcpy) and `openssl speed -evp aes-128-gcm` at 16 KiB
blocks (one core encrypting: the most TLS can do, before the receiver
decrypts on the other core).

    bench/wire.py [--build build] [--tmp /var/tmp] [--mib 1024] [--reps 5]

Run as root.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import start_dirty


def log(msg):
    print(f"wire: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    want = f":{port:04X} 00000000:0000 0A"
    with open("/proc/net/tcp") as f:
        return any(want in line for line in f)


class Bench:
    def __init__(self, a):
        self.a = a
        self.ckpt = os.path.join(a.build, "ckpt")
        self.work = tempfile.mkdtemp(prefix="ckpt-wire-", dir=a.tmp)
        os.chmod(self.work, 0o700)
        self.key = os.path.join(self.work, "key")
        with open(os.open(self.key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex() + "\n")

    def start(self):
        return start_dirty(self.a.build, self.work, self.a.mib, 0)

    def dump(self, pid, mode):
        d = os.path.join(self.work, "img")
        shutil.rmtree(d, ignore_errors=True)
        os.mkdir(d, 0o700)
        args = [self.ckpt, "dump", "-t", str(pid), "-D", d, "--leave-running"]
        server = None
        if mode != "local":
            port = free_port()
            extra = {"plain": [], "psk": ["--psk-file", self.key], "tls": ["--psk-file", self.key, "--tls"]}[mode]
            server = subprocess.Popen([self.ckpt, "page-server", "-D", d, "--address", "127.0.0.1", "--port",
                                       str(port)] + extra, stderr=subprocess.PIPE, text=True)
            while not listening(port):
                if server.poll() is not None:
                    raise RuntimeError(f"page-server: {server.stderr.read()}")
                time.sleep(0.001)
            args += ["--page-server", "--address", "127.0.0.1", "--port", str(port)] + extra
        t = time.monotonic()
        r = subprocess.run(args, capture_output=True, text=True)
        wall = (time.monotonic() - t) * 1000
        if r.returncode != 0:
            raise RuntimeError(f"dump ({mode}): {r.stderr}")
        if server:
            _, err = server.communicate(timeout=60)
            if server.returncode != 0:
                raise RuntimeError(f"page-server ({mode}): {err}")
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("pages-"))
        return wall, size


def memcpy_gbs(build):
    out = subprocess.run([os.path.join(build, "bench", "bench_memcpy")], capture_output=True, text=True).stdout
    nums = re.findall(r"[0-9]+\.[0-9]+", out)  # it prints GB/s last
    return float(nums[-1]) if nums else float("nan")


def aes_gcm_gbs():
    r = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", "16384", "-evp", "aes-128-gcm"],
                       capture_output=True, text=True)
    m = re.search(r"^AES-128-GCM\s+([0-9.]+)k", r.stdout, re.M | re.I)
    return float(m.group(1)) * 1000 / 1e9 if m else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build")
    p.add_argument("--tmp", default="/var/tmp")
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    b = Bench(a)
    modes = ["local", "plain", "psk", "tls"]
    rows = {m: [] for m in modes}
    pid = b.start()
    try:
        for i in range(a.reps):
            for m in modes:
                wall, size = b.dump(pid, m)
                log(f"{m} {i + 1}: {wall:.0f} ms, {size >> 20} MiB")
                rows[m].append((wall, size))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        shutil.rmtree(b.work, ignore_errors=True)
    mc, aes = memcpy_gbs(a.build), aes_gcm_gbs()
    print(f"limits here: memcpy {mc:.1f} GB/s; AES-128-GCM (openssl speed, 16 KiB, one core) {aes:.2f} GB/s\n")
    print(f"| dump of {a.mib} MiB | wall (ms) | page data (GB/s) | / memcpy | / AES-128-GCM |")
    print("|---|---:|---:|---:|---:|")
    for m in modes:
        walls = [w for w, _ in rows[m]]
        med = statistics.median(walls)
        gbs = rows[m][0][1] / (med / 1000) / 1e9
        print(f"| {m} | {med:.0f} ({min(walls):.0f}-{max(walls):.0f}) | {gbs:.2f} | {gbs / mc:.2f} | "
              f"{gbs / aes:.2f} |")


if __name__ == "__main__":
    main()
