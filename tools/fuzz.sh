#!/usr/bin/env bash
# Fuzzes every reader of untrusted input (tests/fuzz/targets.h) with libFuzzer,
# each for a bounded time, starting from the corpus of real images in
# tests/fuzz/corpus/<target>/. Usage: tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# (default 15 s, all targets). Needs build/ (for the generated ckpt.pb.cc):
# run tools/setup.sh first. Exits non-zero when a target crashes; the input
# is left in build-fuzz/artifacts/: fix the bug, then add the input to
# tests/fuzz/regressions/<target>/ (unit_tests replays it from then on).
#
# Why clang 16: libFuzzer needs clang, and libstdc++ 12's <expected> (ckpt's
# Result) is enabled only for __cpp_concepts >= 202002L. Clang 16 implements
# what it needs (P0848, conditionally trivial special members) but still
# reports 201907L, so we raise the macro; clang 14 lacks P0848 and can't.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-15}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(unframe pages proc verify)

packages=(clang-16 libclang-rt-16-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -f build/ckpt.pb.cc ] || { echo "fuzz: build/ckpt.pb.cc missing: run tools/setup.sh first" >&2; exit 1; }

cxx=clang++-16
out=build-fuzz
mkdir -p "$out/artifacts"
# -gline-tables-only: file and line in the reports, at a fraction of -g's
# compile time.
flags="-std=gnu++2b -O1 -gline-tables-only -fno-omit-frame-pointer -Wno-macro-redefined -D__cpp_concepts=202002L"
flags+=" -DCKPT_VERSION=\\\"fuzz\\\" -I$PWD/src -I$PWD/build -I$PWD/tests/fuzz -fsanitize=address,undefined"
# Instrumented for coverage: the code under test. The generated protobuf code
# is sanitized but not coverage-instrumented (it would only dilute the signal).
sources=(src/image/*.cc src/base/*.cc src/proc/*.cc src/tree/*.cc src/files/*.cc src/arch/x86_64/regs.cc src/arch/x86_64/cpu_features.cc tests/fuzz/targets.cc)
# Not the schema: it needs the descriptor set ckpt's link embeds, and no
# target prints.
for i in "${!sources[@]}"; do [ "${sources[$i]}" = src/image/schema.cc ] && unset 'sources[i]'; done

# A ninja file of our own: objects built on every core, rebuilt when a
# header they include changes.
{
  echo "flags = $flags"
  echo "rule cxx"
  echo "  command = $cxx \$flags \$extra -MMD -MF \$out.d -c \$in -o \$out"
  echo "  depfile = \$out.d"
  echo "  deps = gcc"
  echo "rule fuzzer"
  echo "  command = $cxx \$flags -fsanitize=fuzzer -DCKPT_FUZZ_TARGET=\$target \$in -lprotobuf -lssl -lcrypto -o \$out"
  objs=()
  for src in "${sources[@]}"; do
    obj="obj/$(echo "$src" | tr / _).o"
    echo "build $obj: cxx $PWD/$src"
    echo "  extra = -fsanitize=fuzzer-no-link"
    objs+=("$obj")
  done
  echo "build obj/ckpt.pb.o: cxx $PWD/build/ckpt.pb.cc"
  echo "  extra = -w"
  objs+=(obj/ckpt.pb.o)
  for t in "${targets[@]}"; do
    echo "build fuzz_$t: fuzzer $PWD/tests/fuzz/fuzz_main.cc ${objs[*]}"
    echo "  target = $t"
  done
} >"$out/build.ninja"
start=$SECONDS
ninja -C "$out" --quiet
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - start)) s"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for t in "${targets[@]}"; do
  # New inputs go to build-fuzz/corpus/<t>; the checked-in corpus is only read.
  mkdir -p "$out/corpus/$t"
  seeds=(tests/fuzz/corpus/"$t")
  [ -d tests/fuzz/regressions/"$t" ] && seeds+=(tests/fuzz/regressions/"$t")
  echo "fuzz: $t for $seconds s"
  if ! "$out/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
      -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" "$out/corpus/$t" "${seeds[@]}" \
      >"$out/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "$out/$t.log"
  fi
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$out/$t.log" | sed "s/^/  /" || true
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $out/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
