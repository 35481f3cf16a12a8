# A Tribune client agent: joins the servers, runs the checks of the services
# registered on it, and forwards everything else to the servers. Copy to
# /etc/tribune.d/ and change node_name and bind_addr.
datacenter  = "prometheus"
node_name   = "node-exporter1"
data_dir    = "/var/lib/tribune"
server      = false
bind_addr   = "192.168.1.151"
client_addr = "127.0.0.1"
retry_join  = ["192.168.1.153:8301", "192.168.1.154:8301", "192.168.1.155:8301"]
encrypt     = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="

acl {
  enabled        = true
  default_policy = "deny"
  down_policy    = "extend-cache"
  tokens {
    agent = "6b3f7c2e-0f5d-4c41-9a7e-1d2c3b4a5f60"
  }
}

# The seed's node_exporter, registered from the config (its Prometheus job
# finds it through consul_sd_configs and relabels the `prod` tag to env=prod).
service {
  id   = "node_exporter01"
  name = "node_exporter"
  tags = ["prod", "node"]
  port = 9100
  check {
    http     = "http://127.0.0.1:9100/metrics"
    interval = "10s"
    timeout  = "2s"
  }
}

log_level          = "INFO"
enable_syslog      = true
syslog_facility    = "LOCAL0"
log_stdout         = false
