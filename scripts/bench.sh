#!/usr/bin/env bash
# Tribune's benchmark: catalog read throughput against a bare hyper server,
# blocking-query fan-out, KV PUT latency with fsync, startup time and memory.
# Prints every run, the medians with their ranges, and a summary table with
# the goals. Takes about 15 minutes on a quiet 2-core machine (longer when
# other work keeps the CPU busy: every measurement waits for a quiet machine).
# Not part of CI; the exit status says whether it could measure, not whether
# the goals were met. What each figure means: tests/BENCH.md. The cluster
# figures (three servers against a three-member etcd: replicated writes and
# reads, leader failover, cluster start) are scripts/bench-cluster.sh.
#
#   scripts/bench.sh                      # everything, 5 runs of 10 s each
#   scripts/bench.sh --only 2,4           # some figures
#   scripts/bench.sh --runs 7 --duration 20
#
# It installs wrk (and python3, for wait_quiet.py) with apt when missing,
# builds `tribune` and `tribune-bench` in release mode, and runs the latter.
# Environment: TRIBUNE_BENCH_DIR (where agents keep data; default /var/tmp,
# never tmpfs), TRIBUNE_BENCH_TOOLS (the neutral wrk scripts and
# wait_quiet.py; default /work/shared/bench, else built-in copies),
# TRIBUNE_BENCH_KEEP=1 (keep data and logs), TRIBUNE_BENCH_PERF=DIR (profile
# the fan-out wake-up with perf into DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/bench-common.sh

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
apt_install "${missing[@]}"

bins=$(build_release tribune tribune-bench)
TRIBUNE_BIN=$(bin_path tribune "$bins")
BENCH_BIN=$(bin_path tribune-bench "$bins")
export TRIBUNE_BIN
"$BENCH_BIN" "$@"

# The logging figures (log call cost, file and syslog throughput, rotation,
# reconnect, HTTP with logging on/off/stalled) follow when no figure was picked;
# scripts/bench-logging.sh runs them alone. TRIBUNE_BENCH_SKIP_LOGGING=1 skips them.
if [ "$#" -eq 0 ] && [ -z "${TRIBUNE_BENCH_SKIP_LOGGING:-}" ]; then
  echo "==> scripts/bench-logging.sh"
  scripts/bench-logging.sh
fi
