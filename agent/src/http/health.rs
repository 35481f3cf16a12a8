//! `/v1/health/*` (compat §7).

use super::blocking::{self, Computed};
use super::catalog::{has_tags, node_matches_meta, node_meta_filter, passes};
use super::{convert, ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use crate::state::{Table, Tables, WatchKey};
use crate::structs::{health, msg};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use std::sync::Arc;
use tribune_api::types as api;

pub async fn service(
    State(s): State<Arc<HttpState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    if name.is_empty() {
        return Err(ApiError::bad_request(msg::MISSING_SERVICE_NAME));
    }
    ctx.authz.require(Resource::Service, &name, Access::Read)?;
    let passing = match ctx.params.parse_bool("passing") {
        None => false,
        Some(Ok(b)) => b,
        Some(Err(())) => return Err(ApiError::bad_request(msg::INVALID_PASSING)),
    };
    let tags: Vec<String> = ctx.params.all("tag").map(str::to_string).collect();
    let meta = node_meta_filter(&ctx);
    let key = format!("health/service/{name}?{}", ctx.params.cache_key());
    blocking::read(
        &s,
        &q,
        WatchKey::Service(name.clone()),
        key,
        |t: &Tables| {
            let mut out = Vec::new();
            for svc in t.service_instances(&name) {
                let node = t.node(&svc.node);
                if !has_tags(svc, &tags) || !node_matches_meta(node, &meta) {
                    continue;
                }
                let checks = t.instance_checks(&svc.node, &svc.id);
                if passing && checks.iter().any(|c| c.status != health::PASSING) {
                    continue;
                }
                let entry = api::ServiceEntry {
                    node: node.map(convert::node).unwrap_or_default(),
                    service: convert::node_service(svc),
                    checks: checks.into_iter().map(convert::health_check).collect(),
                };
                if passes(&q.filter, &entry) {
                    out.push(entry);
                }
            }
            Computed::json(t.service_index(&name), &out)
        },
    )
    .await
}

pub async fn checks(
    State(s): State<Arc<HttpState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    let meta = node_meta_filter(&ctx);
    let key = format!("health/checks/{name}?{}", ctx.params.cache_key());
    blocking::read(
        &s,
        &q,
        WatchKey::Service(name.clone()),
        key,
        |t: &Tables| {
            let out: Vec<api::HealthCheck> = t
                .service_instances(&name)
                .into_iter()
                .filter(|svc| node_matches_meta(t.node(&svc.node), &meta))
                .flat_map(|svc| t.node_checks(&svc.node).filter(|c| c.service_id == svc.id))
                .map(convert::health_check)
                .filter(|c| passes(&q.filter, c))
                .collect();
            Computed::json(t.service_index(&name), &out)
        },
    )
    .await
}

pub async fn node(
    State(s): State<Arc<HttpState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    if name.is_empty() {
        return Err(ApiError::bad_request(msg::MISSING_NODE_NAME));
    }
    let key = format!("health/node/{name}?{}", ctx.params.cache_key());
    blocking::read(&s, &q, WatchKey::Node(name.clone()), key, |t: &Tables| {
        let out: Vec<api::HealthCheck> = t
            .node_checks(&name)
            .map(convert::health_check)
            .filter(|c| passes(&q.filter, c))
            .collect();
        Computed::json(t.node_index(&name), &out)
    })
    .await
}

pub async fn state(
    State(s): State<Arc<HttpState>>,
    Path(state): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    let q = ctx.query(&s)?;
    if state.is_empty() {
        return Err(ApiError::bad_request(msg::MISSING_CHECK_STATE));
    }
    if state != "any" && !health::is_valid(&state) {
        return Err(ApiError::bad_request(format!(
            "Invalid check state: {state:?}"
        )));
    }
    let meta = node_meta_filter(&ctx);
    let key = format!("health/state/{state}?{}", ctx.params.cache_key());
    blocking::read(&s, &q, WatchKey::Table(Table::Checks), key, |t: &Tables| {
        let out: Vec<api::HealthCheck> = t
            .all_checks()
            .filter(|c| state == "any" || c.status == state)
            .filter(|c| node_matches_meta(t.node(&c.node), &meta))
            .map(convert::health_check)
            .filter(|c| passes(&q.filter, c))
            .collect();
        Computed::json(t.table_index(Table::Checks), &out)
    })
    .await
}

pub async fn state_missing(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    Ctx::new(&s, &req)?;
    Err(ApiError::bad_request(msg::MISSING_CHECK_STATE))
}

/// `/v1/health/service/`, `/v1/health/checks/` and `/v1/catalog/service/` without a name.
pub async fn service_missing(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    Ctx::new(&s, &req)?;
    Err(ApiError::bad_request(msg::MISSING_SERVICE_NAME))
}

/// `/v1/health/node/` without a name.
pub async fn node_missing(
    State(s): State<Arc<HttpState>>,
    req: Request,
) -> Result<Response, ApiError> {
    Ctx::new(&s, &req)?;
    Err(ApiError::bad_request(msg::MISSING_NODE_NAME))
}
