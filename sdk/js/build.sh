#!/usr/bin/env bash
# Builds a JavaScript health-check plugin into a Tribune component:
#   sdk/js/build.sh APP_DIR OUT.wasm
# APP_DIR holds app.js (an ES module exporting `check`) and plugin.toml. Needs
# @bytecodealliance/componentize-js 0.23 (npm), whose rolldown bundles app.js with the
# SDK, and `tribune` or the tribune-c-tool to embed the manifest.
# $TRIBUNE_JS_TOOLS: a directory where `npm install @bytecodealliance/componentize-js`
# was run (default: the current npm prefix).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app="$(cd "${1:?usage: build.sh APP_DIR OUT.wasm}" && pwd)"
out="${2:?usage: build.sh APP_DIR OUT.wasm}"
world="${TRIBUNE_WORLD:-health-check}"
tools="${TRIBUNE_JS_TOOLS:-$(npm prefix)}"
bin="$tools/node_modules/.bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$app"/*.js "$work/"
cp "$here/tribune-plugin.js" "$work/"
# One module: the app and the SDK bundled, the host interfaces left as imports.
if ! "$bin/rolldown" "$work/app.js" --format esm \
  --external 'tribune:plugin/log@0.1.0,tribune:plugin/config@0.1.0,tribune:plugin/clock@0.1.0,tribune:plugin/http@0.1.0,tribune:plugin/tcp@0.1.0,tribune:plugin/kv@0.1.0' \
  --file "$work/bundle.js" >"$work/rolldown.log" 2>&1; then
  cat "$work/rolldown.log" >&2
  exit 1
fi
# No wasi:http: the `http` capability is the only way out.
"$bin/componentize-js" "$work/bundle.js" --wit "$here/../wit/v0.1" --world-name "$world" \
  --disable http fetch-event -o "$work/plugin.wasm" >/dev/null
stamp="js $(sed -n 's/^export const SDK_VERSION = "\(.*\)";/\1/p' "$here/tribune-plugin.js")"
if [ -n "${TRIBUNE_C_TOOL:-}" ]; then
  "$TRIBUNE_C_TOOL" pack "$work/plugin.wasm" "$out" "$app/plugin.toml" "$stamp"
else
  "${TRIBUNE_BIN:-tribune}" plugin pack -manifest "$app/plugin.toml" -sdk "$stamp" -o "$out" "$work/plugin.wasm"
fi
echo "built $out"
