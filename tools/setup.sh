#!/usr/bin/env bash
# Installs what ckpt needs from Debian 12's packages and builds it into build/.
# Run as root (ckpt itself needs root: ptrace, clone3 with set_tid, PR_SET_MM).
set -euo pipefail
cd "$(dirname "$0")/.."

# python3: bench/run.py, and the e2e tests parse `ckpt show --json` with it.
# libnftables-dev: the network lock's nftables tables (src/net; its header
# at build time, libnftables.so.1 opened at run time); iptables: its
# fallback, run as tools; nftables (nft): the tests list the ruleset with it.
# libprotobuf-dev (with zlib1g-dev): linked statically. libssl-dev: its
# headers at build time, libssl.so.3 opened at run time by the runs that
# need it (src/image/openssl.h).
# Neither gmock nor google-benchmark: the tests use gtest alone, and bench/
# times the ckpt binary from outside (bench/run.py).
packages=(g++ cmake ninja-build pkg-config libfmt-dev libcli11-dev libprotobuf-dev zlib1g-dev protobuf-compiler
          libgtest-dev python3
          libnftables-dev nftables iptables
          libssl-dev  # HMAC-SHA256 for --psk-file, TLS for --tls
          iproute2 procps)  # tools/migrate-demo.sh: ip, ss, pgrep
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build
