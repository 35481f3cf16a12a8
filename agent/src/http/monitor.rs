//! `GET /v1/agent/monitor` (compat §5.1, §14.5): the agent's live log as a streamed body,
//! `?loglevel=` (default `info`, any of Consul's level names) and `?logjson` (present:
//! JSON lines). `agent:read` on this node, as in Consul.
//!
//! The stream may be more verbose than the agent's `log_level`; it starts with the agent's
//! recent warnings and errors, ends when the client goes away or the agent shuts down, and
//! a client that reads too slowly loses lines (and is told so in the stream) instead of
//! slowing the agent.
//!
//! `GET /v1/agent/metrics` (compat §9.5) lives here too while the logging system is all
//! it reports: per sink, the lines written, dropped (a slow or absent sink loses lines
//! rather than blocking the agent) and queued, and file rotations. Consul's JSON shape by
//! default, Prometheus text with `?format=prometheus` or a Prometheus `Accept` header.

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

/// The metric name prefix (Consul's `telemetry.metrics_prefix` default).
const PREFIX: &str = "consul";

/// One logging metric: name (after the prefix), help, kind, and its value per sink.
struct LogMetric {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    value: fn(&crate::logging::SinkStats) -> u64,
}

const LOG_METRICS: [LogMetric; 4] = [
    LogMetric {
        name: "log.lines_written",
        help: "Log lines a sink wrote since start.",
        kind: "counter",
        value: |s| s.written,
    },
    LogMetric {
        name: "log.lines_dropped",
        help: "Log lines a sink lost since start (the sink was slow or unavailable).",
        kind: "counter",
        value: |s| s.dropped,
    },
    LogMetric {
        name: "log.lines_queued",
        help: "Log lines waiting in a sink's queue.",
        kind: "gauge",
        value: |s| s.queued as u64,
    },
    LogMetric {
        name: "log.rotations",
        help: "Log file rotations since start.",
        kind: "counter",
        value: |s| s.rotations,
    },
];

/// Whether the client asked for Prometheus' text format.
fn wants_prometheus(ctx: &Ctx, req: &Request) -> bool {
    if ctx.params.get("format") == Some("prometheus") {
        return true;
    }
    req.headers()
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("version=0.0.4") || v.contains("application/openmetrics-text"))
}

/// Prometheus exposition text of `stats`.
pub fn prometheus_text(stats: &[crate::logging::SinkStats]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for m in &LOG_METRICS {
        let name = format!("{PREFIX}_{}", m.name.replace('.', "_"));
        let _ = writeln!(out, "# HELP {name} {}", m.help);
        let _ = writeln!(out, "# TYPE {name} {}", m.kind);
        for s in stats {
            let _ = writeln!(out, "{name}{{sink=\"{}\"}} {}", s.sink, (m.value)(s));
        }
    }
    out
}

/// Consul's JSON shape: every logging figure as a gauge labelled with its sink (Consul's
/// counters are per 10 s interval; these are totals since start).
pub fn consul_json(stats: &[crate::logging::SinkStats]) -> serde_json::Value {
    let gauges: Vec<serde_json::Value> = LOG_METRICS
        .iter()
        .flat_map(|m| {
            stats.iter().map(move |s| {
                serde_json::json!({
                    "Name": format!("{PREFIX}.{}", m.name),
                    "Value": (m.value)(s),
                    "Labels": {"sink": s.sink},
                })
            })
        })
        .collect();
    serde_json::json!({
        "Timestamp": crate::logging::go_utc_now(),
        "Gauges": gauges,
        "Points": [],
        "Counters": [],
        "Samples": [],
    })
}

pub async fn metrics(State(s): State<Arc<HttpState>>, req: Request) -> Result<Response, ApiError> {
    let ctx = Ctx::new(&s, &req)?;
    ctx.authz
        .require(Resource::Agent, &s.info.node_name, Access::Read)?;
    let stats = crate::logging::stats();
    if wants_prometheus(&ctx, &req) {
        let mut r = Response::new(Body::from(prometheus_text(&stats)));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return Ok(r);
    }
    Ok(super::json(&consul_json(&stats), ctx.pretty()))
}
