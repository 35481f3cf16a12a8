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

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ -z "${ETCD_BIN:-}" ]; then
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
fi
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
  # The package starts a single-member etcd on 2379 under systemd; the
  # benchmark needs those ports for its own three members.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    "${as_root[@]}" systemctl stop etcd || true
  fi
fi

echo "==> cargo build --release -p tribune-agent --bin tribune -p tribune-tests --bin tribune-bench"
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
# A later --only on the command line replaces this one.
exec "$BENCH_BIN" --only 5,6,7 "$@"
