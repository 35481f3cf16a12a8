#!/usr/bin/env bash
# Tribune's WASM plugin benchmark (issue 4, point 7), in one command:
#
#   scripts/bench-plugins.sh
#
# Builds the agent and tests/src/bin/plugin-bench.rs in release mode, builds every
# component (scripts/build-plugins.sh --no-test), then prints: the cost of one check
# call per language (Rust, C, Python, JavaScript: a fresh Store from the pooled
# InstancePre, ~200 B in and out; p50/p99 with and without the limits, so the limits'
# overhead), compile and cached-load time per language, RSS per loaded plugin and per
# idle pooled slot, a tag rewrite and an event-hook call on a kept instance, checks/s
# on one thread, a process spawn for comparison (a Consul script check's floor), and
# in a real agent: RSS per loaded plugin, CPU at 100 and 1,000 WASM checks/s, and the
# agent's own HTTP p50/p99 idle and with 100 WASM checks at 1 s intervals.
# Not part of CI. About 3 minutes on a quiet 2-core machine; figures and goals are
# explained in sdk/README.md ("Performance").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib/bench-common.sh

bins=$(build_release tribune plugin-bench)
TRIBUNE_BIN=$(bin_path tribune "$bins")
BENCH_BIN=$(bin_path plugin-bench "$bins")
export TRIBUNE_BIN

export TRIBUNE_PLUGIN_DIR="${TRIBUNE_PLUGIN_DIR:-$HOME/.cache/tribune-plugins/components}"
echo "==> scripts/build-plugins.sh --no-test"
bash scripts/build-plugins.sh --no-test

exec "$BENCH_BIN" "$@"
