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

source scripts/lib/bench-common.sh

bins=$(build_release tribune tribune-logbench)
TRIBUNE_BIN=$(bin_path tribune "$bins")
LOGBENCH_BIN=$(bin_path tribune-logbench "$bins")
export TRIBUNE_BIN
exec "$LOGBENCH_BIN" "$@"
