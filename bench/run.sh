#!/bin/sh
# Build ckpt and the bench helpers (unless --no-build), then run the benchmark
# (bench/run.py). The table goes to stdout, progress and errors to stderr.
#
#   bench/run.sh [--no-build] [run.py options]     e.g. bench/run.sh --reps 1
#   CKPT_BUILD=/path/to/builddir bench/run.sh       (default: build)
set -e
cd "$(dirname "$0")/.."
build=${CKPT_BUILD:-build}
if [ "$1" = "--no-build" ]; then
	shift
else
	if [ ! -f "$build/build.ninja" ]; then
		cmake -S . -B "$build" -G Ninja >&2 || { echo "bench: cmake failed" >&2; exit 1; }
	fi
	ninja -C "$build" >&2 || { echo "bench: build failed" >&2; exit 1; }
fi
exec python3 bench/run.py --build "$build" "$@"
