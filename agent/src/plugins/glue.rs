//! Where the agent meets the host: `wasm` check definitions turned into a probe the
//! check runner drives, catalog services handed to tag rewriters, and the agent's own
//! records turned into hook events. Keeps those call sites one line each.

use super::events::{Event, Health, MemberView, ServiceView};
use super::host::{CheckOutcome, CheckRequest, CheckStatus, Plugins};
use crate::structs;
use std::time::Duration;

/// A `wasm` check: `{"plugin": "<name>", "config": {...}}` in a check definition.
pub struct CheckProbe {
    host: Plugins,
    plugin: String,
    request: CheckRequest,
    max_output: usize,
}

impl CheckProbe {
    /// Reads the definition's `wasm` object; the error is the check's output.
    pub fn new(
        host: Plugins,
        check_id: &str,
        service_id: &str,
        wasm: &serde_json::Value,
        timeout: Duration,
        max_output: usize,
    ) -> Result<CheckProbe, String> {
        const SHAPE: &str = "\"wasm\": {\"plugin\": \"<name>\", \"config\": {...}}";
        let obj = wasm
            .as_object()
            .ok_or_else(|| format!("Invalid wasm check: expected {SHAPE}"))?;
        let field = |name: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let plugin = match field("plugin") {
            Some(serde_json::Value::String(p)) if !p.is_empty() => p.clone(),
            _ => {
                return Err(format!(
                    "Invalid wasm check: \"plugin\" must name a plugin ({SHAPE})"
                ))
            }
        };
        let config = match field("config") {
            None | Some(serde_json::Value::Null) => "{}".to_string(),
            Some(v @ serde_json::Value::Object(_)) => v.to_string(),
            Some(_) => {
                return Err(format!(
                    "Invalid wasm check: \"config\" must be an object ({SHAPE})"
                ))
            }
        };
        Ok(CheckProbe {
            host,
            plugin,
            request: CheckRequest {
                check_id: check_id.to_string(),
                service_id: service_id.to_string(),
                config_json: config,
                timeout,
            },
            max_output,
        })
    }

    /// Runs the check once; never fails (problems are critical outcomes).
    pub async fn run(&self) -> CheckOutcome {
        let mut outcome = self
            .host
            .run_check(&self.plugin, self.request.clone())
            .await;
        if outcome.output.len() > self.max_output {
            super::capability::cap_str(&mut outcome.output, self.max_output);
        }
        outcome
    }
}

impl CheckStatus {
    /// Consul's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }
}

impl From<&structs::Service> for ServiceView {
    fn from(s: &structs::Service) -> ServiceView {
        ServiceView {
            id: s.id.clone(),
            name: s.service.clone(),
            kind: s.kind.clone(),
            tags: s.tags.clone(),
            meta: s.meta.clone(),
            address: s.address.clone(),
            port: s.port,
        }
    }
}

impl Plugins {
    /// Runs the tag rewriters over a service about to be stored; `true` when they changed
    /// its tags or meta. Cheap when no rewriter is loaded.
    pub fn rewrite_catalog_service(&self, service: &mut structs::Service) -> bool {
        if !self.has_rewriters() {
            return false;
        }
        match self.rewrite_service(&ServiceView::from(&*service)) {
            Some(after) => {
                tracing::debug!(target: "plugins", service = %service.id,
                    tags = ?after.tags, "Service relabelled by tag rewriters.");
                service.tags = after.tags;
                service.meta = after.meta;
                true
            }
            None => false,
        }
    }

    /// `service-registered`.
    pub fn service_registered(&self, service: &structs::Service) {
        self.emit(Event::ServiceRegistered(ServiceView::from(service)));
    }

    /// `service-deregistered`.
    pub fn service_deregistered(&self, service: &structs::Service) {
        self.emit(Event::ServiceDeregistered(ServiceView::from(service)));
    }

    /// `check-status-changed` (statuses in Consul's spelling).
    pub fn check_status_changed(&self, check: &structs::Check, previous: &str) {
        self.emit(Event::CheckStatusChanged {
            check_id: check.check_id.clone(),
            service_id: check.service_id.clone(),
            service_name: check.service_name.clone(),
            previous: Health::parse(previous),
            current: Health::parse(&check.status),
            output: check.output.clone(),
        });
    }

    /// `user-event`; the payload is decoded from base64 when it is base64.
    pub fn user_event(&self, ev: &tribune_api::types::UserEvent) {
        use base64::Engine as _;
        let payload = ev
            .payload
            .as_deref()
            .map(|p| {
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .unwrap_or_else(|_| p.as_bytes().to_vec())
            })
            .unwrap_or_default();
        self.emit(Event::User {
            id: ev.id.clone(),
            name: ev.name.clone(),
            payload,
        });
    }

    /// Member events from a gossip pool: `Joined`, `Failed` and `Left`, for the gossip
    /// driver to forward with one call. User events are not forwarded here: they reach
    /// hooks through the agent's event buffer, once.
    pub fn gossip_event(&self, ev: &crate::gossip::GossipEvent) {
        use crate::gossip::{GossipEvent, Role};
        let view = |m: &crate::gossip::Member| MemberView {
            name: m.name.clone(),
            address: m.addr.to_string(),
            role: match m.meta.role {
                Role::Server => "server".to_string(),
                _ => "client".to_string(),
            },
            datacenter: m.meta.datacenter.clone(),
        };
        match ev {
            GossipEvent::Joined(m) => self.emit(Event::MemberJoined(view(m))),
            GossipEvent::Failed(m) => self.emit(Event::MemberFailed(view(m))),
            GossipEvent::Left(m) => self.emit(Event::MemberLeft(view(m))),
            GossipEvent::Updated(_) | GossipEvent::Reaped(_) | GossipEvent::User(_) => {}
        }
    }

    /// `leader-changed`: the new leader's server address, empty while there is none.
    pub fn leader_changed(&self, leader: &str) {
        self.emit(Event::LeaderChanged(leader.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_objects_are_read_case_insensitively() {
        let host = Plugins::new(crate::plugins::HostOptions {
            node_name: "n".into(),
            cache_dir: None,
            check_workers: 1,
            kv: None,
            enforce_limits: true,
        })
        .unwrap();
        let probe = |v: serde_json::Value| {
            CheckProbe::new(host.clone(), "c", "", &v, Duration::from_secs(1), 4096)
        };
        let p = probe(serde_json::json!({"Plugin": "x", "Config": {"a": 1}})).unwrap();
        assert_eq!(p.plugin, "x");
        assert_eq!(p.request.config_json, r#"{"a":1}"#);
        assert_eq!(
            probe(serde_json::json!({"plugin": "x"}))
                .unwrap()
                .request
                .config_json,
            "{}"
        );
        let e = probe(serde_json::json!({"config": {}})).err().unwrap();
        assert!(e.contains("\"plugin\" must name a plugin"), "{e}");
        let e = probe(serde_json::json!({"plugin": "x", "config": [1]}))
            .err()
            .unwrap();
        assert!(e.contains("must be an object"), "{e}");
        host.shutdown();
    }

    #[test]
    fn services_convert() {
        let s = structs::Service {
            id: "web1".into(),
            service: "web".into(),
            tags: vec!["prod".into()],
            port: 80,
            ..Default::default()
        };
        let v = ServiceView::from(&s);
        assert_eq!(v.name, "web");
        assert_eq!(v.tags, ["prod"]);
        assert_eq!(v.port, 80);
    }
}
