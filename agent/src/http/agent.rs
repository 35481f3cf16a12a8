//! `/v1/agent/*` (compat §5): the local agent's own view, never blocking, never Raft reads.

use super::catalog::passes;
use super::{convert, decode_body, empty, ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use crate::checks::Status;
use crate::local::{LocalError, Source};
use crate::structs::{self, health, msg, CONSUL_VERSION, TRIBUNE_VERSION};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tribune_api::types as api;

impl From<LocalError> for ApiError {
    fn from(e: LocalError) -> ApiError {
        let status = match &e {
            LocalError::Invalid(_) | LocalError::Check(_) => StatusCode::BAD_REQUEST,
            LocalError::UnknownService(_) | LocalError::UnknownCheck(_) => StatusCode::NOT_FOUND,
            LocalError::NoTtl(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

pub async fn self_(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Agent, &s.info.node_name, Access::Read)?;
    let i = &s.info;
    let ls = s.rpc.leader_status();
    let checks = s.local.checks();
    let ttl = checks.iter().filter(|c| c.check_type == "ttl").count();
    let m = s.rpc.raft().map(|r| r.metrics().borrow().clone());
    let body = json!({
        "Config": {
            "Datacenter": i.datacenter,
            "PrimaryDatacenter": i.primary_datacenter,
            "NodeName": i.node_name,
            "NodeID": i.node_id,
            "Revision": "tribune",
            "Server": i.server,
            "Version": CONSUL_VERSION,
            "BuildDate": "",
            "TribuneVersion": TRIBUNE_VERSION,
        },
        "DebugConfig": i.debug_config,
        "Coord": {"Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Error": 1.5, "Adjustment": 0.0, "Height": 1e-5},
        "Member": agent_member(&s.cluster.lan.local()),
        "Stats": {
            "agent": {
                "check_monitors": (checks.len() - ttl).to_string(),
                "check_ttls": ttl.to_string(),
                "checks": checks.len().to_string(),
                "services": s.local.services().len().to_string(),
            },
            "build": {"prerelease": "", "revision": "tribune", "version": CONSUL_VERSION},
            "consul": {
                "acl": "disabled",
                "bootstrap": (i.bootstrap_expect <= 1 && i.server).to_string(),
                "known_datacenters": "1",
                "leader": ls.is_leader.to_string(),
                "leader_addr": s.rpc.leader_addr().unwrap_or_default(),
                "server": i.server.to_string(),
            },
            "runtime": {
                "arch": std::env::consts::ARCH,
                "os": std::env::consts::OS,
                "cpu_count": std::thread::available_parallelism().map_or(1, |n| n.get()).to_string(),
                "version": format!("tribune {TRIBUNE_VERSION}"),
            },
            "serf_lan": serf_stats(&s.cluster.lan),
        },
        "Meta": s.local.node().meta,
    });
    // Servers report their Raft state; clients have none (Consul omits the section too).
    let mut body = body;
    if let (Some(m), Some(stats)) = (m, body.get_mut("Stats").and_then(|v| v.as_object_mut())) {
        stats.insert(
            "raft".into(),
            json!({
                "applied_index": m.last_applied.map_or(0, |l| l.index).to_string(),
                "commit_index": m.last_applied.map_or(0, |l| l.index).to_string(),
                "last_log_index": m.last_log_index.unwrap_or(0).to_string(),
                "last_snapshot_index": m.snapshot.map_or(0, |l| l.index).to_string(),
                "num_peers": (s.rpc.peers().len().saturating_sub(1)).to_string(),
                "state": format!("{:?}", m.state),
                "term": m.current_term.to_string(),
            }),
        );
    }
    Ok(super::json(&body, ctx.pretty()))
}

fn agent_member(m: &crate::gossip::Member) -> api::AgentMember {
    api::AgentMember {
        name: m.name.clone(),
        addr: m.addr.ip().to_string(),
        port: m.addr.port(),
        tags: m.tags(),
        status: i64::from(m.status.code()),
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    }
}

fn serf_stats(pool: &crate::gossip::Gossip) -> serde_json::Value {
    use crate::gossip::MemberStatus;
    let members = pool.members();
    let count = |st: MemberStatus| {
        members
            .iter()
            .filter(|m| m.status == st)
            .count()
            .to_string()
    };
    json!({
        "members": members.len().to_string(),
        "failed": count(MemberStatus::Failed),
        "left": count(MemberStatus::Left),
        "encrypted": pool.encrypted().to_string(),
        "health_score": "0",
    })
}

fn wan_requested(ctx: &Ctx) -> bool {
    ctx.params
        .get("wan")
        .is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

pub async fn members(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let pool = if wan_requested(&ctx) {
        match &s.cluster.wan {
            Some(w) => w,
            None => {
                return Err(ApiError::internal(
                    "WAN members are only available on servers",
                ))
            }
        }
    } else {
        &s.cluster.lan
    };
    let q = ctx.query(&s)?;
    let mut out: Vec<api::AgentMember> = pool
        .members()
        .iter()
        .filter(|m| ctx.authz.allows(Resource::Node, &m.name, Access::Read))
        .map(agent_member)
        .filter(|m| passes(&q.filter, m))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(super::json(&out, ctx.pretty()))
}

pub async fn services(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let out: BTreeMap<String, api::AgentService> = s
        .local
        .services()
        .iter()
        .filter(|svc| {
            ctx.authz
                .allows(Resource::Service, &svc.service, Access::Read)
        })
        .map(|svc| {
            (
                svc.id.clone(),
                convert::agent_service(svc, &s.info.datacenter),
            )
        })
        .filter(|(_, a)| passes(&q.filter, a))
        .collect();
    Ok(super::json(&out, ctx.pretty()))
}

fn content_hash(v: &api::AgentService) -> String {
    let bytes = super::to_json(v);
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes.iter() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

pub async fn service(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let Some(svc) = s.local.service(&id) else {
        return Err(ApiError::not_found(format!("unknown service ID: {id}")));
    };
    ctx.authz
        .require(Resource::Service, &svc.service, Access::Read)?;
    let mut a = convert::agent_service(&svc, &s.info.datacenter);
    a.content_hash = content_hash(&a);
    let hash = a.content_hash.clone();
    let mut r = super::json(&a, ctx.pretty());
    if let Ok(v) = http::HeaderValue::from_str(&hash) {
        r.headers_mut().insert("X-Consul-ContentHash", v);
    }
    Ok(r)
}

pub async fn checks(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let out: BTreeMap<String, api::HealthCheck> = s
        .local
        .checks()
        .iter()
        .map(|c| (c.check_id.clone(), convert::health_check(c)))
        .filter(|(_, c)| passes(&q.filter, c))
        .collect();
    Ok(super::json(&out, ctx.pretty()))
}

pub async fn register_service(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let replace = matches!(
        ctx.params.get("replace-existing-checks"),
        Some("") | Some("true")
    );
    let def: api::ServiceDefinition = decode_body(req, 4 << 20).await?;
    if def.name.is_empty() {
        return Err(ApiError::bad_request(msg::MISSING_SERVICE_NAME));
    }
    ctx.authz
        .require(Resource::Service, &def.name, Access::Write)?;
    let token = if def.token.is_empty() {
        ctx.token.clone().unwrap_or_default()
    } else {
        def.token.clone()
    };
    s.local.add_service(def, &token, Source::Api, replace)?;
    // Register synchronously so a read right after sees the service (Consul syncs later).
    if let Err(e) = s.local.sync_changes().await {
        tracing::warn!(target: "http", error = %e, "Immediate sync after registration failed; anti-entropy will retry.");
    }
    Ok(empty())
}

pub async fn deregister_service(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    if let Some(svc) = s.local.service(&id) {
        ctx.authz
            .require(Resource::Service, &svc.service, Access::Write)?;
    }
    s.local.remove_service(&id)?;
    if let Err(e) = s.local.sync_changes().await {
        tracing::warn!(target: "http", error = %e, "Immediate sync after deregistration failed; anti-entropy will retry.");
    }
    Ok(empty())
}

pub async fn register_check(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let def: api::CheckDefinition = decode_body(req, 1 << 20).await?;
    ctx.authz
        .require(Resource::Node, &s.info.node_name, Access::Write)?;
    if !def.status.is_empty() && !health::is_valid(&def.status) {
        return Err(ApiError::bad_request(msg::BAD_CHECK_STATUS));
    }
    let token = if def.token.is_empty() {
        ctx.token.clone().unwrap_or_default()
    } else {
        def.token.clone()
    };
    s.local.add_check(def, &token, Source::Api)?;
    let _ = s.local.sync_changes().await;
    Ok(empty())
}

pub async fn deregister_check(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Node, &s.info.node_name, Access::Write)?;
    s.local.remove_check(&id)?;
    let _ = s.local.sync_changes().await;
    Ok(empty())
}

async fn ttl(s: &HttpState, req: Request, id: &str, status: Status) -> Result<Response, ApiError> {
    let ctx = Ctx::new(s, &req)?;
    ctx.authz
        .require(Resource::Node, &s.info.node_name, Access::Write)?;
    let note = ctx.params.get("note").unwrap_or("").to_string();
    s.local.update_ttl(id, status, &note)?;
    Ok(empty())
}

pub async fn check_pass(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    ttl(&s, req, &id, Status::Passing).await
}

pub async fn check_warn(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    ttl(&s, req, &id, Status::Warning).await
}

pub async fn check_fail(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    ttl(&s, req, &id, Status::Critical).await
}

pub async fn check_update(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Node, &s.info.node_name, Access::Write)?;
    let body: api::CheckUpdate = decode_body(req, 1 << 20).await?;
    let status: Status = body
        .status
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Invalid check status: '{}'", body.status)))?;
    s.local.update_ttl(&id, status, &body.output)?;
    Ok(empty())
}

fn maintenance_params(ctx: &Ctx) -> Result<(bool, String), ApiError> {
    let enable = match ctx.params.get("enable") {
        None => return Err(ApiError::bad_request("Missing value for enable")),
        Some(v) => match ctx.params.parse_bool("enable") {
            Some(Ok(b)) => b,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid value for enable: {v:?}"
                )))
            }
        },
    };
    Ok((enable, ctx.params.get("reason").unwrap_or("").to_string()))
}

pub async fn node_maintenance(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Node, &s.info.node_name, Access::Write)?;
    let (enable, reason) = maintenance_params(&ctx)?;
    s.local.set_node_maintenance(enable, &reason);
    let _ = s.local.sync_changes().await;
    Ok(empty())
}

pub async fn service_maintenance(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let (enable, reason) = maintenance_params(&ctx)?;
    if let Some(svc) = s.local.service(&id) {
        ctx.authz
            .require(Resource::Service, &svc.service, Access::Write)?;
    }
    s.local.set_service_maintenance(&id, enable, &reason)?;
    let _ = s.local.sync_changes().await;
    Ok(empty())
}

pub async fn reload(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Agent, &s.info.node_name, Access::Write)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.control
        .reload
        .send(tx)
        .await
        .map_err(|_| ApiError::internal("agent is shutting down"))?;
    match rx.await {
        Ok(Ok(())) => Ok(empty()),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(_) => Err(ApiError::internal("agent is shutting down")),
    }
}

pub async fn leave(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Agent, &s.info.node_name, Access::Write)?;
    tracing::info!(target: "agent", "Graceful leave requested over the API.");
    let leave = s.control.leave.clone();
    // Answer first, then leave: the client waits for this response.
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        leave.cancel();
    });
    Ok(empty())
}

pub async fn join(
    State(s): State<Arc<HttpState>>,
    Path(addr): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Agent, &s.info.node_name, Access::Write)?;
    let pool = if wan_requested(&ctx) {
        s.cluster.wan.as_ref().ok_or_else(|| {
            ApiError::internal("cannot join the WAN pool: this agent is not a server")
        })?
    } else {
        &s.cluster.lan
    };
    match pool.join(std::slice::from_ref(&addr)).await {
        Ok(n) if n > 0 => Ok(empty()),
        Ok(_) => Err(ApiError::internal(format!(
            "1 error occurred:\n\t* Failed to join {addr}: no members answered"
        ))),
        Err(e) => Err(ApiError::internal(format!(
            "1 error occurred:\n\t* Failed to join {addr}: {e}"
        ))),
    }
}

pub async fn force_leave(
    State(s): State<Arc<HttpState>>,
    Path(node): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz.require(Resource::Operator, "", Access::Write)?;
    let pool = if wan_requested(&ctx) {
        s.cluster.wan.as_ref().unwrap_or(&s.cluster.lan)
    } else {
        &s.cluster.lan
    };
    pool.force_leave(&node)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(empty())
}

fn health_info(s: &HttpState, svc: &structs::Service) -> (String, api::AgentServiceChecksInfo) {
    let checks: Vec<structs::Check> = s
        .local
        .checks()
        .into_iter()
        .filter(|c| c.service_id == svc.id || c.service_id.is_empty())
        .collect();
    let status = structs::aggregate_status(checks.iter()).to_string();
    let info = api::AgentServiceChecksInfo {
        aggregated_status: status.clone(),
        service: convert::agent_service(svc, &s.info.datacenter),
        checks: checks.iter().map(convert::health_check).collect(),
    };
    (status, info)
}

fn status_code(status: &str) -> StatusCode {
    match status {
        health::PASSING => StatusCode::OK,
        health::WARNING => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn worst<'a>(a: &'a str, b: &'a str) -> &'a str {
    let rank = |s: &str| match s {
        health::PASSING => 0,
        health::WARNING => 1,
        health::CRITICAL => 2,
        _ => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

pub async fn health_by_id(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let Some(svc) = s.local.service(&id) else {
        return Err(ApiError::not_found(format!("ServiceId {id} not found")));
    };
    ctx.authz
        .require(Resource::Service, &svc.service, Access::Read)?;
    let (status, info) = health_info(&s, &svc);
    let mut r = if ctx.params.get("format") == Some("text") {
        axum::response::IntoResponse::into_response(status.clone())
    } else {
        super::json(&info, ctx.pretty())
    };
    *r.status_mut() = status_code(&status);
    Ok(r)
}

pub async fn health_by_name(
    State(s): State<Arc<HttpState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz.require(Resource::Service, &name, Access::Read)?;
    let mut overall = health::PASSING.to_string();
    let mut infos = Vec::new();
    for svc in s.local.services().iter().filter(|x| x.service == name) {
        let (status, info) = health_info(&s, svc);
        overall = worst(&overall, &status).to_string();
        infos.push(info);
    }
    if infos.is_empty() {
        let mut r = if ctx.params.get("format") == Some("text") {
            axum::response::IntoResponse::into_response(format!("ServiceName {name} Not Found"))
        } else {
            super::json(&infos, ctx.pretty())
        };
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    }
    let mut r = if ctx.params.get("format") == Some("text") {
        axum::response::IntoResponse::into_response(overall.clone())
    } else {
        super::json(&infos, ctx.pretty())
    };
    *r.status_mut() = status_code(&overall);
    Ok(r)
}

pub async fn version(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let body = json!({"SHA": "tribune", "BuildDate": "", "HumanVersion": CONSUL_VERSION, "FIPS": "", "Tribune": TRIBUNE_VERSION});
    Ok(super::json(&body, ctx.pretty()))
}
