//! `webhook`: POSTs every event it receives to a URL as JSON, with retries.
//!
//! Plugin config (`plugins[].config`):
//!
//! | key | meaning |
//! |---|---|
//! | `url` | `http://host:port/path` (required; the host must be granted) |
//! | `headers` | extra request headers (an `authorization` header, say) |
//! | `retries` | attempts after the first, on a connection error or a 5xx/429 answer (default 3) |
//! | `backoff_ms` | wait before the first retry, doubled each time (default 200) |
//! | `timeout_ms` | per attempt (default 2000) |
//!
//! The body is one event:
//!
//! ```json
//! {"Kind": "service-registered", "Node": "n1", "Time": 1700000000000,
//!  "Service": {"ID": "web1", "Name": "web", "Tags": ["prod"], "Meta": {}, "Address": "", "Port": 80}}
//! ```
//!
//! with `Check`, `Member`, `Leader` or `User` in place of `Service` for other kinds. The
//! plugin's deadline (`plugins[].limits.timeout`, default 10s) bounds all attempts
//! together; retries never outlive it.

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tribune_plugin_sdk::{
    clock, config, http, log, CheckStatus, Error, Event, EventData, EventHook, EventKind, Result,
};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
}

fn default_retries() -> u32 {
    3
}
fn default_backoff() -> u64 {
    200
}
fn default_timeout() -> u32 {
    2000
}

fn kind_name(k: EventKind) -> &'static str {
    match k {
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

fn status_name(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Passing => "passing",
        CheckStatus::Warning => "warning",
        CheckStatus::Critical => "critical",
    }
}

/// The JSON body for an event (Consul-style field names).
pub fn body(event: &Event) -> Value {
    let mut v = json!({
        "Kind": kind_name(event.kind),
        "Node": event.node,
        "Time": event.time_unix_ms,
    });
    let (key, data) = match &event.data {
        EventData::Service(s) => (
            "Service",
            json!({
                "ID": s.id, "Name": s.name, "Kind": s.kind, "Tags": s.tags,
                "Meta": s.meta.iter().cloned().collect::<BTreeMap<_, _>>(),
                "Address": s.address, "Port": s.port,
            }),
        ),
        EventData::Check(c) => (
            "Check",
            json!({
                "CheckID": c.check_id, "ServiceID": c.service_id, "ServiceName": c.service_name,
                "Previous": status_name(c.previous), "Status": status_name(c.current),
                "Output": c.output,
            }),
        ),
        EventData::Member(m) => (
            "Member",
            json!({"Name": m.name, "Address": m.address, "Role": m.role, "Datacenter": m.datacenter}),
        ),
        EventData::Leader(l) => ("Leader", json!(l)),
        EventData::User(u) => (
            "User",
            json!({"ID": u.id, "Name": u.name, "Payload": String::from_utf8_lossy(&u.payload)}),
        ),
    };
    v[key] = data;
    v
}

/// Whether an answer deserves another attempt.
pub fn retryable(status: u16) -> bool {
    status == 429 || status >= 500
}

struct Webhook {
    cfg: Config,
}

impl EventHook for Webhook {
    fn new() -> Result<Self> {
        let cfg: Config = config::plugin_config()?;
        if cfg.url.is_empty() {
            return Err("config.url is required".into());
        }
        Ok(Webhook { cfg })
    }

    fn on_event(&mut self, event: &Event) -> Result<()> {
        let payload = serde_json::to_vec(&body(event))?;
        let mut backoff = self.cfg.backoff_ms;
        let mut last = String::new();
        for attempt in 0..=self.cfg.retries {
            if attempt > 0 {
                // Never sleep past the deadline: give up instead.
                if u64::from(clock::remaining_ms()) <= backoff + 50 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(backoff));
                backoff = backoff.saturating_mul(2);
            }
            let mut req = http::Request::new("POST", &self.cfg.url)
                .header("content-type", "application/json")
                .timeout_ms(self.cfg.timeout_ms)
                .body(payload.clone());
            for (k, v) in &self.cfg.headers {
                req = req.header(k, v);
            }
            match req.send() {
                Ok(r) if (200..300).contains(&r.status) => return Ok(()),
                Ok(r) if retryable(r.status) => last = format!("HTTP {}", r.status),
                Ok(r) => {
                    return Err(Error::Plugin(format!(
                        "{} answered HTTP {}; not retrying",
                        self.cfg.url, r.status
                    )))
                }
                // A refusal will not change on retry.
                Err(e @ Error::Denied(_)) => return Err(e),
                Err(e) => last = e.to_string(),
            }
            log::debug(&format!("webhook attempt {} failed: {last}", attempt + 1));
        }
        Err(Error::Plugin(format!(
            "{} failed after {} attempts: {last}",
            self.cfg.url,
            self.cfg.retries + 1
        )))
    }
}

tribune_plugin_sdk::export_event_hook!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;
    use tribune_plugin_sdk::{CheckChange, Service};

    #[test]
    fn service_events_read_like_consul() {
        let e = Event {
            kind: EventKind::ServiceRegistered,
            time_unix_ms: 5,
            node: "n1".into(),
            data: EventData::Service(Service {
                id: "web1".into(),
                name: "web".into(),
                kind: String::new(),
                tags: vec!["prod".into()],
                meta: vec![("env".into(), "prod".into())],
                address: String::new(),
                port: 80,
            }),
        };
        let b = body(&e);
        assert_eq!(b["Kind"], "service-registered");
        assert_eq!(b["Service"]["Meta"]["env"], "prod");
        assert_eq!(b["Service"]["Port"], 80);
    }

    #[test]
    fn check_events_carry_both_statuses() {
        let e = Event {
            kind: EventKind::CheckStatusChanged,
            time_unix_ms: 5,
            node: "n1".into(),
            data: EventData::Check(CheckChange {
                check_id: "c".into(),
                service_id: "s".into(),
                service_name: "web".into(),
                previous: CheckStatus::Passing,
                current: CheckStatus::Critical,
                output: "down".into(),
            }),
        };
        let b = body(&e);
        assert_eq!(b["Check"]["Previous"], "passing");
        assert_eq!(b["Check"]["Status"], "critical");
    }

    #[test]
    fn only_server_trouble_is_retried() {
        assert!(retryable(503));
        assert!(retryable(429));
        assert!(!retryable(404));
        assert!(!retryable(200));
    }
}
