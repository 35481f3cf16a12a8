//! One captured event: what the calling thread copies out of a `tracing` event before the
//! sinks see it, and the fixed subsystem an event belongs to.
//!
//! Capturing is the only logging work done on the caller's thread, so it stays small: a
//! clock read, the message and the fields as owned values, secret-named fields replaced.
//! Formatting, scrubbing and I/O happen on the sinks' own threads.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};

/// What a redacted value is replaced with (Consul's word for it).
pub const HIDDEN: &str = "<hidden>";

/// The subsystems every event is filed under (`@module` in JSON, MSGID in syslog).
pub const SUBSYSTEMS: [&str; 9] = [
    "agent", "raft", "gossip", "http", "checks", "plugins", "acl", "dns", "rpc",
];

/// Libraries whose events are filed under one of our subsystems; their own target is kept
/// as the event's origin. Anything else is filed under `agent`.
const LIBRARIES: &[(&str, &str)] = &[
    ("openraft", "raft"),
    ("sled", "raft"),
    ("foca", "gossip"),
    ("hyper", "http"),
    ("hyper_util", "http"),
    ("axum", "http"),
    ("h2", "http"),
    ("tower", "http"),
    ("reqwest", "http"),
    ("wasmtime", "plugins"),
    ("cranelift", "plugins"),
    ("wasi", "plugins"),
    ("hickory", "dns"),
];

/// Log levels, most severe first; the number orders verbosity (`Error` = 1 ... `Trace` = 5,
/// 0 is "off" where a threshold is meant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    /// Parses Consul's level names, any case (`err` and `warning` too).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "" | "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "err" | "error" => Level::Error,
            _ => return None,
        })
    }

    pub fn from_tracing(l: &tracing::Level) -> Level {
        match *l {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::INFO => Level::Info,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::TRACE => Level::Trace,
        }
    }

    /// The name in JSON output (`@level`) and in structured data.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// hclog's bracketed tag, padded to one width so messages line up.
    pub fn tag(self) -> &'static str {
        match self {
            Level::Error => "[ERROR]",
            Level::Warn => "[WARN] ",
            Level::Info => "[INFO] ",
            Level::Debug => "[DEBUG]",
            Level::Trace => "[TRACE]",
        }
    }

    /// Consul's level → syslog severity mapping (compat §14.5): TRACE→DEBUG, DEBUG→INFO,
    /// INFO→NOTICE, WARN→WARNING, ERROR→ERR.
    pub fn syslog_severity(self) -> u8 {
        match self {
            Level::Trace => 7,
            Level::Debug => 6,
            Level::Info => 5,
            Level::Warn => 4,
            Level::Error => 3,
        }
    }

    pub fn from_u8(n: u8) -> Option<Level> {
        Some(match n {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            5 => Level::Trace,
            _ => return None,
        })
    }
}

/// The threshold for library events given ours: one step quieter, so `debug` does not
/// drown the agent's lines in openraft's (`trace` shows their `info`).
pub fn library_threshold(own: u8) -> u8 {
    let quieter = if own >= Level::Trace as u8 {
        Level::Info as u8
    } else {
        Level::Warn as u8
    };
    own.min(quieter)
}

/// The subsystem of a tracing target, and whether the target is Tribune's own.
pub fn classify(target: &str) -> (&'static str, bool) {
    if let Some(s) = SUBSYSTEMS.iter().find(|s| **s == target) {
        return (s, true);
    }
    if let Some(rest) = target.strip_prefix("tribune_agent") {
        let first = rest
            .trim_start_matches("::")
            .split("::")
            .next()
            .unwrap_or("");
        let module = SUBSYSTEMS
            .iter()
            .find(|s| **s == first)
            .copied()
            .unwrap_or("agent");
        return (module, true);
    }
    for (prefix, module) in LIBRARIES {
        if let Some(rest) = target.strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with("::") || rest.starts_with('_') {
                return (module, false);
            }
        }
    }
    ("agent", false)
}

/// A field's value as captured.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// One event, owned, shared by every sink that takes it.
#[derive(Debug)]
pub struct Record {
    /// Seconds and nanoseconds since the Unix epoch (UTC).
    pub secs: i64,
    pub nanos: u32,
    pub level: Level,
    pub module: &'static str,
    /// The library's own target, for events that are not Tribune's.
    pub origin: Option<Cow<'static, str>>,
    pub message: String,
    pub fields: Vec<(&'static str, Value)>,
    /// Passed the agent's `log_level` (otherwise only a more verbose monitor wants it).
    pub for_sinks: bool,
}

impl Record {
    /// A record stamped now (used by tests and by the monitor's own notices).
    pub fn now(level: Level, module: &'static str, message: impl Into<String>) -> Record {
        let (secs, nanos) = now();
        Record {
            secs,
            nanos,
            level,
            module,
            origin: None,
            message: message.into(),
            fields: Vec::new(),
            for_sinks: true,
        }
    }

    /// Roughly the memory the record holds, for the queues' byte bounds.
    pub fn weight(&self) -> usize {
        let fields: usize = self
            .fields
            .iter()
            .map(|(_, v)| match v {
                Value::Str(s) => s.len() + 48,
                _ => 48,
            })
            .sum();
        128 + self.message.len() + fields
    }

    /// Whether a reader at `threshold` (own events) wants this record.
    pub fn passes(&self, threshold: u8) -> bool {
        let t = if self.origin.is_some() {
            library_threshold(threshold)
        } else {
            threshold
        };
        self.level as u8 <= t
    }
}

pub fn now() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

/// Field names whose values are secrets wherever they appear: replaced at capture.
pub fn is_secret_field(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "token",
        "secret",
        "secret_id",
        "secretid",
        "password",
        "passwd",
        "encrypt",
        "gossip_key",
        "authorization",
        "x_consul_token",
    ];
    const SUFFIXES: &[&str] = &["_token", "_secret", "_password", "_key_material"];
    let lower;
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = name.to_ascii_lowercase();
        lower.as_str()
    } else {
        name
    };
    EXACT.contains(&name) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// A `tracing` visitor that fills a [`Record`]'s message and fields.
pub struct Capture {
    pub message: String,
    pub fields: Vec<(&'static str, Value)>,
    /// `log.target` of an event bridged from the `log` crate.
    pub log_target: Option<String>,
}

impl Capture {
    pub fn new() -> Capture {
        Capture {
            message: String::new(),
            fields: Vec::new(),
            log_target: None,
        }
    }

    fn put(&mut self, name: &'static str, value: Value) {
        if is_secret_field(name) {
            self.fields.push((name, Value::Str(HIDDEN.to_string())));
        } else {
            self.fields.push((name, value));
        }
    }

    fn put_string(&mut self, name: &'static str, s: String) {
        if name == "message" {
            self.message = s;
        } else if let Some(rest) = name.strip_prefix("log.") {
            // The `log` crate bridge's metadata: only the target is of use.
            if rest == "target" {
                self.log_target = Some(s);
            }
        } else {
            self.put(name, Value::Str(s));
        }
    }
}

impl Default for Capture {
    fn default() -> Self {
        Capture::new()
    }
}

impl Visit for Capture {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_string(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put_string(field.name(), s);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_string(field.name(), value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field.name(), Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field.name(), Value::U64(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field.name(), Value::I64(v)),
            Err(_) => self.put_string(field.name(), value.to_string()),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.put(field.name(), Value::U64(v)),
            Err(_) => self.put_string(field.name(), value.to_string()),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field.name(), Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field.name(), Value::Bool(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_to_fixed_subsystems() {
        for s in SUBSYSTEMS {
            assert_eq!(classify(s), (s, true));
        }
        assert_eq!(classify("tribune_agent::http::agent"), ("http", true));
        assert_eq!(classify("tribune_agent::local"), ("agent", true));
        assert_eq!(classify("tribune_agent"), ("agent", true));
        assert_eq!(classify("openraft::core::raft_core"), ("raft", false));
        assert_eq!(classify("sled::pagecache"), ("raft", false));
        assert_eq!(classify("hickory_server::server"), ("dns", false));
        assert_eq!(classify("hyper_util::client"), ("http", false));
        assert_eq!(classify("h2"), ("http", false));
        assert_eq!(
            classify("h2o"),
            ("agent", false),
            "a prefix is a whole crate name"
        );
        assert_eq!(classify("something_else"), ("agent", false));
    }

    #[test]
    fn levels_parse_like_consul() {
        assert_eq!(Level::parse("ERR"), Some(Level::Error));
        assert_eq!(Level::parse("Warning"), Some(Level::Warn));
        assert_eq!(Level::parse("TRACE"), Some(Level::Trace));
        assert_eq!(Level::parse("loud"), None);
        let sev: Vec<u8> = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ]
        .iter()
        .map(|l| l.syslog_severity())
        .collect();
        assert_eq!(sev, vec![7, 6, 5, 4, 3], "compat §14.5");
    }

    #[test]
    fn libraries_are_one_step_quieter() {
        assert_eq!(library_threshold(Level::Trace as u8), Level::Info as u8);
        assert_eq!(library_threshold(Level::Debug as u8), Level::Warn as u8);
        assert_eq!(library_threshold(Level::Info as u8), Level::Warn as u8);
        assert_eq!(library_threshold(Level::Error as u8), Level::Error as u8);
        assert_eq!(library_threshold(0), 0);
    }

    #[test]
    fn secret_field_names() {
        for n in [
            "token",
            "Token",
            "acl_token",
            "secret_id",
            "SecretID",
            "encrypt",
            "gossip_key",
        ] {
            assert!(is_secret_field(n), "{n}");
        }
        for n in ["tokens", "token_ttl", "service", "key", "check_id"] {
            assert!(!is_secret_field(n), "{n}");
        }
    }
}
