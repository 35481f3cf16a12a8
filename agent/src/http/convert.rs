//! Internal rows → Consul's JSON objects.

use crate::structs::{Check, CheckDef, Node, Service, ServiceAddr};
use std::collections::BTreeMap;
use std::time::Duration;
use tribune_api::types as api;
use tribune_api::GoDuration;

fn dur(ns: u64) -> Option<GoDuration> {
    (ns > 0).then(|| GoDuration(Duration::from_nanos(ns)))
}

fn dur_str(ns: u64) -> String {
    if ns == 0 {
        String::new()
    } else {
        tribune_api::format_go_duration(Duration::from_nanos(ns))
    }
}

fn tagged(m: &BTreeMap<String, ServiceAddr>) -> BTreeMap<String, api::ServiceAddress> {
    m.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                api::ServiceAddress {
                    address: v.address.clone(),
                    port: v.port,
                },
            )
        })
        .collect()
}

/// A node's string map as Consul encodes it: a Go nil map, `null`, when empty (§6.3).
fn nil_if_empty(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then(|| m.clone())
}

pub fn node(n: &Node) -> api::Node {
    api::Node {
        id: n.id.clone(),
        node: n.node.clone(),
        address: n.address.clone(),
        datacenter: n.datacenter.clone(),
        tagged_addresses: nil_if_empty(&n.tagged_addresses),
        meta: nil_if_empty(&n.meta),
        create_index: n.create_index,
        modify_index: n.modify_index,
    }
}

pub fn proxy_default() -> serde_json::Value {
    serde_json::json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
}

pub fn node_service(s: &Service) -> api::NodeService {
    api::NodeService {
        kind: s.kind.clone(),
        id: s.id.clone(),
        service: s.service.clone(),
        tags: s.tags.clone(),
        address: s.address.clone(),
        tagged_addresses: tagged(&s.tagged_addresses),
        meta: s.meta.clone(),
        port: s.port,
        weights: api::Weights {
            passing: s.weights_passing,
            warning: s.weights_warning,
        },
        enable_tag_override: s.enable_tag_override,
        proxy: proxy_default(),
        connect: serde_json::json!({}),
        create_index: s.create_index,
        modify_index: s.modify_index,
    }
}

pub fn agent_service(s: &Service, datacenter: &str) -> api::AgentService {
    api::AgentService {
        kind: s.kind.clone(),
        id: s.id.clone(),
        service: s.service.clone(),
        tags: s.tags.clone(),
        meta: s.meta.clone(),
        port: s.port,
        address: s.address.clone(),
        tagged_addresses: tagged(&s.tagged_addresses),
        weights: api::Weights {
            passing: s.weights_passing,
            warning: s.weights_warning,
        },
        enable_tag_override: s.enable_tag_override,
        create_index: 0,
        modify_index: 0,
        content_hash: String::new(),
        datacenter: datacenter.to_string(),
    }
}

pub fn catalog_service(n: Option<&Node>, s: &Service) -> api::CatalogService {
    let (id, address, datacenter, tagged_addresses, node_meta) = match n {
        Some(n) => (
            n.id.clone(),
            n.address.clone(),
            n.datacenter.clone(),
            nil_if_empty(&n.tagged_addresses),
            nil_if_empty(&n.meta),
        ),
        None => (String::new(), String::new(), String::new(), None, None),
    };
    api::CatalogService {
        id,
        node: s.node.clone(),
        address,
        datacenter,
        tagged_addresses,
        node_meta,
        service_kind: s.kind.clone(),
        service_id: s.id.clone(),
        service_name: s.service.clone(),
        service_tags: s.tags.clone(),
        service_address: s.address.clone(),
        service_tagged_addresses: tagged(&s.tagged_addresses),
        service_weights: api::Weights {
            passing: s.weights_passing,
            warning: s.weights_warning,
        },
        service_meta: s.meta.clone(),
        service_port: s.port,
        service_enable_tag_override: s.enable_tag_override,
        service_proxy: proxy_default(),
        service_connect: serde_json::json!({}),
        create_index: s.create_index,
        modify_index: s.modify_index,
    }
}

pub fn definition(d: &CheckDef) -> api::HealthCheckDefinition {
    api::HealthCheckDefinition {
        http: d.http.clone(),
        tls_server_name: d.tls_server_name.clone(),
        tls_skip_verify: d.tls_skip_verify,
        header: d.header.clone(),
        method: d.method.clone(),
        body: d.body.clone(),
        disable_redirects: d.disable_redirects,
        tcp: d.tcp.clone(),
        udp: d.udp.clone(),
        interval: dur(d.interval_ns),
        output_max_size: d.output_max_size,
        timeout: dur(d.timeout_ns),
        deregister_critical_service_after: dur(d.deregister_critical_service_after_ns),
        script_args: d.script_args.clone(),
        grpc: d.grpc.clone(),
        grpc_use_tls: d.grpc_use_tls,
        alias_node: d.alias_node.clone(),
        alias_service: d.alias_service.clone(),
        ttl: dur(d.ttl_ns),
    }
}

pub fn health_check(c: &Check) -> api::HealthCheck {
    api::HealthCheck {
        node: c.node.clone(),
        check_id: c.check_id.clone(),
        name: c.name.clone(),
        status: c.status.clone(),
        notes: c.notes.clone(),
        output: c.output.clone(),
        service_id: c.service_id.clone(),
        service_name: c.service_name.clone(),
        service_tags: c.service_tags.clone(),
        check_type: c.check_type.clone(),
        interval: dur_str(c.definition.interval_ns),
        timeout: dur_str(c.definition.timeout_ns),
        exposed_port: 0,
        definition: definition(&c.definition),
        create_index: c.create_index,
        modify_index: c.modify_index,
    }
}

/// The internal definition of an API check definition.
pub fn check_def(d: &api::CheckDefinition) -> CheckDef {
    let ns = |g: &Option<GoDuration>| g.map_or(0, |g| g.0.as_nanos() as u64);
    CheckDef {
        http: d.http.clone(),
        header: d.header.clone(),
        method: d.method.clone(),
        body: d.body.clone(),
        disable_redirects: d.disable_redirects,
        tls_server_name: d.tls_server_name.clone(),
        tls_skip_verify: d.tls_skip_verify,
        tcp: d.tcp.clone(),
        udp: d.udp.clone(),
        grpc: d.grpc.clone(),
        grpc_use_tls: d.grpc_use_tls,
        alias_node: d.alias_node.clone(),
        alias_service: d.alias_service.clone(),
        script_args: d.script_args.clone(),
        interval_ns: ns(&d.interval),
        timeout_ns: ns(&d.timeout),
        ttl_ns: ns(&d.ttl),
        deregister_critical_service_after_ns: ns(&d.deregister_critical_service_after),
        output_max_size: d.output_max_size,
    }
}

/// A KV entry on the wire (value base64).
pub fn kv_pair(e: &crate::structs::DirEntry) -> api::KvPair {
    use base64::Engine;
    api::KvPair {
        lock_index: e.lock_index,
        key: e.key.clone(),
        flags: e.flags,
        value: if e.value.is_empty() {
            None
        } else {
            Some(base64::engine::general_purpose::STANDARD.encode(&e.value))
        },
        session: e.session.clone(),
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}

pub fn session(s: &crate::structs::Session) -> api::SessionEntry {
    api::SessionEntry {
        id: s.id.clone(),
        name: s.name.clone(),
        node: s.node.clone(),
        lock_delay: s.lock_delay_ns,
        behavior: s.behavior.clone(),
        ttl: s.ttl.clone(),
        node_checks: s.node_checks.clone(),
        service_checks: if s.service_checks.is_empty() {
            None
        } else {
            Some(
                s.service_checks
                    .iter()
                    .map(|id| api::ServiceCheckRef {
                        id: id.clone(),
                        namespace: String::new(),
                    })
                    .collect(),
            )
        },
        create_index: s.create_index,
        modify_index: s.modify_index,
    }
}
