//! The plugin's side: its manifest (`plugin.toml`), carried inside the component in a
//! custom section named `tribune:manifest` (written by the Rust SDK's export macro or by
//! `tribune plugin pack`), and the SDK stamp in `tribune:sdk`.
//!
//! ```toml
//! [plugin]
//! name = "http-json"
//! version = "0.1.0"
//! kind = "health-check"            # or tag-rewriter, event-hook
//! description = "Fetches a URL and compares a JSON path with an expected value."
//!
//! [capabilities]                   # what the plugin may ask for; the operator grants
//! log = true
//! http = ["*"]                     # hosts, host:port, *.domain
//! tcp = ["*:6379"]                 # host:port
//! kv-read = ["config/"]            # KV prefixes
//!
//! [events]                         # event hooks: what they receive by default
//! subscribe = ["service-registered", "check-status-changed"]
//! ```

use super::pattern::{AddrPattern, PrefixPattern};
use serde::Deserialize;
use std::fmt;

/// The custom section holding the manifest (TOML text).
pub const MANIFEST_SECTION: &str = "tribune:manifest";
/// The custom section holding the SDK stamp (`rust 0.1.0`, `c 0.1.0`, ...).
pub const SDK_SECTION: &str = "tribune:sdk";

/// The three plugin kinds, one per WIT world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    HealthCheck,
    TagRewriter,
    EventHook,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "health-check" => Some(Kind::HealthCheck),
            "tag-rewriter" => Some(Kind::TagRewriter),
            "event-hook" => Some(Kind::EventHook),
            _ => None,
        }
    }

    /// The world name, which is also the kind's name in config and manifests.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::HealthCheck => "health-check",
            Kind::TagRewriter => "tag-rewriter",
            Kind::EventHook => "event-hook",
        }
    }

    /// The interface the world exports (`tribune:plugin/<it>`).
    pub fn export_interface(&self) -> &'static str {
        match self {
            Kind::HealthCheck => "check",
            Kind::TagRewriter => "rewrite",
            Kind::EventHook => "hook",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of events a hook can subscribe to (WIT `event-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    ServiceRegistered,
    ServiceDeregistered,
    CheckStatusChanged,
    MemberJoined,
    MemberFailed,
    MemberLeft,
    LeaderChanged,
    UserEvent,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::ServiceRegistered,
        EventKind::ServiceDeregistered,
        EventKind::CheckStatusChanged,
        EventKind::MemberJoined,
        EventKind::MemberFailed,
        EventKind::MemberLeft,
        EventKind::LeaderChanged,
        EventKind::UserEvent,
    ];

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::ServiceRegistered => "service-registered",
            EventKind::ServiceDeregistered => "service-deregistered",
            EventKind::CheckStatusChanged => "check-status-changed",
            EventKind::MemberJoined => "member-joined",
            EventKind::MemberFailed => "member-failed",
            EventKind::MemberLeft => "member-left",
            EventKind::LeaderChanged => "leader-changed",
            EventKind::UserEvent => "user-event",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, checked manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: Option<Kind>,
    pub description: String,
    pub capabilities: Declared,
    /// Event hooks: the kinds received unless the operator's `events` says otherwise.
    pub subscribe: Vec<EventKind>,
}

/// The capabilities a manifest declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Declared {
    pub log: bool,
    pub http: Vec<AddrPattern>,
    pub tcp: Vec<AddrPattern>,
    pub kv_read: Vec<PrefixPattern>,
}

impl Declared {
    /// `log, http(*), tcp(*:6379)` for `tribune plugin inspect` and the API.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.log {
            out.push("log".to_string());
        }
        let join = |v: &[String]| v.join(" ");
        if !self.http.is_empty() {
            let v: Vec<String> = self.http.iter().map(|p| p.to_string()).collect();
            out.push(format!("http({})", join(&v)));
        }
        if !self.tcp.is_empty() {
            let v: Vec<String> = self.tcp.iter().map(|p| p.to_string()).collect();
            out.push(format!("tcp({})", join(&v)));
        }
        if !self.kv_read.is_empty() {
            let v: Vec<String> = self.kv_read.iter().map(|p| p.to_string()).collect();
            out.push(format!("kv-read({})", join(&v)));
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    plugin: RawPlugin,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    events: RawEvents,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    log: bool,
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    tcp: Vec<String>,
    #[serde(default, rename = "kv-read")]
    kv_read: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    #[serde(default)]
    subscribe: Vec<String>,
}

impl Manifest {
    /// Parses and checks manifest text; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("manifest line {line}: {msg}")
                }
                None => format!("manifest: {msg}"),
            }
        })?;
        let mut errors = Vec::new();
        if raw.plugin.name.trim().is_empty() {
            errors.push("plugin.name cannot be empty".to_string());
        }
        let kind = match raw.plugin.kind.as_deref() {
            None => None,
            Some(k) => match Kind::parse(k) {
                Some(k) => Some(k),
                None => {
                    errors.push(format!(
                        "plugin.kind {k:?}: expected health-check, tag-rewriter or event-hook"
                    ));
                    None
                }
            },
        };
        let mut caps = Declared {
            log: raw.capabilities.log,
            ..Declared::default()
        };
        for (i, s) in raw.capabilities.http.iter().enumerate() {
            match AddrPattern::parse_http(s) {
                Ok(p) => caps.http.push(p),
                Err(e) => errors.push(format!("capabilities.http[{i}]: {e}")),
            }
        }
        for (i, s) in raw.capabilities.tcp.iter().enumerate() {
            match AddrPattern::parse_tcp(s) {
                Ok(p) => caps.tcp.push(p),
                Err(e) => errors.push(format!("capabilities.tcp[{i}]: {e}")),
            }
        }
        caps.kv_read = raw
            .capabilities
            .kv_read
            .iter()
            .map(|s| PrefixPattern::new(s))
            .collect();
        let mut subscribe = Vec::new();
        for (i, s) in raw.events.subscribe.iter().enumerate() {
            match EventKind::parse(s) {
                Some(k) => subscribe.push(k),
                None => errors.push(format!("events.subscribe[{i}]: unknown event kind {s:?}")),
            }
        }
        if !errors.is_empty() {
            return Err(format!("manifest: {}", errors.join("; ")));
        }
        Ok(Manifest {
            name: raw.plugin.name,
            version: raw.plugin.version,
            kind,
            description: raw.plugin.description,
            capabilities: caps,
            subscribe,
        })
    }
}

/// The custom sections Tribune reads from a component binary, wherever they are nested
/// (the Rust SDK writes them into the core module; `pack` appends them to the component).
/// The outermost, last one of each name wins.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stamps {
    pub manifest: Option<String>,
    pub sdk: Option<String>,
}

/// Reads the stamps. Malformed binaries are left to the compiler to report.
pub fn read_stamps(wasm: &[u8]) -> Stamps {
    use wasmtime::wasmparser::{Parser, Payload};
    let mut found: Vec<(usize, &'static str, String)> = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(c) => {
                let which = match c.name() {
                    MANIFEST_SECTION => MANIFEST_SECTION,
                    SDK_SECTION => SDK_SECTION,
                    _ => continue,
                };
                let text = String::from_utf8_lossy(c.data())
                    .trim_end_matches('\0')
                    .to_string();
                found.push((depth, which, text));
            }
            _ => {}
        }
    }
    let pick = |name: &str| {
        let min = found.iter().filter(|f| f.1 == name).map(|f| f.0).min()?;
        found
            .iter()
            .rfind(|f| f.1 == name && f.0 == min)
            .map(|f| f.2.clone())
    };
    Stamps {
        manifest: pick(MANIFEST_SECTION),
        sdk: pick(SDK_SECTION),
    }
}

/// Appends (or, by appending a later one, overrides) the stamps: a custom section may
/// follow any section of a component.
pub fn append_stamps(wasm: &[u8], manifest: Option<&str>, sdk: Option<&str>) -> Vec<u8> {
    let mut out = wasm.to_vec();
    for (name, data) in [(MANIFEST_SECTION, manifest), (SDK_SECTION, sdk)] {
        let Some(data) = data else { continue };
        let mut payload = Vec::new();
        leb128(&mut payload, name.len() as u64);
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(data.as_bytes());
        out.push(0);
        leb128(&mut out, payload.len() as u64);
        out.extend_from_slice(&payload);
    }
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[plugin]
name = "http-json"
version = "0.1.0"
kind = "health-check"
description = "d"

[capabilities]
log = true
http = ["*"]
tcp = ["*:6379"]
kv-read = ["config/"]

[events]
subscribe = ["service-registered"]
"#;

    #[test]
    fn a_full_manifest_parses() {
        let m = Manifest::parse(FULL).unwrap();
        assert_eq!(m.name, "http-json");
        assert_eq!(m.kind, Some(Kind::HealthCheck));
        assert!(m.capabilities.log);
        assert_eq!(
            m.capabilities.summary(),
            ["log", "http(*)", "tcp(*:6379)", "kv-read(config/)"]
        );
        assert_eq!(m.subscribe, [EventKind::ServiceRegistered]);
    }

    #[test]
    fn typos_are_refused() {
        let e = Manifest::parse("[plugin]\nname = \"x\"\n[capabilities]\nhtpp = [\"*\"]\n")
            .unwrap_err();
        assert!(e.contains("htpp"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        let e = Manifest::parse("[plugin]\nname = \"x\"\nkind = \"checker\"\n").unwrap_err();
        assert!(e.contains("checker"), "{e}");
    }

    #[test]
    fn stamps_round_trip_through_a_binary() {
        // The smallest component: preamble only.
        let empty = b"\0asm\x0d\0\x01\0".to_vec();
        assert_eq!(read_stamps(&empty), Stamps::default());
        let once = append_stamps(&empty, Some(FULL), Some("rust 0.1.0"));
        let s = read_stamps(&once);
        assert_eq!(s.manifest.as_deref(), Some(FULL));
        assert_eq!(s.sdk.as_deref(), Some("rust 0.1.0"));
        let twice = append_stamps(&once, None, Some("c 0.1.0"));
        assert_eq!(read_stamps(&twice).sdk.as_deref(), Some("c 0.1.0"));
    }
}
