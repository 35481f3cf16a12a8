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

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "error: installing ${missing[*]} needs root" >&2
      exit 1
    fi
  fi
  apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q
    -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
  "${apt[@]}" update
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
fi

echo "==> cargo build --release -p tribune-agent --bin tribune -p tribune-tests --bin tribune-bench"
# cargo prints the path of every binary it built; take ours from its JSON.
bins=$(
  cargo build --release -p tribune-agent --bin tribune -p tribune-tests --bin tribune-bench \
    --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] in ("tribune", "tribune-bench"):
        print(m["target"]["name"], m["executable"])
'
)
TRIBUNE_BIN=$(awk '$1 == "tribune" {print $2}' <<<"$bins" | tail -n 1)
BENCH_BIN=$(awk '$1 == "tribune-bench" {print $2}' <<<"$bins" | tail -n 1)
if [ ! -x "$TRIBUNE_BIN" ] || [ ! -x "$BENCH_BIN" ]; then
  echo "error: cargo build did not report the tribune and tribune-bench executables" >&2
  exit 1
fi
export TRIBUNE_BIN
"$BENCH_BIN" "$@"

# The logging figures (log call cost, file and syslog throughput, rotation,
# reconnect, HTTP with logging on/off/stalled) follow when no figure was picked;
# scripts/bench-logging.sh runs them alone. TRIBUNE_BENCH_SKIP_LOGGING=1 skips them.
if [ "$#" -eq 0 ] && [ -z "${TRIBUNE_BENCH_SKIP_LOGGING:-}" ]; then
  echo "==> scripts/bench-logging.sh"
  scripts/bench-logging.sh
fi
