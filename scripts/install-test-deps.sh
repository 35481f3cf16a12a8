#!/usr/bin/env bash
# Installs the Debian packages that the integration suites (tests/) start for
# real. This is the one list of test dependencies: .ci/run and scripts/test.sh
# both run this script. When everything is installed already it does nothing,
# not even `apt-get update`.
set -euo pipefail

PACKAGES=(
  victoria-metrics         # scraper speaking consul_sd_configs (tests/tests/prometheus.rs)
  prometheus-node-exporter # the scrape target of the seed's Prometheus job
  dnsutils                 # dig, for the DNS suites
  curl                     # scripts and manual checks
  jq                       # scripts/test.sh reads cargo's JSON with it
  clang                    # C plugins (scripts/build-plugins.sh, sdk/c)
  lld                      # wasm-ld for C plugins
  wasi-libc                # libc for wasm32-wasi C plugins
  libclang-rt-dev-wasm32   # compiler-rt builtins for wasm32
  rsyslog                  # the real syslog daemon of tests/tests/logging.rs and deploy.rs
  systemd                  # systemd-analyze verify, for deploy/verify.sh
  python3-yaml             # deploy/verify.sh parses the compose file with it
  gzip                     # the logging suite unpacks rotated archives
  iproute2                 # ip netns, veths and a bridge for the partition suite (tests/tests/cluster_partition.rs)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "test dependencies: all installed (${PACKAGES[*]})"
  exit 0
fi

echo "test dependencies: installing ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "error: installing ${missing[*]} needs root (run this script as root)" >&2
    exit 1
  fi
fi

apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q
  -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)

# A fresh machine has no package lists; a transient mirror error gets two retries.
for attempt in 1 2 3; do
  if "${apt[@]}" update; then
    break
  fi
  if [ "$attempt" -eq 3 ]; then
    echo "error: apt-get update failed three times" >&2
    exit 1
  fi
  sleep 5
done

# No recommends: node_exporter's would pull in smartmontools, ipmitool and timers.
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
