# The compose cluster's client agent, with the seed's node_exporter service.
datacenter  = "prometheus"
data_dir    = "/data"
server      = false
bind_addr   = "0.0.0.0"
client_addr = "0.0.0.0"
retry_join  = ["server1", "server2", "server3"]
encrypt     = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="

acl {
  enabled        = true
  default_policy = "deny"
  down_policy    = "extend-cache"
  tokens {
    agent = "6b3f7c2e-0f5d-4c41-9a7e-1d2c3b4a5f60"
  }
}

service {
  id      = "node_exporter01"
  name    = "node_exporter"
  address = "node-exporter"
  port    = 9100
  tags    = ["prod", "node"]
  check {
    http     = "http://node-exporter:9100/metrics"
    interval = "10s"
    timeout  = "2s"
  }
}

log_level = "INFO"
log_json  = true
