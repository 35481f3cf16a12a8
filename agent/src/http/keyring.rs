//! `/v1/operator/keyring` (compat §12.3): list, install, use and remove gossip keys on every
//! member, WAN pool first (servers), then the LAN pool. Keys are secrets: they appear in the
//! answers operators asked for, never in logs or error texts.

use super::{decode_body, empty, ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use crate::gossip::{Gossip, GossipError, KeyringSummary};
use axum::extract::{Request, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct KeyRequest {
    key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyringResponse {
    #[serde(rename = "WAN")]
    wan: bool,
    datacenter: String,
    segment: String,
    keys: BTreeMap<String, usize>,
    primary_keys: BTreeMap<String, usize>,
    num_nodes: usize,
    messages: BTreeMap<String, String>,
}

fn pools(s: &HttpState) -> Vec<(bool, &Gossip)> {
    let mut out = Vec::new();
    if let Some(w) = &s.cluster.wan {
        out.push((true, w));
    }
    out.push((false, &s.cluster.lan));
    out
}

fn to_response(s: &HttpState, wan: bool, k: KeyringSummary) -> KeyringResponse {
    KeyringResponse {
        wan,
        datacenter: s.info.datacenter.clone(),
        segment: String::new(),
        keys: k.keys,
        primary_keys: k.primary_keys,
        num_nodes: k.num_nodes,
        messages: k.messages,
    }
}

fn error(e: GossipError) -> ApiError {
    match e {
        GossipError::Keyring { message, .. } => ApiError::internal(message),
        other => ApiError::internal(other.to_string()),
    }
}

pub async fn list(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz.require(Resource::Keyring, "", Access::Read)?;
    let mut out = Vec::new();
    for (wan, pool) in pools(&s) {
        out.push(to_response(
            &s,
            wan,
            pool.keyring_list().await.map_err(error)?,
        ));
    }
    Ok(super::json(&out, ctx.pretty()))
}

async fn change(s: Arc<HttpState>, req: Request, op: &'static str) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz.require(Resource::Keyring, "", Access::Write)?;
    let body: KeyRequest = decode_body(req, 64 << 10).await?;
    if body.key.is_empty() {
        return Err(ApiError::bad_request(
            "Missing key: a base64 gossip key is required in Key",
        ));
    }
    for (_, pool) in pools(&s) {
        let r = match op {
            "install" => pool.keyring_install(&body.key).await,
            "use" => pool.keyring_use(&body.key).await,
            _ => pool.keyring_remove(&body.key).await,
        };
        r.map_err(error)?;
    }
    Ok(empty())
}

pub async fn install(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    change(s, req, "install").await
}

pub async fn use_key(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    change(s, req, "use").await
}

pub async fn remove(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    change(s, req, "remove").await
}
