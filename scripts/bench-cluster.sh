#!/usr/bin/env bash
# Tribune's cluster benchmark: three Tribune servers against a three-member
# etcd 3.4 (Debian's etcd-server), both on loopback with data on the real disk
# and fsync on. Prints, side by side with etcd and next to each goal:
#   5. KV puts at 1/16/64/256 clients, consistent and stale reads at 64
#      (the shared wrk Lua scripts and sizes, runs interleaved, medians and ranges);
#   6. leader failover: kill -9 of the leader under write load → first ack (≥ 20 kills);
#   7. three servers started together → first committed write (and etcd's),
#      client agent and server idle RSS.
# Takes about 25 minutes with the defaults on a quiet 2-core machine (every
# measurement first waits for a quiet CPU). Not part of CI. What each figure
# means: tests/BENCH.md.
#
#   scripts/bench-cluster.sh                          # figures 5, 6 and 7
#   scripts/bench-cluster.sh --only 6 --kills 40
#   scripts/bench-cluster.sh --runs 3 --duration 5    # a quicker look
#
# Installs wrk, etcd-server, etcd-client and python3 with apt when missing,
# builds `tribune` and `tribune-bench` in release mode, and runs
# `tribune-bench --only 5,6,7` with the arguments given here.
# Environment: TRIBUNE_BENCH_DIR (data; default /var/tmp, never tmpfs),
# TRIBUNE_BENCH_TOOLS (the neutral scripts; default /work/shared/bench, else
# built-in copies), TRIBUNE_BENCH_KEEP=1 (keep data and logs), ETCD_BIN.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/bench-common.sh

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ -z "${ETCD_BIN:-}" ]; then
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
  # The package starts a single-member etcd on 2379 under systemd; the
  # benchmark needs those ports for its own three members.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then sudo systemctl stop etcd || true; else systemctl stop etcd || true; fi
  fi
fi

bins=$(build_release tribune tribune-bench)
TRIBUNE_BIN=$(bin_path tribune "$bins")
BENCH_BIN=$(bin_path tribune-bench "$bins")
export TRIBUNE_BIN
# A later --only on the command line replaces this one.
exec "$BENCH_BIN" --only 5,6,7 "$@"
