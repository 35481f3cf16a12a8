# Shared by the scripts/bench*.sh commands; source it, don't run it.

# apt_install PKG...: installs Debian packages (as root, or through sudo).
apt_install() {
  [ "$#" -gt 0 ] || return 0
  echo "==> installing $*"
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "error: installing $* needs root" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q
    -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
  "${apt[@]}" update
  "${apt[@]}" install -y --no-install-recommends "$@"
}

# build_release NAME...: builds the binaries NAME in release mode (`tribune` from
# tribune-agent, the others from tribune-tests) and prints one "NAME PATH" line each,
# the paths cargo reported.
build_release() {
  local args=() name
  for name in "$@"; do
    if [ "$name" = tribune ]; then
      args+=(-p tribune-agent --bin tribune)
    else
      args+=(-p tribune-tests --bin "$name")
    fi
  done
  echo "==> cargo build --release ${args[*]}" >&2
  cargo build --release "${args[@]}" --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
names = set(sys.argv[1:])
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] in names:
        print(m["target"]["name"], m["executable"])
' "$@"
}

# bin_path NAME LINES: the path build_release printed for NAME; fails if there is none.
bin_path() {
  local path
  path=$(awk -v n="$1" '$1 == n {print $2}' <<<"$2" | tail -n 1)
  if [ ! -x "$path" ]; then
    echo "error: cargo build did not report the $1 executable" >&2
    exit 1
  fi
  echo "$path"
}
