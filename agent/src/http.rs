//! Consul's HTTP API on `/v1/`: one route table ([`routes`]), one error type, blocking
//! queries with narrow watches, and token resolution on every request.
//!
//! Owns: request parsing and response encoding. Must not touch Raft or the state store
//! except through [`crate::rpc`] (reads run inside a read barrier; writes are commands).

mod agent;
mod blocking;
mod catalog;
mod convert;
mod error;
mod forward;
mod health;
mod keyring;
mod kv;
mod misc;
mod monitor;
mod plugins;
mod query;
mod routes;
mod session;

pub use convert::check_def;
pub use error::ApiError;
pub use query::WaitLimits;

use crate::acl::{self, Acl, Authorizer};
use crate::local::LocalAgent;
use crate::rpc::Server;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use query::{Params, QueryOptions};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Facts about this agent that the API reports.
#[derive(Clone, Debug)]
pub struct AgentInfo {
    pub node_name: String,
    pub node_id: String,
    pub datacenter: String,
    pub primary_datacenter: String,
    pub server: bool,
    pub advertise_addr: String,
    pub serf_lan_port: u16,
    pub server_port: u16,
    pub ui: bool,
    pub bootstrap_expect: u32,
    /// The runtime configuration with secrets hidden, for `/v1/agent/self` `DebugConfig`.
    pub debug_config: serde_json::Value,
}

/// Requests the HTTP API makes of the agent process.
#[derive(Clone)]
pub struct Control {
    /// Reload the configuration; answered with the error text on failure.
    pub reload: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
    /// Graceful leave and shutdown.
    pub leave: CancellationToken,
}

/// Limits that shape requests.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub wait: WaitLimits,
    pub kv_max_value_size: usize,
    pub txn_max_req_len: usize,
    pub session_ttl_min: std::time::Duration,
}

/// Everything a handler needs.
pub struct HttpState {
    pub rpc: Arc<Server>,
    pub local: Arc<LocalAgent>,
    pub acl: Acl,
    pub info: AgentInfo,
    pub control: Control,
    pub limits: Limits,
    /// The gossip pools (LAN; WAN on servers).
    pub cluster: crate::agent::Cluster,
    /// A client agent's connection to servers' HTTP APIs (no timeout: blocking queries).
    forward_client: reqwest::Client,
    cache: blocking::Cache,
}

impl HttpState {
    pub fn new(
        rpc: Arc<Server>,
        local: Arc<LocalAgent>,
        acl: Acl,
        info: AgentInfo,
        control: Control,
        limits: Limits,
        cluster: crate::agent::Cluster,
    ) -> HttpState {
        let forward_client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        HttpState {
            rpc,
            local,
            acl,
            info,
            control,
            limits,
            cluster,
            forward_client,
            cache: blocking::Cache::default(),
        }
    }
}

/// A parsed request: what every handler starts from.
pub(crate) struct Ctx {
    pub params: Params,
    pub authz: Authorizer,
    pub token: Option<String>,
    /// `-dev` agents indent every JSON answer, as if `?pretty` were given (Consul's
    /// `marshalJSON`, compat §1.5).
    dev: bool,
}

impl Ctx {
    /// Parses the query, resolves the token and checks `?dc=`.
    pub fn new(s: &HttpState, req: &Request) -> Result<Ctx, ApiError> {
        let params = Params::parse(req.uri().query());
        let token = acl::token_from_request(params.get("token"), req.headers()).map(str::to_string);
        let authz = s.acl.authorize(token.as_deref())?;
        if let Some(dc) = params.get("dc") {
            if !dc.is_empty() && !dc.eq_ignore_ascii_case(&s.info.datacenter) {
                return Err(ApiError::internal(crate::structs::msg::NO_PATH_TO_DC));
            }
        }
        let dev = s
            .info
            .debug_config
            .get("DevMode")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        Ok(Ctx {
            params,
            authz,
            token,
            dev,
        })
    }

    pub fn query(&self, s: &HttpState) -> Result<QueryOptions, ApiError> {
        let mut q = QueryOptions::parse(&self.params, s.limits.wait)?;
        q.pretty |= self.dev;
        Ok(q)
    }

    pub fn pretty(&self) -> bool {
        self.params.has("pretty") || self.dev
    }
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub(crate) async fn body_bytes(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body too large, max size: {limit} bytes"),
            )
        })
}

/// Decodes a JSON body the way Consul does (case-insensitive keys, unknown fields ignored).
pub(crate) async fn decode_body<T: serde::de::DeserializeOwned + Default>(
    req: Request,
    limit: usize,
) -> Result<T, ApiError> {
    let body = body_bytes(req, limit).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    tribune_api::decode::from_slice(&body).map_err(ApiError::decode)
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Bytes {
    // Our API types serialize infallibly (string keys, no non-finite floats).
    Bytes::from(serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec()))
}

/// Re-encodes JSON with 4-space indentation and a trailing newline (`?pretty`).
pub(crate) fn prettify(body: &[u8]) -> Bytes {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    if serde::Serialize::serialize(&v, &mut ser).is_err() {
        return Bytes::copy_from_slice(body);
    }
    out.push(b'\n');
    Bytes::from(out)
}

/// A 200 JSON response for non-blocking endpoints.
pub(crate) fn json<T: serde::Serialize + ?Sized>(v: &T, pretty: bool) -> Response {
    let body = to_json(v);
    let body = if pretty { prettify(&body) } else { body };
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A 200 response with an empty body (agent writes).
pub(crate) fn empty() -> Response {
    Response::new(Body::empty())
}

/// Serves the API on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = routes::router(state);
    // Small JSON answers must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
