#!/usr/bin/env bash
# Builds a Python health-check plugin into a Tribune component:
#   sdk/python/build.sh APP_DIR OUT.wasm
# APP_DIR holds app.py (a class `Check`) and plugin.toml. Needs componentize-py
# (pip install componentize-py==0.25.1) and the tribune-c-tool or `tribune` to embed the
# manifest ($TRIBUNE_PACK, default: `tribune plugin pack`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app="$(cd "${1:?usage: build.sh APP_DIR OUT.wasm}" && pwd)"
out="${2:?usage: build.sh APP_DIR OUT.wasm}"
world="${TRIBUNE_WORLD:-health-check}"
work="$(mktemp -d)"
# componentize-py byte-compiles the app in place; leave the source tree as it was.
trap 'rm -rf "$work"; find "$app" "$here" -name __pycache__ -prune -exec rm -rf {} +' EXIT
componentize-py -q -d "$here/../wit/v0.1" -w "$world" componentize app \
  -p "$app" -p "$here" -o "$work/plugin.wasm"
stamp="python $(sed -n 's/^SDK_VERSION = "\(.*\)"/\1/p' "$here/tribune_plugin.py")"
if [ -n "${TRIBUNE_C_TOOL:-}" ]; then
  "$TRIBUNE_C_TOOL" pack "$work/plugin.wasm" "$out" "$app/plugin.toml" "$stamp"
else
  "${TRIBUNE_BIN:-tribune}" plugin pack -manifest "$app/plugin.toml" -sdk "$stamp" -o "$out" "$work/plugin.wasm"
fi
echo "built $out"
