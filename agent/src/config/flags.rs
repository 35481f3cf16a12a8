//! `tribune agent` flags, parsed the way Go's `flag` package does (compat §14.3): `-flag`,
//! `--flag`, `-flag=value`, `-flag value`; booleans take `-flag` or `-flag=true|false`
//! (never a separate word). Every flag maps to the config key of the same meaning; the
//! values become one more source, merged after the files.

use super::error::{ConfigError, ConfigErrors, HIDDEN};
use super::source::ConfigFormat;
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlagKind {
    Bool,
    Str,
    /// A string never shown (`-encrypt`).
    Secret,
    Int,
    /// Repeatable; values append to a list.
    List,
    /// Repeatable `key:value` pairs (`-node-meta`).
    Meta,
    ConfigPath,
    ConfigFormat,
    Hcl,
    Dev,
    Help,
}

struct FlagSpec {
    name: &'static str,
    kind: FlagKind,
    /// The config key (dotted) the flag sets; empty for flags about loading itself.
    key: &'static str,
    usage: &'static str,
    /// A deprecation or no-effect notice printed when the flag is used.
    notice: Option<&'static str>,
}

const fn flag(
    name: &'static str,
    kind: FlagKind,
    key: &'static str,
    usage: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        key,
        usage,
        notice: None,
    }
}

const fn noted(
    name: &'static str,
    kind: FlagKind,
    key: &'static str,
    usage: &'static str,
    notice: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        key,
        usage,
        notice: Some(notice),
    }
}

use FlagKind as K;

/// Every flag of `tribune agent`.
#[rustfmt::skip]
const FLAGS: &[FlagSpec] = &[
    flag("advertise", K::Str, "advertise_addr", "Address to advertise to other agents."),
    flag("advertise-wan", K::Str, "advertise_addr_wan", "Address to advertise to WAN peers."),
    flag("alt-domain", K::Str, "alt_domain", "A second DNS domain to answer for."),
    noted("auto-reload-config", K::Bool, "auto_reload_config", "Watch config files and reload on change.", "-auto-reload-config is not supported yet; reload with SIGHUP or `tribune reload`"),
    flag("bind", K::Str, "bind_addr", "Address gossip and server RPC bind to."),
    flag("bootstrap", K::Bool, "bootstrap", "Let this server elect itself (single-server clusters)."),
    flag("bootstrap-expect", K::Int, "bootstrap_expect", "Servers to wait for before bootstrapping."),
    flag("check_output_max_size", K::Int, "check_output_max_size", "Bytes of check output kept."),
    flag("client", K::Str, "client_addr", "Space-separated addresses HTTP and DNS bind to."),
    flag("config-dir", K::ConfigPath, "", "Directory of *.json/*.hcl config files; repeatable."),
    flag("config-file", K::ConfigPath, "", "A JSON or HCL config file; repeatable."),
    flag("config-format", K::ConfigFormat, "", "Format of config files: json or hcl."),
    flag("data-dir", K::Str, "data_dir", "Directory for the agent's state."),
    flag("datacenter", K::Str, "datacenter", "Datacenter of this agent."),
    flag("dev", K::Dev, "", "Development mode: a single in-memory server on 127.0.0.1."),
    flag("disable-host-node-id", K::Bool, "disable_host_node_id", "Do not derive node-id from the host."),
    flag("disable-keyring-file", K::Bool, "disable_keyring_file", "Keep gossip keys in memory only."),
    flag("dns-port", K::Int, "ports.dns", "DNS port (-1 disables)."),
    flag("domain", K::Str, "domain", "DNS domain."),
    flag("enable-local-script-checks", K::Bool, "enable_local_script_checks", "Allow script checks from config files."),
    flag("enable-script-checks", K::Bool, "enable_script_checks", "Allow script checks from files and the API (dangerous)."),
    flag("encrypt", K::Secret, "encrypt", "Gossip encryption key (base64)."),
    flag("grpc-port", K::Int, "ports.grpc", "gRPC port (-1 disables)."),
    flag("grpc-tls-port", K::Int, "ports.grpc_tls", "gRPC TLS port (-1 disables)."),
    flag("h", K::Help, "", "Show this help."),
    flag("hcl", K::Hcl, "", "An HCL config fragment; repeatable."),
    flag("help", K::Help, "", "Show this help."),
    flag("http-port", K::Int, "ports.http", "HTTP API port (-1 disables)."),
    flag("https-port", K::Int, "ports.https", "HTTPS API port (-1 disables)."),
    noted("join", K::List, "start_join", "Address to join at start; repeatable.", "-join is deprecated; use -retry-join instead (treated the same)"),
    noted("join-wan", K::List, "start_join_wan", "WAN address to join at start; repeatable.", "-join-wan is deprecated; use -retry-join-wan instead (treated the same)"),
    flag("log-file", K::Str, "log_file", "Also log to this file."),
    flag("log-json", K::Bool, "log_json", "Log JSON lines."),
    flag("log-level", K::Str, "log_level", "trace, debug, info, warn or error."),
    flag("log-rotate-bytes", K::Int, "log_rotate_bytes", "Rotate the log file at this size."),
    flag("log-rotate-duration", K::Str, "log_rotate_duration", "Rotate the log file this often."),
    flag("log-rotate-max-files", K::Int, "log_rotate_max_files", "Rotated log files kept."),
    flag("node", K::Str, "node_name", "Node name."),
    flag("node-id", K::Str, "node_id", "Node UUID."),
    flag("node-meta", K::Meta, "node_meta", "Node metadata as key:value; repeatable."),
    noted("non-voting-server", K::Bool, "non_voting_server", "Enterprise: a non-voting server.", "-non-voting-server is a Consul Enterprise feature; ignored"),
    flag("pid-file", K::Str, "pid_file", "Write the agent's PID here."),
    noted("primary-gateway", K::List, "primary_gateways", "Mesh gateway of the primary datacenter; repeatable.", "-primary-gateway: service mesh is not supported; ignored"),
    noted("protocol", K::Int, "protocol", "Deprecated; no effect.", "-protocol is deprecated and has no effect"),
    flag("raft-protocol", K::Int, "raft_protocol", "Raft protocol version."),
    noted("read-replica", K::Bool, "read_replica", "Enterprise: a read replica.", "-read-replica is a Consul Enterprise feature; ignored"),
    flag("recursor", K::List, "recursors", "Upstream DNS server; repeatable."),
    flag("rejoin", K::Bool, "rejoin_after_leave", "Rejoin the cluster even after leaving."),
    flag("retry-interval", K::Str, "retry_interval", "Wait between join attempts."),
    flag("retry-interval-wan", K::Str, "retry_interval_wan", "Wait between WAN join attempts."),
    flag("retry-join", K::List, "retry_join", "Address to join, retried; repeatable."),
    flag("retry-join-wan", K::List, "retry_join_wan", "WAN address to join, retried; repeatable."),
    flag("retry-max", K::Int, "retry_max", "Join attempts (0: forever)."),
    flag("retry-max-wan", K::Int, "retry_max_wan", "WAN join attempts (0: forever)."),
    noted("segment", K::Str, "segment", "Enterprise: network segment.", "-segment is a Consul Enterprise feature; ignored"),
    flag("serf-lan-bind", K::Str, "serf_lan", "Bind address of LAN gossip."),
    flag("serf-lan-port", K::Int, "ports.serf_lan", "LAN gossip port."),
    flag("serf-wan-bind", K::Str, "serf_wan", "Bind address of WAN gossip."),
    flag("serf-wan-port", K::Int, "ports.serf_wan", "WAN gossip port."),
    flag("server", K::Bool, "server", "Run as a server."),
    flag("server-port", K::Int, "ports.server", "Server RPC port."),
    flag("syslog", K::Bool, "enable_syslog", "Also log to syslog."),
    flag("ui", K::Bool, "ui_config.enabled", "Serve the web UI."),
    flag("ui-content-path", K::Str, "ui_config.content_path", "URL path of the web UI."),
    flag("ui-dir", K::Str, "ui_config.dir", "Serve UI assets from this directory."),
];

/// The parsed command line of `tribune agent`. Build it with [`parse_agent_flags`].
#[derive(Clone, Default)]
pub struct AgentFlags {
    /// `-config-file` and `-config-dir` values in command-line order (each may be a file or
    /// a directory, as in Consul).
    pub config_paths: Vec<PathBuf>,
    /// `-config-format`: how to read files whatever their extension.
    pub config_format: Option<ConfigFormat>,
    /// `-dev`.
    pub dev: bool,
    /// `-hcl` fragments, merged after the files and the other flags.
    pub hcl: Vec<String>,
    /// `-h` / `-help`: the caller prints [`agent_flags_usage`] and exits.
    pub help: bool,
    /// Every other flag as config keys (nested objects), merged after the files.
    pub(crate) values: Map<String, Value>,
    /// Notices for deprecated or ignored flags.
    pub(crate) notices: Vec<String>,
}

impl fmt::Debug for AgentFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut values = self.values.clone();
        if values.contains_key("encrypt") {
            values.insert("encrypt".into(), Value::String(HIDDEN.into()));
        }
        f.debug_struct("AgentFlags")
            .field("config_paths", &self.config_paths)
            .field("config_format", &self.config_format)
            .field("dev", &self.dev)
            .field("hcl", &self.hcl.len())
            .field("help", &self.help)
            .field("values", &values)
            .finish()
    }
}

/// Parses `tribune agent`'s arguments (without the program name and the `agent` verb).
/// Every problem is reported: unknown flags, missing values, values of the wrong type.
pub fn parse_agent_flags(args: &[String]) -> Result<AgentFlags, ConfigErrors> {
    let mut flags = AgentFlags::default();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            for extra in &args[i..] {
                errors.push(unexpected(extra));
            }
            break;
        }
        let body = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            Some(body) if !body.is_empty() => body,
            _ => {
                errors.push(unexpected(arg));
                continue;
            }
        };
        if body.starts_with('-') || body.starts_with('=') {
            errors.push(ConfigError::new(
                None,
                arg.as_str(),
                None,
                format!("flag syntax is bad: {arg}"),
            ));
            continue;
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(spec) = FLAGS.iter().find(|f| f.name == name) else {
            errors.push(ConfigError::new(
                None,
                format!("-{name}"),
                None,
                format!("flag provided but not defined: -{name}"),
            ));
            continue;
        };
        let takes_value = !matches!(spec.kind, K::Bool | K::Dev | K::Help);
        let value = match (inline, takes_value) {
            (Some(v), _) => Some(v.to_string()),
            (None, false) => None,
            (None, true) => match args.get(i) {
                Some(v) => {
                    i += 1;
                    Some(v.clone())
                }
                None => {
                    errors.push(ConfigError::new(
                        None,
                        format!("-{name}"),
                        None,
                        format!("flag needs an argument: -{name}"),
                    ));
                    continue;
                }
            },
        };
        if let Err(e) = apply(&mut flags, spec, value) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(flags)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn unexpected(arg: &str) -> ConfigError {
    ConfigError::new(None, "", None, format!("unexpected argument {arg:?}"))
}

fn apply(
    flags: &mut AgentFlags,
    spec: &FlagSpec,
    value: Option<String>,
) -> Result<(), ConfigError> {
    let flag = format!("-{}", spec.name);
    let invalid = |value: &str, message: &str| {
        let shown = if spec.kind == K::Secret {
            HIDDEN
        } else {
            value
        };
        ConfigError::new(None, flag.as_str(), Some(shown.to_string()), message)
    };
    if let Some(notice) = spec.notice {
        if !flags.notices.iter().any(|n| n == notice) {
            flags.notices.push(notice.to_string());
        }
    }
    let text = match value {
        Some(text) => text,
        // Only booleans come without a value: `-flag` alone means true.
        None => "true".to_string(),
    };
    match spec.kind {
        K::Bool | K::Dev | K::Help => {
            // `-flag=` is Go's parse error like any other word that is not a boolean.
            let b = parse_go_bool(&text).ok_or_else(|| invalid(&text, "expected true or false"))?;
            match spec.kind {
                K::Dev => flags.dev = b,
                K::Help => flags.help = b,
                _ => set(&mut flags.values, spec.key, Value::Bool(b)),
            }
        }
        K::Str | K::Secret => set(&mut flags.values, spec.key, Value::String(text)),
        K::Int => {
            let n: i64 = text
                .trim()
                .parse()
                .map_err(|_| invalid(&text, "expected an integer"))?;
            set(&mut flags.values, spec.key, Value::from(n));
        }
        K::List => push(&mut flags.values, spec.key, Value::String(text)),
        K::Meta => {
            // Consul: `key:value`, or just `key` for an empty value.
            let (k, v) = text.split_once(':').unwrap_or((text.as_str(), ""));
            let path = format!("{}.{k}", spec.key);
            set(&mut flags.values, &path, Value::String(v.to_string()));
        }
        K::ConfigPath => flags.config_paths.push(PathBuf::from(text)),
        K::ConfigFormat => {
            flags.config_format = Some(
                ConfigFormat::parse(&text).ok_or_else(|| invalid(&text, "expected json or hcl"))?,
            )
        }
        K::Hcl => flags.hcl.push(text),
    }
    Ok(())
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Sets a dotted key path in a nested map (flag keys are ours and never contain dots
/// within a segment, except the `-node-meta` key, which is the last segment).
fn set(root: &mut Map<String, Value>, path: &str, value: Value) {
    let (parents, last) = split_path(path);
    let mut map = root;
    for part in parents {
        let entry = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        // Invariant: the entry was made an object just above.
        map = entry.as_object_mut().expect("entry is an object");
    }
    map.insert(last.to_string(), value);
}

fn push(root: &mut Map<String, Value>, path: &str, value: Value) {
    match root.get_mut(path) {
        Some(Value::Array(list)) => list.push(value),
        _ => {
            root.insert(path.to_string(), Value::Array(vec![value]));
        }
    }
}

/// `node_meta.rack:a` style paths split at the first dot for metadata, elsewhere at every
/// dot.
fn split_path(path: &str) -> (Vec<&str>, &str) {
    if let Some(rest) = path.strip_prefix("node_meta.") {
        return (vec!["node_meta"], rest);
    }
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or(path);
    (parts, last)
}

/// The flag that sets a config key path, for naming flags in errors (`ports.http` →
/// `-http-port`, `recursors[1]` → `-recursor`, `node_meta.rack` → `-node-meta`).
pub(crate) fn flag_for_key(path: &str) -> Option<String> {
    let base = path.split('[').next().unwrap_or(path);
    let mut p = base;
    loop {
        if let Some(spec) = FLAGS.iter().find(|f| !f.key.is_empty() && f.key == p) {
            return Some(format!("-{}", spec.name));
        }
        p = &p[..p.rfind('.')?];
    }
}

/// The flags split as Consul merges them: lists go before the files (so file lists come
/// after flag lists), everything else after the files.
pub(crate) fn split_lists(values: &Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    let mut lists = Map::new();
    let mut rest = Map::new();
    for (k, v) in values {
        if v.is_array() {
            lists.insert(k.clone(), v.clone());
        } else {
            rest.insert(k.clone(), v.clone());
        }
    }
    (lists, rest)
}

/// Help text for `tribune agent -h`: every flag with its meaning, alphabetical.
pub fn agent_flags_usage() -> String {
    let mut out =
        String::from("Usage: tribune agent [options]\n\n  Starts the Tribune agent.\n\nOptions:\n");
    for spec in FLAGS.iter().filter(|f| f.kind != K::Help) {
        let arg = match spec.kind {
            K::Bool | K::Dev | K::Help => String::new(),
            K::Int => "=<int>".into(),
            K::Meta => "=<key:value>".into(),
            K::ConfigFormat => "=<json|hcl>".into(),
            _ => "=<value>".into(),
        };
        out.push_str(&format!("\n  -{}{arg}\n      {}\n", spec.name, spec.usage));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_flag_syntax() {
        let f = parse_agent_flags(&args(&[
            "-server",
            "--bootstrap-expect=3",
            "-node",
            "n1",
            "-ui=false",
            "--syslog",
            "-retry-join",
            "a",
            "-retry-join=b",
            "-node-meta",
            "rack:r1",
            "-node-meta=solo",
            "-https-port",
            "-1",
            "-config-dir=/etc/tribune.d",
            "-config-file",
            "/etc/x.conf",
            "-config-format=hcl",
            "-dev",
            "-hcl",
            "log_json = true",
        ]))
        .unwrap();
        assert!(f.dev);
        assert_eq!(
            f.config_paths,
            vec![
                PathBuf::from("/etc/tribune.d"),
                PathBuf::from("/etc/x.conf")
            ]
        );
        assert_eq!(f.config_format, Some(ConfigFormat::Hcl));
        assert_eq!(f.hcl, vec!["log_json = true"]);
        assert_eq!(
            Value::Object(f.values),
            json!({
                "server": true, "bootstrap_expect": 3, "node_name": "n1",
                "ui_config": {"enabled": false}, "enable_syslog": true,
                "retry_join": ["a", "b"], "node_meta": {"rack": "r1", "solo": ""},
                "ports": {"https": -1}
            })
        );
    }

    #[test]
    fn every_flag_problem_is_reported() {
        let e = parse_agent_flags(&args(&[
            "-nope",
            "-http-port=abc",
            "-server=maybe",
            "stray",
            "-encrypt",
        ]))
        .unwrap_err();
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "flag provided but not defined: -nope",
                "flag -http-port: invalid value \"abc\": expected an integer",
                "flag -server: invalid value \"maybe\": expected true or false",
                "unexpected argument \"stray\"",
                "flag needs an argument: -encrypt",
            ]
        );
    }

    #[test]
    fn boolean_flags_never_take_the_next_word() {
        let e = parse_agent_flags(&args(&["-server", "false"])).unwrap_err();
        assert_eq!(e.0[0].message, "unexpected argument \"false\"");
    }

    #[test]
    fn keys_map_back_to_flags() {
        assert_eq!(flag_for_key("ports.http").as_deref(), Some("-http-port"));
        assert_eq!(flag_for_key("recursors[1]").as_deref(), Some("-recursor"));
        assert_eq!(
            flag_for_key("node_meta.rack").as_deref(),
            Some("-node-meta")
        );
        assert_eq!(flag_for_key("bind_addr").as_deref(), Some("-bind"));
    }

    #[test]
    fn every_flag_key_is_a_config_key() {
        use crate::config::schema::{Kind, TOP};
        for spec in FLAGS.iter().filter(|f| !f.key.is_empty()) {
            let mut fields = TOP;
            let parts: Vec<&str> = spec.key.split('.').collect();
            for (n, part) in parts.iter().enumerate() {
                let field = fields
                    .iter()
                    .find(|f| f.name == *part)
                    .unwrap_or_else(|| panic!("-{} sets unknown key {}", spec.name, spec.key));
                if n + 1 < parts.len() {
                    match field.kind {
                        Kind::Object(inner) => fields = inner,
                        _ => panic!("{} is not an object", part),
                    }
                }
            }
        }
    }

    #[test]
    fn debug_hides_the_encrypt_flag() {
        let f = parse_agent_flags(&args(&["-encrypt=c2VjcmV0"])).unwrap();
        assert!(!format!("{f:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn usage_lists_flags() {
        let u = agent_flags_usage();
        assert!(u.contains("-retry-join=<value>"));
        assert!(u.contains("-dev\n"));
    }
}
