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

/// A field's value, borrowed from its record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// A field's value as stored: strings are ranges of the record's text.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Str(usize, usize),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// Fields kept inline up to this many; more go to the heap.
const INLINE: usize = 6;

/// An event's fields: most events have a handful, kept inline so capturing them does
/// not allocate.
#[derive(Clone, Debug)]
struct Slots {
    len: usize,
    inline: [(&'static str, Slot); INLINE],
    spill: Vec<(&'static str, Slot)>,
}

impl Default for Slots {
    fn default() -> Slots {
        Slots {
            len: 0,
            inline: [("", Slot::Bool(false)); INLINE],
            spill: Vec::new(),
        }
    }
}

impl Slots {
    fn push(&mut self, field: (&'static str, Slot)) {
        if self.len < INLINE {
            self.inline[self.len] = field;
        } else {
            self.spill.push(field);
        }
        self.len += 1;
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn iter(&self) -> impl Iterator<Item = &(&'static str, Slot)> + '_ {
        self.inline[..self.len.min(INLINE)]
            .iter()
            .chain(self.spill.iter())
    }
}

/// One event, owned, shared by every sink that takes it. The message and every string
/// value live in one buffer, so capturing an event costs two allocations (this record
/// and its text), whatever its fields.
#[derive(Debug)]
pub struct Record {
    /// Seconds and nanoseconds since the Unix epoch (UTC).
    pub secs: i64,
    pub nanos: u32,
    pub level: Level,
    pub module: &'static str,
    /// The library's own target, for events that are not Tribune's.
    pub origin: Option<Cow<'static, str>>,
    text: String,
    message: (usize, usize),
    fields: Slots,
    /// Passed the agent's `log_level` (otherwise only a more verbose monitor wants it).
    pub for_sinks: bool,
    /// Whether the message and values hold nothing to hide: decided by the first sink
    /// that formats the record, so the others skip scrubbing a clean line.
    pub clean: std::sync::OnceLock<bool>,
}

impl Record {
    /// A record stamped now, without fields (tests, the monitor's own notices).
    pub fn now(level: Level, module: &'static str, message: &str) -> Record {
        let (secs, nanos) = now();
        let mut c = Capture::new();
        c.text.push_str(message);
        c.message = (0, message.len());
        Record::from_capture(c, secs, nanos, level, module, None, true)
    }

    pub fn from_capture(
        c: Capture,
        secs: i64,
        nanos: u32,
        level: Level,
        module: &'static str,
        origin: Option<Cow<'static, str>>,
        for_sinks: bool,
    ) -> Record {
        Record {
            secs,
            nanos,
            level,
            module,
            origin,
            text: c.text,
            message: c.message,
            fields: c.fields,
            for_sinks,
            clean: std::sync::OnceLock::new(),
        }
    }

    /// Adds a field (ignored if one of that name exists).
    #[cfg(test)]
    pub fn with(mut self, name: &'static str, value: Value<'_>) -> Record {
        if !self.fields.iter().any(|(n, _)| *n == name) {
            let slot = store(&mut self.text, value);
            self.fields.push((name, slot));
        }
        self
    }

    pub fn message(&self) -> &str {
        &self.text[self.message.0..self.message.1]
    }

    /// The fields in order, each name once.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, Value<'_>)> + '_ {
        self.fields.iter().map(|(n, s)| (*n, self.value(s)))
    }

    pub fn has_fields(&self) -> bool {
        !self.fields.is_empty()
    }

    fn value(&self, slot: &Slot) -> Value<'_> {
        match *slot {
            Slot::Str(a, b) => Value::Str(&self.text[a..b]),
            Slot::I64(n) => Value::I64(n),
            Slot::U64(n) => Value::U64(n),
            Slot::F64(n) => Value::F64(n),
            Slot::Bool(b) => Value::Bool(b),
        }
    }

    /// Roughly the memory the record holds, for the queues' byte bounds.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Record>() + self.text.len()
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

fn store(text: &mut String, value: Value<'_>) -> Slot {
    match value {
        Value::Str(s) => {
            let start = text.len();
            text.push_str(s);
            Slot::Str(start, text.len())
        }
        Value::I64(n) => Slot::I64(n),
        Value::U64(n) => Slot::U64(n),
        Value::F64(n) => Slot::F64(n),
        Value::Bool(b) => Slot::Bool(b),
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

/// A `tracing` visitor that collects an event's (or a span's) message and fields into
/// one text buffer.
#[derive(Debug, Default)]
pub struct Capture {
    text: String,
    message: (usize, usize),
    fields: Slots,
    /// `log.target` of an event bridged from the `log` crate.
    pub log_target: Option<String>,
}

impl Capture {
    pub fn new() -> Capture {
        Capture {
            text: String::with_capacity(128),
            ..Capture::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Adds the fields of `other` (a span's) whose names this one lacks.
    pub fn merge(&mut self, other: &Capture) {
        for &(name, slot) in other.fields.iter() {
            if self.fields.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let value = match slot {
                Slot::Str(a, b) => Value::Str(&other.text[a..b]),
                Slot::I64(n) => Value::I64(n),
                Slot::U64(n) => Value::U64(n),
                Slot::F64(n) => Value::F64(n),
                Slot::Bool(b) => Value::Bool(b),
            };
            let slot = store(&mut self.text, value);
            self.fields.push((name, slot));
        }
    }

    fn put(&mut self, name: &'static str, slot: Slot) {
        // A name given twice (an event field repeating a span's) keeps the first value.
        if self.fields.iter().any(|(n, _)| *n == name) {
            return;
        }
        if is_secret_field(name) {
            let start = self.text.len();
            self.text.push_str(HIDDEN);
            self.fields.push((name, Slot::Str(start, self.text.len())));
        } else {
            self.fields.push((name, slot));
        }
    }

    /// Appends what `write` writes to the text; files it as the message or as a field.
    fn put_text(&mut self, name: &'static str, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        let end = self.text.len();
        if name == "message" {
            self.message = (start, end);
        } else if let Some(rest) = name.strip_prefix("log.") {
            // The `log` crate bridge's metadata: only the target is of use.
            if rest == "target" {
                self.log_target = Some(self.text[start..end].to_string());
            }
            self.text.truncate(start);
        } else if is_secret_field(name) || self.fields.iter().any(|(n, _)| *n == name) {
            self.text.truncate(start);
            self.put(name, Slot::Bool(false));
        } else {
            self.fields.push((name, Slot::Str(start, end)));
        }
    }
}

impl Visit for Capture {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put_text(field.name(), |t| t.push_str(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put_text(field.name(), |t| {
            let _ = write!(t, "{value:?}");
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_text(field.name(), |t| {
            let _ = write!(t, "{value}");
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field.name(), Slot::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field.name(), Slot::U64(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field.name(), Slot::I64(v)),
            Err(_) => self.put_text(field.name(), |t| {
                let _ = write!(t, "{value}");
            }),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.put(field.name(), Slot::U64(v)),
            Err(_) => self.put_text(field.name(), |t| {
                let _ = write!(t, "{value}");
            }),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field.name(), Slot::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field.name(), Slot::Bool(value));
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
