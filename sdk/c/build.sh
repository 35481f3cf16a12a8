#!/usr/bin/env bash
# Builds a C health-check plugin into a Tribune component:
#   sdk/c/build.sh PLUGIN_DIR OUT.wasm
# PLUGIN_DIR holds the C sources (*.c) and plugin.toml. Needs clang, lld and wasi-libc
# (Debian: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32) and the
# tribune-c-tool (built from sdk/c/tool with cargo, or found as $TRIBUNE_C_TOOL).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${1:?usage: build.sh PLUGIN_DIR OUT.wasm}"
out="${2:?usage: build.sh PLUGIN_DIR OUT.wasm}"
world="${TRIBUNE_WORLD:-health-check}"
tool="${TRIBUNE_C_TOOL:-}"
if [ -z "$tool" ]; then
  cargo build --quiet --release --manifest-path "$here/tool/Cargo.toml"
  tool="$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/tool/Cargo.toml" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/tribune-c-tool"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$tool" bindgen "$here/../wit/v0.1" "$world" "$work/gen"
c_name="${world//-/_}"
# A preview1 reactor module: no main, exports called by the host.
clang --target=wasm32-wasi -mexec-model=reactor \
  -O2 -Wall -Werror -I "$work/gen" -I "$here" \
  -Wl,--strip-debug \
  -o "$work/core.wasm" \
  "$src"/*.c "$work/gen/$c_name.c" "$work/gen/${c_name}_component_type.o"
"$tool" component "$work/core.wasm" "$out" "$src/plugin.toml" "c $(grep -o '"[0-9.]*"' "$here/tribune_check.h" | head -1 | tr -d '"')"
echo "built $out"
