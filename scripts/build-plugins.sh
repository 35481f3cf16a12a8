#!/usr/bin/env bash
# Builds every WebAssembly plugin of the repository into a component, for the plugin
# test suites and for operators:
#
#   plugins/*                first-party plugins (Rust)       -> <name>.wasm
#   tests/fixtures/plugins/* test and hostile fixtures (Rust) -> fixture-<name>.wasm
#   examples/plugins/rust    the Rust SDK example             -> example-rust.wasm
#   examples/plugins/c       the C SDK example                -> example-c.wasm
#   examples/plugins/python  the Python SDK example           -> example-python.wasm
#   examples/plugins/js      the JavaScript SDK example       -> example-js.wasm
#
# into $TRIBUNE_PLUGIN_DIR (default ~/.cache/tribune-plugins/components), then runs the
# first-party plugins' unit tests on the host. It installs what it needs when missing:
# the wasm32-wasip2 Rust target (rustup), clang, lld and wasi-libc (apt, via
# scripts/install-test-deps.sh), componentize-py (pip) and componentize-js (npm, into
# ~/.cache/tribune-plugins/node). Every install is skipped when already done, and a
# Python or JavaScript component is rebuilt only when its inputs changed (their builds
# take tens of seconds), so a second run takes seconds.
#
#   scripts/build-plugins.sh            everything
#   scripts/build-plugins.sh --no-test  skip the host unit tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$(pwd)"

run_tests=1
for arg in "$@"; do
  case "$arg" in
    --no-test) run_tests=0 ;;
    *) echo "usage: $0 [--no-test]" >&2; exit 2 ;;
  esac
done

cache="${TRIBUNE_PLUGIN_CACHE_ROOT:-$HOME/.cache/tribune-plugins}"
out="${TRIBUNE_PLUGIN_DIR:-$cache/components}"
export CARGO_TARGET_DIR="$cache/cargo-target"
mkdir -p "$out" "$cache"

# Versions measured to work offline here (DESIGN.md §5).
COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0

step() { printf '==> %s\n' "$*"; }
started=$SECONDS

# --- toolchains -------------------------------------------------------------------------
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  step "rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

if ! command -v clang >/dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then
  step "installing clang, lld and wasi-libc (scripts/install-test-deps.sh)"
  bash scripts/install-test-deps.sh
fi

if ! command -v componentize-py >/dev/null ||
  [ "$(componentize-py --version 2>/dev/null | awk '{print $2}')" != "$COMPONENTIZE_PY_VERSION" ]; then
  step "pip install componentize-py==$COMPONENTIZE_PY_VERSION"
  python3 -m pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

js_tools="$cache/node"
if [ ! -x "$js_tools/node_modules/.bin/componentize-js" ] ||
  ! grep -q "\"version\": \"$COMPONENTIZE_JS_VERSION\"" \
    "$js_tools/node_modules/@bytecodealliance/componentize-js/package.json" 2>/dev/null; then
  step "npm install @bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION"
  mkdir -p "$js_tools"
  [ -f "$js_tools/package.json" ] || echo '{"name": "tribune-plugin-js-tools", "private": true}' >"$js_tools/package.json"
  (cd "$js_tools" && npm install --no-audit --no-fund --prefer-offline --loglevel=error \
    "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION")
fi

# --- Rust guests --------------------------------------------------------------------------
# Copies each cdylib of a guest workspace to $out under the name given by $2 (a prefix).
rust_workspace() {
  local dir=$1 prefix=$2
  step "cargo build --release --target wasm32-wasip2 ($dir)"
  cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$dir/Cargo.toml"
  local name crate
  for manifest in "$dir"/*/Cargo.toml "$dir"/Cargo.toml; do
    [ -f "$manifest" ] || continue
    crate=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -1)
    [ -n "$crate" ] || continue
    local built="$CARGO_TARGET_DIR/wasm32-wasip2/release/${crate//-/_}.wasm"
    [ -f "$built" ] || continue
    name=$(basename "$(dirname "$manifest")")
    cp "$built" "$out/$prefix$name.wasm"
  done
}
rust_workspace plugins ""
rust_workspace tests/fixtures/plugins "fixture-"
step "cargo build --release --target wasm32-wasip2 (examples/plugins/rust)"
cargo build --quiet --release --target wasm32-wasip2 --manifest-path examples/plugins/rust/Cargo.toml
cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/example_rust.wasm" "$out/example-rust.wasm"

# --- C, Python, JavaScript ------------------------------------------------------------------
step "cargo build --release (sdk/c/tool)"
cargo build --quiet --release --manifest-path sdk/c/tool/Cargo.toml
export TRIBUNE_C_TOOL="$CARGO_TARGET_DIR/release/tribune-c-tool"

# Runs "$3..." OUT to (re)build $out/$2, only when the hash of the files listed in $1 (and
# of the tool versions) changed since the last build.
cached_build() {
  local inputs=$1 target=$2
  shift 2
  local sum
  # shellcheck disable=SC2086 # $inputs is a list of globs
  sum=$( (find $inputs -type f ! -path '*__pycache__*' | sort | xargs cat
    echo "$COMPONENTIZE_PY_VERSION $COMPONENTIZE_JS_VERSION") | sha256sum | cut -c1-16)
  if [ -f "$out/$target" ] && [ "$(cat "$out/$target.inputs" 2>/dev/null)" = "$sum" ]; then
    step "$target is up to date"
    return
  fi
  step "building $target"
  "$@" "$out/$target"
  echo "$sum" >"$out/$target.inputs"
}
wit_files="sdk/wit/v0.1/*.wit"
cached_build "examples/plugins/c/* sdk/c/*.h sdk/c/build.sh $wit_files" example-c.wasm \
  bash sdk/c/build.sh examples/plugins/c
cached_build "examples/plugins/python/* sdk/python/*.py sdk/python/build.sh $wit_files" example-python.wasm \
  bash sdk/python/build.sh examples/plugins/python
cached_build "examples/plugins/js/* sdk/js/*.js sdk/js/build.sh $wit_files" example-js.wasm \
  env TRIBUNE_JS_TOOLS="$js_tools" bash sdk/js/build.sh examples/plugins/js

# --- host unit tests of the first-party plugins ---------------------------------------------
if [ "$run_tests" = 1 ]; then
  step "cargo test (plugins, on the host)"
  cargo test --quiet --manifest-path plugins/Cargo.toml
fi

# Compile every component once into the agent's cache, so the suites' agents (which
# share $TRIBUNE_PLUGIN_CACHE) load the large Python and JavaScript ones in a second.
if [ -n "${TRIBUNE_BIN:-}" ] && [ -n "${TRIBUNE_PLUGIN_CACHE:-}" ]; then
  step "precompiling into $TRIBUNE_PLUGIN_CACHE"
  for f in "$out"/*.wasm; do
    "$TRIBUNE_BIN" plugin inspect "$f" >/dev/null 2>&1 || true
  done
fi

step "components in $out ($((SECONDS - started)) s):"
ls -1 "$out"/*.wasm | sed "s|^$out/|    |"
