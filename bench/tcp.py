#!/usr/bin/env python3
"""Dump and restore time of a server with N established TCP connections whose
clients (this script) are outside the tree: `ckpt dump --tcp-established`
(kill mode) and `ckpt restore -d`, then every connection echoes a byte.
Meanwhile one connection is pinged (a byte there and back, again as soon as
it is back): the longest wait for an echo is the time the connections are
locked, from the freeze to the first packet after the restore, as a client
sees it (retransmission timing included).

    bench/tcp.py [--build build] [--conns 1000] [--reps 3]

Prints a markdown table (median of the reps, range next to it). Run as root.
"""
import argparse, ctypes, threading, os, resource, select, shutil, signal, socket, statistics, subprocess, sys, tempfile, time


def wait_file(path, timeout=30):
    end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > end:
            raise RuntimeError(f"{path} never appeared")
        time.sleep(0.01)


def reap():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                return
        except ChildProcessError:
            return


class Pinger(threading.Thread):
    """Pings connection `c` until stopped: each byte sent as soon as the last
    one came back. `gap`: the longest wait for an echo, `lost`: the time from
    the last echo before it to when restore -d returned (the lock removed)."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c, self.stop, self.gap, self.gap_start, self.error, self.pings = c, False, 0.0, 0.0, None, 0

    def run(self):
        try:
            self.c.settimeout(30)
            while not self.stop:
                t = time.monotonic()
                self.c.sendall(b"p")
                if self.c.recv(1) != b"p":
                    raise RuntimeError("the pinged connection echoed something else")
                if time.monotonic() - t > self.gap:
                    self.gap, self.gap_start = time.monotonic() - t, t
                self.pings += 1
                time.sleep(0.001)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def one(build, n, work):
    img = os.path.join(work, "img")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(img, mode=0o700)
    portfile, ready = os.path.join(work, "port"), os.path.join(work, "ready")
    srv = subprocess.Popen([os.path.join(build, "bench", "bench_tcpconns"), portfile, ready, str(n)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)  # no fd of ours: a pipe to outside the tree is refused
    wait_file(portfile)
    time.sleep(0.05)
    port = int(open(portfile).read())
    clients = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        clients.append(c)
    wait_file(ready)
    # Each connection carries a byte there and back first.
    for c in clients:
        c.sendall(b"x")
    for c in clients:
        assert c.recv(1) == b"x"
    time.sleep(0.2)
    pinger = Pinger(clients[0])
    pinger.start()
    time.sleep(0.05)
    t = time.monotonic()
    subprocess.run([os.path.join(build, "ckpt"), "dump", "-t", str(srv.pid), "-D", img, "--tcp-established"],
                   check=True)
    dump_s = time.monotonic() - t
    srv.wait()
    reap()
    t = time.monotonic()
    subprocess.run([os.path.join(build, "ckpt"), "restore", "-D", img, "-d"], check=True)
    restore_s = time.monotonic() - t
    unlocked, pings = time.monotonic(), pinger.pings
    end = unlocked + 30
    while pinger.pings < pings + 2 and pinger.error is None and time.monotonic() < end:
        time.sleep(0.01)  # until the ping the lock held (and one more) came back
    pinger.stop = True
    pinger.join()
    if pinger.error:
        raise RuntimeError(f"the pinged connection failed: {pinger.error}")
    locked_s, lock_to_unlock_s = pinger.gap, unlocked - pinger.gap_start
    t = time.monotonic()
    for c in clients[1:]:
        c.sendall(b"y")
    for c in clients[1:]:
        c.settimeout(10)
        if c.recv(1) != b"y":
            raise RuntimeError("a connection did not echo after restore")
    echo_s = time.monotonic() - t
    size = sum(os.path.getsize(os.path.join(img, f)) for f in os.listdir(img))
    os.kill(srv.pid, signal.SIGTERM)
    for c in clients:
        c.close()
    for _ in range(300):
        try:
            os.kill(srv.pid, 0)
        except ProcessLookupError:
            break
        reap()
        time.sleep(0.01)
    return dump_s, restore_s, echo_s, size, locked_s, lock_to_unlock_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the killed server is reaped here
    # The clients here; ckpt restore, our child, holds two fds per connection.
    resource.setrlimit(resource.RLIMIT_NOFILE, (a.conns + 256, 4 * a.conns + 256))
    work = tempfile.mkdtemp(prefix="ckpt-bench-tcp-", dir="/var/tmp")
    runs = [one(a.build, a.conns, os.path.join(work, str(i))) for i in range(a.reps)]
    shutil.rmtree(work, ignore_errors=True)
    med = lambda k: statistics.median(r[k] for r in runs)
    rng = lambda k: f"{min(r[k] for r in runs) * 1000:.0f}-{max(r[k] for r in runs) * 1000:.0f}"
    print("| connections | dump (ms) | restore (ms) | all echo after restore (ms) | locked: freeze to first packet "
          "after restore (ms) | of which until restore returned (ms) | images |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {a.conns} | {med(0) * 1000:.0f} ({rng(0)}) | {med(1) * 1000:.0f} ({rng(1)}) | "
          f"{med(2) * 1000:.0f} ({rng(2)}) | {med(4) * 1000:.0f} ({rng(4)}) | {med(5) * 1000:.0f} ({rng(5)}) | "
          f"{runs[0][3] / 1024:.0f} KiB |")


if __name__ == "__main__":
    sys.exit(main())
