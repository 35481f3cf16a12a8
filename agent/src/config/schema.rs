//! Every configuration key Tribune accepts, with its type and a line of documentation, and
//! the walk that checks one source (a file, an `-hcl` snippet, the flags) against it.
//!
//! This table is the raw layer: it mirrors the user's file key for key (compat §14.1). The
//! walk reports every problem it finds instead of stopping at the first, and returns the
//! source with service, check and plugin definitions taken out and decoded, so the merge
//! only deals with plain values. Keys are matched exactly (snake_case), as Consul does,
//! except inside service and check definitions (see `definitions`).

use super::error::{render_value, type_name, ConfigError, HIDDEN};
use super::runtime::PluginConfig;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::net::IpAddr;
use tribune_api::parse_go_duration;
use tribune_api::types::{CheckDefinition, ServiceDefinition};

/// The type of a key's value and what makes it valid.
#[derive(Debug)]
pub(crate) enum Kind {
    Bool,
    Str,
    /// A filesystem path (a string).
    Path,
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// Any JSON number.
    Float,
    /// A Go duration string (`"10s"`).
    Duration,
    /// One IP address (go-sockaddr templates are refused for now).
    Ip,
    /// Space-separated IP addresses.
    IpList,
    /// A list of CIDR blocks.
    CidrList,
    /// A canonical, hyphenated UUID.
    Uuid,
    /// `trace`, `debug`, `info`, `warn`, `err`, `error`, any case.
    LogLevel,
    /// The gossip key: base64 of 16, 24 or 32 bytes. Secret.
    Encrypt,
    /// A string never shown in errors (tokens).
    Secret,
    /// One of the listed strings, exactly.
    OneOf(&'static [&'static str]),
    /// A syslog facility name, any case.
    Facility,
    StrList,
    StrMap,
    /// `node_meta`: a string map with Consul's metadata limits.
    NodeMeta,
    /// A map of Go duration strings (`dns_config.service_ttl`).
    DurationMap,
    Object(&'static [Field]),
    /// Accepted as is and not inspected (mesh and enterprise sections).
    Any,
    /// `service` / `services`: one definition or a list of them.
    Services,
    /// `check` / `checks`: one definition or a list of them.
    Checks,
    /// `plugins`: Tribune's WASM plugin list.
    Plugins,
}

/// Whether a key is current, deprecated, or accepted without effect.
#[derive(Debug)]
pub(crate) enum Note {
    None,
    /// Deprecated; the replacement key path.
    Deprecated(&'static str),
    /// Accepted but has no effect in Tribune; why (warned when the value does something).
    Ignored(&'static str),
}

/// One accepted key.
#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub note: Note,
    /// What the key does; kept next to the key as Vector does (habit 6).
    #[allow(dead_code)]
    pub doc: &'static str,
}

const fn f(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        note: Note::None,
        doc,
    }
}

const fn dep(name: &'static str, kind: Kind, replacement: &'static str) -> Field {
    Field {
        name,
        kind,
        note: Note::Deprecated(replacement),
        doc: "deprecated",
    }
}

const fn ign(name: &'static str, kind: Kind, why: &'static str) -> Field {
    Field {
        name,
        kind,
        note: Note::Ignored(why),
        doc: why,
    }
}

const PORT: Kind = Kind::Int {
    min: -1,
    max: 65535,
};
const COUNT: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};
const U32: Kind = Kind::Int {
    min: 0,
    max: u32::MAX as i64,
};
const POSITIVE: Kind = Kind::Int {
    min: 1,
    max: i64::MAX,
};

const NO_TLS: &str = "TLS is not supported yet; the setting is ignored";
const NO_MESH: &str = "service mesh (Connect) is not supported; the setting is ignored";
const ENTERPRISE: &str = "a Consul Enterprise feature; the setting is ignored";

/// Top-level keys (compat §14.1), alphabetical.
#[rustfmt::skip]
pub(crate) const TOP: &[Field] = &[
    f("acl", Kind::Object(ACL), "ACL system settings (compat §10.1)."),
    dep("acl_agent_master_token", Kind::Secret, "acl.tokens.agent_recovery"),
    dep("acl_agent_token", Kind::Secret, "acl.tokens.agent"),
    dep("acl_datacenter", Kind::Str, "primary_datacenter"),
    dep("acl_default_policy", Kind::OneOf(&["allow", "deny"]), "acl.default_policy"),
    dep("acl_down_policy", Kind::OneOf(DOWN_POLICIES), "acl.down_policy"),
    ign("acl_enforce_version_8", Kind::Bool, "deprecated and without effect"),
    dep("acl_master_token", Kind::Secret, "acl.tokens.initial_management"),
    dep("acl_replication_token", Kind::Secret, "acl.tokens.replication"),
    dep("acl_token", Kind::Secret, "acl.tokens.default"),
    dep("acl_ttl", Kind::Duration, "acl.token_ttl"),
    f("addresses", Kind::Object(ADDRESSES), "Per-listener bind addresses overriding client_addr."),
    f("advertise_addr", Kind::Ip, "Address advertised to other agents (default: bind_addr)."),
    f("advertise_addr_ipv4", Kind::Ip, "IPv4 address advertised as tagged address lan_ipv4."),
    f("advertise_addr_ipv6", Kind::Ip, "IPv6 address advertised as tagged address lan_ipv6."),
    f("advertise_addr_wan", Kind::Ip, "Address advertised to WAN peers (default: advertise_addr)."),
    f("advertise_addr_wan_ipv4", Kind::Ip, "IPv4 address advertised as tagged address wan_ipv4."),
    f("advertise_addr_wan_ipv6", Kind::Ip, "IPv6 address advertised as tagged address wan_ipv6."),
    f("advertise_reconnect_timeout", Kind::Duration, "Reconnect timeout this agent asks others to use for it."),
    f("alt_domain", Kind::Str, "A second DNS domain answered like domain."),
    ign("audit", Kind::Any, ENTERPRISE),
    ign("auto_config", Kind::Any, "auto-config is not supported; the setting is ignored"),
    ign("auto_encrypt", Kind::Any, NO_TLS),
    ign("auto_reload_config", Kind::Bool, "watching config files is not supported yet; reload with SIGHUP or `tribune reload`"),
    f("autopilot", Kind::Object(AUTOPILOT), "Automatic server management (dead-server cleanup)."),
    f("bind_addr", Kind::Ip, "Address gossip and server RPC bind to (0.0.0.0)."),
    f("bootstrap", Kind::Bool, "Let this server elect itself without peers."),
    f("bootstrap_expect", COUNT, "Servers to wait for before bootstrapping Raft."),
    f("ca_file", Kind::Path, "Legacy TLS CA file."),
    f("ca_path", Kind::Path, "Legacy TLS CA directory."),
    f("cache", Kind::Any, "Agent cache tuning."),
    f("cert_file", Kind::Path, "Legacy TLS certificate file."),
    f("check", Kind::Checks, "One standalone check definition (compat §7.3)."),
    f("check_output_max_size", POSITIVE, "Bytes of check output kept (4096)."),
    f("check_update_interval", Kind::Duration, "How often unchanged check output is synced (5m)."),
    f("checks", Kind::Checks, "Standalone check definitions (compat §7.3)."),
    f("client_addr", Kind::IpList, "Space-separated addresses HTTP and DNS bind to (127.0.0.1)."),
    ign("cloud", Kind::Any, "HCP is not supported; the setting is ignored"),
    ign("config_entries", Kind::Any, NO_MESH),
    ign("connect", Kind::Any, NO_MESH),
    f("data_dir", Kind::Path, "Directory for Raft, gossip keyrings and local state; required unless -dev."),
    f("datacenter", Kind::Str, "Datacenter name, lower-cased (dc1)."),
    f("default_query_time", Kind::Duration, "Blocking-query wait when ?wait is absent (300s)."),
    f("disable_anonymous_signature", Kind::Bool, "No effect: Tribune never phones home."),
    f("disable_coordinates", Kind::Bool, "Do not compute network coordinates."),
    f("disable_host_node_id", Kind::Bool, "Do not derive node_id from the host (true)."),
    f("disable_http_unprintable_char_filter", Kind::Bool, "Accept unprintable characters in HTTP paths."),
    f("disable_keyring_file", Kind::Bool, "Keep gossip keys in memory only."),
    f("disable_remote_exec", Kind::Bool, "Refuse `exec` jobs (true)."),
    f("disable_update_check", Kind::Bool, "No effect: Tribune never phones home."),
    f("discard_check_output", Kind::Bool, "Store no check output."),
    f("discovery_max_stale", Kind::Duration, "Serve catalog/health reads stale up to this age."),
    f("dns_config", Kind::Object(DNS_CONFIG), "DNS behaviour (compat §11.3)."),
    f("domain", Kind::Str, "DNS domain (consul.)."),
    dep("enable_acl_replication", Kind::Bool, "acl.enable_token_replication"),
    ign("enable_agent_tls_for_checks", Kind::Bool, NO_TLS),
    f("enable_central_service_config", Kind::Bool, "Apply central service defaults."),
    f("enable_debug", Kind::Bool, "Enable debug endpoints."),
    f("enable_local_script_checks", Kind::Bool, "Allow script checks defined in config files."),
    f("enable_script_checks", Kind::Bool, "Allow script checks from files and the HTTP API (dangerous)."),
    f("enable_syslog", Kind::Bool, "Also log to the local syslog daemon."),
    f("encrypt", Kind::Encrypt, "Gossip encryption key: base64 of 16, 24 or 32 bytes."),
    f("encrypt_verify_incoming", Kind::Bool, "Refuse unencrypted gossip (true)."),
    f("encrypt_verify_outgoing", Kind::Bool, "Send encrypted gossip (true)."),
    f("experiments", Kind::StrList, "Consul experiment flags; none apply to Tribune."),
    f("gossip_lan", Kind::Object(GOSSIP), "LAN gossip failure-detection tuning."),
    f("gossip_wan", Kind::Object(GOSSIP), "WAN gossip failure-detection tuning."),
    dep("http_api_response_headers", Kind::StrMap, "http_config.response_headers"),
    f("http_config", Kind::Object(HTTP_CONFIG), "HTTP API behaviour."),
    f("key_file", Kind::Path, "Legacy TLS key file."),
    f("leave_on_terminate", Kind::Bool, "Leave gracefully on SIGTERM (default: clients)."),
    ign("license_path", Kind::Path, ENTERPRISE),
    f("limits", Kind::Object(LIMITS), "Connection, rate and size limits."),
    f("locality", Kind::Any, "Region and zone of this node (stored only)."),
    f("log_file", Kind::Path, "Also log to this file."),
    f("log_json", Kind::Bool, "Log JSON lines."),
    f("log_level", Kind::LogLevel, "trace, debug, info, warn or err/error (info)."),
    f("log_rotate_bytes", COUNT, "Rotate the log file at this size (0: no limit)."),
    f("log_rotate_compress", Kind::Bool, "Tribune: gzip rotated log files (false)."),
    f("log_rotate_duration", Kind::Duration, "Rotate the log file this often (24h)."),
    f("log_rotate_max_files", Kind::Int { min: -1, max: i64::MAX }, "Rotated files kept (0: all, -1: none)."),
    f("log_stdout", Kind::Bool, "Tribune: also log to the console (true); false avoids duplicates with syslog under systemd."),
    f("max_query_time", Kind::Duration, "Longest blocking-query wait (600s)."),
    f("node_id", Kind::Uuid, "This node's UUID (generated and persisted when absent)."),
    f("node_meta", Kind::NodeMeta, "Node metadata (at most 64 pairs)."),
    f("node_name", Kind::Str, "Node name, unique in the datacenter (the hostname)."),
    ign("non_voting_server", Kind::Bool, ENTERPRISE),
    ign("partition", Kind::Str, ENTERPRISE),
    ign("peering", Kind::Any, "cluster peering is not supported; the setting is ignored"),
    f("performance", Kind::Object(PERFORMANCE), "Raft and RPC timing."),
    f("pid_file", Kind::Path, "Write the agent's PID here."),
    f("plugins", Kind::Plugins, "Tribune: WASM plugins to load (name, path, kind, config, grants, limits, events)."),
    f("ports", Kind::Object(PORTS), "Listener ports; -1 disables."),
    f("primary_datacenter", Kind::Str, "The ACL authority datacenter (= datacenter)."),
    ign("primary_gateways", Kind::StrList, NO_MESH),
    ign("primary_gateways_interval", Kind::Duration, NO_MESH),
    ign("protocol", Kind::Int { min: 0, max: 5 }, "deprecated and without effect"),
    f("raft_boltdb", Kind::Any, "Consul's BoltDB tuning; Tribune's log store ignores it."),
    f("raft_logstore", Kind::Any, "Consul's log store tuning; Tribune's log store ignores it."),
    f("raft_protocol", Kind::Int { min: 1, max: 3 }, "Raft protocol version (3)."),
    f("raft_snapshot_interval", Kind::Duration, "How often Raft checks whether to snapshot."),
    f("raft_snapshot_threshold", COUNT, "Log entries between snapshots."),
    f("raft_trailing_logs", COUNT, "Log entries kept after a snapshot."),
    ign("read_replica", Kind::Bool, ENTERPRISE),
    f("reconnect_timeout", Kind::Duration, "When a failed LAN member is reaped (72h)."),
    f("reconnect_timeout_wan", Kind::Duration, "When a failed WAN member is reaped (72h)."),
    f("recursors", Kind::StrList, "Upstream DNS servers."),
    f("rejoin_after_leave", Kind::Bool, "Rejoin on start even after leaving."),
    ign("reporting", Kind::Any, ENTERPRISE),
    f("retry_interval", Kind::Duration, "Wait between LAN join attempts (30s)."),
    f("retry_interval_wan", Kind::Duration, "Wait between WAN join attempts (30s)."),
    f("retry_join", Kind::StrList, "LAN addresses to join, retried until success."),
    f("retry_join_wan", Kind::StrList, "WAN addresses to join (servers)."),
    f("retry_max", COUNT, "LAN join attempts (0: forever)."),
    f("retry_max_wan", COUNT, "WAN join attempts (0: forever)."),
    f("rpc", Kind::Any, "RPC tuning (enable_streaming)."),
    ign("segment", Kind::Str, ENTERPRISE),
    ign("segments", Kind::Any, ENTERPRISE),
    f("serf_lan", Kind::Ip, "Bind address of LAN gossip (= bind_addr)."),
    f("serf_lan_allowed_cidrs", Kind::CidrList, "Networks allowed to send LAN gossip."),
    f("serf_wan", Kind::Ip, "Bind address of WAN gossip (= bind_addr)."),
    f("serf_wan_allowed_cidrs", Kind::CidrList, "Networks allowed to send WAN gossip."),
    f("server", Kind::Bool, "Run as a server."),
    ign("server_name", Kind::Str, NO_TLS),
    f("service", Kind::Services, "One service definition (compat §14.2)."),
    f("services", Kind::Services, "Service definitions (compat §14.2)."),
    f("session_ttl_min", Kind::Duration, "Smallest session TTL (10s)."),
    f("skip_leave_on_interrupt", Kind::Bool, "Do not leave on SIGINT (default: servers)."),
    dep("start_join", Kind::StrList, "retry_join"),
    dep("start_join_wan", Kind::StrList, "retry_join_wan"),
    f("syslog_address", Kind::Str, "Tribune: unix:///dev/log (default: the local socket), udp://host:port or tcp://host:port."),
    f("syslog_facility", Kind::Facility, "Syslog facility (LOCAL0)."),
    f("syslog_format", Kind::OneOf(&["auto", "rfc5424", "rfc3164"]), "Tribune: syslog wire format (auto: 3164 on a local socket, 5424 remote)."),
    f("syslog_tag", Kind::Str, "Tribune: syslog tag / APP-NAME (tribune)."),
    f("syslog_udp_rate", U32, "Tribune: most syslog messages per second over UDP (50000; 0: unpaced)."),
    f("tagged_addresses", Kind::StrMap, "Extra tagged addresses of the node."),
    f("telemetry", Kind::Object(TELEMETRY), "Metrics settings."),
    ign("tls", Kind::Object(TLS), NO_TLS),
    ign("tls_cipher_suites", Kind::Str, NO_TLS),
    ign("tls_min_version", Kind::Str, NO_TLS),
    ign("tls_prefer_server_cipher_suites", Kind::Bool, NO_TLS),
    f("translate_wan_addrs", Kind::Bool, "Answer remote-DC queries with WAN addresses."),
    dep("ui", Kind::Bool, "ui_config.enabled"),
    f("ui_config", Kind::Object(UI_CONFIG), "Web UI settings."),
    dep("ui_content_path", Kind::Str, "ui_config.content_path"),
    dep("ui_dir", Kind::Path, "ui_config.dir"),
    ign("unix_sockets", Kind::Any, "unix sockets are not supported yet; the setting is ignored"),
    f("use_streaming_backend", Kind::Bool, "Consul's streaming backend; no effect."),
    ign("verify_incoming", Kind::Bool, NO_TLS),
    ign("verify_incoming_https", Kind::Bool, NO_TLS),
    ign("verify_incoming_rpc", Kind::Bool, NO_TLS),
    ign("verify_outgoing", Kind::Bool, NO_TLS),
    ign("verify_server_hostname", Kind::Bool, NO_TLS),
    ign("watches", Kind::Any, "watches are not supported yet; the setting is ignored"),
    f("xds", Kind::Any, "xDS tuning (mesh)."),
];

const DOWN_POLICIES: &[&str] = &["allow", "deny", "extend-cache", "async-cache"];

#[rustfmt::skip]
const ACL: &[Field] = &[
    f("default_policy", Kind::OneOf(&["allow", "deny"]), "Decision when no rule matches (allow)."),
    f("disabled_ttl", Kind::Duration, "Legacy: recheck interval when ACLs are disabled on servers."),
    f("down_policy", Kind::OneOf(DOWN_POLICIES), "Behaviour when servers are unreachable (extend-cache)."),
    f("enable_key_list_policy", Kind::Bool, "Enable the list level for key rules."),
    f("enable_token_persistence", Kind::Bool, "Persist tokens set through the API."),
    f("enable_token_replication", Kind::Bool, "Replicate tokens to secondary datacenters."),
    f("enabled", Kind::Bool, "Turn the ACL system on."),
    f("msp_disable_bootstrap", Kind::Bool, "Refuse `acl bootstrap`."),
    f("policy_ttl", Kind::Duration, "Policy cache TTL (30s)."),
    f("role_ttl", Kind::Duration, "Role cache TTL (30s)."),
    f("token_ttl", Kind::Duration, "Token cache TTL (30s)."),
    f("tokens", Kind::Object(ACL_TOKENS), "Tokens given in configuration."),
];

#[rustfmt::skip]
const ACL_TOKENS: &[Field] = &[
    f("agent", Kind::Secret, "The agent's own token."),
    dep("agent_master", Kind::Secret, "acl.tokens.agent_recovery"),
    f("agent_recovery", Kind::Secret, "Local-only token for /v1/agent/* when servers are down."),
    f("config_file_service_registration", Kind::Secret, "Token for services and checks from files."),
    f("default", Kind::Secret, "Token for requests that carry none."),
    f("dns", Kind::Secret, "Token for DNS lookups."),
    f("initial_management", Kind::Secret, "Bootstrap global-management token."),
    ign("managed_service_provider", Kind::Any, ENTERPRISE),
    dep("master", Kind::Secret, "acl.tokens.initial_management"),
    f("replication", Kind::Secret, "Token for ACL replication."),
];

#[rustfmt::skip]
const ADDRESSES: &[Field] = &[
    f("dns", Kind::IpList, "DNS bind addresses."),
    f("grpc", Kind::IpList, "gRPC bind addresses."),
    f("grpc_tls", Kind::IpList, "gRPC TLS bind addresses."),
    f("http", Kind::IpList, "HTTP bind addresses."),
    f("https", Kind::IpList, "HTTPS bind addresses."),
];

#[rustfmt::skip]
const PORTS: &[Field] = &[
    f("dns", PORT, "DNS (8600)."),
    f("expose_max_port", PORT, "Mesh expose range end."),
    f("expose_min_port", PORT, "Mesh expose range start."),
    f("grpc", PORT, "gRPC (-1; 8502 in -dev). The seed sets 8400."),
    f("grpc_tls", PORT, "gRPC with TLS (-1)."),
    f("http", PORT, "HTTP API (8500)."),
    f("https", PORT, "HTTPS API (-1)."),
    f("serf_lan", PORT, "LAN gossip (8301)."),
    f("serf_wan", PORT, "WAN gossip (8302)."),
    f("server", PORT, "Server RPC and Raft (8300)."),
    f("sidecar_max_port", PORT, "Mesh sidecar range end."),
    f("sidecar_min_port", PORT, "Mesh sidecar range start."),
];

#[rustfmt::skip]
const DNS_CONFIG: &[Field] = &[
    f("a_record_limit", U32, "Most A/AAAA records per answer (0: no limit)."),
    f("allow_stale", Kind::Bool, "Answer from any server (true)."),
    f("cache_max_age", Kind::Duration, "Agent cache age for DNS answers."),
    f("disable_compression", Kind::Bool, "No name compression."),
    f("enable_additional_node_meta_txt", Kind::Bool, "Node meta as TXT records (true)."),
    f("enable_truncate", Kind::Bool, "Set TC when a UDP answer is cut."),
    f("max_stale", Kind::Duration, "Staleness limit of stale answers."),
    f("node_ttl", Kind::Duration, "TTL of node records."),
    f("only_passing", Kind::Bool, "Leave out warning instances."),
    ign("prefer_namespace", Kind::Bool, ENTERPRISE),
    f("recursor_strategy", Kind::OneOf(&["sequential", "random"]), "Order recursors are tried in."),
    f("recursor_timeout", Kind::Duration, "Timeout per recursor query (2s)."),
    f("service_ttl", Kind::DurationMap, "TTL per service name, * as wildcard."),
    f("soa", Kind::Object(SOA), "SOA record timers."),
    f("udp_answer_limit", U32, "Most records in a UDP answer (3)."),
    f("use_cache", Kind::Bool, "Answer from the agent cache."),
];

#[rustfmt::skip]
const SOA: &[Field] = &[
    f("expire", U32, "SOA expire (86400)."),
    f("min_ttl", U32, "SOA minimum TTL (0)."),
    f("refresh", U32, "SOA refresh (3600)."),
    f("retry", U32, "SOA retry (600)."),
];

#[rustfmt::skip]
const LIMITS: &[Field] = &[
    f("http_max_conns_per_client", U32, "Concurrent HTTP connections per source IP (200)."),
    f("https_handshake_timeout", Kind::Duration, "TLS handshake timeout (5s)."),
    f("kv_max_value_size", POSITIVE, "Largest KV value in bytes (524288)."),
    f("request_limits", Kind::Object(REQUEST_LIMITS), "Global request rate limits."),
    f("rpc_client_timeout", Kind::Duration, "RPC client timeout (60s)."),
    f("rpc_handshake_timeout", Kind::Duration, "RPC handshake timeout (5s)."),
    f("rpc_max_burst", COUNT, "RPC rate-limit burst (1000)."),
    f("rpc_max_conns_per_client", COUNT, "Concurrent RPC connections per source IP (100)."),
    f("rpc_rate", Kind::Float, "RPC requests per second (unlimited)."),
    f("txn_max_req_len", POSITIVE, "Largest /v1/txn body in bytes (524288)."),
];

#[rustfmt::skip]
const REQUEST_LIMITS: &[Field] = &[
    f("mode", Kind::OneOf(&["disabled", "permissive", "enforcing"]), "Rate-limit mode."),
    f("read_rate", Kind::Float, "Reads per second."),
    f("write_rate", Kind::Float, "Writes per second."),
];

#[rustfmt::skip]
const TELEMETRY: &[Field] = &[
    f("circonus_api_app", Kind::Str, "Circonus app name."),
    f("circonus_api_token", Kind::Secret, "Circonus API token."),
    f("circonus_api_url", Kind::Str, "Circonus API URL."),
    f("circonus_broker_id", Kind::Str, "Circonus broker."),
    f("circonus_broker_select_tag", Kind::Str, "Circonus broker tag."),
    f("circonus_check_display_name", Kind::Str, "Circonus check name."),
    f("circonus_check_force_metric_activation", Kind::Str, "Circonus metric activation."),
    f("circonus_check_id", Kind::Str, "Circonus check ID."),
    f("circonus_check_instance_id", Kind::Str, "Circonus instance ID."),
    f("circonus_check_search_tag", Kind::Str, "Circonus search tag."),
    f("circonus_check_tags", Kind::Str, "Circonus check tags."),
    f("circonus_submission_interval", Kind::Str, "Circonus submission interval."),
    f("circonus_submission_url", Kind::Str, "Circonus submission URL."),
    f("disable_compat_1.9", Kind::Bool, "Drop pre-1.9 metric names."),
    f("disable_hostname", Kind::Bool, "Do not prefix gauges with the hostname."),
    f("disable_per_tenancy_usage_metrics", Kind::Bool, "Enterprise usage metrics."),
    f("dogstatsd_addr", Kind::Str, "DogStatsD address."),
    f("dogstatsd_tags", Kind::StrList, "DogStatsD tags."),
    f("enable_host_metrics", Kind::Bool, "Host CPU/memory metrics."),
    f("filter_default", Kind::Bool, "Allow metrics not matched by prefix_filter (true)."),
    f("metrics_prefix", Kind::Str, "Metric name prefix (consul)."),
    f("prefix_filter", Kind::StrList, "+prefix / -prefix metric filters."),
    f("prometheus_retention_time", Kind::Duration, "Enables /v1/agent/metrics?format=prometheus."),
    f("retry_failed_connection", Kind::Bool, "Retry failed sink connections (true)."),
    f("statsd_address", Kind::Str, "StatsD address."),
    f("statsite_address", Kind::Str, "Statsite address."),
];

#[rustfmt::skip]
const PERFORMANCE: &[Field] = &[
    f("grpc_keepalive_interval", Kind::Duration, "gRPC keepalive interval."),
    f("grpc_keepalive_timeout", Kind::Duration, "gRPC keepalive timeout."),
    f("leave_drain_time", Kind::Duration, "Wait after leaving before shutdown (5s)."),
    f("raft_multiplier", Kind::Int { min: 1, max: 10 }, "Scales Raft timings, 1-10 (5)."),
    f("rpc_hold_timeout", Kind::Duration, "How long RPCs wait for a leader (7s)."),
];

#[rustfmt::skip]
const AUTOPILOT: &[Field] = &[
    f("cleanup_dead_servers", Kind::Bool, "Remove failed servers (true)."),
    ign("disable_upgrade_migration", Kind::Bool, ENTERPRISE),
    f("last_contact_threshold", Kind::Duration, "Leader contact age before a server is unhealthy (200ms)."),
    f("max_trailing_logs", COUNT, "Log lag before a server is unhealthy (250)."),
    f("min_quorum", COUNT, "Servers never cleaned up below this count."),
    ign("redundancy_zone_tag", Kind::Str, ENTERPRISE),
    f("server_stabilization_time", Kind::Duration, "Healthy time before a server votes (10s)."),
    ign("upgrade_version_tag", Kind::Str, ENTERPRISE),
];

#[rustfmt::skip]
const GOSSIP: &[Field] = &[
    f("gossip_interval", Kind::Duration, "Time between gossip rounds."),
    f("gossip_nodes", POSITIVE, "Members per gossip round."),
    f("probe_interval", Kind::Duration, "Time between failure probes."),
    f("probe_timeout", Kind::Duration, "Probe ack timeout."),
    f("retransmit_mult", POSITIVE, "Broadcast retransmit multiplier."),
    f("suspicion_mult", POSITIVE, "Suspicion timeout multiplier."),
];

#[rustfmt::skip]
const HTTP_CONFIG: &[Field] = &[
    f("allow_write_http_from", Kind::CidrList, "Networks allowed to write."),
    f("block_endpoints", Kind::StrList, "Path prefixes answered with 403."),
    f("max_header_bytes", COUNT, "Largest request header block."),
    f("response_headers", Kind::StrMap, "Headers added to every response."),
    f("use_cache", Kind::Bool, "Serve ?cached reads from the agent cache."),
];

#[rustfmt::skip]
const UI_CONFIG: &[Field] = &[
    f("content_path", Kind::Str, "URL path the UI is served under (/ui/)."),
    f("dashboard_url_templates", Kind::StrMap, "Links to external dashboards."),
    f("dir", Kind::Path, "Serve UI assets from this directory."),
    f("enabled", Kind::Bool, "Serve the web UI."),
    f("metrics_provider", Kind::Str, "UI metrics provider."),
    f("metrics_provider_files", Kind::StrList, "UI metrics provider scripts."),
    f("metrics_provider_options_json", Kind::Str, "UI metrics provider options."),
    f("metrics_proxy", Kind::Any, "UI metrics proxy."),
];

#[rustfmt::skip]
const TLS: &[Field] = &[
    f("defaults", Kind::Object(TLS_DEFAULTS), "Defaults for every listener."),
    f("grpc", Kind::Object(TLS_GRPC), "gRPC listener."),
    f("https", Kind::Object(TLS_DEFAULTS), "HTTPS listener."),
    f("internal_rpc", Kind::Object(TLS_INTERNAL_RPC), "Server RPC."),
];

#[rustfmt::skip]
const TLS_DEFAULTS: &[Field] = &[
    f("ca_file", Kind::Path, "CA bundle."),
    f("ca_path", Kind::Path, "CA directory."),
    f("cert_file", Kind::Path, "Certificate."),
    f("key_file", Kind::Path, "Private key."),
    f("tls_cipher_suites", Kind::Str, "Cipher suites."),
    f("tls_min_version", Kind::Str, "Minimum TLS version."),
    f("verify_incoming", Kind::Bool, "Require client certificates."),
    f("verify_outgoing", Kind::Bool, "Present certificates outward."),
];

#[rustfmt::skip]
const TLS_GRPC: &[Field] = &[
    f("ca_file", Kind::Path, "CA bundle."),
    f("ca_path", Kind::Path, "CA directory."),
    f("cert_file", Kind::Path, "Certificate."),
    f("key_file", Kind::Path, "Private key."),
    f("tls_cipher_suites", Kind::Str, "Cipher suites."),
    f("tls_min_version", Kind::Str, "Minimum TLS version."),
    f("use_auto_cert", Kind::Bool, "Use auto-encrypt certificates."),
    f("verify_incoming", Kind::Bool, "Require client certificates."),
    f("verify_outgoing", Kind::Bool, "Present certificates outward."),
];

#[rustfmt::skip]
const TLS_INTERNAL_RPC: &[Field] = &[
    f("ca_file", Kind::Path, "CA bundle."),
    f("ca_path", Kind::Path, "CA directory."),
    f("cert_file", Kind::Path, "Certificate."),
    f("key_file", Kind::Path, "Private key."),
    f("tls_cipher_suites", Kind::Str, "Cipher suites."),
    f("tls_min_version", Kind::Str, "Minimum TLS version."),
    f("verify_incoming", Kind::Bool, "Require client certificates."),
    f("verify_outgoing", Kind::Bool, "Present certificates outward."),
    f("verify_server_hostname", Kind::Bool, "Check server hostnames."),
];

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "err", "error"];

const FACILITIES: &[&str] = &[
    "KERN", "USER", "MAIL", "DAEMON", "AUTH", "SYSLOG", "LPR", "NEWS", "UUCP", "CRON", "AUTHPRIV",
    "FTP", "LOCAL0", "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4", "LOCAL5", "LOCAL6", "LOCAL7",
];

/// A definition together with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Located<T> {
    pub file: Option<String>,
    pub path: String,
    pub item: T,
}

/// What walking one source produced.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    /// The source's values, checked, without service/check/plugin definitions.
    pub config: Map<String, Value>,
    pub services: Vec<Located<ServiceDefinition>>,
    pub checks: Vec<Located<CheckDefinition>>,
    /// Key paths of checks that run scripts (`args`), for the enable_*_script_checks rule.
    pub script_checks: Vec<Located<()>>,
    pub plugins: Vec<Located<PluginConfig>>,
}

/// The state of one walk: the source's name and everything found so far.
pub(crate) struct Walk<'a> {
    pub file: Option<&'a str>,
    /// Walking the command-line flags: errors name the flag, and deprecation notices are
    /// the flags module's.
    pub flags: bool,
    pub errors: &'a mut Vec<ConfigError>,
    pub warnings: &'a mut Vec<String>,
    pub out: Walked,
}

/// Checks one parsed source against [`TOP`]. Problems go to `errors`, advice to `warnings`.
pub(crate) fn walk_source(
    file: Option<&str>,
    root: &Map<String, Value>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Walked {
    walk(file, false, root, errors, warnings)
}

/// Checks the flags' values (already in config-key form) against [`TOP`].
pub(crate) fn walk_flags(
    values: &Map<String, Value>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Walked {
    walk(None, true, values, errors, warnings)
}

fn walk(
    file: Option<&str>,
    flags: bool,
    root: &Map<String, Value>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Walked {
    let mut walk = Walk {
        file,
        flags,
        errors,
        warnings,
        out: Walked::default(),
    };
    let config = walk.object(root, TOP, "");
    let mut out = walk.out;
    out.config = config;
    out
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

impl Walk<'_> {
    pub(crate) fn error(&mut self, path: &str, value: Option<String>, message: impl Into<String>) {
        let key = if self.flags {
            super::flags::flag_for_key(path).unwrap_or_else(|| path.to_string())
        } else {
            path.to_string()
        };
        self.errors
            .push(ConfigError::new(self.file, key, value, message));
    }

    /// An error about `v`, shown unless `secret`.
    pub(crate) fn bad(&mut self, path: &str, v: &Value, secret: bool, message: impl Into<String>) {
        let shown = if secret {
            HIDDEN.to_string()
        } else {
            render_value(v)
        };
        self.error(path, Some(shown), message);
    }

    pub(crate) fn warn(&mut self, message: impl AsRef<str>) {
        let message = message.as_ref();
        match self.file {
            Some(file) => self.warnings.push(format!("{file}: {message}")),
            None => self.warnings.push(message.to_string()),
        }
    }

    /// `invalid config key <path>`, with a suggestion when a known key is close. The value
    /// is never shown: a misspelt key may well hold a token.
    pub(crate) fn unknown(&mut self, path: &str, key: &str, known: &[&str]) {
        let mut message = format!("invalid config key {path}");
        if let Some(best) = closest(key, known) {
            message.push_str(&format!(" (did you mean \"{best}\"?)"));
        }
        self.error(path, None, message);
    }

    fn object(
        &mut self,
        map: &Map<String, Value>,
        fields: &[Field],
        path: &str,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in map {
            let p = join(path, key);
            let Some(field) = fields.iter().find(|f| f.name == key) else {
                let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
                self.unknown(&p, key, &names);
                continue;
            };
            // Flags carry their own deprecation notices (see `flags`).
            if !self.flags {
                match field.note {
                    Note::None => {}
                    Note::Deprecated(replacement) => {
                        self.warn(format!("'{p}' is deprecated; use '{replacement}' instead"))
                    }
                    Note::Ignored(why) => {
                        if !is_inert(value) {
                            self.warn(format!("'{p}': {why}"));
                        }
                    }
                }
            }
            // JSON null means "not set", as it does for Consul's pointer fields.
            if value.is_null() {
                continue;
            }
            if let Some(v) = self.value(value, &field.kind, &p) {
                out.insert(key.clone(), v);
            }
        }
        out
    }

    /// Checks one value; returns what to keep (None on error or when taken out).
    fn value(&mut self, v: &Value, kind: &Kind, p: &str) -> Option<Value> {
        match kind {
            Kind::Bool => self.expect(v, p, false, Value::is_boolean, "expected a boolean"),
            Kind::Str | Kind::Path => {
                self.expect(v, p, false, Value::is_string, "expected a string")
            }
            Kind::Secret => self.expect(v, p, true, Value::is_string, "expected a string"),
            Kind::Float => self.expect(v, p, false, Value::is_number, "expected a number"),
            Kind::Int { min, max } => self.int(v, p, *min, *max),
            Kind::Duration => {
                let s = self.string(v, p, false, "expected a duration string such as \"10s\"")?;
                match parse_go_duration(s) {
                    Ok(_) => Some(v.clone()),
                    Err(_) => {
                        self.bad(
                            p,
                            v,
                            false,
                            "expected a duration such as \"10s\", \"1m30s\" or \"500ms\"",
                        );
                        None
                    }
                }
            }
            Kind::Ip => {
                let s = self.string(v, p, false, "expected an IP address")?;
                match parse_ip(s) {
                    Ok(_) => Some(v.clone()),
                    Err(m) => {
                        self.bad(p, v, false, m);
                        None
                    }
                }
            }
            Kind::IpList => {
                let s = self.string(v, p, false, "expected space-separated IP addresses")?;
                match parse_ip_list(s) {
                    Ok(_) => Some(v.clone()),
                    Err(m) => {
                        self.bad(p, v, false, m);
                        None
                    }
                }
            }
            Kind::CidrList => {
                let items = self.string_list(v, p)?;
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    if !is_cidr(item) {
                        self.bad(
                            &index(p, i),
                            &Value::String(item.clone()),
                            false,
                            "expected a CIDR block such as \"10.0.0.0/8\"",
                        );
                        ok = false;
                    }
                }
                ok.then(|| v.clone())
            }
            Kind::Uuid => {
                let s = self.string(v, p, false, "expected a UUID")?;
                if is_uuid(s) {
                    Some(Value::String(s.to_lowercase()))
                } else {
                    self.bad(
                        p,
                        v,
                        false,
                        "expected a UUID such as \"adf4238a-882b-9ddc-4a9d-5b6758e4159e\"",
                    );
                    None
                }
            }
            Kind::LogLevel => {
                let s = self.string(v, p, false, "expected a log level")?;
                if LOG_LEVELS.contains(&s.to_ascii_lowercase().as_str()) {
                    Some(v.clone())
                } else {
                    self.bad(
                        p,
                        v,
                        false,
                        "expected one of trace, debug, info, warn, err, error",
                    );
                    None
                }
            }
            Kind::Encrypt => {
                let s = self.string(v, p, true, "expected a base64 string")?;
                match check_encrypt_key(s) {
                    Ok(()) => Some(v.clone()),
                    Err(m) => {
                        self.bad(p, v, true, m);
                        None
                    }
                }
            }
            Kind::OneOf(options) => {
                let s = self.string(v, p, false, "expected a string")?;
                if options.contains(&s) {
                    Some(v.clone())
                } else {
                    self.bad(
                        p,
                        v,
                        false,
                        format!("expected one of {}", options.join(", ")),
                    );
                    None
                }
            }
            Kind::Facility => {
                let s = self.string(v, p, false, "expected a syslog facility")?;
                if FACILITIES.contains(&s.to_ascii_uppercase().as_str()) {
                    Some(v.clone())
                } else {
                    self.bad(
                        p,
                        v,
                        false,
                        "expected a syslog facility such as LOCAL0-LOCAL7, USER or DAEMON",
                    );
                    None
                }
            }
            Kind::StrList => self.string_list(v, p).map(|_| v.clone()),
            Kind::StrMap => self.string_map(v, p).map(|_| v.clone()),
            Kind::NodeMeta => {
                let map = self.string_map(v, p)?;
                let mut ok = true;
                if map.len() > 64 {
                    self.error(
                        p,
                        None,
                        "node metadata cannot contain more than 64 key/value pairs",
                    );
                    ok = false;
                }
                for (k, val) in map {
                    if let Err(m) = check_meta_pair(k, val) {
                        self.error(
                            &join(p, k),
                            Some(render_value(&Value::String(val.to_string()))),
                            m,
                        );
                        ok = false;
                    }
                }
                ok.then(|| v.clone())
            }
            Kind::DurationMap => {
                let map = self.string_map(v, p)?;
                let mut ok = true;
                for (k, val) in map {
                    if parse_go_duration(val).is_err() {
                        self.bad(
                            &join(p, k),
                            &Value::String(val.to_string()),
                            false,
                            "expected a duration such as \"10s\"",
                        );
                        ok = false;
                    }
                }
                ok.then(|| v.clone())
            }
            Kind::Object(fields) => match v {
                Value::Object(map) => Some(Value::Object(self.object(map, fields, p))),
                // Repeated HCL blocks (`ports { } ports { }`) arrive as a list: merge them.
                Value::Array(items) if items.iter().all(Value::is_object) => {
                    let mut merged = Map::new();
                    for item in items.iter().filter_map(Value::as_object) {
                        let walked = self.object(item, fields, p);
                        super::merge::merge_plain(&mut merged, walked);
                    }
                    Some(Value::Object(merged))
                }
                other => {
                    self.type_error(p, other, false, "expected an object");
                    None
                }
            },
            Kind::Any => Some(v.clone()),
            Kind::Services => {
                self.services(v, p);
                None
            }
            Kind::Checks => {
                self.checks(v, p);
                None
            }
            Kind::Plugins => {
                self.plugins(v, p);
                None
            }
        }
    }

    fn expect(
        &mut self,
        v: &Value,
        p: &str,
        secret: bool,
        ok: fn(&Value) -> bool,
        message: &str,
    ) -> Option<Value> {
        if ok(v) {
            Some(v.clone())
        } else {
            self.type_error(p, v, secret, message);
            None
        }
    }

    pub(crate) fn type_error(&mut self, p: &str, v: &Value, secret: bool, message: &str) {
        self.bad(p, v, secret, format!("{message}, got {}", type_name(v)));
    }

    fn string<'v>(
        &mut self,
        v: &'v Value,
        p: &str,
        secret: bool,
        message: &str,
    ) -> Option<&'v str> {
        match v.as_str() {
            Some(s) => Some(s),
            None => {
                self.type_error(p, v, secret, message);
                None
            }
        }
    }

    fn int(&mut self, v: &Value, p: &str, min: i64, max: i64) -> Option<Value> {
        let n = match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => n,
            other => {
                self.type_error(p, other, false, "expected an integer");
                return None;
            }
        };
        match n.as_i64() {
            Some(i) if (min..=max).contains(&i) => Some(v.clone()),
            _ => {
                let range = if max == i64::MAX {
                    format!("must be at least {min}")
                } else {
                    format!("must be between {min} and {max}")
                };
                self.bad(p, v, false, format!("out of range: {range}"));
                None
            }
        }
    }

    pub(crate) fn string_list(&mut self, v: &Value, p: &str) -> Option<Vec<String>> {
        let Some(items) = v.as_array() else {
            self.type_error(p, v, false, "expected a list of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => {
                    self.type_error(&index(p, i), item, false, "expected a string");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn string_map<'v>(&mut self, v: &'v Value, p: &str) -> Option<Vec<(&'v str, &'v str)>> {
        let Some(map) = v.as_object() else {
            self.type_error(p, v, false, "expected an object of strings");
            return None;
        };
        let mut out = Vec::with_capacity(map.len());
        let mut ok = true;
        for (k, item) in map {
            match item.as_str() {
                Some(s) => out.push((k.as_str(), s)),
                None => {
                    self.type_error(&join(p, k), item, false, "expected a string");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn plugins(&mut self, v: &Value, p: &str) {
        let items: Vec<(String, &Value)> = match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, x)| (index(p, i), x))
                .collect(),
            // A single HCL `plugins { ... }` block.
            Value::Object(_) => vec![(p.to_string(), v)],
            other => {
                self.type_error(p, other, false, "expected a list of plugin objects");
                return;
            }
        };
        for (ip, item) in items {
            if let Some(plugin) = self.plugin(item, &ip) {
                self.out.plugins.push(Located {
                    file: self.file.map(str::to_string),
                    path: ip,
                    item: plugin,
                });
            }
        }
    }

    fn plugin(&mut self, v: &Value, p: &str) -> Option<PluginConfig> {
        const KEYS: &[&str] = &[
            "name", "path", "kind", "config", "grants", "limits", "events",
        ];
        let Some(map) = v.as_object() else {
            self.type_error(p, v, false, "expected a plugin object");
            return None;
        };
        let before = self.errors.len();
        for key in map.keys() {
            if !KEYS.contains(&key.as_str()) {
                self.unknown(&join(p, key), key, KEYS);
            }
        }
        let text = |walk: &mut Self, key: &str, required: bool| -> Option<String> {
            match map.get(key) {
                None | Some(Value::Null) => {
                    if required {
                        walk.error(&join(p, key), None, format!("plugin {key} is required"));
                    }
                    None
                }
                Some(Value::String(s)) if s.is_empty() && required => {
                    walk.error(&join(p, key), None, format!("plugin {key} cannot be empty"));
                    None
                }
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    walk.type_error(&join(p, key), other, false, "expected a string");
                    None
                }
            }
        };
        let name = text(self, "name", true);
        let path = text(self, "path", true);
        let kind = text(self, "kind", false);
        let object = |walk: &mut Self, key: &str| -> std::collections::BTreeMap<String, Value> {
            match map.get(key) {
                None | Some(Value::Null) => Default::default(),
                Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                Some(other) => {
                    walk.type_error(&join(p, key), other, false, "expected an object");
                    Default::default()
                }
            }
        };
        let grants = object(self, "grants");
        let limits = object(self, "limits");
        let events = match map.get("events") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(vec![s.clone()]),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
                items
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
            ),
            Some(other) => {
                self.type_error(
                    &join(p, "events"),
                    other,
                    false,
                    "expected a list of event kinds",
                );
                None
            }
        };
        if self.errors.len() != before {
            return None;
        }
        Some(PluginConfig {
            name: name?,
            path: path?.into(),
            kind,
            config: map.get("config").cloned().unwrap_or(Value::Null),
            grants,
            limits,
            events,
        })
    }
}

/// Whether a value of an ignored key changes nothing (false, empty), so no warning is due.
fn is_inert(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_inert),
        Value::Number(_) => false,
    }
}

/// Parses one IP address, refusing go-sockaddr templates with a clear message.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let s = s.trim();
    if s.contains("{{") {
        return Err("go-sockaddr templates are not supported yet; use a literal IP address".into());
    }
    // The example in the message covers the common slip of writing IPv6 as `[::1]`, which
    // Go's net.ParseIP refuses too.
    s.parse::<IpAddr>()
        .map_err(|_| "expected an IP address such as \"10.0.0.1\" or \"::1\"".to_string())
}

/// Parses a space-separated list of IP addresses (`client_addr`).
pub(crate) fn parse_ip_list(s: &str) -> Result<Vec<IpAddr>, String> {
    if s.contains("{{") {
        return Err("go-sockaddr templates are not supported yet; use literal IP addresses".into());
    }
    let mut out = Vec::new();
    for part in s.split_whitespace() {
        if part.starts_with("unix://") {
            return Err("unix sockets are not supported yet".into());
        }
        out.push(parse_ip(part)?);
    }
    if out.is_empty() {
        return Err("expected at least one IP address".into());
    }
    Ok(out)
}

fn is_cidr(s: &str) -> bool {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (s, None),
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match bits {
        None => true,
        Some(b) => b.parse::<u8>().is_ok_and(|b| b <= max),
    }
}

/// A canonical 36-character hyphenated UUID, as Consul's `uuid.ParseUUID` wants.
fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.as_bytes()[8] == b'-' && uuid::Uuid::try_parse(s).is_ok()
}

/// Validates a gossip key. The messages never contain the key: base64 errors are reduced to
/// an offset, as Go's decoder reports them.
pub(crate) fn check_encrypt_key(s: &str) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| {
            let reason = match e {
                base64::DecodeError::InvalidByte(offset, _)
                | base64::DecodeError::InvalidLastSymbol(offset, _) => {
                    format!("illegal base64 data at input byte {offset}")
                }
                base64::DecodeError::InvalidLength(len) => {
                    format!("illegal base64 data at input byte {len}")
                }
                base64::DecodeError::InvalidPadding => {
                    "illegal base64 data: bad padding".to_string()
                }
            };
            format!("encrypt has invalid key: {reason}")
        })?;
    match bytes.len() {
        16 | 24 | 32 => Ok(()),
        _ => Err(
            "Failed to configure keyring: Invalid key: key size must be 16, 24 or 32 bytes".into(),
        ),
    }
}

/// Consul's node and service metadata rules.
fn check_meta_pair(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("metadata key cannot be blank".into());
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(
            "metadata key contains invalid characters; use only A-Z, a-z, 0-9, _ and -".into(),
        );
    }
    if key.len() > 128 {
        return Err("metadata key is too long (limit: 128 characters)".into());
    }
    if key.starts_with("consul-") {
        return Err("metadata key prefix 'consul-' is reserved for internal use".into());
    }
    if value.len() > 512 {
        return Err("metadata value is too long (limit: 512 characters)".into());
    }
    Ok(())
}

/// The known key closest to a misspelt one, if it is close enough to be a typo.
pub(crate) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn walk(v: Value) -> (Walked, Vec<ConfigError>, Vec<String>) {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let map = v.as_object().cloned().unwrap();
        let w = walk_source(Some("t.json"), &map, &mut errors, &mut warnings);
        (w, errors, warnings)
    }

    #[test]
    fn table_is_sorted_and_unique() {
        fn check(fields: &[Field], path: &str) {
            for pair in fields.windows(2) {
                assert!(
                    pair[0].name < pair[1].name,
                    "{path}: {} before {}",
                    pair[0].name,
                    pair[1].name
                );
            }
            for field in fields {
                assert!(!field.doc.is_empty(), "{path}.{} has no doc", field.name);
                if let Kind::Object(inner) = field.kind {
                    check(inner, &join(path, field.name));
                }
            }
        }
        check(TOP, "");
    }

    #[test]
    fn deprecated_keys_name_existing_replacements() {
        fn exists(path: &str) -> bool {
            let mut fields = TOP;
            let mut parts = path.split('.').peekable();
            while let Some(part) = parts.next() {
                let Some(field) = fields.iter().find(|f| f.name == part) else {
                    return false;
                };
                if parts.peek().is_none() {
                    return true;
                }
                match field.kind {
                    Kind::Object(inner) => fields = inner,
                    _ => return false,
                }
            }
            false
        }
        fn check(fields: &[Field]) {
            for field in fields {
                if let Note::Deprecated(r) = field.note {
                    assert!(exists(r), "{} -> {r}", field.name);
                }
                if let Kind::Object(inner) = field.kind {
                    check(inner);
                }
            }
        }
        check(TOP);
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let (_, errors, _) =
            walk(json!({"acl": {"tokns": {"agent": "s3cr3t"}}, "datacentre": "x"}));
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "t.json: invalid config key acl.tokns (did you mean \"tokens\"?)",
                "t.json: invalid config key datacentre (did you mean \"datacenter\"?)",
            ]
        );
    }

    #[test]
    fn camel_case_is_refused_outside_definitions() {
        let (_, errors, _) = walk(json!({"Datacenter": "x"}));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "Datacenter");
    }

    #[test]
    fn encrypt_errors_never_show_the_key() {
        let key = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
        assert!(
            check_encrypt_key(key).is_ok(),
            "24 bytes is a valid AES-192 key"
        );
        let short = "c2VjcmV0"; // 6 bytes
        let e = check_encrypt_key(short).unwrap_err();
        assert_eq!(
            e,
            "Failed to configure keyring: Invalid key: key size must be 16, 24 or 32 bytes"
        );
        let e = check_encrypt_key("not base64!").unwrap_err();
        assert!(
            e.starts_with("encrypt has invalid key: illegal base64 data at input byte"),
            "{e}"
        );
        let (_, errors, _) = walk(json!({"encrypt": "bad!key"}));
        assert_eq!(errors[0].value.as_deref(), Some(HIDDEN));
        assert!(!errors[0].to_string().contains("bad!key"));
    }

    #[test]
    fn ip_templates_are_refused_clearly() {
        let e = parse_ip("{{ GetInterfaceIP \"eth0\" }}").unwrap_err();
        assert!(e.contains("templates are not supported yet"), "{e}");
        assert_eq!(parse_ip_list("127.0.0.1 ::1").unwrap().len(), 2);
        assert!(parse_ip_list("").is_err());
        assert!(parse_ip("300.1.1.1").is_err());
    }

    #[test]
    fn hcl_repeated_blocks_of_an_object_merge() {
        let (w, errors, _) = walk(json!({"ports": [{"http": 1}, {"dns": 2}]}));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(w.config["ports"], json!({"http": 1, "dns": 2}));
    }

    #[test]
    fn ignored_keys_warn_only_when_they_do_something() {
        let (_, errors, warnings) =
            walk(json!({"connect": {"enabled": false}, "verify_incoming": true}));
        assert!(errors.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("verify_incoming"));
    }

    #[test]
    fn suggestions_need_to_be_close() {
        assert_eq!(closest("tokns", &["tokens", "enabled"]), Some("tokens"));
        assert_eq!(closest("zzz", &["tokens"]), None);
    }
}
