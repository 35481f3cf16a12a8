//! The validated, immutable result of loading configuration: [`RuntimeConfig`].
//!
//! Every field is final (defaults applied, legacy keys resolved, addresses parsed). Secrets are
//! [`Secret`]s, and the `Debug` of every type here prints `<hidden>` for them, so a config can
//! be logged whole.

use super::error::HIDDEN;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tribune_api::types::{CheckDefinition, ServiceDefinition};

/// A secret string (gossip key, ACL token). `Debug` and `Display` print `<hidden>`; read it
/// with [`Secret::expose`] only where it is used.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HIDDEN)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HIDDEN)
    }
}

/// Listener ports (`ports{...}`). A value ≤ 0 disables the listener (Consul uses `-1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ports {
    /// DNS over UDP and TCP on the client addresses (`ports.dns`, 8600).
    pub dns: i32,
    /// HTTP API and UI on the client addresses (`ports.http`, 8500).
    pub http: i32,
    /// HTTPS API (`ports.https`, -1: off; TLS is not implemented yet).
    pub https: i32,
    /// gRPC (`ports.grpc`, -1: off; 8502 in `-dev`). Accepted for compatibility; the seed
    /// sets 8400.
    pub grpc: i32,
    /// LAN gossip on the bind address (`ports.serf_lan`, 8301).
    pub serf_lan: i32,
    /// WAN gossip on the bind address, servers only (`ports.serf_wan`, 8302).
    pub serf_wan: i32,
    /// Server RPC and Raft on the bind address (`ports.server`, 8300).
    pub server: i32,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            dns: 8600,
            http: 8500,
            https: -1,
            grpc: -1,
            serf_lan: 8301,
            serf_wan: 8302,
            server: 8300,
        }
    }
}

/// Per-listener address overrides (`addresses{...}`); `None` means the client addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// `addresses.dns`: where DNS listens instead of `client_addr`.
    pub dns: Option<Vec<IpAddr>>,
    /// `addresses.http`: where the HTTP API listens instead of `client_addr`.
    pub http: Option<Vec<IpAddr>>,
    /// `addresses.https`: where HTTPS listens instead of `client_addr`.
    pub https: Option<Vec<IpAddr>>,
    /// `addresses.grpc`: where gRPC listens instead of `client_addr`.
    pub grpc: Option<Vec<IpAddr>>,
}

/// ACL settings (`acl{...}` and the legacy top-level `acl_*` keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclConfig {
    /// `acl.enabled` (also implied by the legacy `acl_datacenter`). Off: everything allowed.
    pub enabled: bool,
    /// `acl.default_policy`: `allow` (the default, even with ACLs on) or `deny`.
    pub default_policy: String,
    /// `acl.down_policy`: `extend-cache` (default), `async-cache`, `allow` or `deny`.
    pub down_policy: String,
    /// `acl.enable_token_persistence`: tokens set over `/v1/agent/token/*` survive restarts.
    pub enable_token_persistence: bool,
    /// `acl.enable_key_list_policy`: enables the `list` level for `key` rules.
    pub enable_key_list_policy: bool,
    /// `acl.token_ttl` (legacy `acl_ttl`): how long resolved tokens are cached (30s).
    pub token_ttl: Duration,
    /// `acl.policy_ttl`: how long resolved policies are cached (30s).
    pub policy_ttl: Duration,
    /// `acl.role_ttl`: how long resolved roles are cached (30s).
    pub role_ttl: Duration,
    /// Tokens given in configuration.
    pub tokens: AclTokens,
}

impl Default for AclConfig {
    fn default() -> Self {
        AclConfig {
            enabled: false,
            default_policy: "allow".to_string(),
            down_policy: "extend-cache".to_string(),
            enable_token_persistence: false,
            enable_key_list_policy: false,
            token_ttl: Duration::from_secs(30),
            policy_ttl: Duration::from_secs(30),
            role_ttl: Duration::from_secs(30),
            tokens: AclTokens::default(),
        }
    }
}

/// `acl.tokens{...}`. Legacy spellings are resolved: `master`/`acl_master_token` →
/// `initial_management`, `agent_master`/`acl_agent_master_token` → `agent_recovery`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclTokens {
    /// The bootstrap global-management token the leader installs (seed: `tokens.master`).
    pub initial_management: Option<Secret>,
    /// The agent's own token for node registration, anti-entropy and coordinates.
    pub agent: Option<Secret>,
    /// A local-only token usable on `/v1/agent/*` when the servers are unreachable.
    pub agent_recovery: Option<Secret>,
    /// Used for requests that carry no token, instead of anonymous (legacy `acl_token`).
    pub default: Option<Secret>,
    /// Used by secondary datacenters to replicate ACLs.
    pub replication: Option<Secret>,
    /// Used for DNS lookups instead of `default`.
    pub dns: Option<Secret>,
    /// Used to register services and checks from config files that carry no token.
    pub config_file_service_registration: Option<Secret>,
}

/// Where syslog lines go (`syslog_address`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogAddress {
    /// A local datagram socket: `unix:///dev/log` (or a bare absolute path).
    Unix(PathBuf),
    /// A collector over UDP, one message per datagram (RFC 5426): `udp://host:port`.
    Udp(String),
    /// A collector over TCP with octet-counting framing (RFC 6587): `tcp://host:port`.
    Tcp(String),
}

impl SyslogAddress {
    /// Parses `unix:///path`, `/path`, `udp://host[:port]` or `tcp://host[:port]` (port
    /// 514 when absent; IPv6 hosts in brackets). Host names are resolved when connecting.
    pub fn parse(s: &str) -> Result<SyslogAddress, String> {
        let s = s.trim();
        if s.starts_with('/') {
            return Ok(SyslogAddress::Unix(PathBuf::from(s)));
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(
                "expected unix:///path/to/socket, udp://host:port or tcp://host:port".into(),
            );
        };
        match scheme.to_ascii_lowercase().as_str() {
            "unix" | "unixgram" => {
                if rest.starts_with('/') {
                    Ok(SyslogAddress::Unix(PathBuf::from(rest)))
                } else {
                    Err("a unix socket path must be absolute (unix:///dev/log)".into())
                }
            }
            "udp" => host_port(rest).map(SyslogAddress::Udp),
            "tcp" => host_port(rest).map(SyslogAddress::Tcp),
            other => Err(format!(
                "unknown scheme {other:?}: expected unix, udp or tcp"
            )),
        }
    }
}

impl fmt::Display for SyslogAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyslogAddress::Unix(p) => write!(f, "unix://{}", p.display()),
            SyslogAddress::Udp(a) => write!(f, "udp://{a}"),
            SyslogAddress::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// `host:port` with the port defaulted to 514 and checked.
fn host_port(rest: &str) -> Result<String, String> {
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err("missing host".into());
    }
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err("unclosed [ in an IPv6 address".into());
        };
        (format!("[{host}]"), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            Some(_) => return Err("write IPv6 addresses in brackets: [::1]:514".into()),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("missing host".into());
    }
    let port = match port {
        None => 514,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("invalid port {p:?}")),
        },
    };
    Ok(format!("{host}:{port}"))
}

/// The wire format of syslog lines (`syslog_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogFormat {
    /// RFC 3164 as syslog(3) writes it for a local socket, RFC 5424 for a remote collector.
    Auto,
    /// RFC 5424 with the event's fields as structured data.
    Rfc5424,
    /// `<PRI>Mmm dd hh:mm:ss tag[pid]: msg`, what every local daemon parses.
    Rfc3164,
}

/// DNS behaviour (`dns_config{...}`, compat §11.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// `dns_config.allow_stale`: answer from any server (true).
    pub allow_stale: bool,
    /// `dns_config.max_stale`: how stale a stale answer may be (87600h).
    pub max_stale: Duration,
    /// `dns_config.node_ttl`: TTL of node records (0).
    pub node_ttl: Duration,
    /// `dns_config.service_ttl`: TTL per service name, `*` as wildcard (none: 0).
    pub service_ttl: BTreeMap<String, Duration>,
    /// `dns_config.udp_answer_limit`: most records in one UDP answer (3).
    pub udp_answer_limit: u32,
    /// `dns_config.a_record_limit`: most A/AAAA records in an answer (0: no limit).
    pub a_record_limit: u32,
    /// `dns_config.enable_truncate`: set TC when a UDP answer was cut (false).
    pub enable_truncate: bool,
    /// `dns_config.only_passing`: leave out warning instances (false).
    pub only_passing: bool,
    /// `dns_config.recursor_timeout`: timeout per recursor query (2s).
    pub recursor_timeout: Duration,
    /// `dns_config.recursor_strategy`: `sequential` (default) or `random`.
    pub recursor_strategy: String,
    /// `dns_config.disable_compression`: no DNS name compression (false).
    pub disable_compression: bool,
    /// `dns_config.enable_additional_node_meta_txt`: node meta as TXT in additional (true).
    pub enable_additional_node_meta_txt: bool,
    /// `dns_config.soa{...}`: the SOA record's timers.
    pub soa: DnsSoa,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            allow_stale: true,
            max_stale: Duration::from_secs(87600 * 3600),
            node_ttl: Duration::ZERO,
            service_ttl: BTreeMap::new(),
            udp_answer_limit: 3,
            a_record_limit: 0,
            enable_truncate: false,
            only_passing: false,
            recursor_timeout: Duration::from_secs(2),
            recursor_strategy: "sequential".to_string(),
            disable_compression: false,
            enable_additional_node_meta_txt: true,
            soa: DnsSoa::default(),
        }
    }
}

/// `dns_config.soa{...}`, in seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSoa {
    /// `soa.refresh` (3600).
    pub refresh: u32,
    /// `soa.retry` (600).
    pub retry: u32,
    /// `soa.expire` (86400).
    pub expire: u32,
    /// `soa.min_ttl` (0).
    pub min_ttl: u32,
}

impl Default for DnsSoa {
    fn default() -> Self {
        DnsSoa {
            refresh: 3600,
            retry: 600,
            expire: 86400,
            min_ttl: 0,
        }
    }
}

/// Failure-detection tuning of one gossip pool (`gossip_lan{...}` / `gossip_wan{...}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// `gossip_nodes`: members each gossip round is sent to (3 LAN, 4 WAN).
    pub gossip_nodes: u32,
    /// `gossip_interval`: time between gossip rounds (200ms LAN, 500ms WAN).
    pub gossip_interval: Duration,
    /// `probe_interval`: time between failure probes (1s LAN, 5s WAN).
    pub probe_interval: Duration,
    /// `probe_timeout`: wait for an ack before an indirect probe (500ms LAN, 3s WAN).
    pub probe_timeout: Duration,
    /// `suspicion_mult`: suspicion timeout multiplier (4 LAN, 6 WAN).
    pub suspicion_mult: u32,
    /// `retransmit_mult`: broadcast retransmit multiplier (4).
    pub retransmit_mult: u32,
}

impl GossipConfig {
    /// memberlist's `DefaultLANConfig`, as Consul uses it.
    pub fn lan_default() -> Self {
        GossipConfig {
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            suspicion_mult: 4,
            retransmit_mult: 4,
        }
    }

    /// memberlist's `DefaultWANConfig`, as Consul uses it.
    pub fn wan_default() -> Self {
        GossipConfig {
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_mult: 6,
            retransmit_mult: 4,
        }
    }
}

/// HTTP API behaviour (`http_config{...}`, compat §1.12, §1.14).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// `http_config.block_endpoints`: path prefixes answered with 403.
    pub block_endpoints: Vec<String>,
    /// `http_config.allow_write_http_from`: CIDRs allowed to write (empty: everyone).
    pub allow_write_http_from: Vec<String>,
    /// `http_config.response_headers`: headers added to every response.
    pub response_headers: BTreeMap<String, String>,
    /// `http_config.max_header_bytes`: largest request header block (0: the server default).
    pub max_header_bytes: u64,
}

/// One WASM plugin to load (`plugins[...]`, Tribune's own key). Only the shape is checked
/// here; the plugin host validates kinds, grants and limits.
#[derive(Clone, PartialEq)]
pub struct PluginConfig {
    /// Unique name; checks and hooks refer to the plugin by it.
    pub name: String,
    /// Path of the `.wasm` component, as written (relative paths are relative to the
    /// agent's working directory, like every path in Consul's config).
    pub path: PathBuf,
    /// The plugin kind (`health-check`, `tag-rewriter`, `event-hook`), if given.
    pub kind: Option<String>,
    /// Plugin-specific configuration, passed through untouched (may hold secrets: `Debug`
    /// hides it).
    pub config: Value,
    /// Capabilities the operator grants (`http`, `tcp`, `kv-read`, `log`, ...).
    pub grants: BTreeMap<String, Value>,
    /// Per-call limits (fuel, memory, output size, ...).
    pub limits: BTreeMap<String, Value>,
    /// Event hooks: the event kinds to receive (`None`: what the plugin's manifest
    /// subscribes to).
    pub events: Option<Vec<String>>,
}

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginConfig")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("config", &HiddenUnlessNull(&self.config))
            .field("grants", &self.grants)
            .field("limits", &self.limits)
            .field("events", &self.events)
            .finish()
    }
}

struct HiddenUnlessNull<'a>(&'a Value);

impl fmt::Debug for HiddenUnlessNull<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_null() {
            f.write_str("null")
        } else {
            f.write_str(HIDDEN)
        }
    }
}

/// The agent's whole configuration after files, flags and defaults are merged and checked.
/// Immutable: a reload builds a new one.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// `datacenter`: this agent's datacenter, lower-cased ("dc1").
    pub datacenter: String,
    /// `primary_datacenter` (legacy `acl_datacenter`): the ACL authority (= datacenter).
    pub primary_datacenter: String,
    /// `node_name`: unique name in the datacenter (the hostname).
    pub node_name: String,
    /// `node_id`: the node's UUID, lower-cased; `None` means generate one and persist it in
    /// `data_dir/node-id`.
    pub node_id: Option<String>,
    /// `node_meta`: free key/value metadata of the node (≤ 64 pairs).
    pub node_meta: BTreeMap<String, String>,
    /// `data_dir`: where state lives; `None` only in `-dev` (in-memory) and in `validate`.
    pub data_dir: Option<PathBuf>,
    /// `-dev`: a single in-memory server with relaxed defaults.
    pub dev: bool,
    /// `server`: run Raft and serve the catalog.
    pub server: bool,
    /// `bootstrap`: elect itself without waiting for peers (also `bootstrap_expect = 1`).
    pub bootstrap: bool,
    /// `bootstrap_expect`: servers to wait for before bootstrapping Raft (0: not used).
    pub bootstrap_expect: u32,
    /// `bind_addr`: address gossip and server RPC listen on (0.0.0.0).
    pub bind_addr: IpAddr,
    /// `advertise_addr`: address other agents reach this one at (see the module docs).
    pub advertise_addr: IpAddr,
    /// `advertise_addr_wan`: address WAN gossip advertises (= advertise_addr).
    pub advertise_addr_wan: IpAddr,
    /// `serf_lan`: bind address of LAN gossip (= bind_addr).
    pub serf_lan_bind: IpAddr,
    /// `serf_wan`: bind address of WAN gossip (= bind_addr).
    pub serf_wan_bind: IpAddr,
    /// `client_addr`: addresses HTTP and DNS listen on ([127.0.0.1]).
    pub client_addrs: Vec<IpAddr>,
    /// `addresses{...}`: per-listener overrides of `client_addrs`.
    pub addresses: Addresses,
    /// `ports{...}`.
    pub ports: Ports,
    /// `encrypt`: the gossip key, base64 of 16, 24 or 32 bytes (validated).
    pub encrypt: Option<Secret>,
    /// `encrypt_verify_incoming`: refuse unencrypted gossip (true).
    pub encrypt_verify_incoming: bool,
    /// `encrypt_verify_outgoing`: send encrypted gossip (true).
    pub encrypt_verify_outgoing: bool,
    /// `retry_join` plus the legacy `start_join`/`-join`: LAN addresses to join, retried.
    pub retry_join: Vec<String>,
    /// `retry_join_wan` plus the legacy `start_join_wan`: WAN addresses (servers only).
    pub retry_join_wan: Vec<String>,
    /// `retry_interval`: wait between LAN join attempts (30s).
    pub retry_interval: Duration,
    /// `retry_interval_wan`: wait between WAN join attempts (30s).
    pub retry_interval_wan: Duration,
    /// `retry_max`: LAN join attempts before giving up (0: forever).
    pub retry_max: u32,
    /// `retry_max_wan`: WAN join attempts before giving up (0: forever).
    pub retry_max_wan: u32,
    /// `rejoin_after_leave`: rejoin the cluster on start even after a graceful leave.
    pub rejoin_after_leave: bool,
    /// `ui_config.enabled` (legacy `ui`, flag `-ui`): serve the web UI at `/ui/`.
    pub ui: bool,
    /// `acl{...}`.
    pub acl: AclConfig,
    /// `log_level`: one of `trace`, `debug`, `info`, `warn`, `error` (`err` normalised).
    pub log_level: String,
    /// `log_json`: log JSON lines instead of text.
    pub log_json: bool,
    /// `log_file`: also log to this file (a trailing `/` or a directory means
    /// `<dir>/consul.log`; that rule is the logging module's).
    pub log_file: Option<PathBuf>,
    /// `log_rotate_bytes`: rotate the log file at this size (0: no size limit).
    pub log_rotate_bytes: u64,
    /// `log_rotate_duration`: rotate the log file this often (24h).
    pub log_rotate_duration: Duration,
    /// `log_rotate_max_files`: archives to keep (0: all; -1: none).
    pub log_rotate_max_files: i64,
    /// `enable_syslog` (flag `-syslog`): also log to the local syslog daemon.
    pub enable_syslog: bool,
    /// `syslog_facility`: upper-cased facility name ("LOCAL0").
    pub syslog_facility: String,
    /// `log_stdout` (Tribune): also write log lines to the console (stderr), as Consul
    /// always does (true). `false` with `enable_syslog` or `log_file` avoids the duplicate
    /// lines journald and rsyslog both receive under systemd (compat §14.5).
    pub log_stdout: bool,
    /// `log_rotate_compress` (Tribune): gzip rotated archives (`<name>-<unixnanos>.log.gz`),
    /// which the seed needed logrotate's `compress` for.
    pub log_rotate_compress: bool,
    /// `syslog_address` (Tribune): where syslog lines go; `None` is the local daemon's socket
    /// (`/dev/log`, else `/var/run/syslog`, `/var/run/log`).
    pub syslog_address: Option<SyslogAddress>,
    /// `syslog_tag` (Tribune): the APP-NAME / tag of syslog lines ("tribune").
    pub syslog_tag: String,
    /// `syslog_format` (Tribune): the wire format of syslog lines.
    pub syslog_format: SyslogFormat,
    /// `syslog_udp_rate` (Tribune): most syslog messages per second sent over UDP (50000;
    /// 0: unpaced). rsyslog drops UDP above about 75k/s.
    pub syslog_udp_rate: u32,
    /// `service`/`services` from files, in source order. Definitions are as written (IDs and
    /// check IDs not yet defaulted); tokens are in `token` and hidden by `Debug`.
    pub services: Vec<ServiceDefinition>,
    /// `check`/`checks` from files, in source order (standalone checks, name required).
    pub checks: Vec<CheckDefinition>,
    /// `enable_script_checks`: allow script checks from the HTTP API and files (dangerous).
    pub enable_script_checks: bool,
    /// `enable_local_script_checks`: allow script checks from config files only.
    pub enable_local_script_checks: bool,
    /// `default_query_time`: a blocking query's wait when `?wait` is absent (300s).
    pub default_query_time: Duration,
    /// `max_query_time`: the longest `?wait` honoured (600s).
    pub max_query_time: Duration,
    /// `check_output_max_size`: bytes of check output kept (4096).
    pub check_output_max_size: usize,
    /// `discard_check_output`: store no check output at all.
    pub discard_check_output: bool,
    /// `session_ttl_min`: the smallest session TTL accepted (10s).
    pub session_ttl_min: Duration,
    /// `reconnect_timeout`: when a failed LAN member is reaped (72h, at least 8m).
    pub reconnect_timeout: Duration,
    /// `reconnect_timeout_wan`: when a failed WAN member is reaped (72h, at least 8m).
    pub reconnect_timeout_wan: Duration,
    /// `leave_on_terminate`: leave gracefully on SIGTERM (default: not a server).
    pub leave_on_terminate: bool,
    /// `skip_leave_on_interrupt`: do not leave on SIGINT (default: a server).
    pub skip_leave_on_interrupt: bool,
    /// `limits.kv_max_value_size`: largest KV value in bytes (524288).
    pub kv_max_value_size: usize,
    /// `limits.txn_max_req_len`: largest `/v1/txn` body in bytes (524288).
    pub txn_max_req_len: usize,
    /// `limits.http_max_conns_per_client`: concurrent HTTP connections per source IP (200).
    pub http_max_conns_per_client: u32,
    /// `discovery_max_stale`: make catalog/health reads stale up to this age (0: off).
    pub discovery_max_stale: Duration,
    /// `pid_file`: write the agent's PID here.
    pub pid_file: Option<PathBuf>,
    /// `domain`: the DNS domain, lower-cased with a trailing dot ("consul.").
    pub domain: String,
    /// `alt_domain`: a second DNS domain answered like `domain`, with a trailing dot.
    pub alt_domain: Option<String>,
    /// `recursors`: upstream DNS servers for names outside the domain.
    pub recursors: Vec<String>,
    /// `dns_config{...}`.
    pub dns_config: DnsConfig,
    /// `gossip_lan{...}`.
    pub gossip_lan: GossipConfig,
    /// `gossip_wan{...}`.
    pub gossip_wan: GossipConfig,
    /// `http_config{...}`.
    pub http_config: HttpConfig,
    /// `performance.raft_multiplier`: scales Raft timings, 1–10 (5; 1 in `-dev`).
    pub raft_multiplier: u32,
    /// `raft_snapshot_threshold`: Raft entries between snapshots (Consul: 16384).
    pub raft_snapshot_threshold: u64,
    /// `raft_trailing_logs`: entries kept behind a snapshot for slow followers (10240).
    pub raft_trailing_logs: u64,
    /// `tagged_addresses` plus the defaults `lan`, `lan_ipv4`/`lan_ipv6`, `wan`,
    /// `wan_ipv4`/`wan_ipv6` from the advertise addresses (a user value wins).
    pub tagged_addresses: BTreeMap<String, String>,
    /// `plugins[...]`: WASM plugins to load (Tribune's own key).
    pub plugins: Vec<PluginConfig>,
    /// `disable_keyring_file`: keep gossip keys in memory only (true in `-dev`).
    pub disable_keyring_file: bool,
    /// Files read, in the order they were merged (directories expanded).
    pub sources: Vec<String>,
}

impl RuntimeConfig {
    /// Where the HTTP API listens: `addresses.http` (or the client addresses) on
    /// `ports.http`; empty when the port is disabled.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        listen_addrs(
            self.addresses.http.as_deref().unwrap_or(&self.client_addrs),
            self.ports.http,
        )
    }

    /// Where DNS listens (UDP and TCP); empty when `ports.dns` is disabled.
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        listen_addrs(
            self.addresses.dns.as_deref().unwrap_or(&self.client_addrs),
            self.ports.dns,
        )
    }

    /// Where LAN gossip listens (`serf_lan` or `bind_addr`, `ports.serf_lan`).
    pub fn serf_lan_addr(&self) -> Option<SocketAddr> {
        listen_addrs(&[self.serf_lan_bind], self.ports.serf_lan)
            .into_iter()
            .next()
    }

    /// Where WAN gossip listens; `None` for clients and when disabled.
    pub fn serf_wan_addr(&self) -> Option<SocketAddr> {
        if !self.server {
            return None;
        }
        listen_addrs(&[self.serf_wan_bind], self.ports.serf_wan)
            .into_iter()
            .next()
    }

    /// Where server RPC listens (`bind_addr`, `ports.server`); `None` for clients.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        if !self.server {
            return None;
        }
        listen_addrs(&[self.bind_addr], self.ports.server)
            .into_iter()
            .next()
    }

    /// The server RPC address other agents dial (`advertise_addr`, `ports.server`).
    pub fn rpc_advertise_addr(&self) -> Option<SocketAddr> {
        listen_addrs(&[self.advertise_addr], self.ports.server)
            .into_iter()
            .next()
    }
}

fn listen_addrs(ips: &[IpAddr], port: i32) -> Vec<SocketAddr> {
    match u16::try_from(port) {
        Ok(port) if port > 0 => ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
        _ => Vec::new(),
    }
}

/// Service and check definitions with their `token`s replaced, for `Debug`.
struct RedactedServices<'a>(&'a [ServiceDefinition]);

impl fmt::Debug for RedactedServices<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(redact_service))
            .finish()
    }
}

struct RedactedChecks<'a>(&'a [CheckDefinition]);

impl fmt::Debug for RedactedChecks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(redact_check))
            .finish()
    }
}

pub(crate) fn redact_service(s: &ServiceDefinition) -> ServiceDefinition {
    let mut s = s.clone();
    if !s.token.is_empty() {
        s.token = HIDDEN.to_string();
    }
    s.check = s.check.as_ref().map(redact_check);
    s.checks = s.checks.iter().map(redact_check).collect();
    s
}

pub(crate) fn redact_check(c: &CheckDefinition) -> CheckDefinition {
    let mut c = c.clone();
    if !c.token.is_empty() {
        c.token = HIDDEN.to_string();
    }
    c
}

impl fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured without `..` so a new field cannot be forgotten here.
        let RuntimeConfig {
            datacenter,
            primary_datacenter,
            node_name,
            node_id,
            node_meta,
            data_dir,
            dev,
            server,
            bootstrap,
            bootstrap_expect,
            bind_addr,
            advertise_addr,
            advertise_addr_wan,
            serf_lan_bind,
            serf_wan_bind,
            client_addrs,
            addresses,
            ports,
            encrypt,
            encrypt_verify_incoming,
            encrypt_verify_outgoing,
            retry_join,
            retry_join_wan,
            retry_interval,
            retry_interval_wan,
            retry_max,
            retry_max_wan,
            rejoin_after_leave,
            ui,
            acl,
            log_level,
            log_json,
            log_file,
            log_rotate_bytes,
            log_rotate_duration,
            log_rotate_max_files,
            enable_syslog,
            syslog_facility,
            log_stdout,
            log_rotate_compress,
            syslog_address,
            syslog_tag,
            syslog_format,
            syslog_udp_rate,
            services,
            checks,
            enable_script_checks,
            enable_local_script_checks,
            default_query_time,
            max_query_time,
            check_output_max_size,
            discard_check_output,
            session_ttl_min,
            reconnect_timeout,
            reconnect_timeout_wan,
            leave_on_terminate,
            skip_leave_on_interrupt,
            kv_max_value_size,
            txn_max_req_len,
            http_max_conns_per_client,
            discovery_max_stale,
            pid_file,
            domain,
            alt_domain,
            recursors,
            dns_config,
            gossip_lan,
            gossip_wan,
            http_config,
            raft_multiplier,
            raft_snapshot_threshold,
            raft_trailing_logs,
            tagged_addresses,
            plugins,
            disable_keyring_file,
            sources,
        } = self;
        f.debug_struct("RuntimeConfig")
            .field("datacenter", datacenter)
            .field("primary_datacenter", primary_datacenter)
            .field("node_name", node_name)
            .field("node_id", node_id)
            .field("node_meta", node_meta)
            .field("data_dir", data_dir)
            .field("dev", dev)
            .field("server", server)
            .field("bootstrap", bootstrap)
            .field("bootstrap_expect", bootstrap_expect)
            .field("bind_addr", bind_addr)
            .field("advertise_addr", advertise_addr)
            .field("advertise_addr_wan", advertise_addr_wan)
            .field("serf_lan_bind", serf_lan_bind)
            .field("serf_wan_bind", serf_wan_bind)
            .field("client_addrs", client_addrs)
            .field("addresses", addresses)
            .field("ports", ports)
            .field("encrypt", encrypt)
            .field("encrypt_verify_incoming", encrypt_verify_incoming)
            .field("encrypt_verify_outgoing", encrypt_verify_outgoing)
            .field("retry_join", retry_join)
            .field("retry_join_wan", retry_join_wan)
            .field("retry_interval", retry_interval)
            .field("retry_interval_wan", retry_interval_wan)
            .field("retry_max", retry_max)
            .field("retry_max_wan", retry_max_wan)
            .field("rejoin_after_leave", rejoin_after_leave)
            .field("ui", ui)
            .field("acl", acl)
            .field("log_level", log_level)
            .field("log_json", log_json)
            .field("log_file", log_file)
            .field("log_rotate_bytes", log_rotate_bytes)
            .field("log_rotate_duration", log_rotate_duration)
            .field("log_rotate_max_files", log_rotate_max_files)
            .field("enable_syslog", enable_syslog)
            .field("syslog_facility", syslog_facility)
            .field("log_stdout", log_stdout)
            .field("log_rotate_compress", log_rotate_compress)
            .field("syslog_address", syslog_address)
            .field("syslog_tag", syslog_tag)
            .field("syslog_format", syslog_format)
            .field("syslog_udp_rate", syslog_udp_rate)
            .field("services", &RedactedServices(services))
            .field("checks", &RedactedChecks(checks))
            .field("enable_script_checks", enable_script_checks)
            .field("enable_local_script_checks", enable_local_script_checks)
            .field("default_query_time", default_query_time)
            .field("max_query_time", max_query_time)
            .field("check_output_max_size", check_output_max_size)
            .field("discard_check_output", discard_check_output)
            .field("session_ttl_min", session_ttl_min)
            .field("reconnect_timeout", reconnect_timeout)
            .field("reconnect_timeout_wan", reconnect_timeout_wan)
            .field("leave_on_terminate", leave_on_terminate)
            .field("skip_leave_on_interrupt", skip_leave_on_interrupt)
            .field("kv_max_value_size", kv_max_value_size)
            .field("txn_max_req_len", txn_max_req_len)
            .field("http_max_conns_per_client", http_max_conns_per_client)
            .field("discovery_max_stale", discovery_max_stale)
            .field("pid_file", pid_file)
            .field("domain", domain)
            .field("alt_domain", alt_domain)
            .field("recursors", recursors)
            .field("dns_config", dns_config)
            .field("gossip_lan", gossip_lan)
            .field("gossip_wan", gossip_wan)
            .field("http_config", http_config)
            .field("raft_multiplier", raft_multiplier)
            .field("raft_snapshot_threshold", raft_snapshot_threshold)
            .field("raft_trailing_logs", raft_trailing_logs)
            .field("tagged_addresses", tagged_addresses)
            .field("plugins", plugins)
            .field("disable_keyring_file", disable_keyring_file)
            .field("sources", sources)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_hidden() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "<hidden>");
        assert_eq!(format!("{s:?}"), "<hidden>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn syslog_addresses_parse() {
        use SyslogAddress::*;
        let ok = |s: &str| SyslogAddress::parse(s).unwrap();
        assert_eq!(ok("unix:///dev/log"), Unix("/dev/log".into()));
        assert_eq!(ok("/run/x.sock"), Unix("/run/x.sock".into()));
        assert_eq!(ok("udp://10.0.0.1"), Udp("10.0.0.1:514".into()));
        assert_eq!(
            ok("TCP://logs.example:6514"),
            Tcp("logs.example:6514".into())
        );
        assert_eq!(ok("tcp://[::1]:601"), Tcp("[::1]:601".into()));
        assert_eq!(ok("udp://[::1]"), Udp("[::1]:514".into()));
        for bad in [
            "",
            "logs:514",
            "http://x",
            "tcp://",
            "tcp://h:0",
            "tcp://h:99999",
            "unix://rel",
            "udp://::1",
        ] {
            assert!(SyslogAddress::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(ok("tcp://h:1").to_string(), "tcp://h:1");
    }

    #[test]
    fn disabled_ports_have_no_listeners() {
        assert!(listen_addrs(&["127.0.0.1".parse().unwrap()], -1).is_empty());
        assert!(listen_addrs(&["127.0.0.1".parse().unwrap()], 0).is_empty());
        assert_eq!(
            listen_addrs(&["127.0.0.1".parse().unwrap()], 8500),
            vec!["127.0.0.1:8500".parse::<SocketAddr>().unwrap()]
        );
    }
}
