#!/usr/bin/env bash
# The main job, live: a counter process is checkpointed (and killed by the
# dump), then restored from its images with the same PID, and goes on counting.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=build/ckpt
work=$(mktemp -d /tmp/ckpt-demo-XXXXXX)
trap 'kill -9 "${pid:-}" "${rpid:-}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

echo "== starting a counter (prints a number every 200 ms to $work/counter.log)"
# In a session of its own, as a service is (a process in the shell's session
# needs --shell-job, to be restored into the restoring shell's).
setsid build/workloads/wl_counter "$work/ready" >"$work/counter.log" 2>&1 </dev/null &
pid=$!
while [ ! -e "$work/ready" ]; do sleep 0.05; done
sleep 1
tail -n 3 "$work/counter.log"

echo "== ckpt dump -t $pid -D $work/img"
$ckpt dump -t "$pid" -D "$work/img" --stats 2>&1
wait "$pid" 2>/dev/null || true
kill -0 "$pid" 2>/dev/null && echo "   pid $pid still exists?!" || echo "   pid $pid is gone"
sleep 1
echo "   last line before the checkpoint: $(tail -n 1 "$work/counter.log")"

echo "== ckpt restore -D $work/img"
$ckpt restore -D "$work/img" --stats 2>&1 &
rpid=$!
sleep 1.5
echo "   pid $pid is back ($(cat /proc/$pid/comm)), counting on:"
tail -n 4 "$work/counter.log"

echo "== SIGTERM: the counter checks that it never skipped or repeated a number"
kill -TERM "$pid"
status=0
wait "$rpid" || status=$?
tail -n 1 "$work/counter.log"
echo "== ckpt restore exited with the counter's status: $status"
rm -rf "$work"
exit "$status"
