#!/usr/bin/env bash
# Tribune's gossip benchmark against serf 0.9.4 (issue 3 point 6), and the idle-stability
# run. Not part of CI; the exit status says whether it could measure (and, for
# --idle-stability, whether the cluster stayed stable), not whether the gossip goals were met.
#
#   scripts/bench-gossip.sh                  # 16 serf vs 16 tribune agents, 5 runs each,
#                                            # interleaved; about 30 minutes
#   scripts/bench-gossip.sh --runs 3 --idle 35
#   scripts/bench-gossip.sh --peers tribune  # Tribune alone
#   scripts/bench-gossip.sh --idle-stability 600
#                                            # 3 servers + 1 client for 10 minutes:
#                                            # leader changes and gossip failures (goal 0)
#   scripts/bench-gossip.sh --encrypt --runs 3  # both peers with one AES-256-GCM gossip key
#
# Every other flag goes to tests/bench/gossip_bench.py (--help lists them; its docstring
# says what each scenario does). Figures and their meaning: tests/BENCH-gossip.md.
#
# It installs serf and python3-msgpack with apt when missing (Debian's serf 0.9.4 package
# prints "0.8.2-dev" as its version: the Debian build leaves the version string alone),
# builds `tribune` in release mode and runs the harness with Debian's python3. Needs root:
# the byte counts come from an AF_PACKET socket on lo.
# Environment: TRIBUNE_BIN (a tribune binary to use instead of building one),
# TRIBUNE_BENCH_DIR (agents' data and logs; default /var/tmp, never tmpfs),
# TRIBUNE_BENCH_TOOLS (the neutral tools, for wait_quiet.py; default /work/shared/bench,
# else a built-in copy of its rule).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/bench-common.sh

args=()
stability=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --idle-stability)
      [ "$#" -ge 2 ] || { echo "error: --idle-stability needs a number of seconds" >&2; exit 2; }
      stability="$2"
      shift 2
      ;;
    --idle-stability=*)
      stability="${1#*=}"
      shift
      ;;
    *)
      args+=("$1")
      shift
      ;;
  esac
done
if [ -n "$stability" ] && ! [[ "$stability" =~ ^[0-9]+$ && "$stability" -gt 0 ]]; then
  echo "error: --idle-stability: expected a whole number of seconds > 0, got '$stability'" >&2
  exit 2
fi

if [ "$(id -u)" -ne 0 ] && [ -z "$stability" ]; then
  echo "error: the gossip benchmark needs root (it counts bytes with an AF_PACKET socket on lo)" >&2
  exit 1
fi

missing=()
command -v serf >/dev/null 2>&1 || missing+=(serf)
/usr/bin/python3 -c 'import msgpack' >/dev/null 2>&1 || missing+=(python3-msgpack)
# The package enables a serf.service that a container without systemd never starts; the
# harness starts its own agents.
apt_install "${missing[@]}"
echo "==> serf: $(dpkg-query -W -f='${Version}' serf 2>/dev/null || echo '?') (Debian package)"

if [ -n "${TRIBUNE_BIN:-}" ]; then
  # A binary given by the caller (e.g. one already built while the target directory is
  # busy with other builds): used as it is, not rebuilt.
  if [ ! -x "$TRIBUNE_BIN" ]; then
    echo "error: TRIBUNE_BIN=$TRIBUNE_BIN is not an executable file" >&2
    exit 1
  fi
  echo "==> using TRIBUNE_BIN=$TRIBUNE_BIN (not rebuilt)"
  built_from="given by TRIBUNE_BIN"
else
  TRIBUNE_BIN=$(bin_path tribune "$(build_release tribune)")
  built_from="commit $(git rev-parse --short HEAD)"
  git diff --quiet HEAD -- agent 2>/dev/null || built_from+=", with uncommitted changes in agent/"
fi
# A private copy: other builds in the shared target directory may replace the binary
# while the benchmark runs, and every run must start the same program.
bench_dir="${TRIBUNE_BENCH_DIR:-/var/tmp}"
mkdir -p "$bench_dir"
bin_copy=$(mktemp "$bench_dir/tribune-gossipbench.XXXXXX")
trap 'rm -f "$bin_copy"' EXIT
cp "$TRIBUNE_BIN" "$bin_copy"
chmod 755 "$bin_copy"
echo "==> tribune: $bin_copy (copy of $TRIBUNE_BIN; $built_from)"
export TRIBUNE_BIN="$bin_copy"

if [ -n "$stability" ]; then
  /usr/bin/python3 tests/bench/gossip_bench.py --stability "$stability" "${args[@]}"
else
  /usr/bin/python3 tests/bench/gossip_bench.py "${args[@]}"
fi
