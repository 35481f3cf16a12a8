//! The operator's side of a plugin: `plugins[]` from the agent config (a
//! [`PluginConfig`], shape-checked by `config`) turned into checked grants, limits and
//! event subscriptions. [`check_config`] reports every problem at once, for
//! `tribune validate` and agent start; [`Settings::from_config`] builds what the host uses.

use super::manifest::{EventKind, Kind};
use super::pattern::{AddrPattern, PrefixPattern};
use crate::config::PluginConfig;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Default fuel per call: a few seconds of busy guest code on this class of machine, far
/// more than any check needs. It bounds the CPU a call may burn whatever its deadline.
pub const DEFAULT_FUEL: u64 = 5_000_000_000;
/// Default memory cap per instance (all linear memories of the component together).
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// The largest memory cap an operator may set (the pooling allocator's slot size).
pub const MAX_MEMORY_MB: u64 = 512;
/// Default host-call quota per call.
pub const DEFAULT_HOST_CALLS: u32 = 1_000;
/// Default time limit of a tag rewrite (it runs on the registration path).
pub const DEFAULT_REWRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// Default time limit of one event delivery to a hook.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Default length of an event hook's queue.
pub const DEFAULT_QUEUE_SIZE: usize = 1024;

/// The limits of one plugin (`plugins[].limits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `fuel`: WebAssembly fuel per call (about one unit per instruction).
    pub fuel: u64,
    /// `memory_mb`: cap on the instance's linear memories, bytes.
    pub memory_bytes: u64,
    /// `host_calls`: host imports a single call may make.
    pub host_calls: u32,
    /// `timeout`: deadline of a rewrite or an event delivery (checks use their own
    /// `timeout`). `None`: the kind's default.
    pub timeout: Option<Duration>,
    /// `queue_size`: events an event hook may have waiting.
    pub queue_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_MB << 20,
            host_calls: DEFAULT_HOST_CALLS,
            timeout: None,
            queue_size: DEFAULT_QUEUE_SIZE,
        }
    }
}

/// What the operator grants (`plugins[].grants`). A capability works only where the
/// plugin's manifest declares it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants {
    /// `log`: lines from the plugin reach the agent's log (default on).
    pub log: bool,
    /// `http`: hosts (`host`, `host:port`, `*.domain`, `*`) the plugin may fetch from.
    pub http: Vec<AddrPattern>,
    /// `tcp`: `host:port` addresses the plugin may connect to.
    pub tcp: Vec<AddrPattern>,
    /// `kv-read`: KV prefixes the plugin may read under.
    pub kv_read: Vec<PrefixPattern>,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            log: true,
            http: Vec::new(),
            tcp: Vec::new(),
            kv_read: Vec::new(),
        }
    }
}

/// One plugin as the operator configured it, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub name: String,
    pub path: PathBuf,
    pub kind: Option<Kind>,
    /// `config` as JSON text (`null` when absent).
    pub config_json: String,
    pub grants: Grants,
    pub limits: Limits,
    /// `events`: the event kinds a hook receives; `None`: what its manifest subscribes to.
    pub events: Option<Vec<EventKind>>,
}

/// One problem in a `plugins[]` entry: the key under the entry (`grants.http[0]`), the
/// offending value, and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub value: Option<Value>,
    pub message: String,
}

const LIMIT_KEYS: &[&str] = &["fuel", "memory_mb", "host_calls", "timeout", "queue_size"];
const GRANT_KEYS: &[&str] = &["log", "http", "tcp", "kv-read", "kv_read"];

/// Every problem of one `plugins[]` entry beyond its shape.
pub fn check_config(p: &PluginConfig) -> Vec<ConfigProblem> {
    match Settings::from_config(p) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

impl Settings {
    /// Checks and converts one `plugins[]` entry; every problem at once.
    pub fn from_config(p: &PluginConfig) -> Result<Settings, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: String, value: Option<&Value>, message: String| {
            problems.push(ConfigProblem {
                key,
                value: value.cloned(),
                message,
            })
        };

        let kind = match p.kind.as_deref() {
            None => None,
            Some(k) => match Kind::parse(k) {
                Some(kind) => Some(kind),
                None => {
                    problem(
                        "kind".into(),
                        Some(&Value::String(k.into())),
                        "expected one of health-check, tag-rewriter, event-hook".into(),
                    );
                    None
                }
            },
        };

        let mut limits = Limits::default();
        for (key, v) in &p.limits {
            let at = format!("limits.{key}");
            match key.as_str() {
                "fuel" => match v.as_u64() {
                    Some(n) if n > 0 => limits.fuel = n,
                    _ => problem(at, Some(v), "expected a positive integer".into()),
                },
                "memory_mb" => match v.as_u64() {
                    Some(n) if (1..=MAX_MEMORY_MB).contains(&n) => limits.memory_bytes = n << 20,
                    _ => problem(
                        at,
                        Some(v),
                        format!("expected an integer from 1 to {MAX_MEMORY_MB}"),
                    ),
                },
                "host_calls" => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if n > 0 => limits.host_calls = n,
                    _ => problem(at, Some(v), "expected a positive integer".into()),
                },
                "timeout" => match v.as_str().map(tribune_api::parse_go_duration) {
                    Some(Ok(d)) if !d.is_zero() => limits.timeout = Some(d),
                    _ => problem(
                        at,
                        Some(v),
                        "expected a positive duration such as \"100ms\" or \"5s\"".into(),
                    ),
                },
                "queue_size" => match v.as_u64() {
                    Some(n) if (1..=1 << 20).contains(&n) => limits.queue_size = n as usize,
                    _ => problem(at, Some(v), "expected an integer from 1 to 1048576".into()),
                },
                _ => problem(
                    at,
                    None,
                    format!("unknown limit; expected one of {}", LIMIT_KEYS.join(", ")),
                ),
            }
        }

        let mut grants = Grants::default();
        for (key, v) in &p.grants {
            let at = format!("grants.{key}");
            match key.as_str() {
                "log" => match v.as_bool() {
                    Some(b) => grants.log = b,
                    None => problem(at, Some(v), "expected true or false".into()),
                },
                "http" | "tcp" => {
                    let tcp = key == "tcp";
                    let Some(items) = list_of_strings(v) else {
                        problem(at, Some(v), "expected a list of strings".into());
                        continue;
                    };
                    for (i, s) in items.iter().enumerate() {
                        let parsed = if tcp {
                            AddrPattern::parse_tcp(s)
                        } else {
                            AddrPattern::parse_http(s)
                        };
                        match parsed {
                            Ok(pat) if tcp => grants.tcp.push(pat),
                            Ok(pat) => grants.http.push(pat),
                            Err(e) => {
                                problem(format!("{at}[{i}]"), Some(&Value::String(s.clone())), e)
                            }
                        }
                    }
                }
                "kv-read" | "kv_read" => {
                    let Some(items) = list_of_strings(v) else {
                        problem(at, Some(v), "expected a list of KV prefixes".into());
                        continue;
                    };
                    grants
                        .kv_read
                        .extend(items.iter().map(|s| PrefixPattern::new(s)));
                }
                _ => problem(
                    at,
                    None,
                    format!(
                        "unknown capability; expected one of {}",
                        GRANT_KEYS.join(", ")
                    ),
                ),
            }
        }

        let events = match &p.events {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for (i, e) in list.iter().enumerate() {
                    match EventKind::parse(e) {
                        Some(k) => out.push(k),
                        None => problem(
                            format!("events[{i}]"),
                            Some(&Value::String(e.clone())),
                            format!(
                                "unknown event kind; expected one of {}",
                                EventKind::ALL
                                    .iter()
                                    .map(|k| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ),
                    }
                }
                Some(out)
            }
        };

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Settings {
            name: p.name.clone(),
            path: p.path.clone(),
            kind,
            config_json: p.config.to_string(),
            grants,
            limits,
            events,
        })
    }

    /// The deadline of a rewrite or an event delivery.
    pub fn call_timeout(&self, kind: Kind) -> Duration {
        self.limits.timeout.unwrap_or(match kind {
            Kind::TagRewriter => DEFAULT_REWRITE_TIMEOUT,
            Kind::HealthCheck | Kind::EventHook => DEFAULT_HOOK_TIMEOUT,
        })
    }
}

/// A string or a list of strings (HCL writes a one-element list either way).
fn list_of_strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> PluginConfig {
        let map = |k: &str| -> std::collections::BTreeMap<String, Value> {
            v.get(k)
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        PluginConfig {
            name: "p".into(),
            path: "p.wasm".into(),
            kind: v.get("kind").and_then(Value::as_str).map(str::to_string),
            config: v.get("config").cloned().unwrap_or(Value::Null),
            grants: map("grants"),
            limits: map("limits"),
            events: v.get("events").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            }),
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let s = Settings::from_config(&config(json!({}))).unwrap();
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.grants, Grants::default());
        assert!(s.grants.log);
        assert_eq!(s.config_json, "null");
        assert_eq!(s.call_timeout(Kind::TagRewriter), DEFAULT_REWRITE_TIMEOUT);
    }

    #[test]
    fn grants_and_limits_are_read() {
        let s = Settings::from_config(&config(json!({
            "kind": "health-check",
            "config": {"url": "http://x"},
            "grants": {"log": false, "http": ["127.0.0.1:8080", "*.example.com"], "tcp": "127.0.0.1:6379", "kv-read": ["app/"]},
            "limits": {"fuel": 1000, "memory_mb": 16, "host_calls": 5, "timeout": "250ms", "queue_size": 8},
            "events": ["service-registered", "leader-changed"],
        })))
        .unwrap();
        assert_eq!(s.kind, Some(Kind::HealthCheck));
        assert!(!s.grants.log);
        assert_eq!(s.grants.http.len(), 2);
        assert_eq!(s.grants.tcp.len(), 1);
        assert_eq!(s.grants.kv_read.len(), 1);
        assert_eq!(s.limits.fuel, 1000);
        assert_eq!(s.limits.memory_bytes, 16 << 20);
        assert_eq!(s.limits.host_calls, 5);
        assert_eq!(s.limits.timeout, Some(Duration::from_millis(250)));
        assert_eq!(s.limits.queue_size, 8);
        assert_eq!(
            s.events,
            Some(vec![EventKind::ServiceRegistered, EventKind::LeaderChanged])
        );
        assert_eq!(s.config_json, r#"{"url":"http://x"}"#);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = check_config(&config(json!({
            "kind": "checker",
            "grants": {"http": ["http://x/"], "tcp": ["noport"], "exec": true, "log": "yes"},
            "limits": {"fuel": 0, "memory_mb": 4096, "stack": 1, "timeout": "soon"},
            "events": ["service-registered", "reboot"],
        })));
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "kind",
                "limits.fuel",
                "limits.memory_mb",
                "limits.stack",
                "limits.timeout",
                "grants.exec",
                "grants.http[0]",
                "grants.log",
                "grants.tcp[0]",
                "events[1]",
            ],
            "{problems:#?}"
        );
        assert!(problems[3].message.contains("expected one of fuel"));
    }
}
