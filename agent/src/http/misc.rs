//! `/v1/status/*`, `/v1/event/*`, `/v1/operator/raft/*` (compat §9).

use super::{body_bytes, ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::Arc;
use tribune_api::types as api;

pub async fn leader(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let addr = s.rpc.leader_addr().unwrap_or_default();
    Ok(super::json(&addr, ctx.pretty()))
}

pub async fn peers(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    Ok(super::json(&s.rpc.peers(), ctx.pretty()))
}

/// Gossip's view of the servers: Raft node id → (node UUID, node name).
fn server_names(s: &HttpState) -> BTreeMap<u64, (String, String)> {
    let mut out: BTreeMap<u64, (String, String)> = s
        .cluster
        .lan
        .members()
        .into_iter()
        .filter(|m| m.meta.role == crate::gossip::Role::Server && !m.meta.node_id.is_empty())
        .map(|m| {
            (
                crate::raft::node_id_from_uuid(&m.meta.node_id),
                (m.meta.node_id, m.name),
            )
        })
        .collect();
    out.insert(
        s.rpc.node_id(),
        (s.info.node_id.clone(), s.info.node_name.clone()),
    );
    out
}

pub async fn raft_configuration(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz.require(Resource::Operator, "", Access::Read)?;
    let Some(raft) = s.rpc.raft() else {
        return Err(ApiError::internal("this agent is not a server"));
    };
    let names = server_names(&s);
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let servers = membership
        .nodes()
        .map(|(id, node)| {
            // Servers gossip has not told us about (yet) show their Raft id, no name.
            let (uuid, name) = names
                .get(id)
                .cloned()
                .unwrap_or_else(|| (id.to_string(), String::new()));
            api::RaftServer {
                id: uuid,
                node: name,
                address: node.addr.clone(),
                leader: m.current_leader == Some(*id),
                protocol_version: "3".into(),
                voter: membership.voter_ids().any(|v| v == *id),
                last_index: m.last_log_index.unwrap_or(0),
            }
        })
        .collect();
    let index = m.membership_config.log_id().map_or(1, |l| l.index);
    Ok(super::json(
        &api::RaftConfiguration { servers, index },
        ctx.pretty(),
    ))
}

/// `DELETE /v1/operator/raft/peer?id=|?address=`: removes a (dead) server from the Raft
/// configuration (Consul's `Operator.RaftRemovePeerByID`/`ByAddress`). The leader makes the
/// change; a follower hands the request to the leader's HTTP API. A removed server that is
/// still alive in gossip is added back by the leader's reconcile, as in Consul.
pub async fn raft_remove_peer(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz.require(Resource::Operator, "", Access::Write)?;
    let target = match (ctx.params.get("id"), ctx.params.get("address")) {
        (None, None) => {
            return Err(ApiError::bad_request(
                "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Must specify only one of ?id or ?address",
            ))
        }
        (Some(id), None) => Peer::Id(id.to_string()),
        (None, Some(addr)) => Peer::Address(addr.to_string()),
    };
    let Some(raft) = s.rpc.raft() else {
        return Err(ApiError::internal("this agent is not a server"));
    };
    if !s.rpc.leader_status().is_leader {
        // Forwarded once at most: a request that meets a non-leader again fails.
        if req.headers().contains_key(FORWARDED_HEADER) {
            return Err(ApiError::internal(crate::structs::msg::NO_LEADER));
        }
        return forward_to_leader(&s, req).await;
    }
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let names = server_names(&s);
    let found = match &target {
        Peer::Address(addr) => membership
            .nodes()
            .find(|(_, n)| n.addr == *addr)
            .map(|(id, _)| *id),
        // The node UUID `list-peers` shows, or the numeric Raft id.
        Peer::Id(want) => membership.nodes().map(|(id, _)| *id).find(|id| {
            names.get(id).is_some_and(|(uuid, _)| uuid == want) || id.to_string() == *want
        }),
    };
    let Some(id) = found else {
        return Err(ApiError::internal(match &target {
            Peer::Address(a) => format!("address {a:?} was not found in the Raft configuration"),
            Peer::Id(i) => format!("id {i:?} was not found in the Raft configuration"),
        }));
    };
    let voters: std::collections::BTreeSet<u64> =
        membership.voter_ids().filter(|v| *v != id).collect();
    drop(m);
    if voters.is_empty() {
        return Err(ApiError::internal(
            "cannot remove the last voter from the Raft configuration",
        ));
    }
    raft.change_membership(voters, false)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tracing::warn!(target: "rpc", peer = %target, "Removed Raft peer.");
    // Consul answers 200 with an empty body.
    Ok(Response::default())
}

enum Peer {
    Id(String),
    Address(String),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Id(i) => write!(f, "id {i}"),
            Peer::Address(a) => write!(f, "address {a}"),
        }
    }
}

/// Marks an operator request a follower handed to the leader.
const FORWARDED_HEADER: &str = "x-tribune-forwarded";

/// Sends an operator request to the leader's HTTP API (found through gossip metadata).
async fn forward_to_leader(s: &HttpState, req: Request) -> Result<Response, ApiError> {
    let leader_rpc = s
        .rpc
        .leader_addr()
        .ok_or_else(|| ApiError::internal(crate::structs::msg::NO_LEADER))?;
    let http = s
        .cluster
        .lan
        .members()
        .into_iter()
        .find(|m| m.meta.rpc_addr.is_some_and(|a| a.to_string() == leader_rpc))
        .and_then(|m| {
            let mut http = m.meta.http_addr?;
            if http.ip().is_unspecified() {
                http.set_ip(m.addr.ip());
            }
            Some(http)
        })
        .ok_or_else(|| ApiError::internal(crate::structs::msg::NO_LEADER))?;
    let (parts, _) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut rb = s
        .forward_client
        .request(parts.method.clone(), format!("http://{http}{path}"))
        .timeout(std::time::Duration::from_secs(30))
        .header(FORWARDED_HEADER, "1");
    for name in ["x-consul-token", "authorization"] {
        if let Some(v) = parts.headers.get(name) {
            rb = rb.header(name, v);
        }
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| ApiError::internal(format!("rpc error: forwarding to the leader: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ApiError::internal(format!("rpc error: forwarding to the leader: {e}")))?;
    Response::builder()
        .status(status)
        .body(axum::body::Body::from(body))
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub async fn fire(
    State(s): State<Arc<HttpState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    use base64::Engine;
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz.require(Resource::Event, &name, Access::Write)?;
    let get = |k: &str| ctx.params.get(k).unwrap_or("").to_string();
    let (node_filter, service_filter, tag_filter) = (get("node"), get("service"), get("tag"));
    for (what, re) in [
        ("node", &node_filter),
        ("service", &service_filter),
        ("tag", &tag_filter),
    ] {
        if let Err(e) = regex::Regex::new(re) {
            return Err(ApiError::bad_request(format!("Invalid {what} filter: {e}")));
        }
    }
    if !tag_filter.is_empty() && service_filter.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot provide tag filter without service filter.",
        ));
    }
    let payload = body_bytes(req, 100 * 1024).await?;
    let ev = api::UserEvent {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        payload: (!payload.is_empty())
            .then(|| base64::engine::general_purpose::STANDARD.encode(&payload)),
        node_filter,
        service_filter,
        tag_filter,
        version: 1,
        ltime: 0,
    };
    let gossip_ev = crate::gossip::UserEvent {
        id: ev.id.clone(),
        name: ev.name.clone(),
        payload: payload.to_vec(),
        node_filter: ev.node_filter.clone(),
        service_filter: ev.service_filter.clone(),
        tag_filter: ev.tag_filter.clone(),
        ltime: 0,
    };
    s.cluster
        .lan
        .fire_user_event(gossip_ev)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // The fire response reports LTime 0 like Consul (assigned when gossiped).
    let shown = ev;
    Ok(super::json(&shown, ctx.pretty()))
}

pub async fn list(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let name = ctx.params.get("name").unwrap_or("").to_string();
    let events = s.local.events();
    let deadline = tokio::time::Instant::now() + q.wait_with_jitter();
    let mut rx = events.watch();
    loop {
        let (index, all) = events.list();
        // Not monotonic (XOR of UUID halves): block while it equals the client's.
        if q.index == 0 || index != q.index || tokio::time::Instant::now() >= deadline {
            let out: Vec<&api::UserEvent> = all
                .iter()
                .filter(|e| name.is_empty() || e.name == name)
                .filter(|e| ctx.authz.allows(Resource::Event, &e.name, Access::Read))
                .collect();
            let mut r = super::json(&out, q.pretty);
            super::blocking::add_meta(&s, r.headers_mut(), index);
            return Ok(r);
        }
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
