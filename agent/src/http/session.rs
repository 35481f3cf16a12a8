//! `/v1/session/*` (compat §8.2).

use super::blocking::{self, Computed};
use super::{convert, decode_body, ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use crate::state::{Table, Tables, WatchKey};
use crate::structs::{msg, Command, Session};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tribune_api::types as api;

const MAX_TTL: Duration = Duration::from_secs(86_400);
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);

/// `LockDelay`: a Go duration string, or a number meaning seconds below 1000, else nanoseconds.
fn lock_delay(v: &Option<serde_json::Value>) -> Result<Duration, ApiError> {
    match v {
        None => Ok(DEFAULT_LOCK_DELAY),
        Some(serde_json::Value::String(s)) => tribune_api::parse_go_duration(s).map_err(|_| {
            ApiError::bad_request(format!("Request decode failed: invalid LockDelay {s:?}"))
        }),
        Some(serde_json::Value::Number(n)) => {
            let n = n.as_f64().unwrap_or(0.0).max(0.0);
            Ok(if n < 1000.0 {
                Duration::from_secs_f64(n)
            } else {
                Duration::from_nanos(n as u64)
            })
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Request decode failed: invalid LockDelay {other}"
        ))),
    }
}

pub async fn create(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let body: api::SessionRequest = decode_body(req, 1 << 20).await?;
    let node = if body.node.is_empty() {
        s.info.node_name.clone()
    } else {
        body.node.clone()
    };
    ctx.authz.require(Resource::Session, &node, Access::Write)?;
    let behavior = if body.behavior.is_empty() {
        "release".to_string()
    } else {
        body.behavior.clone()
    };
    if behavior != "release" && behavior != "delete" {
        return Err(ApiError::bad_request(format!(
            "Invalid Behavior setting '{behavior}'"
        )));
    }
    if !body.ttl.is_empty() {
        let ttl = tribune_api::parse_go_duration(&body.ttl).map_err(|_| {
            ApiError::bad_request(format!("Request decode failed: invalid TTL {:?}", body.ttl))
        })?;
        let min = s.limits.session_ttl_min;
        if ttl != Duration::ZERO && (ttl < min || ttl > MAX_TTL) {
            return Err(ApiError::bad_request(format!(
                "Invalid Session TTL '{}', must be between [{}={}]",
                body.ttl,
                tribune_api::format_go_duration(min),
                tribune_api::format_go_duration(MAX_TTL)
            )));
        }
    }
    let node_checks = body
        .node_checks
        .clone()
        .or(body.checks.clone())
        .unwrap_or_else(|| vec![msg::SERF_CHECK_ID.to_string()]);
    let service_checks = body
        .service_checks
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let id = uuid::Uuid::new_v4().to_string();
    let session = Session {
        id: id.clone(),
        name: body.name.clone(),
        node,
        lock_delay_ns: lock_delay(&body.lock_delay)?.as_nanos() as u64,
        behavior,
        ttl: body.ttl.clone(),
        node_checks,
        service_checks,
        create_index: 0,
        modify_index: 0,
    };
    let r = s.rpc.apply(Command::SessionCreate(session)).await?;
    if let Some((_, e)) = r.errors.first() {
        return Err(ApiError::internal(e.clone()));
    }
    Ok(super::json(&serde_json::json!({ "ID": id }), ctx.pretty()))
}

pub async fn destroy(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let node = s
        .rpc
        .store()
        .read(|t| t.session(&id).map(|x| x.node.clone()));
    if let Some(node) = &node {
        ctx.authz.require(Resource::Session, node, Access::Write)?;
    }
    s.rpc
        .apply(Command::SessionDestroy { id: id.clone() })
        .await?;
    s.rpc.session_timers().remove(&id);
    Ok(super::json(&true, ctx.pretty()))
}

pub async fn renew(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    s.rpc.read_barrier(crate::rpc::Consistency::Default).await?;
    let Some(sess) = s.rpc.store().read(|t| t.session(&id).cloned()) else {
        return Err(ApiError::not_found(msg::session_not_found(&id)));
    };
    ctx.authz
        .require(Resource::Session, &sess.node, Access::Write)?;
    if let Ok(ttl) = tribune_api::parse_go_duration(&sess.ttl) {
        s.rpc.session_timers().reset(&id, ttl);
    }
    Ok(super::json(&[convert::session(&sess)], ctx.pretty()))
}

fn list(t: &Tables, ctx: &Ctx, f: impl Fn(&Session) -> bool) -> Computed {
    let out: Vec<api::SessionEntry> = t
        .sessions()
        .filter(|x| f(x) && ctx.authz.allows(Resource::Session, &x.node, Access::Read))
        .map(convert::session)
        .collect();
    Computed::json(t.table_index(Table::Sessions), &out)
}

pub async fn info(
    State(s): State<Arc<HttpState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let key = format!("session/info/{id}?{}", ctx.params.cache_key());
    blocking::read(
        &s,
        &q,
        WatchKey::Table(Table::Sessions),
        key,
        |t: &Tables| list(t, &ctx, |x| x.id == id),
    )
    .await
}

pub async fn node(
    State(s): State<Arc<HttpState>>,
    Path(node): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let key = format!("session/node/{node}?{}", ctx.params.cache_key());
    blocking::read(
        &s,
        &q,
        WatchKey::Table(Table::Sessions),
        key,
        |t: &Tables| list(t, &ctx, |x| x.node == node),
    )
    .await
}

pub async fn all(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let key = format!("session/list?{}", ctx.params.cache_key());
    blocking::read(
        &s,
        &q,
        WatchKey::Table(Table::Sessions),
        key,
        |t: &Tables| list(t, &ctx, |_| true),
    )
    .await
}
