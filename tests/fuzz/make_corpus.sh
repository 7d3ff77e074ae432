#!/usr/bin/env bash
# Rebuilds tests/fuzz/corpus/ from real images: dumps a wl_counter workload
# (build/ first: tools/setup.sh), captures its /proc text, and writes each
# target's inputs in the formats of tests/fuzz/targets.h. Run as root; the
# result is small (about 200 KB) and checked in.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/ckpt-corpus-XXXXXX)
trap 'kill -9 "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# A clean environment: the stack pages (in the corpus) hold the environment.
env -i PATH=/usr/bin:/bin build/workloads/wl_counter "$work/ready" >"$work/log" 2>&1 </dev/null &
pid=$!
while [ ! -e "$work/ready" ]; do sleep 0.05; done
mkdir "$work/proc"
cat /proc/$pid/maps >"$work/proc/maps"
cat /proc/$pid/status >"$work/proc/status"
cat /proc/$pid/stat >"$work/proc/stat"
cat /proc/$pid/fdinfo/1 >"$work/proc/fdinfo"
build/ckpt dump -t "$pid" -D "$work/img"
{ wait "$pid"; } 2>/dev/null || true

python3 - "$work" "$pid" <<'PY'
import os, struct, sys, glob, shutil
work, pid = sys.argv[1], sys.argv[2]
out = "tests/fuzz/corpus"
shutil.rmtree(out, ignore_errors=True)
for t in ("unframe", "pages", "proc", "verify"):
    os.makedirs(f"{out}/{t}")
img = f"{work}/img"
def read(p):
    with open(p, "rb") as f: return f.read()
def put(t, name, data):
    with open(f"{out}/{t}/{name}", "wb") as f: f.write(data)
rec = lambda b: struct.pack("<I", len(b)) + b

names = {"inventory": "inventory.img", "core": f"core-{pid}.img", "mm": f"mm-{pid}.img",
         "pagemap": f"pagemap-{pid}.img", "files": f"files-{pid}.img", "stats": "stats-dump.img"}
for key, n in names.items():
    b = read(f"{img}/{n}")
    kind = struct.unpack_from("<I", b, 12)[0]
    put("unframe", key, bytes([kind]) + b)
    put("unframe", key + "-fixed-crc", bytes([kind | 0x80]) + b)
put("unframe", "peek-kind", b"\0" + read(f"{img}/{names['mm']}"))

payload = {k: read(f"{img}/{n}")[32:] for k, n in names.items()}
put("pages", "counter", rec(payload["pagemap"]) + read(f"{img}/pages-{pid}.img"))
put("verify", "counter", b"".join(rec(payload[k]) for k in ("inventory", "core", "mm", "pagemap", "files")))

sel = {"maps": 0, "status": 1, "stat": 2, "fdinfo": 3}
for key, n in sel.items():
    put("proc", f"live-{key}", bytes([n]) + read(f"{work}/proc/{key}"))
for p in sorted(glob.glob("tests/unit/data/*.txt")):
    base = os.path.basename(p)
    n = sel[base.split("_")[0]]
    put("proc", base[:-4], bytes([n]) + read(p))
PY
du -sh tests/fuzz/corpus
