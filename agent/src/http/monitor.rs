//! `GET /v1/agent/monitor` (compat §5.1, §14.5): the agent's live log as a streamed body,
//! `?loglevel=` (default `info`, any of Consul's level names) and `?logjson` (present:
//! JSON lines). `agent:read` on this node, as in Consul.
//!
//! The stream may be more verbose than the agent's `log_level`; it starts with the agent's
//! recent warnings and errors, ends when the client goes away or the agent shuts down, and
//! a client that reads too slowly loses lines (and is told so in the stream) instead of
//! slowing the agent.

use super::{ApiError, Ctx, HttpState};
use crate::acl::{Access, Resource};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use std::sync::Arc;

/// Lines sent in one chunk at most (they are batched when they come in bursts).
const CHUNK: usize = 64 * 1024;

pub async fn monitor(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Agent, &s.info.node_name, Access::Read)?;
    let level = ctx
        .params
        .get("loglevel")
        .filter(|l| !l.is_empty())
        .unwrap_or("INFO");
    let json = ctx.params.has("logjson");
    let sub = match crate::logging::subscribe(level, json) {
        Ok(Some(sub)) => sub,
        Ok(None) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Logging is not running on this agent",
            ));
        }
        Err(_) => return Err(ApiError::bad_request(format!("Unknown log level: {level}"))),
    };
    // The URL may carry `?token=`: the log line hides it like any other secret.
    tracing::debug!(target: "http", url = %req.uri(), level, json, "Monitor stream opened.");
    let stop = s.control.leave.clone();
    let stream = futures::stream::unfold((sub, stop), |(mut sub, stop)| async move {
        let first = tokio::select! {
            _ = stop.cancelled() => return None,
            line = sub.next() => line?,
        };
        let mut chunk = first.to_vec();
        while chunk.len() < CHUNK {
            match sub.try_next() {
                Some(line) => chunk.extend_from_slice(&line),
                None => break,
            }
        }
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(chunk)),
            (sub, stop),
        ))
    });
    let mut r = Response::new(Body::from_stream(stream));
    let content_type = if json {
        "application/x-ndjson"
    } else {
        "text/plain; charset=utf-8"
    };
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    Ok(r)
}
