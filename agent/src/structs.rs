//! Internal types shared by the state store, the Raft FSM and the API layer.
//!
//! Owns: the persisted shapes (catalog rows, KV entries, sessions), the versioned Raft
//! [`Command`] and its [`CommandResponse`], and Consul's client-visible strings.
//! Must not touch: config, HTTP, I/O. These types are encoded with postcard in the Raft log
//! and snapshots, so they avoid serde attributes that only self-describing formats support
//! (no `skip_serializing_if`, no untyped JSON values); a change of shape bumps [`LOG_VERSION`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version byte written before every Raft command and snapshot.
pub const LOG_VERSION: u8 = 1;

/// The Consul version Tribune answers as (`/v1/agent/self` `Config.Version`, member `build`).
pub const CONSUL_VERSION: &str = "1.17.0";
/// Tribune's own version.
pub const TRIBUNE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Consul's texts that clients match on (compat reference); kept verbatim.
pub mod msg {
    pub const NO_LEADER: &str = "No cluster leader";
    pub const NO_PATH_TO_DC: &str = "No path to datacenter";
    pub const MISSING_SERVICE_NAME: &str = "Missing service name";
    pub const MISSING_NODE_NAME: &str = "Missing node name";
    pub const MISSING_CHECK_STATE: &str = "Missing check state";
    pub const MISSING_KEY_NAME: &str = "Missing key name";
    pub const MUST_PROVIDE_NODE: &str = "Must provide node";
    pub const MUST_PROVIDE_ADDRESS: &str = "Must provide address";
    pub const INVALID_INDEX: &str = "Invalid index";
    pub const INVALID_WAIT: &str = "Invalid wait time";
    pub const STALE_AND_CONSISTENT: &str =
        "Cannot specify ?stale with ?consistent, conflicting semantics.";
    pub const CACHED_AND_CONSISTENT: &str =
        "Cannot specify ?cached with ?consistent, conflicting semantics.";
    pub const INVALID_PASSING: &str = "Invalid value for ?passing";
    pub const BAD_CHECK_STATUS: &str = "Status for checks must 'passing', 'warning', 'critical'";
    pub const INVALID_SERVICE_ADDRESS: &str = "Invalid service address";
    pub const NOT_RECOGNIZED: &str = "Invalid URL path: not a recognized HTTP API endpoint";
    pub const NOT_V1: &str =
        "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'";
    pub const SERF_CHECK_ID: &str = "serfHealth";
    pub const SERF_CHECK_NAME: &str = "Serf Health Status";
    pub const SERF_ALIVE: &str = "Agent alive and reachable";
    pub const SERF_FAILED: &str = "Agent not live or unreachable";
    pub const NODE_MAINT_ID: &str = "_node_maintenance";
    pub const NODE_MAINT_NAME: &str = "Node Maintenance Mode";
    pub const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";
    pub const SERVICE_MAINT_NAME: &str = "Service Maintenance Mode";
    pub const DEFAULT_MAINT_REASON: &str =
        "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";
    pub const DEFAULT_SERVICE_MAINT_REASON: &str =
        "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

    pub fn unknown_service(id: &str) -> String {
        format!("Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name.")
    }
    pub fn unknown_check(id: &str) -> String {
        format!("Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name.")
    }
    pub fn no_ttl(id: &str) -> String {
        format!("CheckID {id:?} does not have associated TTL")
    }
    pub fn session_not_found(id: &str) -> String {
        format!("Session id '{id}' not found")
    }
}

/// Check statuses as stored.
pub mod health {
    pub const PASSING: &str = "passing";
    pub const WARNING: &str = "warning";
    pub const CRITICAL: &str = "critical";
    pub const MAINTENANCE: &str = "maintenance";

    pub fn is_valid(s: &str) -> bool {
        matches!(s, PASSING | WARNING | CRITICAL)
    }
}

/// A catalog node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAddr {
    pub address: String,
    pub port: i64,
}

/// A service instance on a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub node: String,
    pub kind: String,
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, ServiceAddr>,
    pub meta: BTreeMap<String, String>,
    pub port: i64,
    pub weights_passing: i64,
    pub weights_warning: i64,
    pub enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

/// What a check was defined with; echoed as `Definition` in health results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDef {
    pub http: String,
    pub header: BTreeMap<String, Vec<String>>,
    pub method: String,
    pub body: String,
    pub disable_redirects: bool,
    pub tls_server_name: String,
    pub tls_skip_verify: bool,
    pub tcp: String,
    pub udp: String,
    pub grpc: String,
    pub grpc_use_tls: bool,
    pub alias_node: String,
    pub alias_service: String,
    pub script_args: Vec<String>,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    pub ttl_ns: u64,
    pub deregister_critical_service_after_ns: u64,
    pub output_max_size: i64,
}

/// A health check (node-level when `service_id` is empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub node: String,
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    pub check_type: String,
    pub definition: CheckDef,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A KV entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub session: String,
    pub lock_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A session (§8.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay_ns: u64,
    /// `release` or `delete`.
    pub behavior: String,
    pub ttl: String,
    pub node_checks: Vec<String>,
    pub service_checks: Vec<String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A catalog registration: the node, optionally one service, any checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub node: Node,
    pub skip_node_update: bool,
    pub service: Option<Service>,
    pub checks: Vec<Check>,
}

/// A catalog deregistration: a check, a service (with its checks) or the whole node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeregisterRequest {
    pub node: String,
    pub service_id: Option<String>,
    pub check_id: Option<String>,
}

/// The KV verbs shared by `PUT/DELETE /v1/kv` and `/v1/txn` (§8.1, §8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvVerb {
    Set,
    Cas,
    Lock,
    Unlock,
    Get,
    GetTree,
    CheckIndex,
    CheckSession,
    CheckNotExists,
    Delete,
    DeleteTree,
    DeleteCas,
}

impl KvVerb {
    pub fn parse(s: &str) -> Option<KvVerb> {
        Some(match s {
            "set" => KvVerb::Set,
            "cas" => KvVerb::Cas,
            "lock" => KvVerb::Lock,
            "unlock" => KvVerb::Unlock,
            "get" => KvVerb::Get,
            "get-tree" => KvVerb::GetTree,
            "check-index" => KvVerb::CheckIndex,
            "check-session" => KvVerb::CheckSession,
            "check-not-exists" => KvVerb::CheckNotExists,
            "delete" => KvVerb::Delete,
            "delete-tree" => KvVerb::DeleteTree,
            "delete-cas" => KvVerb::DeleteCas,
            _ => return None,
        })
    }

    pub fn is_read(self) -> bool {
        matches!(
            self,
            KvVerb::Get
                | KvVerb::GetTree
                | KvVerb::CheckIndex
                | KvVerb::CheckSession
                | KvVerb::CheckNotExists
        )
    }
}

/// One KV operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvOp {
    pub verb: KvVerb,
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    /// The `cas`/`check-index` index.
    pub index: u64,
    pub session: String,
}

/// Every state change goes through Raft as one of these. Variants are only ever appended.
// Commands live briefly (one request); boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Noop,
    Register(RegisterRequest),
    Deregister(DeregisterRequest),
    Kv(KvOp),
    /// Atomic: all operations apply or none (`/v1/txn`).
    Txn(Vec<KvOp>),
    SessionCreate(Session),
    SessionDestroy {
        id: String,
    },
    /// Commands of concurrent clients carried by one Raft entry (group commit), applied in
    /// order and atomically at the entry's index. Only writes to distinct KV keys are batched.
    Batch(Vec<Command>),
}

/// What applying a [`Command`] answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// The Raft index the command was applied at.
    pub index: u64,
    /// `false` when a cas/lock/check failed (KV answers `false`).
    pub ok: bool,
    /// Txn: the entries read or written, in operation order.
    pub entries: Vec<DirEntry>,
    /// Txn failure: (operation index, reason).
    pub errors: Vec<(usize, String)>,
}

/// Encodes a command with its version byte.
pub fn encode_command(cmd: &Command) -> Vec<u8> {
    let out = vec![LOG_VERSION];
    // postcard cannot fail on these plain types except on allocation failure.
    match postcard::to_extend(cmd, out) {
        Ok(v) => v,
        Err(_) => vec![LOG_VERSION],
    }
}

/// Decodes a command written by [`encode_command`].
pub fn decode_command(bytes: &[u8]) -> Result<Command, String> {
    match bytes.split_first() {
        Some((&LOG_VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unsupported command version {v}")),
        None => Err("empty command".to_string()),
    }
}

/// Aggregated status of a set of checks (Prometheus/consul-template rule, §7.2).
pub fn aggregate_status<'a>(checks: impl IntoIterator<Item = &'a Check>) -> &'static str {
    let mut worst = health::PASSING;
    for c in checks {
        if c.check_id == msg::NODE_MAINT_ID || c.check_id.starts_with(msg::SERVICE_MAINT_PREFIX) {
            return health::MAINTENANCE;
        }
        match c.status.as_str() {
            health::CRITICAL => worst = health::CRITICAL,
            health::WARNING if worst == health::PASSING => worst = health::WARNING,
            _ => {}
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_with_version() {
        let cmd = Command::Kv(KvOp {
            verb: KvVerb::Cas,
            key: "a/b".into(),
            value: b"v".to_vec(),
            flags: 7,
            index: 3,
            session: String::new(),
        });
        let bytes = encode_command(&cmd);
        assert_eq!(bytes[0], LOG_VERSION);
        assert_eq!(decode_command(&bytes).unwrap(), cmd);
        assert!(decode_command(&[9, 1, 2])
            .unwrap_err()
            .contains("version 9"));
    }

    #[test]
    fn consul_strings_are_verbatim() {
        assert_eq!(
            msg::unknown_service("x"),
            "Unknown service ID \"x\". Ensure that the service ID is passed, not the service name."
        );
        assert_eq!(
            msg::no_ttl("c"),
            "CheckID \"c\" does not have associated TTL"
        );
    }
}
