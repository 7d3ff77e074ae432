#!/usr/bin/env python3
"""ckpt benchmark: machine limits, 1 GiB dump/restore, tiny-process restore,
dump/restore of process trees of 1 to 200 tasks and a pre-fork tree's image
size, restore of processes with 1 to 10,000 threads.

Run through bench/run.sh (which builds first). Prints one markdown table on
stdout, then one for the process trees, then one for the multithreaded
restores; progress and errors go to stderr. Exit status 0 only if every step
succeeded. See bench/README.md for what each row means.

The driver makes itself a child subreaper: workloads are its children, and a
process restored with `ckpt restore -d` is reparented to it when ckpt exits, so
it can kill and reap everything it started. Nothing is left behind on failure.
"""

import argparse
import ctypes
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time

GiB = 1 << 30
PR_SET_CHILD_SUBREAPER = 36


class BenchError(Exception):
    pass


class Timeout(BenchError):
    pass


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Run:
    """A finished command: exit status, wall time, own rusage, output."""

    def __init__(self, argv, status, wall, rusage, out, err):
        self.argv, self.status, self.wall, self.rusage, self.out, self.err = argv, status, wall, rusage, out, err

    @property
    def code(self):
        if os.WIFEXITED(self.status):
            return os.WEXITSTATUS(self.status)
        return 128 + os.WTERMSIG(self.status)

    def describe(self):
        return (f"`{' '.join(self.argv)}` exited with status {self.code}\n"
                f"--- stdout ---\n{self.out.strip()}\n--- stderr ---\n{self.err.strip()}")


class Driver:
    def __init__(self, root, build, work):
        self.root, self.build, self.work = root, build, work
        self.ckpt = os.path.join(build, "ckpt")
        self.live = set()  # pids we are responsible for (children, or restored tasks reparented to us)
        self.seq = 0

    # -- generic command runner: posix_spawn + wait4, so ru_maxrss is the command's own

    def run(self, argv, timeout=60, check=True):
        self.seq += 1
        out_path = os.path.join(self.work, f"cmd{self.seq}.out")
        err_path = os.path.join(self.work, f"cmd{self.seq}.err")
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            t0 = time.monotonic()
            pid = os.posix_spawn(argv[0], argv, os.environ,
                                 file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                               (os.POSIX_SPAWN_DUP2, out, 1),
                                               (os.POSIX_SPAWN_DUP2, err, 2)])
        finally:
            os.close(out)
            os.close(err)
        self.live.add(pid)
        status, ru = self._wait(pid, timeout, " ".join(argv))
        wall = time.monotonic() - t0
        r = Run(argv, status, wall, ru, open(out_path).read(), open(err_path).read())
        os.unlink(out_path)
        os.unlink(err_path)
        if check and r.code != 0:
            raise BenchError(r.describe())
        return r

    def _wait(self, pid, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            got, status, ru = os.wait4(pid, os.WNOHANG)
            if got == pid:
                self.live.discard(pid)
                return status, ru
            if time.monotonic() > deadline:
                self.kill(pid)
                raise Timeout(f"{what} (pid {pid}) did not finish within {timeout:.0f} s; killed it")
            time.sleep(0.001)

    def kill(self, pid):
        """SIGKILL and reap a pid we own: only while it is our child (else it is gone, or not ours)."""
        if parent_of(pid) != os.getpid():
            self.live.discard(pid)
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self.live.discard(pid)

    def wait_exit(self, pid, timeout, what):
        status, _ = self._wait(pid, timeout, what)
        return os.waitstatus_to_exitcode(status)

    # -- workloads

    def start(self, name, args=(), timeout=60):
        """Start build/bench/bench_<name> <ready> [args]; wait until it wrote its ready file."""
        self.seq += 1
        ready = os.path.join(self.work, f"{name}{self.seq}.ready")
        logf = os.path.join(self.work, f"{name}{self.seq}.log")
        fd = os.open(logf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        exe = os.path.join(self.build, "bench", f"bench_{name}")
        try:
            # setsid: a service leads its own session (else dump wants --shell-job).
            pid = os.posix_spawn(exe, [exe, ready, *args], os.environ, setsid=True,
                                 file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                               (os.POSIX_SPAWN_DUP2, fd, 1),
                                               (os.POSIX_SPAWN_DUP2, fd, 2)])
        finally:
            os.close(fd)
        self.live.add(pid)
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready):
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                self.live.discard(pid)
                raise BenchError(f"bench_{name} exited ({os.waitstatus_to_exitcode(status)}) before it was ready: "
                                 f"{open(logf).read().strip()}")
            if time.monotonic() > deadline:
                self.kill(pid)
                raise BenchError(f"bench_{name} not ready after {timeout} s")
            time.sleep(0.005)
        if int(open(ready).read()) != pid:
            raise BenchError(f"bench_{name}: ready file names another pid")
        return pid

    def stop_verified(self, pid, what, timeout=30):
        """SIGTERM a workload (ours or restored) and require exit status 0 (its memory check passed)."""
        os.kill(pid, signal.SIGTERM)
        code = self.wait_exit(pid, timeout, what)
        if code != 0:
            raise BenchError(f"{what} (pid {pid}) failed its check after SIGTERM: exit status {code}")

    # -- ckpt

    def dump(self, pid, imgdir, extra=(), leave_running=False, timeout=60):
        """ckpt dump --stats, plus the ckpt arguments in extra (e.g. ["--page-transfer", "readv"],
        ["--no-breakpoints"])."""
        argv = [self.ckpt, "dump", "-t", str(pid), "-D", imgdir, "--stats", *extra]
        if leave_running:
            argv.append("--leave-running")
        r = self.run(argv, timeout=timeout, check=False)
        if r.code != 0:
            raise BenchError("dump failed: " + r.describe())
        if not leave_running:
            # Default mode kills the task; reap it so that its pid is free for the restore.
            code = self.wait_exit(pid, 30, f"dumped task {pid}")
            if code != -signal.SIGKILL:
                raise BenchError(f"dumped task {pid} ended with status {code}, expected SIGKILL")
        r.stats = parse_stats(r.err)
        return r

    def restore(self, imgdir, pid, breakpoints=True, timeout=60):
        pidfile = os.path.join(self.work, "restored.pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        argv = [self.ckpt, "restore", "-D", imgdir, "-d", "--stats", "--pidfile", pidfile]
        if not breakpoints:
            argv.append("--no-breakpoints")
        # The restored task exists from ckpt's clone on: track it whatever happens.
        self.live.add(pid)
        r = self.run(argv, timeout=timeout, check=False)
        if r.code != 0:
            raise BenchError("restore failed: " + r.describe())
        got = int(open(pidfile).read())
        if got != pid:
            self.live.add(got)
            raise BenchError(f"restore: restored pid {got}, expected {pid}")
        st = proc_status(pid)
        if st.get("PPid") != str(os.getpid()):
            raise BenchError(f"restored task {pid} has parent {st.get('PPid')}, expected this driver ({os.getpid()})")
        if st.get("TracerPid") != "0":
            raise BenchError(f"restored task {pid} is still traced by {st.get('TracerPid')}")
        r.stats = parse_stats(r.err)
        return r

    # -- cleanup: everything we own, plus anything reparented to us

    def cleanup(self):
        for pid in list(self.live):
            self.kill(pid)
        for _ in range(3):
            orphans = [p for p in children_of(os.getpid())]
            for p in orphans:
                self.kill(p)
            if not orphans:
                break
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return int(s[s.rindex(")") + 2:].split()[1])


def children_of(ppid):
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and parent_of(int(d)) == ppid]


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


STAT_RE = re.compile(r"^\s+(freeze time|frozen time|memory dump|dump time|restore time|pages written|bytes written|"
                     r"pages read|bytes read)\s+([0-9.]+)", re.M)
STOPS_RE = re.compile(r"^\s+ptrace stops\s+(\d+)\s+\(task (\d+), ([^)]*)\)", re.M)
PHASE_RE = re.compile(r"^\s+phase (\S+)\s+([0-9.]+) ms", re.M)


def parse_stats(text):
    st = {k: float(v) for k, v in STAT_RE.findall(text)}
    st["stops"] = [(int(n), int(t), mode) for n, t, mode in STOPS_RE.findall(text)]
    st["phases"] = [(name, float(v)) for name, v in PHASE_RE.findall(text)]
    return st


def fmt_phases(stats):
    """The --stats phase split of one run: 'start-up 0.3 ms, load 0.4 ms, ...'."""
    return ", ".join(f"{name} {v:.2f} ms" for name, v in stats["phases"]) or "(no phases reported)"


def need(stats, key, what):
    if key not in stats:
        raise BenchError(f"{what}: --stats did not report '{key}'")
    return stats[key]


# ---------------------------------------------------------------- formatting

def gibs(nbytes, seconds):
    return nbytes / seconds / GiB


def fmt_bw(bps):
    return f"{bps / GiB:.2f} GiB/s ({bps / 1e9:.2f} GB/s)"


def fmt_ms(s):
    return f"{s * 1e3:.1f} ms" if s >= 0.01 else f"{s * 1e3:.2f} ms"


def fmt_mib(kib):
    return f"{kib / 1024:.1f} MiB"


def spread(values, f):
    if len(values) < 2:
        return ""
    return f"; {len(values)} runs: {f(min(values))} .. {f(max(values))}"


# ---------------------------------------------------------------- the benchmark

TRANSFERS = [("splice", "splice (default)"), ("readv", "readv")]  # dump --page-transfer: value, label
DUMP_DD_TARGET = 1.5  # the project's target: dump time <= 1.5x dd's page-cache write of the same size


def dd_seconds(text):
    m = re.search(r"copied, ([0-9.]+) s", text)
    if not m:
        raise BenchError(f"cannot parse dd output: {text.strip()}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=None, help="build directory (default: <repo>/build)")
    ap.add_argument("--tmp", default="/var/tmp", help="parent of the temporary images directory (default /var/tmp)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each 1 GiB and dd measurement (best is reported)")
    ap.add_argument("--tiny-reps", type=int, default=5, help="tiny restores per completion mode (best is reported)")
    ap.add_argument("--mib", type=int, default=1024, help="size of the big process in MiB (default 1024)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--threads", default="1,10,100,1000,10000",
                    help="thread counts of the multithreaded restore table (comma-separated; empty: skip it)")
    ap.add_argument("--threads-only", action="store_true", help="only the multithreaded restore table")
    ap.add_argument("--trees", default="1,10,50,200",
                    help="task counts of the process-tree table (comma-separated; empty: skip it and the pre-fork tree)")
    ap.add_argument("--tree-reps", type=int, default=5,
                    help="runs per tree size, each a new tree dumped and restored (the median is reported)")
    ap.add_argument("--prefork-mib", type=int, default=256,
                    help=f"memory the pre-fork tree's root touches before forking {PREFORK_WORKERS} workers "
                         "(default 256; 0: skip the pre-fork tree)")
    ap.add_argument("--trees-only", action="store_true", help="only the process-tree tables")
    ap.add_argument("--mixed-fds", default="1000,10000",
                    help="fd counts of the mixed-kinds scaling rows (bench_mixedfds); empty skips them")
    ap.add_argument("--fds", default="1000,5000,10000",
                    help="fd counts of the fd scaling table (comma-separated; empty: skip it)")
    ap.add_argument("--vmas", default="10000,30000",
                    help="VMA counts of the VMA scaling table (comma-separated; empty: skip it)")
    ap.add_argument("--pipes", default="10,100",
                    help="pipe counts of the pipe scaling table, each pipe full (comma-separated; empty: skip it)")
    ap.add_argument("--pipe-mib", type=int, default=1, help="capacity and data of each pipe, MiB (default 1)")
    ap.add_argument("--sparse-gib", default="32,64",
                    help="sizes in GiB of the sparse mapping (one page in --sparse-stride present; empty: skip it)")
    ap.add_argument("--sparse-stride", type=int, default=512, help="one present page in this many (default 512)")
    ap.add_argument("--scaling-reps", type=int, default=3,
                    help="runs per scaling size, each a new process dumped and restored (the median is reported)")
    ap.add_argument("--scaling-only", action="store_true", help="only the scaling tables (fds, VMAs, sparse memory)")
    ap.add_argument("--ckpt", default=None, help="the ckpt binary to measure (default: <build>/ckpt)")
    ap.add_argument("--thread-reps", type=int, default=3,
                    help="restores per thread count and completion mode, from one dump (best is reported)")
    a = ap.parse_args()
    if a.reps < 1 or a.tiny_reps < 1 or a.mib < 1 or a.thread_reps < 1 or a.tree_reps < 1:
        ap.error("--reps, --tiny-reps, --thread-reps, --tree-reps and --mib must be >= 1")
    if a.prefork_mib < 0:
        ap.error("--prefork-mib must be >= 0")
    if sum([a.threads_only, a.trees_only, a.scaling_only]) > 1:
        ap.error("--threads-only, --trees-only and --scaling-only exclude each other")
    if a.scaling_reps < 1 or a.sparse_stride < 1:
        ap.error("--scaling-reps and --sparse-stride must be >= 1")
    try:
        a.fds, a.mixed_fds, a.vmas, a.sparse_gib, a.pipes = ([int(x) for x in v.split(",") if x.strip()]
                                                             for v in (a.fds, a.mixed_fds, a.vmas, a.sparse_gib,
                                                                       a.pipes))
    except ValueError:
        ap.error("--fds, --vmas, --sparse-gib, --pipes: comma-separated counts")
    if any(n < 1 for n in a.fds + a.vmas + a.sparse_gib + a.pipes) or a.pipe_mib < 1:
        ap.error("--fds, --vmas, --sparse-gib, --pipes, --pipe-mib: counts must be >= 1")
    try:
        a.trees = [int(x) for x in a.trees.split(",") if x.strip()]
    except ValueError:
        ap.error("--trees: comma-separated task counts")
    if any(n < 1 for n in a.trees) or (a.trees_only and not a.trees and not a.prefork_mib):
        ap.error("--trees: counts must be >= 1 (and a tree to run with --trees-only)")
    try:
        a.threads = [int(x) for x in a.threads.split(",") if x.strip()]
    except ValueError:
        ap.error("--threads: comma-separated thread counts")
    if any(n < 1 for n in a.threads) or (a.threads_only and not a.threads):
        ap.error("--threads: counts must be >= 1 (and at least one with --threads-only)")

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.path.abspath(a.build or os.path.join(root, "build"))
    for exe in ["ckpt", "bench/bench_memcpy", "bench/bench_readfresh", "bench/bench_mem", "bench/bench_tiny",
                "bench/bench_threads", "bench/bench_tree", "bench/bench_fds", "bench/bench_mixedfds", "bench/bench_vmas",
                "bench/bench_sparse", "bench/bench_pipes"]:
        if not os.access(os.path.join(build, exe), os.X_OK):
            raise BenchError(f"{os.path.join(build, exe)} is missing: build first (bench/run.sh does)")

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise BenchError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")

    size = a.mib << 20
    do_all = not a.threads_only and not a.trees_only and not a.scaling_only
    do_trees = do_all and (a.trees or a.prefork_mib) or a.trees_only
    do_threads = (do_all or a.threads_only) and a.threads
    do_scaling = (do_all or a.scaling_only) and (a.fds or a.mixed_fds or a.vmas or a.sparse_gib or a.pipes)
    free = shutil.disk_usage(a.tmp).free
    if do_all and free < 3 * size + GiB:
        raise BenchError(f"{a.tmp}: only {free / GiB:.1f} GiB free, need {(3 * size + GiB) / GiB:.1f} GiB")
    # The pre-fork tree's images hold the root's memory once (and the tasks' own, small).
    prefork_bytes = 2 * (a.prefork_mib << 20)
    if do_trees and free < prefork_bytes + GiB:
        raise BenchError(f"{a.tmp}: only {free / GiB:.1f} GiB free, the pre-fork tree needs "
                         f"{(prefork_bytes + GiB) / GiB:.1f} GiB (--prefork-mib 0 skips it)")
    load0 = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="ckpt-bench-", dir=a.tmp)
    d = Driver(root, build, work)
    if a.ckpt:
        d.ckpt = os.path.abspath(a.ckpt)
    rows = []  # (what, value, notes)
    trows, tnotes = [], []  # multithreaded table: rows (cells), notes under it
    prows, pfrows, pnotes = [], [], []  # process-tree table: rows (cells); pre-fork tree: rows; notes
    srows, snotes = [], []  # scaling tables
    sysctls = Sysctls()
    try:
        t0 = time.monotonic()
        if do_all:
            run_all(d, a, size, rows)
        if do_trees:
            run_trees(d, a, prows, pfrows, pnotes)
        if do_scaling:
            run_scaling(d, a, sysctls, srows, snotes)
        load1 = os.getloadavg()[0]  # before the thread runs, which inflate it (see run_threads)
        t1 = time.monotonic()
        if do_threads:
            run_threads(d, a, sysctls, trows, tnotes)
        log(f"took {time.monotonic() - t0:.0f} s ({time.monotonic() - t1:.0f} s multithreaded)")
    finally:
        d.cleanup()
        sysctls.restore()
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    cpu = "?"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
    except Exception:
        pass
    print(f"ckpt benchmark: {os.uname().release}, {os.cpu_count()} CPUs ({cpu}), "
          f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GiB:.0f} GiB RAM, images on "
          f"{fs_of(a.tmp)}; " + (f"big process {a.mib} MiB; " if do_all else "") + f"load average {load0:.2f} before, "
          f"{load1:.2f} after" + (" (taken before the multithreaded runs, which inflate it)\n" if do_threads and (do_all or do_trees)
                                  else "\n"))
    if rows:
        print("| # | measurement | value | notes |")
        print("|---|---|---|---|")
        for i, (what, value, notes) in enumerate(rows, 1):
            print(f"| {i} | {what} | {value} | {notes} |")
    if prows or pfrows:
        if rows:
            print()
        print_trees(prows, pfrows, pnotes, a.tree_reps, a.prefork_mib)
    if srows:
        if rows or prows or pfrows:
            print()
        print_scaling(srows, snotes, a.scaling_reps)
    if trows:
        if rows or prows or pfrows or srows:
            print()
        print_threads(trows, tnotes, a.thread_reps)
    for n in sysctls.notes():
        log(n)
    if any("FAILED" in " ".join(c) for c in srows):
        log("a scaling run failed (see its table)")
        return 1
    return 0


def fs_of(path):
    best = ("?", "?", "")
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, typ = line.split()[:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[2]):
                best = (dev, typ, mnt)
    return f"{best[0]} ({best[1]})"


def run_all(d, a, size, rows):
    work = d.work

    # 1. Machine limits ------------------------------------------------------
    log("memcpy bandwidth")
    r = d.run([os.path.join(d.build, "bench", "bench_memcpy")], timeout=60)
    memcpy_bps = float(r.out.split()[0]) * 1e9
    rows.append(("memcpy bandwidth", fmt_bw(memcpy_bps), "bench_memcpy: 1 GiB in 64 MiB chunks, best of 3"))

    log("page-cache write/read bandwidth (dd)")
    ddfile = os.path.join(work, "dd.bin")
    count = size // (4 << 20) or 1
    dd_bytes = count * (4 << 20)
    wtimes, rtimes = [], []
    for _ in range(a.reps):
        if os.path.exists(ddfile):
            os.unlink(ddfile)
        r = d.run(["/bin/dd", "if=/dev/zero", f"of={ddfile}", "bs=4M", f"count={count}"], timeout=60)
        wtimes.append(dd_seconds(r.err))
        r = d.run(["/bin/dd", f"if={ddfile}", "of=/dev/null", "bs=4M"], timeout=60)
        rtimes.append(dd_seconds(r.err))
    r = d.run([os.path.join(d.build, "bench", "bench_readfresh"), ddfile], timeout=60)
    fresh_bps = float(r.out.split()[0]) * 1e9
    os.unlink(ddfile)  # dirty pages of a deleted file are dropped, not written back later
    pcw_bps, pcr_bps = dd_bytes / min(wtimes), dd_bytes / min(rtimes)
    rows.append(("page-cache write bandwidth", fmt_bw(pcw_bps),
                 f"dd bs=4M count={count} into a new file, no fsync; best{spread(wtimes, fmt_ms)}"))
    rows.append(("page-cache read bandwidth", fmt_bw(pcr_bps),
                 f"dd bs=4M of that file while cached; best{spread(rtimes, fmt_ms)}"))
    rows.append(("page-cache read into fresh memory", fmt_bw(fresh_bps),
                 "bench_readfresh: pread of that file into a new, unpopulated anonymous mapping "
                 "(page faults included, as in a restore); best of 3"))

    # 2. 1 GiB process: dump (kill mode) with each page transfer, restore -d ----------
    # Each run dumps one process per page transfer, one after the other (so both see the same
    # machine state); the splice images are restored (the format does not depend on the transfer).
    dd_write = min(wtimes) * size / dd_bytes  # dd's page-cache write time for the process's size
    dumps = {t: [] for t, _ in TRANSFERS}
    restores = []
    for i in range(a.reps):
        for transfer, _ in TRANSFERS:
            log(f"{a.mib} MiB process: dump --page-transfer {transfer}"
                + (" + restore" if transfer == "splice" else "") + f", run {i + 1}/{a.reps}")
            pid = d.start("mem", [str(a.mib)])
            img = os.path.join(work, f"mem-img{i}-{transfer}")
            dr = d.dump(pid, img, ["--page-transfer", transfer])
            du = d.run(["/usr/bin/du", "-sk", img], timeout=30)
            dr.du_kib = int(du.out.split()[0])
            written = need(dr.stats, "bytes written", f"dump --page-transfer {transfer}")
            if written < size:
                raise BenchError(f"dump --page-transfer {transfer} wrote {written:.0f} bytes of pages, less than "
                                 f"the {size} the process touched")
            if transfer == "splice":
                rr = d.restore(img, pid)
                d.stop_verified(pid, "restored 1 GiB process")
                restores.append(rr)
            shutil.rmtree(img)
            dumps[transfer].append(dr)

    for transfer, label in TRANSFERS:
        runs = dumps[transfer]
        what = f"1 GiB dump, {label}"
        best = min(runs, key=lambda r: r.wall)
        walls = [r.wall for r in runs]
        mdump = [need(r.stats, "memory dump", "dump") / 1e3 for r in runs]
        dtime = [need(r.stats, "dump time", "dump") / 1e3 for r in runs]
        written = best.stats["bytes written"]
        rows.append((f"{what}: ckpt wall time", fmt_ms(min(walls)),
                     f"`ckpt dump --stats --page-transfer {transfer}` (kill mode), exec to exit; "
                     f"best{spread(walls, fmt_ms)}"))
        rows.append((f"{what}: --stats dump time", fmt_ms(min(dtime)), f"best{spread(dtime, fmt_ms)}"))
        rows.append((f"{what}: --stats memory dump", fmt_ms(min(mdump)),
                     f"{written / GiB:.3f} GiB of pages written; best{spread(mdump, fmt_ms)}"))
        bps = written / min(mdump)
        rows.append((f"{what}: throughput (memory dump)", fmt_bw(bps),
                     f"{bps / memcpy_bps:.2f}x memcpy, {bps / pcw_bps:.2f}x page-cache write"))
        bps = size / min(walls)
        rows.append((f"{what}: throughput (wall)", fmt_bw(bps),
                     f"{a.mib} MiB / wall time; {bps / memcpy_bps:.2f}x memcpy, {bps / pcw_bps:.2f}x page-cache write"))
        ratio = min(dtime) / dd_write
        rows.append((f"{what}: dump time / dd write time", f"{ratio:.2f}x dd (target <= {DUMP_DD_TARGET:g}x)",
                     f"best --stats dump time / {fmt_ms(dd_write)}, dd's best page-cache write of {a.mib} MiB "
                     f"above ({'met' if ratio <= DUMP_DD_TARGET else 'NOT met'})"))
        rows.append((f"{what}: ckpt peak RSS", fmt_mib(max(r.rusage.ru_maxrss for r in runs)),
                     "ru_maxrss from wait4() of ckpt, max over runs"))
    sizes = {t: min(dumps[t], key=lambda r: r.wall).du_kib for t, _ in TRANSFERS}
    rows.append(("1 GiB dump: image size", f"{sizes['splice'] / 1024:.1f} MiB",
                 f"`du -sk` of the splice images dir; {sizes['splice'] * 1024 / size:.3f}x the process's "
                 f"{a.mib} MiB; readv images: {sizes['readv'] / 1024:.1f} MiB"))

    walls = [r.wall for r in restores]
    rtime = [need(r.stats, "restore time", "restore") / 1e3 for r in restores]
    rows.append(("1 GiB restore -d: ckpt wall time", fmt_ms(min(walls)),
                 f"from the splice dump's images, exec to exit (task running); best{spread(walls, fmt_ms)}; "
                 "memory verified after"))
    rows.append(("1 GiB restore -d: --stats restore time", fmt_ms(min(rtime)), f"best{spread(rtime, fmt_ms)}"))
    bps = size / min(walls)
    rows.append(("1 GiB restore -d: throughput (wall)", fmt_bw(bps),
                 f"{bps / pcr_bps:.2f}x page-cache read, {bps / fresh_bps:.2f}x read into fresh memory, "
                 f"{bps / memcpy_bps:.2f}x memcpy"))
    bps = size / min(rtime)
    rows.append(("1 GiB restore -d: throughput (restore time)", fmt_bw(bps),
                 f"{bps / pcr_bps:.2f}x page-cache read, {bps / fresh_bps:.2f}x read into fresh memory, "
                 f"{bps / memcpy_bps:.2f}x memcpy"))
    rows.append(("1 GiB restore -d: ckpt peak RSS", fmt_mib(max(r.rusage.ru_maxrss for r in restores)),
                 "ru_maxrss from wait4() of ckpt, max over runs (the restored task is not counted)"))

    # 3. Tiny process restore, both completion modes ------------------------------
    for bp, mode in [(True, "breakpoint (default)"), (False, "--no-breakpoints")]:
        log(f"tiny process: {a.tiny_reps} restores, {mode}")
        pid = d.start("tiny")
        img = os.path.join(work, f"tiny-img-{'bp' if bp else 'nobp'}")
        d.dump(pid, img)
        runs = []
        for _ in range(a.tiny_reps):
            rr = d.restore(img, pid, breakpoints=bp)
            d.stop_verified(pid, "restored tiny process")
            runs.append(rr)
        walls = [r.wall for r in runs]
        rtime = [need(r.stats, "restore time", "restore") / 1e3 for r in runs]
        for r in runs:
            if len(r.stats["stops"]) != 1:
                raise BenchError(f"restore ({mode}): expected one 'ptrace stops' line, got:\n{r.err.strip()}")
        stops = sorted({(n, m) for r in runs for n, _, m in r.stats["stops"]})
        modes = {m for _, m in stops}
        if bp and modes != {"breakpoint"}:
            log(f"warning: breakpoint mode requested but restore completed by {', '.join(sorted(modes))}")
        rows.append((f"tiny restore -d, {mode}: wall time", fmt_ms(min(walls)), f"best of {len(walls)}"
                     f"{spread(walls, fmt_ms)}"))
        rows.append((f"tiny restore -d, {mode}: --stats restore time", fmt_ms(min(rtime)), f"best of {len(rtime)}"
                     f"{spread(rtime, fmt_ms)}"))
        best = min(runs, key=lambda r: need(r.stats, "restore time", "restore"))
        rows.append((f"tiny restore -d, {mode}: phases of the best run", fmt_phases(best.stats),
                     "--stats; the breakpoint probe runs during load and prepare, its wait (if any) is in no phase"))
        rows.append((f"tiny restore -d, {mode}: ptrace stops per task",
                     " / ".join(str(n) for n, _ in stops),
                     f"completed by: {', '.join(sorted(modes))} (1 task)"))
        shutil.rmtree(img)

    # 4. 1 GiB process, dump --leave-running ------------------------------------
    frozen, walls = [], []
    for i in range(a.reps):
        log(f"{a.mib} MiB process: dump --leave-running, run {i + 1}/{a.reps}")
        pid = d.start("mem", [str(a.mib)])
        img = os.path.join(work, f"mem-lr{i}")
        dr = d.dump(pid, img, leave_running=True)
        check_left_running(pid)
        d.stop_verified(pid, "1 GiB process left running")
        shutil.rmtree(img)
        frozen.append(need(dr.stats, "frozen time", "dump --leave-running") / 1e3)
        walls.append(dr.wall)
    rows.append(("1 GiB dump --leave-running: frozen time", fmt_ms(min(frozen)),
                 f"--stats: how long the task was stopped; best{spread(frozen, fmt_ms)}"))
    rows.append(("1 GiB dump --leave-running: ckpt wall time", fmt_ms(min(walls)), f"best{spread(walls, fmt_ms)}"))

    # The parasite's cure: one mode (syscall tracing, kill-safe; README "How dump gets inside"); the
    # stops do not depend on the memory size, so the tiny process is dumped.
    log("tiny process: dump --leave-running")
    pid = d.start("tiny")
    img = os.path.join(work, "tiny-lr")
    dr = d.dump(pid, img, [], leave_running=True)
    check_left_running(pid)
    d.stop_verified(pid, "tiny process left running")
    shutil.rmtree(img)
    stops = dr.stats["stops"]
    if len(stops) != 1 or stops[0][1] != pid:
        raise BenchError(f"dump --leave-running: expected one 'ptrace stops' line for task {pid}, "
                         f"got:\n{dr.err.strip()}")
    n, _, how = stops[0]
    rows.append(("tiny dump --leave-running: phases", fmt_phases(dr.stats), "--stats, one run"))
    rows.append(("dump --leave-running: ptrace stops of the cure", str(n),
                 f"main thread; completed by: {how} (bench_tiny: the count does not depend on memory size)"))


def check_left_running(pid):
    st = proc_status(pid)
    if st.get("State", "?")[0] not in "SR" or st.get("TracerPid") != "0":
        raise BenchError(f"task {pid} after dump --leave-running: state {st.get('State')}, "
                         f"tracer {st.get('TracerPid')}")


# ---------------------------------------------------------------- process trees

PREFORK_WORKERS = 20  # the pre-fork tree: a root that touched --prefork-mib, and this many workers
TREE_CRIU = {"tasks": 50, "dump": 0.161, "restore": 0.061}  # CRIU 4.2, median wall, as recorded in issue 12
TREE_CRIU_TARGET = 0.40  # the target: a 50-task tree dumped and restored each in < 40% of CRIU's time
TREE_TIMEOUT = 120  # s: per dump or restore of a tree
PID_TAKEN_RE = re.compile(r"pid \d+ is taken by another process")  # clone3 EEXIST (not the up-front check)


def tree_of(root):
    """{pid: parent pid} of root and every descendant, from one scan of /proc (root first, parents before
    their children)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            pp = parent_of(int(d))
            if pp is not None:
                kids.setdefault(pp, []).append(int(d))
    tree, todo = {root: parent_of(root)}, [root]
    while todo:
        p = todo.pop(0)
        for c in sorted(kids.get(p, [])):
            tree[c] = p
            todo.append(c)
    return tree


def reap_tree(d, pids, timeout, what):
    """Reap every pid of a tree until each is free. The dumped or killed root is our child; the other tasks
    become ours (we are a subreaper) once their parent has died, or are reaped by their own parent. A pid
    that is not our child and has no /proc entry is free."""
    pending = set(pids)
    deadline = time.monotonic() + timeout
    while pending:
        for pid in list(pending):
            try:
                got = os.waitpid(pid, os.WNOHANG)[0]
            except ChildProcessError:
                got = 0 if os.path.exists(f"/proc/{pid}") else pid
            if got == pid:
                pending.discard(pid)
                d.live.discard(pid)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: {len(pending)} of its {len(pids)} pids still not free after {timeout} s: "
                             + ", ".join(str(p) for p in sorted(pending)[:10]))
        time.sleep(0.001)


def kill_tree(d, tree, timeout=30):
    """SIGKILL every task of tree (leaves first) that is still the one we know (its parent is in the tree, or
    us: a reused pid is never hit), then reap until every pid is free."""
    mine = set(tree) | {os.getpid()}
    for pid in reversed(list(tree)):
        if parent_of(pid) in mine:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    reap_tree(d, tree, timeout, f"killed tree of {next(iter(tree))}")


def check_tree(tree, what):
    """Every task of a restored tree: there, with its dumped parent (the root: this driver), untraced."""
    root = next(iter(tree))
    for pid, ppid in tree.items():
        try:
            st = proc_status(pid)
        except OSError:
            raise BenchError(f"{what}: task {pid} is missing after the restore")
        want = os.getpid() if pid == root else ppid
        if st.get("PPid") != str(want):
            raise BenchError(f"{what}: task {pid} has parent {st.get('PPid')}, expected {want}")
        if st.get("TracerPid") != "0":
            raise BenchError(f"{what}: task {pid} is still traced by {st.get('TracerPid')}")


def measure_tree(d, n, args, tag, restore=True):
    """Start bench_tree with n tasks, dump it (kill mode), reap all of it, restore it with -d, check every task,
    stop it through the root (SIGTERM: each task checks its memory; exit 0 required), then kill and reap
    whatever pid of the tree is left. Returns (tree, dump run, restore run or None, image sizes, restores retried
    after 'pid is taken')."""
    pid = d.start("tree", [str(n), *args], timeout=TREE_TIMEOUT)
    tree = tree_of(pid)
    d.live.update(tree)
    if len(tree) != n:
        kill_tree(d, tree)
        raise BenchError(f"bench_tree {n}: {len(tree)} tasks after ready")
    img = os.path.join(d.work, f"tree-{tag}")
    rr, retried = None, 0
    try:
        sizes = {"rss_kib": int(proc_status(pid)["VmRSS"].split()[0]),
                 "pss_kib": sum(smaps_pss_kib(p) for p in tree)}
        try:
            dr = d.dump(pid, img, timeout=TREE_TIMEOUT)
        except BenchError:
            kill_tree(d, tree)  # a failed dump leaves the tree running
            raise
        reap_tree(d, tree, 30, f"dumped tree of {pid}")  # ckpt killed every task; the root is reaped already
        files = os.listdir(img)
        sizes["pages"] = sum(os.path.getsize(os.path.join(img, f)) for f in files
                             if f.startswith("pages-") and f.endswith(".img"))
        sizes["all"] = sum(os.path.getsize(os.path.join(img, f)) for f in files)
        if not restore:
            return tree, dr, None, sizes, 0
        for pause in EEXIST_PAUSES + (None,):
            try:
                rr = d.restore(img, pid, timeout=TREE_TIMEOUT)
                break
            except Timeout:
                raise
            except BenchError as e:
                kill_tree(d, tree)
                if not PID_TAKEN_RE.search(str(e)) or pause is None:
                    raise
                log(f"tree of {n}: restore failed with 'pid ... is taken'; again in {pause} s")
                retried += 1
                time.sleep(pause)
        d.live.update(tree)
        check_tree(tree, f"restored tree of {n}")
        sizes["restored_pss_kib"] = sum(smaps_pss_kib(p) for p in tree)
        stops = rr.stats["stops"]
        if sorted(t for _, t, _ in stops) != sorted(tree):
            raise BenchError(f"restore of a {n}-task tree: --stats has {len(stops)} 'ptrace stops' lines, "
                             f"expected one for each of the {n} tasks")
        d.stop_verified(pid, f"restored tree of {n} (root)", timeout=60)
        return tree, dr, rr, sizes, retried
    finally:
        try:
            kill_tree(d, tree)  # nothing left after a verified stop; after a failure, the restored tasks
        except BenchError as e:
            log(f"warning: {e}")  # do not hide the error that got us here
        shutil.rmtree(img, ignore_errors=True)


def smaps_pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def median(values):
    return statistics.median(values)


def fmt_med(values, f=None):
    f = f or fmt_ms
    return f(median(values)) + (f" ({f(min(values))} .. {f(max(values))})" if len(values) > 1 else "")


def run_trees(d, a, prows, pfrows, pnotes):
    res = {}
    retried = {}
    worst = 0  # most ptrace stops of one task in any restore
    for n in sorted(set(a.trees)):
        log(f"tree of {n} task{'s' if n > 1 else ''}: {a.tree_reps} x (start, dump, reap, restore -d, stop)")
        runs = []
        for i in range(a.tree_reps):
            tree, dr, rr, sizes, k = measure_tree(d, n, [], f"{n}-{i}")
            runs.append((dr, rr, sizes))
            if k:
                retried[n] = retried.get(n, 0) + k
        dwalls = [dr.wall for dr, _, _ in runs]
        rwalls = [rr.wall for _, rr, _ in runs]
        dtimes = [need(dr.stats, "dump time", "dump") / 1e3 for dr, _, _ in runs]
        rtimes = [need(rr.stats, "restore time", "restore") / 1e3 for _, rr, _ in runs]
        totals = sorted({sum(c for c, _, _ in rr.stats["stops"]) for _, rr, _ in runs})
        most = max(c for _, rr, _ in runs for c, _, _ in rr.stats["stops"])
        worst = max(worst, most)
        modes = sorted({m for _, rr, _ in runs for _, _, m in rr.stats["stops"]})
        if modes != ["breakpoint"]:
            log(f"warning: breakpoint mode requested but a {n}-task restore completed by {', '.join(modes)}")
        per = " .. ".join(f"{t / n:.2f}" for t in (totals[0], totals[-1])) if len(totals) > 1 else f"{totals[0] / n:.2f}"
        res[n] = {"dump": median(dwalls), "restore": median(rwalls)}
        prows.append([f"{n:,}", fmt_med(dwalls), fmt_us(median(dwalls) / n), fmt_med(dtimes),
                      fmt_med(rwalls), fmt_us(median(rwalls) / n), fmt_med(rtimes),
                      f"{per} / {most}" + ("" if modes == ["breakpoint"] else f" ({', '.join(modes)})"),
                      f"{runs[0][2]['all'] / 1024:.0f} KiB",
                      fmt_mib(max(dr.rusage.ru_maxrss for dr, _, _ in runs)) + " / "
                      + fmt_mib(max(rr.rusage.ru_maxrss for _, rr, _ in runs))])
    if retried:
        pnotes.append("Restores that failed with `pid N is taken by another process` right after the previous "
                      "tree was reaped, retried after a pause (only successful restores are measured): "
                      + ", ".join(f"{n} tasks: {k}" for n, k in sorted(retried.items())) + ".")
    c = TREE_CRIU
    if c["tasks"] in res:
        r = res[c["tasks"]]
        rd, rr_ = r["dump"] / c["dump"], r["restore"] / c["restore"]
        pnotes.append(f"CRIU, {c['tasks']}-task tree: **recorded, not measured in this run** (issue 12: CRIU 4.2 on "
                      f"this machine, {c['dump'] * 1e3:.0f} ms dump, {c['restore'] * 1e3:.0f} ms restore, median). "
                      f"ckpt/CRIU: dump {rd:.2f}x, restore -d {rr_:.2f}x (target < {TREE_CRIU_TARGET:.2f}x each: "
                      f"dump {'met' if rd < TREE_CRIU_TARGET else 'NOT met'}, restore "
                      f"{'met' if rr_ < TREE_CRIU_TARGET else 'NOT met'}).")
    if res:
        pnotes.append(f"Target <= 3 ptrace stops per thread with breakpoints: max {worst:.0f} over every task of "
                      f"every restore ({'met' if worst <= 3 else 'NOT met'}).")

    if not a.prefork_mib:
        return
    n = PREFORK_WORKERS + 1
    avail = int(re.search(r"^MemAvailable:\s+(\d+) kB", open("/proc/meminfo").read(), re.M).group(1)) << 10
    # Restored, the tree shares the root's memory again (one copy): restore only if the machine has room for
    # it twice over.
    restore = avail > 2 * (a.prefork_mib << 20)
    log(f"pre-fork tree: {PREFORK_WORKERS} workers, root touched {a.prefork_mib} MiB; dump"
        + (", restore -d" if restore else " (not restored: not enough memory available)"))
    tree, dr, rr, sizes, _ = measure_tree(d, n, [str(a.prefork_mib), "--prefork"], "prefork", restore=restore)
    rss = sizes["rss_kib"] << 10
    pfrows.append(("root's resident memory (VmRSS)", f"{rss / (1 << 20):.1f} MiB",
                   f"the root touched {a.prefork_mib} MiB of private anonymous memory, then forked "
                   f"{PREFORK_WORKERS} workers that never write it"))
    pfrows.append(("the tree's proportional memory (sum of Pss)", f"{(sizes['pss_kib'] << 10) / (1 << 20):.1f} MiB",
                   f"smaps_rollup of all {n} tasks: what the tree costs the machine"))
    pfrows.append(("image size: pages-*.img", f"{sizes['pages'] / (1 << 20):.1f} MiB",
                   f"**{sizes['pages'] / rss:.2f}x the root's resident memory**; all images: "
                   f"{sizes['all'] / (1 << 20):.1f} MiB"))
    pfrows.append(("dump wall / --stats dump time", f"{fmt_ms(dr.wall)} / {fmt_ms(need(dr.stats, 'dump time', 'dump') / 1e3)}",
                   f"one run; {need(dr.stats, 'bytes written', 'dump') / (1 << 20):.1f} MiB of pages written"))
    if rr:
        rpss = sizes["restored_pss_kib"] << 10
        pfrows.append(("the restored tree's proportional memory (sum of Pss)", f"{rpss / (1 << 20):.1f} MiB",
                       f"**{rpss / (sizes['pss_kib'] << 10):.2f}x the dumped tree's**: what the workers inherited "
                       "unchanged is shared again, as after their fork"))
        pfrows.append(("restore -d wall / --stats restore time",
                       f"{fmt_ms(rr.wall)} / {fmt_ms(need(rr.stats, 'restore time', 'restore') / 1e3)}",
                       "one run; every task's memory verified after (root: every word; workers: a word a page)"))
    else:
        pfrows.append(("restore -d", "not run", f"MemAvailable {avail / GiB:.1f} GiB < twice the "
                                                f"{a.prefork_mib} MiB a restore would allocate"))


def print_trees(prows, pfrows, pnotes, reps, prefork_mib):
    if prows:
        print("**Process trees**: bench_tree with N tasks (the root and N-1 workers forked by it, all asleep), "
              "each run a new tree: `ckpt dump -t ROOT -D DIR --stats` (kill mode), every task reaped, then "
              "`ckpt restore -D DIR -d --stats` (breakpoint completion); every task's pid, parent and tracer "
              "checked, then stopped through the root (exit 0 required) and every pid freed. "
              f"Median of {reps} run{'s' if reps > 1 else ''} (range)\n")
        print("| tasks | dump wall | dump wall / task | --stats dump time | restore -d wall | restore wall / task "
              "| --stats restore time | ptrace stops / task (mean / max) | images | ckpt peak RSS (dump / restore) |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for cells in prows:
            print("| " + " | ".join(cells) + " |")
        print()
    if pfrows:
        restored = any(what.startswith("restore -d wall") for what, _, _ in pfrows)
        print(f"**Pre-fork tree**: `bench_tree READY {PREFORK_WORKERS + 1} {prefork_mib} --prefork`, dumped (kill mode)"
              + (" and restored -d" if restored else "") + " once\n")
        print("| measurement | value | notes |")
        print("|---|---|---|")
        for what, value, notes in pfrows:
            print(f"| {what} | {value} | {notes} |")
        print()
    for n in pnotes:
        print(f"* {n}")


# ---------------------------------------------------------------- scaling: cost per item

def run_scaling(d, a, sysctls, srows, snotes):
    """fds, VMAs and sparse memory at growing sizes: dump and restore -d of a new process per run, the
    median of --scaling-reps; the marginal cost per item from the two largest sizes shows growth that a
    single size hides (linear work gives the same figure at every size)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = max(a.fds + a.mixed_fds + [2 * n for n in a.pipes], default=0) + 64
    if soft < nofile:
        if hard != resource.RLIM_INFINITY and hard < nofile:
            raise BenchError(f"RLIMIT_NOFILE hard limit {hard} < {nofile} needed for {nofile - 64} fds")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        snotes.append(f"RLIMIT_NOFILE raised from {soft} to {hard} (its hard limit) for the fd runs.")
    if a.vmas:
        sysctls.ensure("vm.max_map_count", max(a.vmas) + 4096)
    kinds = [("fds", "bench_fds N: N fds, every other one a dup (shares its description)", "fds", a.fds,
              lambda n: [str(n)], "fd"),
             ("mixedfds", "bench_mixedfds N: N fds in groups of ten: 2 files, a pipe, a socketpair, 2 eventfds, "
              "2 dups, and one epoll watching the pipes, sockets and eventfds (one byte queued in each pipe and "
              "socket)", "mixedfds", a.mixed_fds, lambda n: [str(n)], "fd"),
             ("vmas", "bench_vmas N: N private anonymous VMAs of one present page each", "vmas", a.vmas,
              lambda n: [str(n)], "VMA"),
             ("sparse", f"bench_sparse G: a G GiB mapping, one page in {a.sparse_stride} present", "sparse",
              a.sparse_gib, lambda g: [str(g), str(a.sparse_stride)], "GiB"),
             ("pipes", f"bench_pipes N: N pipes resized to {a.pipe_mib} MiB (F_SETPIPE_SZ), each full; its unread "
              "data is in fdesc.img and checked byte for byte after restore", "pipes", a.pipes,
              lambda n: [str(n), str(a.pipe_mib)], "pipe")]
    for kind, what, exe, sizes, args, unit in kinds:
        res = {}
        for n in sorted(set(sizes)):
            log(f"scaling {kind} {n}: {a.scaling_reps} runs")
            runs = []
            for _ in range(a.scaling_reps):
                pid = d.start(exe, args(n), timeout=120)
                img = os.path.join(d.work, f"scale-{kind}-{n}")
                dr = d.dump(pid, img, timeout=120)
                try:
                    rr = d.restore(img, pid, timeout=120)
                except BenchError as e:
                    d.kill(pid)
                    shutil.rmtree(img, ignore_errors=True)
                    why = [l for l in str(e).splitlines() if l.startswith("Error:")] or str(e).splitlines()[:1]
                    runs.append((dr, None, why[0][:160].replace("|", "/")))
                    break
                d.stop_verified(pid, f"restored {kind} {n}", timeout=120)
                shutil.rmtree(img, ignore_errors=True)
                runs.append((dr, rr, None))
            res[n] = runs
        ns = sorted(res)
        med = {}
        for n in ns:
            runs = res[n]
            failed = next((why for _, rr, why in runs if rr is None), None)
            dw = statistics.median(r.wall for r, _, _ in runs)
            dt = statistics.median(need(r.stats, "dump time", "dump") / 1e3 for r, _, _ in runs)
            if failed is None:
                rw = statistics.median(rr.wall for _, rr, _ in runs)
                rt = statistics.median(need(rr.stats, "restore time", "restore") / 1e3 for _, rr, _ in runs)
            else:
                rw = rt = None
            med[n] = (dw, dt, rw, rt)
            srows.append([kind, f"{n:,} {unit}{'s' if unit != 'GiB' else ''}", fmt_ms(dw), fmt_ms(dt),
                          fmt_us(dt / n) + f" / {unit}",
                          fmt_ms(rw) if rw is not None else f"FAILED: {failed}",
                          fmt_ms(rt) if rt is not None else "", fmt_us(rt / n) + f" / {unit}" if rt else ""])
        if len(ns) >= 2:
            n1, n2 = ns[-2], ns[-1]
            (_, d1, _, r1), (_, d2, _, r2) = med[n1], med[n2]
            cells = [kind, f"marginal {n1:,} → {n2:,}", "", "", fmt_us((d2 - d1) / (n2 - n1)) + f" / {unit}", "", "",
                     fmt_us((r2 - r1) / (n2 - n1)) + f" / {unit}" if r1 is not None and r2 is not None else "n/a"]
            srows.append(cells)
        snotes.append(f"{kind}: {what}.")


def print_scaling(srows, snotes, reps):
    print("**Scaling**: a new process per run, `ckpt dump --stats` (kill mode), reaped, then "
          "`ckpt restore -D DIR -d --stats`, the restored process checked (exit 0 on SIGTERM). "
          f"Median of {reps} run{'s' if reps > 1 else ''}; per item = --stats time / items; the marginal row is "
          "(time at the largest size - time at the next) / (items between them): flat if the cost is linear\n")
    print("| workload | size | dump wall | --stats dump time | dump per item | restore -d wall "
          "| --stats restore time | restore per item |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for cells in srows:
        print("| " + " | ".join(cells) + " |")
    print()
    for n in snotes:
        print(f"* {n}")


# ---------------------------------------------------------------- multithreaded restore

NOBP_LIMIT = 60.0  # s: a --no-breakpoints restore predicted to take longer is skipped
PID_MAX_LIMIT = 4 << 20


class Sysctls:
    """Raise /proc/sys limits for the run if they are too low; put the old values back afterwards."""

    def __init__(self):
        self.changed = []  # (name, old, new)
        self.failed = []

    @staticmethod
    def path(name):
        return "/proc/sys/" + name.replace(".", "/")

    def ensure(self, name, minimum):
        cur = int(open(self.path(name)).read())
        if cur >= minimum:
            return cur, None
        try:
            with open(self.path(name), "w") as f:
                f.write(str(minimum))
        except OSError as e:
            raise BenchError(f"{name} is {cur}, the benchmark needs {minimum}, and raising it failed: {e}")
        self.changed.append((name, cur, minimum))
        log(f"raised {name} from {cur} to {minimum} for this run")
        return minimum, cur

    def restore(self):
        while self.changed:
            name, old, new = self.changed.pop()
            try:
                with open(self.path(name), "w") as f:
                    f.write(str(old))
                log(f"restored {name} to {old} (was raised to {new})")
            except OSError as e:
                self.failed.append(name)
                log(f"warning: could not restore {name} to {old}: {e}")

    def notes(self):
        return [f"warning: {name} was NOT restored" for name in self.failed]


def count_tasks():
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                n += len(os.listdir(f"/proc/{p}/task"))
            except OSError:
                pass
    return n


def task_ids(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def run_threads(d, a, sysctls, trows, tnotes):
    counts = sorted(set(a.threads))
    nmax = max(counts)
    tasks_now = count_tasks()
    # The N TIDs must be allocatable (pid_max, threads-max) and each thread's stack is two VMAs
    # (stack and guard page) in a process limited by vm.max_map_count.
    limits = []
    for name, minimum in [("kernel.pid_max", min(nmax + tasks_now + 4096, PID_MAX_LIMIT)),
                       ("kernel.threads-max", nmax + tasks_now + 4096),
                       ("vm.max_map_count", 2 * nmax + 4096)]:
        val, old = sysctls.ensure(name, minimum)
        limits.append(f"{name} {val}" + (f" (raised from {old} for this run, restored after)" if old is not None
                                         else f" (>= {minimum} needed: unchanged)"))
    tnotes.append("Limits: " + ", ".join(limits) + f"; {tasks_now} tasks existed on the machine before.")
    load0 = os.getloadavg()[0]

    res = {}  # (n, breakpoints) -> dict, or None if skipped
    nobp_timed_out = None  # the thread count whose --no-breakpoints restore did not finish in time
    eexist = {}  # (n, breakpoints) -> restores retried after "File exists"
    for n in counts:
        for bp in (True, False):
            mode = "breakpoint" if bp else "--no-breakpoints"
            timeout, reps = 60, a.thread_reps
            if not bp:
                # 2 stops per syscall of every thread: skip it if it would take too long, and give up
                # (without failing the benchmark) if it does anyway.
                timeout = NOBP_LIMIT
                if nobp_timed_out is not None:
                    skip(tnotes, res, n, f"the {nobp_timed_out:,}-thread restore already took longer than "
                                         f"{NOBP_LIMIT:g} s")
                    continue
                pred = predict_nobp(res, n)
                if pred is not None and pred > NOBP_LIMIT:
                    skip(tnotes, res, n, f"predicted {pred:.1f} s per restore (extrapolated from the two largest "
                                         f"smaller runs) is over the {NOBP_LIMIT:g} s limit")
                    continue
                if pred is not None and pred * reps > NOBP_LIMIT:
                    reps = max(1, int(NOBP_LIMIT // pred))
                    tnotes.append(f"{n:,} threads, --no-breakpoints: {reps} restore{'s' if reps > 1 else ''} "
                                  f"instead of {a.thread_reps} (predicted {pred:.1f} s each).")
            log(f"{n} threads, {mode}: start, dump, {reps} restores")
            dr, runs, retried = measure_threads(d, n, bp, reps, timeout)
            if retried:
                eexist[(n, bp)] = retried
            if len(runs) < reps:
                nobp_timed_out = n
                skip(tnotes, res, n, f"a restore did not finish within {timeout:g} s (killed)"
                     + (f"; {pred:.1f} s was extrapolated from the smaller runs, so it either hung or grows much "
                        "faster with N than they did" if pred is not None and pred < timeout / 4 else ""))
                continue
            modes = sorted({m for r in runs for _, _, m in r.stats["stops"]})
            if bp and modes != ["breakpoint"]:
                log(f"warning: breakpoint mode requested but restore completed by {', '.join(modes)}")
            totals = [sum(c for c, _, _ in r.stats["stops"]) for r in runs]
            res[(n, bp)] = {
                "dump_wall": dr.wall, "dump_time": need(dr.stats, "dump time", "dump") / 1e3,
                "walls": [r.wall for r in runs],
                "rtimes": [need(r.stats, "restore time", "restore") / 1e3 for r in runs],
                "max": max(c for r in runs for c, _, _ in r.stats["stops"]),
                "totals": totals, "modes": modes,
                "rss": max(r.rusage.ru_maxrss for r in runs),
            }
            res[(n, bp)]["wall"] = min(res[(n, bp)]["walls"])
            res[(n, bp)]["rtime"] = min(res[(n, bp)]["rtimes"])

    for bp in (True, False):
        base = res.get((1, bp))
        for n in counts:
            r = res[(n, bp)]
            mode = "breakpoint (default)" if bp else "--no-breakpoints"
            if r is None:
                trows.append([f"{n:,}", mode] + ["skipped"] + [""] * 8)
                continue
            marginal = ""
            if base is not None and n > 1:
                marginal = fmt_us((r["rtime"] - base["rtime"]) / (n - 1))
            if r["modes"] != (["breakpoint"] if bp else ["syscall tracing"]):
                mode += f" (completed by {', '.join(r['modes'])})"
            lo, hi = min(r["totals"]), max(r["totals"])
            total = f"{lo:,}" if lo == hi else f"{lo:,} .. {hi:,}"
            mean = f"{lo / n:.2f}" if lo == hi else f"{lo / n:.2f} .. {hi / n:.2f}"
            trows.append([f"{n:,}", mode, fmt_ms(r["dump_wall"]),
                          fmt_ms(r["wall"]) + range_of(r["walls"]), fmt_us(r["wall"] / n),
                          fmt_ms(r["rtime"]) + range_of(r["rtimes"]), fmt_us(r["rtime"] / n), marginal,
                          f"{r['max']} / {mean}", total, fmt_mib(r["rss"])])

    if eexist:
        tnotes.append("Restores that failed with `create a thread: File exists` and were retried after a pause "
                      "(only successful restores are measured): "
                      + ", ".join(f"{n:,} threads {'breakpoint' if bp else '--no-breakpoints'}: {k}"
                                  for (n, bp), k in sorted(eexist.items()))
                      + ". A TID of the restored process that was just reaped was not reusable yet (see README).")
    tnotes.append(f"Load average {load0:.2f} before these runs, {os.getloadavg()[0]:.2f} after: the thousands of "
                  "threads that become runnable together (restored, or killed) can inflate the load average themselves.")

    # The targets, reported, not asserted.
    bps = [r for (n, bp), r in res.items() if bp and r]
    if bps:
        worst = max(r["max"] for r in bps)
        tnotes.append(f"Target <= 3 ptrace stops per thread on the breakpoint path: max {worst} "
                      f"({'met' if worst <= 3 else 'NOT met'}).")
    big = res.get((10000, True))
    if big:
        tnotes.append(f"Target: 10,000 threads restored in under 1 s end to end: ckpt restore -d wall time "
                      f"{big['wall']:.2f} s (best of {len(big['walls'])}) ({'met' if big['wall'] < 1 else 'NOT met'}; users report ~90 s for CRIU).")


EEXIST_PAUSES = (0.1, 0.5, 2.0)  # s: before retrying a restore that found a TID still in use


def measure_threads(d, n, bp, reps, timeout):
    """Start bench_threads N, dump it, restore it `reps` times (each verified, stopped, reaped).

    Returns (dump run, restore runs, restores retried). Fewer runs than reps if a --no-breakpoints restore
    timed out. A restore that fails because a TID is still in use ("create a thread: File exists": seen
    right after the previous restored instance was reaped, see README) is retried after a pause; only
    successful restores are measured."""
    pid = d.start("threads", [str(n)], timeout=120)
    tids = task_ids(pid)
    if len(tids) != n:
        raise BenchError(f"bench_threads {n}: {len(tids)} threads after ready")
    img = os.path.join(d.work, f"threads{n}-{'bp' if bp else 'nobp'}")
    dr = d.dump(pid, img, timeout=120)
    runs, retried = [], 0
    try:
        while len(runs) < reps:
            for pause in EEXIST_PAUSES + (None,):
                try:
                    rr = d.restore(img, pid, breakpoints=bp, timeout=timeout)
                    break
                except Timeout:
                    if bp:
                        raise
                    d.kill(pid)  # the half-restored task, reparented to us when ckpt was killed
                    return dr, runs, retried
                except BenchError as e:
                    d.kill(pid)  # only if it is ours (ckpt's child, reparented to us), never a foreign process
                    if "File exists" not in str(e) or pause is None:
                        taken = [f"{t} ({tid_owner(t)})" for t in tids if os.path.exists(f"/proc/{t}")]
                        raise BenchError(f"{e}\nTIDs of the dumped process in use now: {', '.join(taken) or 'none'}")
                    log(f"{n} threads: restore {len(runs) + 1} failed with 'File exists'; again in {pause} s")
                    retried += 1
                    time.sleep(pause)
            got = task_ids(pid)
            if got != tids:
                raise BenchError(f"restored {n}-thread process {pid} has {len(got)} threads"
                                 + (" with other TIDs" if len(got) == n else ""))
            d.stop_verified(pid, f"restored {n}-thread process")
            stops = rr.stats["stops"]
            if sorted(t for _, t, _ in stops) != tids:
                raise BenchError(f"restore of {n} threads: --stats has {len(stops)} 'ptrace stops' lines, "
                                 f"expected one for each of the {n} TIDs")
            runs.append(rr)
    finally:
        shutil.rmtree(img, ignore_errors=True)
    return dr, runs, retried


def tid_owner(tid):
    try:
        st = proc_status(tid)
        return f"thread of pid {st.get('Tgid')} {st.get('Name')}, parent {st.get('PPid')}"
    except OSError:
        return "gone"


def skip(tnotes, res, n, why):
    msg = f"{n:,} threads, --no-breakpoints: skipped, {why}"
    log(msg)
    tnotes.append(msg + ".")
    res[(n, False)] = None


def predict_nobp(res, n):
    """--no-breakpoints wall time at n threads, extrapolated from the two largest smaller runs as
    w = c * n^k with k >= 1 (at least linear, more if those two runs grew faster); None if too few."""
    pts = sorted((m, max(r["walls"])) for (m, bp), r in res.items() if not bp and r and m < n)
    if len(pts) < 2:
        return None
    (m0, w0), (m1, w1) = pts[-2], pts[-1]
    k = max(1.0, math.log(w1 / w0) / math.log(m1 / m0))
    return w1 * (n / m1) ** k


def range_of(values):
    return f" ({fmt_ms(min(values))} .. {fmt_ms(max(values))})" if len(values) > 1 else ""


def fmt_us(s):
    return f"{s * 1e6:.1f} µs" if s < 0.001 else fmt_ms(s)


def print_threads(trows, tnotes, reps):
    print("**Multithreaded restore**: bench_threads with N threads (N-1 blocked in pause()), dumped (kill mode) "
          "into a fresh directory, then `ckpt restore -D DIR -d --stats [--no-breakpoints]`; "
          f"one dump per row, restored {'once' if reps == 1 else f'{reps} times'} from it: best time (range); thread count, TIDs and exit "
          "status verified after each restore\n")
    print("| threads | completion | dump wall | restore -d wall | wall / thread | --stats restore time "
          "| restore time / thread | added per extra thread | ptrace stops / thread (max / mean) "
          "| ptrace stops total | ckpt peak RSS (restore) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cells in trows:
        print("| " + " | ".join(cells) + " |")
    print()
    for n in tnotes:
        print(f"* {n}")


if __name__ == "__main__":
    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        print(f"bench: interrupted ({e}); cleaned up", file=sys.stderr)
        sys.exit(130)
