# The compose cluster's servers (node_name comes from -node). In a container
# with one interface, bind_addr 0.0.0.0 advertises that interface's address.
datacenter       = "prometheus"
data_dir         = "/data"
server           = true
bootstrap_expect = 3
bind_addr        = "0.0.0.0"
client_addr      = "0.0.0.0"
retry_join       = ["server1", "server2", "server3"]
encrypt          = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="

ui_config {
  enabled = true
}

acl {
  enabled        = true
  default_policy = "deny"
  down_policy    = "extend-cache"
  tokens {
    initial_management = "6b3f7c2e-0f5d-4c41-9a7e-1d2c3b4a5f60"
    agent              = "6b3f7c2e-0f5d-4c41-9a7e-1d2c3b4a5f60"
  }
}

# Containers log to the console (docker logs); JSON for a log driver to ship.
log_level = "INFO"
log_json  = true
