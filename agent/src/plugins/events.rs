//! Events for hooks: what the agent reports ([`Event`]), and the conversion to the WIT
//! record a hook receives. The agent emits; the host fans out to each subscribed hook's
//! bounded queue (see `host.rs`).

use super::bindings::types as wit;
use super::manifest::EventKind;
use std::collections::BTreeMap;

/// A service as the agent holds it, for rewriters and service events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceView {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub address: String,
    pub port: i64,
}

impl ServiceView {
    pub(super) fn to_wit(&self) -> wit::Service {
        wit::Service {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind.clone(),
            tags: self.tags.clone(),
            meta: self
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            address: self.address.clone(),
            port: i32::try_from(self.port).unwrap_or(0),
        }
    }
}

/// A health status, as hooks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Passing,
    Warning,
    Critical,
}

impl Health {
    /// Consul's spelling (`passing`, ...); anything else counts as critical.
    pub fn parse(s: &str) -> Health {
        match s {
            "passing" => Health::Passing,
            "warning" => Health::Warning,
            _ => Health::Critical,
        }
    }

    fn to_wit(self) -> wit::CheckStatus {
        match self {
            Health::Passing => wit::CheckStatus::Passing,
            Health::Warning => wit::CheckStatus::Warning,
            Health::Critical => wit::CheckStatus::Critical,
        }
    }
}

/// A cluster member, for member events (filled by gossip).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    pub address: String,
    pub role: String,
    pub datacenter: String,
}

/// What happened, as the agent reports it to [`super::Plugins::emit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    ServiceRegistered(ServiceView),
    ServiceDeregistered(ServiceView),
    CheckStatusChanged {
        check_id: String,
        service_id: String,
        service_name: String,
        previous: Health,
        current: Health,
        output: String,
    },
    MemberJoined(MemberView),
    MemberFailed(MemberView),
    MemberLeft(MemberView),
    /// The new leader's server address (`ip:port`); empty while there is none.
    LeaderChanged(String),
    User {
        id: String,
        name: String,
        payload: Vec<u8>,
    },
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ServiceRegistered(_) => EventKind::ServiceRegistered,
            Event::ServiceDeregistered(_) => EventKind::ServiceDeregistered,
            Event::CheckStatusChanged { .. } => EventKind::CheckStatusChanged,
            Event::MemberJoined(_) => EventKind::MemberJoined,
            Event::MemberFailed(_) => EventKind::MemberFailed,
            Event::MemberLeft(_) => EventKind::MemberLeft,
            Event::LeaderChanged(_) => EventKind::LeaderChanged,
            Event::User { .. } => EventKind::UserEvent,
        }
    }

    pub(super) fn to_wit(&self, node: &str, time_unix_ms: u64) -> wit::Event {
        let member = |m: &MemberView| {
            wit::EventData::Member(wit::Member {
                name: m.name.clone(),
                address: m.address.clone(),
                role: m.role.clone(),
                datacenter: m.datacenter.clone(),
            })
        };
        let data = match self {
            Event::ServiceRegistered(s) | Event::ServiceDeregistered(s) => {
                wit::EventData::Service(s.to_wit())
            }
            Event::CheckStatusChanged {
                check_id,
                service_id,
                service_name,
                previous,
                current,
                output,
            } => wit::EventData::Check(wit::CheckChange {
                check_id: check_id.clone(),
                service_id: service_id.clone(),
                service_name: service_name.clone(),
                previous: previous.to_wit(),
                current: current.to_wit(),
                output: output.clone(),
            }),
            Event::MemberJoined(m) | Event::MemberFailed(m) | Event::MemberLeft(m) => member(m),
            Event::LeaderChanged(l) => wit::EventData::Leader(l.clone()),
            Event::User { id, name, payload } => wit::EventData::User(wit::UserEvent {
                id: id.clone(),
                name: name.clone(),
                payload: payload.clone(),
            }),
        };
        wit::Event {
            kind: kind_to_wit(self.kind()),
            time_unix_ms,
            node: node.to_string(),
            data,
        }
    }
}

fn kind_to_wit(k: EventKind) -> wit::EventKind {
    match k {
        EventKind::ServiceRegistered => wit::EventKind::ServiceRegistered,
        EventKind::ServiceDeregistered => wit::EventKind::ServiceDeregistered,
        EventKind::CheckStatusChanged => wit::EventKind::CheckStatusChanged,
        EventKind::MemberJoined => wit::EventKind::MemberJoined,
        EventKind::MemberFailed => wit::EventKind::MemberFailed,
        EventKind::MemberLeft => wit::EventKind::MemberLeft,
        EventKind::LeaderChanged => wit::EventKind::LeaderChanged,
        EventKind::UserEvent => wit::EventKind::UserEvent,
    }
}

/// Drops tags that repeat, keeping the first.
pub(super) fn dedup_tags(tags: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    tags.into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// Consul's rules for service meta: at most 64 pairs, keys of at most 128 characters from
/// `[A-Za-z0-9_-]` not starting with `consul-`, values of at most 512 characters.
pub(super) fn meta_problem(key: &str, value: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > 128 {
        return Some("keys must be 1 to 128 characters");
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Some("keys may hold only letters, digits, '_' and '-'");
    }
    if key.starts_with("consul-") {
        return Some("the consul- prefix is reserved");
    }
    if value.len() > 512 {
        return Some("values must be at most 512 characters");
    }
    None
}

pub(super) const META_MAX_PAIRS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_convert_with_their_kind() {
        let e = Event::LeaderChanged("n1".into());
        let w = e.to_wit("n2", 5);
        assert_eq!(w.node, "n2");
        assert_eq!(w.time_unix_ms, 5);
        assert!(matches!(w.kind, wit::EventKind::LeaderChanged));
        assert!(matches!(w.data, wit::EventData::Leader(ref l) if l == "n1"));
        let s = ServiceView {
            id: "web".into(),
            port: 70000,
            ..Default::default()
        };
        assert_eq!(s.to_wit().port, 70000);
        assert_eq!(
            Event::ServiceRegistered(s).kind(),
            EventKind::ServiceRegistered
        );
    }

    #[test]
    fn meta_rules_are_consuls() {
        assert_eq!(meta_problem("env", "prod"), None);
        assert!(meta_problem("consul-x", "").is_some());
        assert!(meta_problem("a b", "").is_some());
        assert!(meta_problem("", "").is_some());
        assert_eq!(
            dedup_tags(vec!["a".into(), "b".into(), "a".into()]),
            ["a", "b"]
        );
    }
}
