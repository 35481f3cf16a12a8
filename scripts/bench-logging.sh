#!/usr/bin/env bash
# Tribune's logging benchmark (issue 5): the cost of a log call on the calling
# thread, lines/s to a rotated JSON file, messages/s to the real rsyslogd over
# TCP and UDP with the count lost, the stall a rotation causes, the reconnect
# time after rsyslogd restarts, and the agent's HTTP p99 with logging off, at
# debug, and with the syslog sink stalled. Prints every run and a summary with
# the goals. Not part of CI. About 5 minutes on a quiet 2-core machine.
#
#   scripts/bench-logging.sh                       # everything, 5 runs
#   scripts/bench-logging.sh --runs 3 --only calls,file
#
# Needs rsyslog (scripts/install-test-deps.sh installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> cargo build --release -p tribune-agent --bin tribune -p tribune-tests --bin tribune-logbench"
bins=$(
  cargo build --release -p tribune-agent --bin tribune -p tribune-tests --bin tribune-logbench \
    --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] in ("tribune", "tribune-logbench"):
        print(m["target"]["name"], m["executable"])
'
)
TRIBUNE_BIN=$(awk '$1 == "tribune" {print $2}' <<<"$bins" | tail -n 1)
LOGBENCH_BIN=$(awk '$1 == "tribune-logbench" {print $2}' <<<"$bins" | tail -n 1)
if [ ! -x "$TRIBUNE_BIN" ] || [ ! -x "$LOGBENCH_BIN" ]; then
  echo "error: cargo build did not report the tribune and tribune-logbench executables" >&2
  exit 1
fi
export TRIBUNE_BIN
exec "$LOGBENCH_BIN" "$@"
