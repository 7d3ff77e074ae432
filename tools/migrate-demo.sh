#!/usr/bin/env bash
# Live migration between two "hosts" on one machine. The destination is a
# network namespace of its own, joined to this one by a veth pair, and the
# process lands there in a PID namespace of its own, so that its PID is free
# as on another host. A counter moves while it counts; at the end it checks
# that it never skipped or repeated a number, and ckpt on the destination
# exits with its status. Usage: tools/migrate-demo.sh [SECONDS_THERE]
# (as root; CKPT and CKPT_WORKLOADS name another build's binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${CKPT:-$PWD/build/ckpt}
workloads=${CKPT_WORKLOADS:-$PWD/build/workloads}
there=${1:-2}

# Names and a /30 of this run's own, so that runs side by side don't meet.
ns=ckpt-dst-$$
veth_here=ckh$$ veth_there=ckt$$
net=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)).$(((RANDOM % 60) * 4))
here_ip=${net%.*}.$((${net##*.} + 1)) there_ip=${net%.*}.$((${net##*.} + 2))
port=$((20000 + RANDOM % 20000))
work=$(mktemp -d /tmp/ckpt-migrate-XXXXXX)
cleanup() {
  [ -z "${pid:-}" ] || kill -9 "$pid" 2>/dev/null || true
  [ -z "${dst:-}" ] || kill -9 "$dst" 2>/dev/null || true
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true  # takes the veth pair with it
  ip link del "$veth_here" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== two hosts: here $here_ip, there $there_ip in network namespace $ns (veth $veth_here <-> $veth_there)"
ip netns add "$ns"
ip link add "$veth_here" type veth peer name "$veth_there"
ip link set "$veth_there" netns "$ns"
ip addr add "$here_ip/30" dev "$veth_here"
ip link set "$veth_here" up
ip -n "$ns" addr add "$there_ip/30" dev "$veth_there"
ip -n "$ns" link set "$veth_there" up
ip -n "$ns" link set lo up

# A key both "hosts" hold: each end proves it to the other (--psk-file),
# and the process moves encrypted under TLS keyed by it (--tls).
(umask 077 && head -c 32 /dev/urandom | base64 >"$work/key")
echo "== there: ckpt migrate --listen $port --address $there_ip --pidns --psk-file key --tls"
ip netns exec "$ns" "$ckpt" migrate --listen "$port" --address "$there_ip" -D "$work/there" --pidns \
  --psk-file "$work/key" --tls 2>"$work/there.log" &
dst=$!
for _ in $(seq 100); do
  ip netns exec "$ns" ss -Hltn "sport = :$port" | grep -q . && break
  sleep 0.05
done

echo "== here: a counter (a number every 200 ms to $work/counter.log)"
setsid "$workloads/wl_counter" "$work/ready" >"$work/counter.log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.05; done
[ -e "$work/ready" ] || { echo "the counter did not start: $(cat "$work/counter.log")" >&2; exit 1; }
sleep 1
echo "   pid $pid in $(readlink /proc/$pid/ns/net), counting: $(tail -n 1 "$work/counter.log")"

echo "== here: ckpt migrate -t $pid --to $there_ip:$port --psk-file key --tls"
"$ckpt" migrate -t "$pid" --to "$there_ip:$port" -D "$work/here" --psk-file "$work/key" --tls
wait "$pid" 2>/dev/null || true
pid=
# ckpt there -> ckpt-init (PID 1 of the new PID namespace) -> the counter.
init=$(pgrep -P "$dst" | head -n 1)
moved=$(pgrep -P "$init" | head -n 1)
echo "   now pid $moved there ($(grep NSpid /proc/$moved/status | tr -s '\t' ' ')), in $(readlink /proc/$moved/ns/net)"
sleep "$there"
echo "   counting on there: $(tail -n 1 "$work/counter.log")"

echo "== SIGTERM: the counter checks that it never skipped or repeated a number"
kill -TERM "$moved"
status=0
wait "$dst" || status=$?
dst=
tail -n 1 "$work/counter.log"
echo "== ckpt there exited with the counter's status: $status"
exit "$status"
