# A Tribune server: the seed's server1 config.json in HCL, plus log shipping done
# by the agent itself. Copy to /etc/tribune.d/ on each of three servers and change
# node_name, bind_addr (and node_id if you set one). Check with:
#   tribune validate /etc/tribune.d/
datacenter       = "prometheus"
node_name        = "server1"
data_dir         = "/var/lib/tribune"
server           = true
bootstrap_expect = 3
bind_addr        = "192.168.1.153"
client_addr      = "0.0.0.0"
retry_join       = ["192.168.1.153:8301", "192.168.1.154:8301", "192.168.1.155:8301"]
# Replace with the output of `tribune keygen` (the same on every agent).
encrypt = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="

ui_config {
  enabled = true
}

ports {
  http     = 8500
  dns      = 8600
  serf_lan = 8301
  serf_wan = 8302
  server   = 8300
  grpc     = 8400
}

acl {
  enabled        = true
  default_policy = "deny"
  down_policy    = "extend-cache"
  tokens {
    # Replace both with `uuidgen` output; keep them out of version control.
    initial_management = "6b3f7c2e-0f5d-4c41-9a7e-1d2c3b4a5f60"
    agent              = "6b3f7c2e-0f5d-4c41-9a7e-1d2c3b4a5f60"
  }
}

# Logging: what the seed set up with `-syslog`, rsyslog and logrotate.
log_level       = "INFO"
# Every line to the local syslog daemon (/dev/log), facility local0, tag
# "tribune"; deploy/rsyslog/30-tribune.conf files it for ELK.
enable_syslog   = true
syslog_facility = "LOCAL0"
# Under systemd the console would reach journald too: log each line once.
log_stdout      = false
# Or ship straight to a collector, RFC 5424 over TCP (RFC 6587 framing):
# syslog_address = "tcp://logs.example.internal:6514"

# Or write JSON lines for Filebeat (deploy/elk/), rotated and compressed by the
# agent (no logrotate): the active file is /var/log/tribune/consul.log,
# archives consul-<unixnanos>.log.gz.
# log_json             = true
# log_file             = "/var/log/tribune/"
# log_rotate_bytes     = 104857600
# log_rotate_duration  = "24h"
# log_rotate_max_files = 5
# log_rotate_compress  = true
