#!/usr/bin/env bash
# Checks everything in deploy/ with the real tools, as CI does
# (tests/tests/deploy.rs runs this script):
#   - the systemd units with `systemd-analyze verify` (any warning fails),
#   - every example config with `tribune validate`,
#   - the rsyslog snippets with `rsyslogd -N1`,
#   - the Prometheus job with VictoriaMetrics' dry run,
#   - the compose file and the ELK pipeline as YAML/JSON.
# Usage: deploy/verify.sh [path/to/tribune]   (default: $TRIBUNE_BIN, then PATH)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tribune="${1:-${TRIBUNE_BIN:-$(command -v tribune || true)}}"
if [ -z "$tribune" ] || [ ! -x "$tribune" ]; then
  echo "error: no tribune binary (pass its path, or set TRIBUNE_BIN)" >&2
  exit 2
fi
tribune="$(cd "$(dirname "$tribune")" && pwd)/$(basename "$tribune")"

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "error: $1 is not installed ($2); run scripts/install-test-deps.sh" >&2
    exit 2
  fi
}
need systemd-analyze "Debian package systemd"
need python3 "Debian package python3"
rsyslogd="$(command -v rsyslogd || echo /usr/sbin/rsyslogd)"
[ -x "$rsyslogd" ] || need rsyslogd "Debian package rsyslog"
vm="$(command -v victoria-metrics || true)"
[ -n "$vm" ] || need victoria-metrics "Debian package victoria-metrics"

failed=0
fail() {
  echo "FAIL $*" >&2
  failed=1
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# systemd: the units as installed, but with ExecStart pointing at this build
# (verify checks that the program exists). Any output is a finding.
for unit in "$here"/systemd/*.service; do
  name="$(basename "$unit")"
  sed "s#/usr/local/bin/tribune#$tribune#g" "$unit" > "$tmp/$name"
  out="$(systemd-analyze verify --man=no "$tmp/$name" 2>&1 || true)"
  # network-online.target is absent in containers without systemd; not a finding.
  out="$(printf '%s\n' "$out" | grep -v 'network-online.target not found' | sed '/^$/d' || true)"
  if [ -n "$out" ]; then
    fail "systemd-analyze verify $name:"
    printf '%s\n' "$out" >&2
  else
    for key in 'Type=notify' 'ExecReload=/usr/local/bin/tribune reload' 'LimitNOFILE=' 'ExecStart=/usr/local/bin/tribune agent'; do
      grep -q "^$key" "$unit" || fail "$name lacks $key"
    done
    echo "ok   systemd-analyze verify $name"
  fi
done

# Configs: each file alone, as an agent would load it.
for cfg in "$here"/config/*.hcl "$here"/compose/config/*.hcl; do
  rel="${cfg#"$here"/}"
  if out="$("$tribune" validate "$cfg" 2>&1)"; then
    echo "ok   tribune validate $rel"
  else
    fail "tribune validate $rel:"
    printf '%s\n' "$out" >&2
  fi
done

# rsyslog: both snippets in one configuration, as /etc/rsyslog.d would hold them.
printf '$IncludeConfig %s\n' "$here"/rsyslog/*.conf > "$tmp/rsyslog.conf"
if out="$("$rsyslogd" -N1 -f "$tmp/rsyslog.conf" 2>&1)"; then
  echo "ok   rsyslogd -N1 rsyslog/*.conf"
else
  fail "rsyslogd -N1:"
  printf '%s\n' "$out" >&2
fi

# The scrape job of the compose file.
if out="$("$vm" -promscrape.config="$here/compose/prometheus.yml" -promscrape.config.dryRun \
    -storageDataPath="$tmp/vm" 2>&1)"; then
  echo "ok   victoria-metrics dry run compose/prometheus.yml"
else
  fail "victoria-metrics -promscrape.config.dryRun:"
  printf '%s\n' "$out" >&2
fi

# Compose and ELK files parse, and name what they must.
if out="$(python3 - "$here" 2>&1 <<'PY'
import json, sys, yaml
here = sys.argv[1]
c = yaml.safe_load(open(f"{here}/compose/docker-compose.yml"))
s = c["services"]
need = {"server1", "server2", "server3", "client1", "node-exporter", "prometheus"}
missing = need - set(s)
assert not missing, f"compose lacks services {missing}"
assert s["client1"]["command"][1:2] == ["-config-dir=/etc/tribune.d"], s["client1"]["command"]
assert s["prometheus"]["image"].startswith("prom/prometheus:"), s["prometheus"]["image"]
servers = [n for n in s if s[n].get("command", [""])[0] == "agent"]
assert len(servers) == 4, f"expected 3 servers and 1 client, got {servers}"
p = json.load(open(f"{here}/elk/tribune-pipeline.json"))
text = json.dumps(p)
for key in ["@level", "@module", "@message", "@timestamp", "@origin"]:
    assert key in text, f"pipeline ignores {key}"
assert p["processors"], "pipeline has no processors"
yaml.safe_load(open(f"{here}/elk/filebeat.yml"))
PY
)"; then
  echo "ok   compose/docker-compose.yml, elk/*.json, elk/filebeat.yml parse"
else
  fail "compose/ELK files:"
  printf '%s\n' "$out" >&2
fi

if [ "$failed" -ne 0 ]; then
  echo "deploy/verify.sh: FAILED" >&2
  exit 1
fi
echo "deploy/verify.sh: all checks passed"
