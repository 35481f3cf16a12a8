//! From checked sources to a [`RuntimeConfig`]: merge in Consul's order, apply defaults,
//! resolve legacy keys (the new spelling wins wherever it is written, as in Consul's
//! builder), and check the rules that span keys (`bootstrap_expect` needs `server`, script
//! checks need `enable_*_script_checks`, ...). Errors name the source that last set the key.

use super::error::{render_value, ConfigError};
use super::flags::{self, AgentFlags};
use super::host;
use super::merge::{Merged, Origin};
use super::runtime::{
    AclConfig, AclTokens, Addresses, DnsConfig, DnsSoa, GossipConfig, HttpConfig, Ports,
    RuntimeConfig, Secret, SyslogAddress, SyslogFormat,
};
use super::schema::{self, parse_ip, parse_ip_list, Located, Walked};
use super::source::{self, ConfigFormat};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;
use tribune_api::parse_go_duration;
use tribune_api::types::{CheckDefinition, ServiceDefinition};

/// Consul's text for a script check when neither switch is on (compat §14.2).
pub(crate) const SCRIPTS_DISABLED: &str = "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true";

/// What `load` and `validate` differ in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mode {
    pub dev: bool,
    pub require_data_dir: bool,
}

/// The host facts defaults depend on; injected so tests do not depend on the machine.
#[derive(Clone, Debug, Default)]
pub(crate) struct Host {
    pub hostname: Option<String>,
    pub ipv4: Vec<Ipv4Addr>,
}

impl Host {
    pub(crate) fn system() -> Host {
        Host {
            hostname: host::hostname(),
            ipv4: host::ipv4_addresses(),
        }
    }
}

/// `-dev`'s defaults: a layer under the files, so files and flags still override them.
fn dev_defaults() -> Map<String, Value> {
    let fast_gossip = json!({
        "gossip_interval": "100ms", "probe_interval": "100ms",
        "probe_timeout": "100ms", "suspicion_mult": 3
    });
    let v = json!({
        "bind_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "server": true,
        "bootstrap": true,
        "ui_config": {"enabled": true},
        "log_level": "debug",
        "performance": {"raft_multiplier": 1},
        "disable_keyring_file": true,
        "ports": {"grpc": 8502},
        "enable_debug": true,
        "gossip_lan": fast_gossip.clone(),
        "gossip_wan": fast_gossip,
    });
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Reads, checks, merges and builds. The whole of `load` and `validate_paths`.
pub(crate) fn build(
    flags: &AgentFlags,
    paths: &[PathBuf],
    format: Option<ConfigFormat>,
    mode: Mode,
    host: &Host,
) -> Result<(RuntimeConfig, Vec<String>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut warnings = flags.notices.clone();

    // The flags are checked as one source whose errors name flags, then split as Consul
    // merges them: lists before the files, values after.
    let walked_flags = schema::walk_flags(&flags.values, &mut errors, &mut warnings);
    let (flag_lists, flag_values) = flags::split_lists(&walked_flags.config);

    let raw = source::read_paths(paths, format, &mut errors, &mut warnings);
    let mut files: Vec<(Origin, Walked)> = Vec::new();
    let mut sources = Vec::new();
    for src in &raw {
        let walked = schema::walk_source(Some(&src.name), &src.value, &mut errors, &mut warnings);
        sources.push(src.name.clone());
        files.push((Origin::File(src.name.clone()), walked));
    }
    // `-hcl` fragments come after the flags, as in Consul.
    let mut snippets: Vec<(Origin, Walked)> = Vec::new();
    for (i, snippet) in flags.hcl.iter().enumerate() {
        let name = format!("-hcl #{}", i + 1);
        match source::parse(snippet, ConfigFormat::Hcl) {
            Ok(map) => {
                let walked = schema::walk_source(Some(&name), &map, &mut errors, &mut warnings);
                snippets.push((Origin::File(name), walked));
            }
            Err(message) => errors.push(ConfigError::new(Some(&name), "", None, message)),
        }
    }

    let mut merged = Merged::default();
    let mut defs = Definitions::default();
    if mode.dev {
        merged.add(dev_defaults(), &Origin::Dev);
    }
    merged.add(flag_lists, &Origin::Flags);
    for (origin, walked) in files {
        merged.add(walked.config, &origin);
        defs.take(
            walked.services,
            walked.checks,
            walked.script_checks,
            walked.plugins,
        );
    }
    merged.add(flag_values, &Origin::Flags);
    for (origin, walked) in snippets {
        merged.add(walked.config, &origin);
        defs.take(
            walked.services,
            walked.checks,
            walked.script_checks,
            walked.plugins,
        );
    }

    let mut b = Builder {
        m: &merged,
        errors: &mut errors,
        warnings: &mut warnings,
    };
    let config = b.runtime(defs, mode, host, sources);
    if errors.is_empty() {
        Ok((config, warnings))
    } else {
        Err(errors)
    }
}

/// Definitions gathered from every source, in order.
#[derive(Default)]
pub(crate) struct Definitions {
    services: Vec<Located<ServiceDefinition>>,
    checks: Vec<Located<CheckDefinition>>,
    script_checks: Vec<Located<()>>,
    plugins: Vec<Located<super::runtime::PluginConfig>>,
}

impl Definitions {
    fn take(
        &mut self,
        services: Vec<Located<ServiceDefinition>>,
        checks: Vec<Located<CheckDefinition>>,
        script_checks: Vec<Located<()>>,
        plugins: Vec<Located<super::runtime::PluginConfig>>,
    ) {
        self.services.extend(services);
        self.checks.extend(checks);
        self.script_checks.extend(script_checks);
        self.plugins.extend(plugins);
    }
}

struct Builder<'a> {
    m: &'a Merged,
    errors: &'a mut Vec<ConfigError>,
    warnings: &'a mut Vec<String>,
}

impl Builder<'_> {
    /// An error about the merged value at `path`, attributed to whoever set it last.
    fn error(&mut self, path: &str, value: Option<String>, message: impl Into<String>) {
        let (file, key) = match self.m.origin(path) {
            Some(Origin::File(f)) => (Some(f.as_str()), path.to_string()),
            Some(Origin::Flags) => (
                None,
                flags::flag_for_key(path).unwrap_or_else(|| path.to_string()),
            ),
            Some(Origin::Dev) | None => (None, path.to_string()),
        };
        self.errors
            .push(ConfigError::new(file, key, value, message));
    }

    fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    fn string(&self, path: &str) -> Option<String> {
        self.m.get(path).and_then(Value::as_str).map(str::to_string)
    }

    /// A string that is set and not empty (Consul treats `""` as unset for most strings).
    fn nonempty(&self, path: &str) -> Option<String> {
        self.string(path).filter(|s| !s.is_empty())
    }

    fn boolean(&self, path: &str) -> Option<bool> {
        self.m.get(path).and_then(Value::as_bool)
    }

    fn int(&self, path: &str) -> Option<i64> {
        self.m.get(path).and_then(Value::as_i64)
    }

    fn uint<T: TryFrom<i64>>(&self, path: &str, default: T) -> T {
        self.int(path)
            .and_then(|i| T::try_from(i).ok())
            .unwrap_or(default)
    }

    fn duration(&self, path: &str) -> Option<Duration> {
        self.string(path).and_then(|s| parse_go_duration(&s).ok())
    }

    fn strings(&self, path: &str) -> Vec<String> {
        match self.m.get(path) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn string_map(&self, path: &str) -> BTreeMap<String, String> {
        match self.m.get(path) {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    fn secret(&self, paths: &[&str]) -> Option<Secret> {
        paths.iter().find_map(|p| self.nonempty(p)).map(Secret::new)
    }

    fn ip(&self, path: &str) -> Option<IpAddr> {
        self.string(path).and_then(|s| parse_ip(&s).ok())
    }

    fn ips(&self, path: &str) -> Option<Vec<IpAddr>> {
        self.string(path).and_then(|s| parse_ip_list(&s).ok())
    }

    fn runtime(
        &mut self,
        defs: Definitions,
        mode: Mode,
        host: &Host,
        sources: Vec<String>,
    ) -> RuntimeConfig {
        let datacenter = self
            .datacenter("datacenter")
            .unwrap_or_else(|| "dc1".into());
        let primary_datacenter = self
            .datacenter("primary_datacenter")
            .or_else(|| self.datacenter("acl_datacenter"))
            .unwrap_or_else(|| datacenter.clone());
        let node_name = self.node_name(host);
        let data_dir = self.data_dir(mode);

        let server = self.boolean("server").unwrap_or(false);
        let (bootstrap, bootstrap_expect) = self.bootstrap(server, mode);

        let bind_addr = self
            .ip("bind_addr")
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let advertise_addr = self.advertise(bind_addr, mode, host);
        let advertise_addr_wan = self.ip("advertise_addr_wan").unwrap_or(advertise_addr);
        let client_addrs = self
            .ips("client_addr")
            .unwrap_or_else(|| vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let ports = self.ports();

        let acl = self.acl();
        let ui = self
            .boolean("ui_config.enabled")
            .or_else(|| self.boolean("ui"))
            .unwrap_or(false);

        let log_level = match self
            .string("log_level")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            None => "info".to_string(),
            Some("err") => "error".to_string(),
            Some(level) => level.to_string(),
        };

        let enable_script_checks = self.boolean("enable_script_checks").unwrap_or(false);
        let enable_local_script_checks =
            self.boolean("enable_local_script_checks").unwrap_or(false);
        if !enable_script_checks && !enable_local_script_checks {
            for at in &defs.script_checks {
                self.errors.push(ConfigError::new(
                    at.file.as_deref(),
                    at.path.as_str(),
                    None,
                    SCRIPTS_DISABLED,
                ));
            }
        }
        if enable_script_checks && (!acl.enabled || acl.default_policy == "allow") {
            self.warn(
                "using enable_script_checks without ACLs (default_policy deny) is DANGEROUS: \
                 anyone who reaches the HTTP API can run commands on this host; use \
                 enable_local_script_checks instead",
            );
        }

        let mut retry_join = self.strings("retry_join");
        retry_join.extend(self.strings("start_join"));
        let mut retry_join_wan = self.strings("retry_join_wan");
        retry_join_wan.extend(self.strings("start_join_wan"));
        for entry in retry_join.iter().chain(&retry_join_wan) {
            if entry.contains("provider=") {
                self.warnings.push(format!(
                    "retry_join entry {entry:?}: cloud auto-join is not supported; it will be \
                     tried as a host name"
                ));
            }
        }

        let check_output_max_size = self.uint("check_output_max_size", 4096usize);
        let reconnect_timeout = self.reconnect_timeout("reconnect_timeout");
        let reconnect_timeout_wan = self.reconnect_timeout("reconnect_timeout_wan");

        let raft_multiplier = self.uint("performance.raft_multiplier", 5u32);
        let plugins = self.plugins(defs.plugins);

        let tagged_addresses = self.tagged_addresses(advertise_addr, advertise_addr_wan);

        let encrypt = self.nonempty("encrypt").map(Secret::new);
        let (syslog_address, syslog_tag, syslog_format) = self.syslog();

        let mut http_config = HttpConfig {
            block_endpoints: self.strings("http_config.block_endpoints"),
            allow_write_http_from: self.strings("http_config.allow_write_http_from"),
            response_headers: self.string_map("http_api_response_headers"),
            max_header_bytes: self.uint("http_config.max_header_bytes", 0u64),
        };
        http_config
            .response_headers
            .extend(self.string_map("http_config.response_headers"));

        let config = RuntimeConfig {
            datacenter,
            primary_datacenter,
            node_name,
            node_id: self.nonempty("node_id").map(|s| s.to_lowercase()),
            node_meta: self.string_map("node_meta"),
            data_dir,
            dev: mode.dev,
            server,
            bootstrap,
            bootstrap_expect,
            bind_addr,
            advertise_addr,
            advertise_addr_wan,
            serf_lan_bind: self.ip("serf_lan").unwrap_or(bind_addr),
            serf_wan_bind: self.ip("serf_wan").unwrap_or(bind_addr),
            client_addrs,
            addresses: Addresses {
                dns: self.ips("addresses.dns"),
                http: self.ips("addresses.http"),
                https: self.ips("addresses.https"),
                grpc: self.ips("addresses.grpc"),
            },
            ports,
            encrypt,
            encrypt_verify_incoming: self.boolean("encrypt_verify_incoming").unwrap_or(true),
            encrypt_verify_outgoing: self.boolean("encrypt_verify_outgoing").unwrap_or(true),
            retry_join,
            retry_join_wan,
            retry_interval: self
                .duration("retry_interval")
                .unwrap_or(Duration::from_secs(30)),
            retry_interval_wan: self
                .duration("retry_interval_wan")
                .unwrap_or(Duration::from_secs(30)),
            retry_max: self.uint("retry_max", 0u32),
            retry_max_wan: self.uint("retry_max_wan", 0u32),
            rejoin_after_leave: self.boolean("rejoin_after_leave").unwrap_or(false),
            ui,
            acl,
            log_level,
            log_json: self.boolean("log_json").unwrap_or(false),
            log_file: self.nonempty("log_file").map(PathBuf::from),
            log_rotate_bytes: self.uint("log_rotate_bytes", 0u64),
            log_rotate_duration: self
                .duration("log_rotate_duration")
                .unwrap_or(Duration::from_secs(24 * 3600)),
            log_rotate_max_files: self.int("log_rotate_max_files").unwrap_or(0),
            enable_syslog: self.boolean("enable_syslog").unwrap_or(false),
            syslog_facility: self
                .string("syslog_facility")
                .map(|s| s.to_ascii_uppercase())
                .unwrap_or_else(|| "LOCAL0".into()),
            log_stdout: self.boolean("log_stdout").unwrap_or(true),
            log_rotate_compress: self.boolean("log_rotate_compress").unwrap_or(false),
            syslog_address,
            syslog_tag,
            syslog_format,
            syslog_udp_rate: self.uint("syslog_udp_rate", 50_000u32),
            services: defs.services.into_iter().map(|l| l.item).collect(),
            checks: defs.checks.into_iter().map(|l| l.item).collect(),
            enable_script_checks,
            enable_local_script_checks,
            default_query_time: self
                .duration("default_query_time")
                .unwrap_or(Duration::from_secs(300)),
            max_query_time: self
                .duration("max_query_time")
                .unwrap_or(Duration::from_secs(600)),
            check_output_max_size,
            discard_check_output: self.boolean("discard_check_output").unwrap_or(false),
            session_ttl_min: self
                .duration("session_ttl_min")
                .unwrap_or(Duration::from_secs(10)),
            reconnect_timeout,
            reconnect_timeout_wan,
            leave_on_terminate: self.boolean("leave_on_terminate").unwrap_or(!server),
            skip_leave_on_interrupt: self.boolean("skip_leave_on_interrupt").unwrap_or(server),
            kv_max_value_size: self.uint("limits.kv_max_value_size", 524_288usize),
            txn_max_req_len: self.uint("limits.txn_max_req_len", 524_288usize),
            http_max_conns_per_client: self.uint("limits.http_max_conns_per_client", 200u32),
            discovery_max_stale: self
                .duration("discovery_max_stale")
                .unwrap_or(Duration::ZERO),
            pid_file: self.nonempty("pid_file").map(PathBuf::from),
            domain: fqdn(&self.nonempty("domain").unwrap_or_else(|| "consul.".into())),
            alt_domain: self.nonempty("alt_domain").map(|d| fqdn(&d)),
            recursors: self.strings("recursors"),
            dns_config: self.dns_config(),
            gossip_lan: self.gossip("gossip_lan", GossipConfig::lan_default()),
            gossip_wan: self.gossip("gossip_wan", GossipConfig::wan_default()),
            http_config,
            raft_multiplier,
            // Consul's defaults; 0 would snapshot on every entry or keep no log at all.
            raft_snapshot_threshold: self.uint("raft_snapshot_threshold", 16384u64).max(1),
            raft_trailing_logs: self.uint("raft_trailing_logs", 10240u64),
            tagged_addresses,
            plugins,
            disable_keyring_file: self.boolean("disable_keyring_file").unwrap_or(false),
            sources,
        };
        self.port_clashes(&config);
        config
    }

    /// Tribune's syslog keys: the address parsed, the tag checked against RFC 5424's
    /// APP-NAME (1–48 printable ASCII characters, no space), the format.
    fn syslog(&mut self) -> (Option<SyslogAddress>, String, SyslogFormat) {
        let address = match self.nonempty("syslog_address") {
            None => None,
            Some(raw) => match SyslogAddress::parse(&raw) {
                Ok(a) => Some(a),
                Err(m) => {
                    self.error("syslog_address", Some(raw), m);
                    None
                }
            },
        };
        if address.is_some() && !self.boolean("enable_syslog").unwrap_or(false) {
            self.warn(
                "syslog_address is set but enable_syslog is false: nothing will be sent to syslog",
            );
        }
        let tag = self
            .string("syslog_tag")
            .unwrap_or_else(|| "tribune".into());
        if tag.is_empty() || tag.len() > 48 || !tag.bytes().all(|b| (33..=126).contains(&b)) {
            self.error(
                "syslog_tag",
                Some(tag.clone()),
                "a syslog tag is 1 to 48 printable ASCII characters without spaces",
            );
        }
        let format = match self.string("syslog_format").as_deref() {
            Some("rfc5424") => SyslogFormat::Rfc5424,
            Some("rfc3164") => SyslogFormat::Rfc3164,
            _ => SyslogFormat::Auto,
        };
        (address, tag, format)
    }

    /// A datacenter name, lower-cased and checked against Consul's `[a-z0-9_-]`.
    fn datacenter(&mut self, path: &str) -> Option<String> {
        let raw = self.nonempty(path)?;
        let dc = raw.to_lowercase();
        if !dc
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            self.error(
                path,
                Some(raw),
                "datacenter names may only contain a-z, 0-9, - and _",
            );
        }
        Some(dc)
    }

    fn node_name(&mut self, host: &Host) -> String {
        let name = match self.nonempty("node_name").or_else(|| host.hostname.clone()) {
            Some(name) => name,
            None => {
                self.error(
                    "node_name",
                    None,
                    "node_name is not set and the hostname cannot be determined; set node_name",
                );
                return String::new();
            }
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            self.warn(format!(
                "node name {name:?} will not be discoverable via DNS due to invalid characters; \
                 valid characters include all alpha-numerics and dashes"
            ));
        }
        name
    }

    fn data_dir(&mut self, mode: Mode) -> Option<PathBuf> {
        let dir = self.nonempty("data_dir").map(PathBuf::from);
        if mode.dev {
            if dir.is_some() {
                self.warn("data_dir is ignored in -dev mode: all state is kept in memory");
            }
            return None;
        }
        match &dir {
            None if mode.require_data_dir => {
                self.error("data_dir", None, "data_dir cannot be empty");
            }
            Some(path) => {
                if let Ok(meta) = std::fs::metadata(path) {
                    if !meta.is_dir() {
                        self.error(
                            "data_dir",
                            Some(path.display().to_string()),
                            "data_dir is not a directory",
                        );
                    }
                }
            }
            None => {}
        }
        dir
    }

    /// `bootstrap`/`bootstrap_expect` rules from Consul's builder.
    fn bootstrap(&mut self, server: bool, mode: Mode) -> (bool, u32) {
        let mut bootstrap = self.boolean("bootstrap").unwrap_or(false);
        let mut expect = self.uint("bootstrap_expect", 0u32);
        if expect > 0 {
            let shown = Some(expect.to_string());
            if mode.dev {
                self.error(
                    "bootstrap_expect",
                    shown,
                    "'bootstrap_expect > 0' not allowed in dev mode",
                );
                return (bootstrap, 0);
            }
            if !server {
                self.error(
                    "bootstrap_expect",
                    shown.clone(),
                    "'bootstrap_expect > 0' requires 'server = true'",
                );
            }
            if bootstrap {
                self.error(
                    "bootstrap_expect",
                    shown,
                    "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive",
                );
            }
        }
        if bootstrap && !server {
            self.error(
                "bootstrap",
                None,
                "'bootstrap = true' requires 'server = true'",
            );
        }
        if server && !bootstrap {
            if expect == 1 {
                self.warn("bootstrap_expect = 1: this is the same as bootstrap mode");
                bootstrap = true;
                expect = 0;
            } else if expect == 2 {
                self.warn(
                    "bootstrap_expect = 2: a cluster with 2 servers will provide no failure \
                     tolerance",
                );
            } else if expect > 2 && expect.is_multiple_of(2) {
                self.warn(format!(
                    "bootstrap_expect = {expect}: a cluster with an even number of servers \
                     does not achieve optimum fault tolerance"
                ));
            }
        }
        if bootstrap && server && !mode.dev {
            self.warn("bootstrap = true: do not enable unless necessary");
        }
        (bootstrap, expect)
    }

    fn advertise(&mut self, bind: IpAddr, mode: Mode, host: &Host) -> IpAddr {
        if let Some(ip) = self.ip("advertise_addr") {
            if ip.is_unspecified() {
                self.error(
                    "advertise_addr",
                    Some(ip.to_string()),
                    "advertise_addr cannot be 0.0.0.0, :: or [::]",
                );
            }
            return ip;
        }
        if !bind.is_unspecified() {
            return bind;
        }
        if mode.dev {
            return IpAddr::V4(Ipv4Addr::LOCALHOST);
        }
        let (ip, warning) = host::pick_advertise(&host.ipv4);
        if let Some(w) = warning {
            self.warn(w);
        }
        ip
    }

    fn ports(&self) -> Ports {
        let d = Ports::default();
        let port = |name: &str, default: i32| self.uint(&format!("ports.{name}"), default);
        Ports {
            dns: port("dns", d.dns),
            http: port("http", d.http),
            https: port("https", d.https),
            grpc: port("grpc", d.grpc),
            serf_lan: port("serf_lan", d.serf_lan),
            serf_wan: port("serf_wan", d.serf_wan),
            server: port("server", d.server),
        }
    }

    /// Two enabled listeners of one address family on one port cannot both bind.
    fn port_clashes(&mut self, c: &RuntimeConfig) {
        let client = [
            ("ports.http", c.ports.http),
            ("ports.https", c.ports.https),
            ("ports.dns", c.ports.dns),
            ("ports.grpc", c.ports.grpc),
        ];
        let mut cluster = vec![("ports.serf_lan", c.ports.serf_lan)];
        if c.server {
            cluster.push(("ports.serf_wan", c.ports.serf_wan));
            cluster.push(("ports.server", c.ports.server));
        }
        for group in [client.to_vec(), cluster] {
            let mut seen: BTreeMap<i32, &str> = BTreeMap::new();
            for (key, port) in group {
                if port <= 0 {
                    continue;
                }
                if let Some(first) = seen.get(&port) {
                    let message = format!("{key} and {first} both use port {port}");
                    self.error(key, Some(port.to_string()), message);
                } else {
                    seen.insert(port, key);
                }
            }
        }
    }

    fn acl(&mut self) -> AclConfig {
        let d = AclConfig::default();
        let enabled = self
            .boolean("acl.enabled")
            .unwrap_or_else(|| self.m.get("acl_datacenter").is_some());
        let tokens = AclTokens {
            initial_management: self.secret(&[
                "acl.tokens.initial_management",
                "acl.tokens.master",
                "acl_master_token",
            ]),
            agent: self.secret(&["acl.tokens.agent", "acl_agent_token"]),
            agent_recovery: self.secret(&[
                "acl.tokens.agent_recovery",
                "acl.tokens.agent_master",
                "acl_agent_master_token",
            ]),
            default: self.secret(&["acl.tokens.default", "acl_token"]),
            replication: self.secret(&["acl.tokens.replication", "acl_replication_token"]),
            dns: self.secret(&["acl.tokens.dns"]),
            config_file_service_registration: self
                .secret(&["acl.tokens.config_file_service_registration"]),
        };
        if let Some(t) = &tokens.initial_management {
            if uuid::Uuid::try_parse(t.expose()).is_err() {
                self.warn(
                    "acl.tokens.initial_management is not a UUID; Consul's clients expect \
                     token secrets in UUID form",
                );
            }
        }
        AclConfig {
            enabled,
            default_policy: self
                .nonempty("acl.default_policy")
                .or_else(|| self.nonempty("acl_default_policy"))
                .unwrap_or(d.default_policy),
            down_policy: self
                .nonempty("acl.down_policy")
                .or_else(|| self.nonempty("acl_down_policy"))
                .unwrap_or(d.down_policy),
            enable_token_persistence: self
                .boolean("acl.enable_token_persistence")
                .unwrap_or(false),
            enable_key_list_policy: self.boolean("acl.enable_key_list_policy").unwrap_or(false),
            token_ttl: self
                .duration("acl.token_ttl")
                .or_else(|| self.duration("acl_ttl"))
                .unwrap_or(d.token_ttl),
            policy_ttl: self.duration("acl.policy_ttl").unwrap_or(d.policy_ttl),
            role_ttl: self.duration("acl.role_ttl").unwrap_or(d.role_ttl),
            tokens,
        }
    }

    fn reconnect_timeout(&mut self, path: &str) -> Duration {
        const MIN: Duration = Duration::from_secs(8 * 60);
        match self.duration(path) {
            None => Duration::from_secs(72 * 3600),
            Some(d) if d < MIN => {
                let shown = self.string(path);
                self.error(path, shown, format!("{path} must be >= 8m0s"));
                d
            }
            Some(d) => d,
        }
    }

    fn dns_config(&self) -> DnsConfig {
        let d = DnsConfig::default();
        let soa = DnsSoa::default();
        let service_ttl = match self.m.get("dns_config.service_ttl") {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| {
                    let ttl = parse_go_duration(v.as_str()?).ok()?;
                    Some((k.clone(), ttl))
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        DnsConfig {
            allow_stale: self
                .boolean("dns_config.allow_stale")
                .unwrap_or(d.allow_stale),
            max_stale: self.duration("dns_config.max_stale").unwrap_or(d.max_stale),
            node_ttl: self.duration("dns_config.node_ttl").unwrap_or(d.node_ttl),
            service_ttl,
            udp_answer_limit: self.uint("dns_config.udp_answer_limit", d.udp_answer_limit),
            a_record_limit: self.uint("dns_config.a_record_limit", d.a_record_limit),
            enable_truncate: self
                .boolean("dns_config.enable_truncate")
                .unwrap_or(d.enable_truncate),
            only_passing: self
                .boolean("dns_config.only_passing")
                .unwrap_or(d.only_passing),
            recursor_timeout: self
                .duration("dns_config.recursor_timeout")
                .unwrap_or(d.recursor_timeout),
            recursor_strategy: self
                .nonempty("dns_config.recursor_strategy")
                .unwrap_or(d.recursor_strategy),
            disable_compression: self
                .boolean("dns_config.disable_compression")
                .unwrap_or(d.disable_compression),
            enable_additional_node_meta_txt: self
                .boolean("dns_config.enable_additional_node_meta_txt")
                .unwrap_or(d.enable_additional_node_meta_txt),
            soa: DnsSoa {
                refresh: self.uint("dns_config.soa.refresh", soa.refresh),
                retry: self.uint("dns_config.soa.retry", soa.retry),
                expire: self.uint("dns_config.soa.expire", soa.expire),
                min_ttl: self.uint("dns_config.soa.min_ttl", soa.min_ttl),
            },
        }
    }

    fn gossip(&self, section: &str, d: GossipConfig) -> GossipConfig {
        let p = |key: &str| format!("{section}.{key}");
        GossipConfig {
            gossip_nodes: self.uint(&p("gossip_nodes"), d.gossip_nodes),
            gossip_interval: self
                .duration(&p("gossip_interval"))
                .unwrap_or(d.gossip_interval),
            probe_interval: self
                .duration(&p("probe_interval"))
                .unwrap_or(d.probe_interval),
            probe_timeout: self
                .duration(&p("probe_timeout"))
                .unwrap_or(d.probe_timeout),
            suspicion_mult: self.uint(&p("suspicion_mult"), d.suspicion_mult),
            retransmit_mult: self.uint(&p("retransmit_mult"), d.retransmit_mult),
        }
    }

    /// The user's tagged addresses plus Consul's defaults from the advertise addresses.
    fn tagged_addresses(&self, lan: IpAddr, wan: IpAddr) -> BTreeMap<String, String> {
        let mut tagged = self.string_map("tagged_addresses");
        let family = |ip: &IpAddr| if ip.is_ipv4() { "ipv4" } else { "ipv6" };
        let mut defaults = vec![
            ("lan".to_string(), lan),
            (format!("lan_{}", family(&lan)), lan),
            ("wan".to_string(), wan),
            (format!("wan_{}", family(&wan)), wan),
        ];
        for (key, path) in [
            ("lan_ipv4", "advertise_addr_ipv4"),
            ("lan_ipv6", "advertise_addr_ipv6"),
            ("wan_ipv4", "advertise_addr_wan_ipv4"),
            ("wan_ipv6", "advertise_addr_wan_ipv6"),
        ] {
            if let Some(ip) = self.ip(path) {
                defaults.insert(0, (key.to_string(), ip));
            }
        }
        for (key, ip) in defaults {
            tagged.entry(key).or_insert_with(|| ip.to_string());
        }
        tagged
    }

    fn plugins(
        &mut self,
        plugins: Vec<Located<super::runtime::PluginConfig>>,
    ) -> Vec<super::runtime::PluginConfig> {
        let mut names = BTreeSet::new();
        let mut out = Vec::with_capacity(plugins.len());
        for located in plugins {
            if !names.insert(located.item.name.clone()) {
                self.errors.push(ConfigError::new(
                    located.file.as_deref(),
                    format!("{}.name", located.path),
                    Some(render_value(&Value::String(located.item.name.clone()))),
                    "a plugin with this name is already defined",
                ));
                continue;
            }
            // Grants, limits, kind and events are the plugin host's to define.
            for problem in crate::plugins::check_config(&located.item) {
                self.errors.push(ConfigError::new(
                    located.file.as_deref(),
                    format!("{}.{}", located.path, problem.key),
                    problem.value.as_ref().map(render_value),
                    problem.message,
                ));
            }
            out.push(located.item);
        }
        out
    }
}

/// `consul` → `consul.`, lower-cased.
fn fqdn(domain: &str) -> String {
    let d = domain.to_lowercase();
    if d.ends_with('.') {
        d
    } else {
        format!("{d}.")
    }
}
