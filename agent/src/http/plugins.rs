//! `GET /v1/agent/plugins` (Tribune's own): the WASM plugins this agent loaded, with
//! their state (`ready`, `quarantined`, `failed`) and counters. Needs `agent:read`.

use super::{ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use axum::extract::{Request, State};
use axum::response::Response;
use std::sync::Arc;

pub async fn list(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Agent, &s.info.node_name, Access::Read)?;
    let plugins = s.local.plugins().map(|p| p.list()).unwrap_or_default();
    Ok(super::json(&plugins, ctx.pretty()))
}
