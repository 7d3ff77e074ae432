#!/usr/bin/env bash
# Builds (incrementally) and runs the whole test suite: unit tests and the
# end-to-end tests that checkpoint and restore real processes (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build
ctest --test-dir build --output-on-failure -j1 "$@"
