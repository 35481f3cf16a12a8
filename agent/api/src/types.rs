//! Consul's JSON objects, field for field (compat reference §16).
//!
//! Field order is the order Consul emits. Request types decode leniently through
//! [`crate::decode`]; response types serialize with the exact names clients read.
//! These are wire shapes only: the agent keeps its own persisted types and converts.

use crate::duration::GoDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Meta = BTreeMap<String, String>;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn empty_dur(d: &Option<GoDuration>) -> bool {
    d.is_none_or(|d| d.is_zero())
}

/// `{"Passing": 1, "Warning": 1}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Weights {
    pub passing: i64,
    pub warning: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// A service's tagged address: `{"Address": "...", "Port": 80}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceAddress {
    pub address: String,
    pub port: i64,
}

/// A check as it is defined: the body of `PUT /v1/agent/check/register`, the `Check` and
/// `Checks` of a service registration, and `check`/`checks` in config files (§7.3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CheckDefinition {
    #[serde(rename = "ID", alias = "checkid")]
    pub id: String,
    pub name: String,
    pub notes: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub status: String,
    pub token: String,
    #[serde(alias = "args")]
    pub script_args: Vec<String>,
    /// Consul removed the single-string `Script`; kept so it can be refused clearly.
    pub script: String,
    #[serde(rename = "HTTP")]
    pub http: String,
    pub header: BTreeMap<String, Vec<String>>,
    pub method: String,
    pub body: String,
    pub disable_redirects: bool,
    #[serde(rename = "TLSServerName")]
    pub tls_server_name: String,
    #[serde(rename = "TLSSkipVerify")]
    pub tls_skip_verify: bool,
    #[serde(rename = "TCP")]
    pub tcp: String,
    #[serde(rename = "TCPUseTLS")]
    pub tcp_use_tls: bool,
    #[serde(rename = "UDP")]
    pub udp: String,
    #[serde(rename = "GRPC")]
    pub grpc: String,
    #[serde(rename = "GRPCUseTLS")]
    pub grpc_use_tls: bool,
    #[serde(rename = "H2PING")]
    pub h2ping: String,
    #[serde(rename = "DockerContainerID")]
    pub docker_container_id: String,
    pub shell: String,
    pub alias_node: String,
    pub alias_service: String,
    pub interval: Option<GoDuration>,
    pub timeout: Option<GoDuration>,
    #[serde(rename = "TTL")]
    pub ttl: Option<GoDuration>,
    pub deregister_critical_service_after: Option<GoDuration>,
    pub success_before_passing: i64,
    pub failures_before_warning: i64,
    pub failures_before_critical: i64,
    pub output_max_size: i64,
    /// Tribune's extension: a check run by a WASM plugin (`{"plugin": "...", "config": {...}}`).
    pub wasm: Option<serde_json::Value>,
}

/// The body of `PUT /v1/agent/service/register` and `service`/`services` in config files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceDefinition {
    pub kind: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub meta: Meta,
    pub port: i64,
    pub socket_path: String,
    pub weights: Option<Weights>,
    pub enable_tag_override: bool,
    pub check: Option<CheckDefinition>,
    pub checks: Vec<CheckDefinition>,
    pub token: String,
    pub proxy: Option<serde_json::Value>,
    pub connect: Option<serde_json::Value>,
    pub namespace: String,
    pub partition: String,
}

/// `/v1/agent/services` values and `/v1/agent/service/:id` (§16.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentService {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub meta: Meta,
    pub port: i64,
    pub address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub weights: Weights,
    pub enable_tag_override: bool,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub create_index: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub modify_index: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub content_hash: String,
    pub datacenter: String,
}

/// The definition echoed inside a HealthCheck (every member omitted when empty).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthCheckDefinition {
    #[serde(rename = "HTTP", skip_serializing_if = "String::is_empty")]
    pub http: String,
    #[serde(rename = "TLSServerName", skip_serializing_if = "String::is_empty")]
    pub tls_server_name: String,
    #[serde(rename = "TLSSkipVerify", skip_serializing_if = "is_false")]
    pub tls_skip_verify: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(skip_serializing_if = "is_false")]
    pub disable_redirects: bool,
    #[serde(rename = "TCP", skip_serializing_if = "String::is_empty")]
    pub tcp: String,
    #[serde(rename = "UDP", skip_serializing_if = "String::is_empty")]
    pub udp: String,
    #[serde(skip_serializing_if = "empty_dur")]
    pub interval: Option<GoDuration>,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub output_max_size: i64,
    #[serde(skip_serializing_if = "empty_dur")]
    pub timeout: Option<GoDuration>,
    #[serde(skip_serializing_if = "empty_dur")]
    pub deregister_critical_service_after: Option<GoDuration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub script_args: Vec<String>,
    #[serde(rename = "GRPC", skip_serializing_if = "String::is_empty")]
    pub grpc: String,
    #[serde(rename = "GRPCUseTLS", skip_serializing_if = "is_false")]
    pub grpc_use_tls: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alias_node: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alias_service: String,
    #[serde(rename = "TTL", skip_serializing_if = "empty_dur")]
    pub ttl: Option<GoDuration>,
}

/// `/v1/health/*` elements and `/v1/agent/checks` values (§16.4).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthCheck {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    #[serde(rename = "Type")]
    pub check_type: String,
    pub interval: String,
    pub timeout: String,
    pub exposed_port: i64,
    pub definition: HealthCheckDefinition,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `/v1/catalog/nodes` elements and `Node` inside health results (§16.5).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: Option<BTreeMap<String, String>>,
    pub meta: Option<Meta>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `Service` inside health results; values of `Services` in `/v1/catalog/node/:node` (§16.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeService {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub meta: Meta,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub port: i64,
    pub weights: Weights,
    pub enable_tag_override: bool,
    pub proxy: serde_json::Value,
    pub connect: serde_json::Value,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `/v1/catalog/service/:name` elements (ServiceNode, §6.3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogService {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: Option<BTreeMap<String, String>>,
    pub node_meta: Option<Meta>,
    pub service_kind: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    pub service_address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub service_tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub service_weights: Weights,
    pub service_meta: Meta,
    pub service_port: i64,
    pub service_enable_tag_override: bool,
    pub service_proxy: serde_json::Value,
    pub service_connect: serde_json::Value,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `/v1/health/service/:name` elements (CheckServiceNode, §16.3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceEntry {
    pub node: Node,
    pub service: NodeService,
    pub checks: Vec<HealthCheck>,
}

/// `/v1/catalog/node/:node` (`null` for an unknown node).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogNode {
    pub node: Node,
    pub services: BTreeMap<String, NodeService>,
}

/// A `Check` inside a catalog registration (HealthCheck shape, definition stored only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogCheck {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub definition: HealthCheckDefinition,
}

/// A `Service` inside a catalog registration: the name field is `Service` (§6.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogRegistrationService {
    pub kind: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub meta: Meta,
    pub port: i64,
    pub weights: Option<Weights>,
    pub enable_tag_override: bool,
}

/// Legacy python-consul puts its token in the body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WriteRequest {
    pub token: String,
}

/// The body of `PUT /v1/catalog/register` (§6.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogRegistration {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub node_meta: Meta,
    pub service: Option<CatalogRegistrationService>,
    pub check: Option<CatalogCheck>,
    pub checks: Vec<CatalogCheck>,
    pub skip_node_update: bool,
    pub write_request: Option<WriteRequest>,
}

/// The body of `PUT /v1/catalog/deregister`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogDeregistration {
    pub node: String,
    pub datacenter: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub write_request: Option<WriteRequest>,
}

/// A KV entry (DirEntry, §16.6). `Value` is base64 on the wire.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KvPair {
    pub lock_index: u64,
    pub key: String,
    pub flags: u64,
    pub value: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session: String,
    pub create_index: u64,
    pub modify_index: u64,
}

/// The body of `PUT /v1/session/create`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SessionRequest {
    pub name: String,
    pub node: String,
    /// A Go duration string, or a number: below 1000 seconds, otherwise nanoseconds (§8.2).
    pub lock_delay: Option<serde_json::Value>,
    pub node_checks: Option<Vec<String>>,
    pub service_checks: Option<Vec<ServiceCheckRef>>,
    /// Legacy spelling of `NodeChecks`.
    pub checks: Option<Vec<String>>,
    pub behavior: String,
    #[serde(rename = "TTL")]
    pub ttl: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceCheckRef {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// A session (§16.7). `LockDelay` is nanoseconds on output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SessionEntry {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay: u64,
    pub behavior: String,
    #[serde(rename = "TTL")]
    pub ttl: String,
    pub node_checks: Vec<String>,
    pub service_checks: Option<Vec<ServiceCheckRef>>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A user event (§9.1). `Payload` is base64 or null.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserEvent {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub payload: Option<String>,
    pub node_filter: String,
    pub service_filter: String,
    pub tag_filter: String,
    pub version: i64,
    #[serde(rename = "LTime")]
    pub ltime: u64,
}

/// `/v1/agent/members` elements (§16.8).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentMember {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub tags: BTreeMap<String, String>,
    pub status: i64,
    pub protocol_min: u8,
    pub protocol_max: u8,
    pub protocol_cur: u8,
    pub delegate_min: u8,
    pub delegate_max: u8,
    pub delegate_cur: u8,
}

/// `PUT /v1/agent/check/update/:id` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CheckUpdate {
    pub status: String,
    pub output: String,
}

/// One operation of `PUT /v1/txn`: exactly one of the members is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TxnOp {
    #[serde(rename = "KV")]
    pub kv: Option<TxnKvOp>,
    pub node: Option<serde_json::Value>,
    pub service: Option<serde_json::Value>,
    pub check: Option<serde_json::Value>,
    pub session: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TxnKvOp {
    pub verb: String,
    pub key: String,
    /// base64
    pub value: Option<String>,
    pub flags: u64,
    pub index: u64,
    pub session: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TxnResult {
    #[serde(rename = "KV")]
    pub kv: KvPair,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TxnError {
    pub op_index: usize,
    pub what: String,
}

/// `PUT /v1/txn` response: `Results` or `Errors`, the other `null`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TxnResponse {
    pub results: Option<Vec<TxnResult>>,
    pub errors: Option<Vec<TxnError>>,
}

/// `/v1/agent/health/service/*` element.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentServiceChecksInfo {
    pub aggregated_status: String,
    pub service: AgentService,
    pub checks: Vec<HealthCheck>,
}

/// `/v1/operator/raft/configuration` server entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftServer {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub leader: bool,
    pub protocol_version: String,
    pub voter: bool,
    pub last_index: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftConfiguration {
    pub servers: Vec<RaftServer>,
    pub index: u64,
}
