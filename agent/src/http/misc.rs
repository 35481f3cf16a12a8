//! `/v1/status/*`, `/v1/event/*`, `/v1/operator/raft/*` (compat §9).

use super::{body_bytes, ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use axum::extract::{Path, Request, State};
use axum::response::Response;
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

pub async fn raft_configuration(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz.require(Resource::Operator, "", Access::Read)?;
    let Some(raft) = s.rpc.raft() else {
        return Err(ApiError::internal("this agent is not a server"));
    };
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let servers = membership
        .nodes()
        .map(|(id, node)| api::RaftServer {
            id: if *id == s.rpc.node_id() {
                s.info.node_id.clone()
            } else {
                id.to_string()
            },
            node: if *id == s.rpc.node_id() {
                s.info.node_name.clone()
            } else {
                String::new()
            },
            address: node.addr.clone(),
            leader: m.current_leader == Some(*id),
            protocol_version: "3".into(),
            voter: membership.voter_ids().any(|v| v == *id),
            last_index: m.last_log_index.unwrap_or(0),
        })
        .collect();
    let index = m.membership_config.log_id().map_or(1, |l| l.index);
    Ok(super::json(
        &api::RaftConfiguration { servers, index },
        ctx.pretty(),
    ))
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
