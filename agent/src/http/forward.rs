//! Client agents keep no catalog: requests for catalog, health, KV, sessions, transactions,
//! status and operator data are forwarded to a server's HTTP API, headers and streaming
//! bodies included, so blocking queries block on the server and return through the client.

use super::{ApiError, HttpState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Path prefixes served by servers.
const FORWARDED: &[&str] = &[
    "/v1/catalog/",
    "/v1/health/",
    "/v1/kv/",
    "/v1/txn",
    "/v1/session/",
    "/v1/status/",
    "/v1/operator/",
];

/// Headers that belong to one hop only.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
];

pub fn is_forwarded(path: &str) -> bool {
    // The keyring is gossip's: every agent answers it itself.
    path != "/v1/operator/keyring" && FORWARDED.iter().any(|p| path.starts_with(p))
}

/// The middleware: on a client agent, forward; on a server, pass through.
pub async fn layer(State(s): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    if s.info.server || !is_forwarded(req.uri().path()) {
        return next.run(req).await;
    }
    match forward(&s, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn forward(s: &HttpState, req: Request) -> Result<Response, ApiError> {
    let servers = s.rpc.server_http_addrs();
    if servers.is_empty() {
        return Err(ApiError::internal("No known Consul servers"));
    }
    // Spread load: start from a random server, fall back to the next on connect errors.
    let start = rand::random::<usize>() % servers.len();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 8 << 20).await.map_err(|_| {
        ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
        )
    })?;
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut last_err = String::new();
    for i in 0..servers.len() {
        let addr = &servers[(start + i) % servers.len()];
        let url = format!("http://{addr}{path_and_query}");
        let mut rb = s
            .forward_client
            .request(parts.method.clone(), &url)
            .body(body.clone());
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                rb = rb.header(name, value);
            }
        }
        match rb.send().await {
            Ok(resp) => {
                let mut out = Response::builder().status(resp.status().as_u16());
                for (name, value) in resp.headers() {
                    if !HOP_BY_HOP.contains(&name.as_str()) && name != "content-length" {
                        out = out.header(name, value);
                    }
                }
                return out
                    .body(Body::from_stream(resp.bytes_stream()))
                    .map_err(|e| ApiError::internal(format!("forwarding to a server: {e}")));
            }
            Err(e) if e.is_connect() => {
                last_err = e.to_string();
                continue;
            }
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "rpc error: forwarding to {addr}: {e}"
                )))
            }
        }
    }
    Err(ApiError::internal(format!(
        "No known Consul servers are reachable: {last_err}"
    )))
}
