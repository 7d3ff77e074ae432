#!/usr/bin/env bash
# ckpt SIGKILLed at uniformly random moments of dumps, many times: the
# acceptance run of the kill-safety promise (the suite runs a bounded form).
# Usage: tests/kill-loop.sh [ROUNDS_PER_CASE] (170: 510 dumps over 3 cases).
# CKPT_KILL_STRICT=1 adds seccomp strict mode, which is not kill-safe yet.
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-170}
out=$(CKPT_KILL_ROUNDS=$rounds build/tests/e2e_tests --gtest_filter='Kills/KillLoop.*' 2>&1)
status=$?
grep -E '^kill loop|FAILED  \]|round [0-9]+:' <<<"$out"
awk '/^kill loop/ { k += $4; f += $6; l += $10 }
     END { printf "total: %d kills, %d dumps finished first, %d lost\n", k, f, l }' <<<"$out"
exit $status
