//! Every `/v1/...` path, verb and handler, in one table (Consul's `agent/http_register.go`).

use super::{agent, catalog, health, keyring, kv, misc, plugins, session, HttpState};
use crate::structs::msg;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::Router;
use http::{HeaderValue, Method, StatusCode};
use std::sync::Arc;

pub fn router(state: Arc<HttpState>) -> Router {
    let put_or_post = |h| put(h).post(h);
    let api = Router::new()
        // agent
        .route("/v1/agent/self", get(agent::self_))
        .route("/v1/agent/members", get(agent::members))
        .route("/v1/agent/services", get(agent::services))
        .route("/v1/agent/service/{id}", get(agent::service))
        .route("/v1/agent/checks", get(agent::checks))
        .route("/v1/agent/service/register", put(agent::register_service))
        .route(
            "/v1/agent/service/deregister/{id}",
            put(agent::deregister_service),
        )
        .route(
            "/v1/agent/service/maintenance/{id}",
            put(agent::service_maintenance),
        )
        .route("/v1/agent/check/register", put(agent::register_check))
        .route(
            "/v1/agent/check/deregister/{id}",
            put(agent::deregister_check),
        )
        .route("/v1/agent/check/pass/{id}", put(agent::check_pass))
        .route("/v1/agent/check/warn/{id}", put(agent::check_warn))
        .route("/v1/agent/check/fail/{id}", put(agent::check_fail))
        .route("/v1/agent/check/update/{id}", put(agent::check_update))
        .route("/v1/agent/maintenance", put(agent::node_maintenance))
        .route("/v1/agent/reload", put(agent::reload))
        .route("/v1/agent/leave", put(agent::leave))
        .route("/v1/agent/join/{address}", put(agent::join))
        .route("/v1/agent/force-leave/{node}", put(agent::force_leave))
        .route("/v1/agent/health/service/id/{id}", get(agent::health_by_id))
        .route(
            "/v1/agent/health/service/name/{name}",
            get(agent::health_by_name),
        )
        .route("/v1/agent/version", get(agent::version))
        .route("/v1/agent/plugins", get(plugins::list))
        .route("/v1/agent/monitor", get(super::monitor::monitor))
        .route("/v1/agent/metrics", get(super::monitor::metrics))
        // catalog
        .route("/v1/catalog/register", put(catalog::register))
        .route("/v1/catalog/deregister", put(catalog::deregister))
        .route("/v1/catalog/datacenters", get(catalog::datacenters))
        .route("/v1/catalog/nodes", get(catalog::nodes))
        .route("/v1/catalog/services", get(catalog::services))
        .route("/v1/catalog/service/{service}", get(catalog::service))
        .route("/v1/catalog/node/{node}", get(catalog::node))
        // health
        .route("/v1/health/node/{node}", get(health::node))
        .route("/v1/health/checks/{service}", get(health::checks))
        .route("/v1/health/service/{service}", get(health::service))
        .route("/v1/health/state/{state}", get(health::state))
        .route("/v1/health/state/", get(health::state_missing))
        .route("/v1/health/node/", get(health::node_missing))
        .route("/v1/health/checks/", get(health::service_missing))
        .route("/v1/health/service/", get(health::service_missing))
        .route("/v1/catalog/service/", get(health::service_missing))
        // kv
        .route(
            "/v1/kv/",
            get(kv::get_root).put(kv::put_root).delete(kv::delete_root),
        )
        .route(
            "/v1/kv/{*key}",
            get(kv::get).put(kv::put).delete(kv::delete),
        )
        .route("/v1/txn", put(kv::txn))
        // sessions
        .route("/v1/session/create", put(session::create))
        .route("/v1/session/destroy/{id}", put(session::destroy))
        .route("/v1/session/renew/{id}", put(session::renew))
        .route("/v1/session/info/{id}", get(session::info))
        .route("/v1/session/node/{node}", get(session::node))
        .route("/v1/session/list", get(session::all))
        // events, status, operator
        .route("/v1/event/fire/{name}", put(misc::fire))
        .route("/v1/event/list", get(misc::list))
        .route("/v1/status/leader", get(misc::leader))
        .route("/v1/status/peers", get(misc::peers))
        .route(
            "/v1/operator/raft/configuration",
            get(misc::raft_configuration),
        )
        .route("/v1/operator/raft/peer", delete(misc::raft_remove_peer))
        .route(
            "/v1/operator/keyring",
            get(keyring::list)
                .post(keyring::install)
                .put(keyring::use_key)
                .delete(keyring::remove),
        )
        // the UI and the root
        .route("/", get(root))
        .route("/ui", get(ui))
        .route("/ui/", get(ui))
        .route("/ui/{*rest}", get(ui))
        .route(
            "/v1/{*rest}",
            put_or_post(unknown_v1).get(unknown_v1).delete(unknown_v1),
        )
        .fallback(unknown)
        .with_state(state.clone());
    // The conventions wrap the whole table rather than each route: axum adds the `Allow`
    // header of a 405 after a per-route layer has run, so only an outer layer sees it.
    // A client agent forwards catalog, health, KV... requests to a server before routing.
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(state, super::forward::layer))
        .layer(middleware::from_fn(consul_conventions))
}

async fn root(State(s): State<Arc<HttpState>>) -> Response {
    if s.info.ui {
        let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
        r.headers_mut()
            .insert(http::header::LOCATION, HeaderValue::from_static("/ui/"));
        r
    } else {
        "Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.".into_response()
    }
}

async fn ui(State(s): State<Arc<HttpState>>) -> Response {
    if !s.info.ui {
        return (StatusCode::NOT_FOUND, "UI is disabled").into_response();
    }
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tribune</title></head><body>\
         <h1>Tribune</h1><p>Datacenter <b>{}</b>, node <b>{}</b>.</p>\
         <p>The web UI arrives in a later release; the HTTP API is served under <a href=\"/v1/catalog/services\">/v1/</a>.</p>\
         </body></html>",
        html_escape(&s.info.datacenter),
        html_escape(&s.info.node_name)
    );
    axum::response::Html(page).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn unknown_v1() -> Response {
    (StatusCode::NOT_FOUND, msg::NOT_RECOGNIZED).into_response()
}

async fn unknown(req: Request) -> Response {
    if req.uri().path().contains("/v1/") {
        (StatusCode::NOT_FOUND, msg::NOT_RECOGNIZED).into_response()
    } else {
        (StatusCode::NOT_FOUND, msg::NOT_V1).into_response()
    }
}

/// Headers every response carries, and Consul's 405 text and `OPTIONS` answer.
async fn consul_conventions(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = resp
            .headers()
            .get(http::header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let allow = if allow.is_empty() {
            "OPTIONS".to_string()
        } else {
            format!("OPTIONS,{allow}")
        };
        if method == Method::OPTIONS {
            resp = Response::new(Body::empty());
        } else {
            resp = (
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} not allowed"),
            )
                .into_response();
        }
        if let Ok(v) = HeaderValue::from_str(&allow) {
            resp.headers_mut().insert(http::header::ALLOW, v);
        }
    }
    resp.headers_mut().insert(
        "X-Consul-Default-ACL-Policy",
        HeaderValue::from_static("allow"),
    );
    resp
}
