#!/usr/bin/env bash
# Runs every test of the workspace, the way CI does:
#   1. installs the programs the integration suites start (if any is missing),
#   2. builds the `tribune` binary and exports TRIBUNE_BIN for the suites,
#   3. runs `cargo test --workspace`.
# Arguments replace `--workspace` and go to cargo test, for example:
#   scripts/test.sh -p tribune-tests --test prometheus
#   scripts/test.sh --workspace -- --include-ignored
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh

echo "==> cargo build -p tribune-agent --bin tribune"
TRIBUNE_BIN=$(
  cargo build -p tribune-agent --bin tribune --message-format=json-render-diagnostics |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "tribune"
                  and .executable != null) | .executable' |
    tail -n 1
)
if [ ! -x "$TRIBUNE_BIN" ]; then
  echo "error: cargo build did not report the tribune executable" >&2
  exit 1
fi
export TRIBUNE_BIN

# WASM plugins (first-party, fixtures, one example per SDK language) for the plugin
# suites, compiled once into a cache their agents share.
export TRIBUNE_PLUGIN_DIR="${TRIBUNE_PLUGIN_DIR:-$HOME/.cache/tribune-plugins/components}"
export TRIBUNE_PLUGIN_CACHE="${TRIBUNE_PLUGIN_CACHE:-$HOME/.cache/tribune-plugins/compiled}"
echo "==> scripts/build-plugins.sh"
bash scripts/build-plugins.sh

if [ "$#" -eq 0 ]; then
  set -- --workspace
fi
echo "==> cargo test $* (TRIBUNE_BIN=$TRIBUNE_BIN)"
exec cargo test "$@"
