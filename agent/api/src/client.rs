//! A small async client for the agent's HTTP API, configured like Consul's Go client
//! (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE`).
//!
//! Two layers: [`Client::raw`]/[`Client::call`] speak HTTP with already-escaped paths; the
//! typed methods below them (`agent_*`, `catalog_*`, `kv_*`, ...) escape names the way Go's
//! `api` package does and decode Consul's JSON, so the CLI and tests never build URLs.

use crate::types::{
    AgentMember, CatalogNode, CatalogService, KvPair, Node, RaftConfiguration, ServiceDefinition,
    UserEvent,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the agent is and which token to present.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL without trailing slash, e.g. `http://127.0.0.1:8500`.
    pub address: String,
    pub token: Option<String>,
    pub datacenter: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            address: "http://127.0.0.1:8500".into(),
            token: None,
            datacenter: None,
        }
    }
}

impl ClientConfig {
    /// Reads `CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN` and `CONSUL_HTTP_TOKEN_FILE`.
    pub fn from_env() -> Self {
        let mut cfg = ClientConfig::default();
        if let Ok(addr) = std::env::var("CONSUL_HTTP_ADDR") {
            if !addr.is_empty() {
                cfg.address = normalize_address(&addr);
            }
        }
        if let Ok(path) = std::env::var("CONSUL_HTTP_TOKEN_FILE") {
            if let Ok(t) = std::fs::read_to_string(path) {
                let t = t.trim().to_string();
                if !t.is_empty() {
                    cfg.token = Some(t);
                }
            }
        }
        if let Ok(t) = std::env::var("CONSUL_HTTP_TOKEN") {
            if !t.is_empty() {
                cfg.token = Some(t);
            }
        }
        cfg
    }
}

/// `host:port`, `http://host:port` or `https://host:port` → a base URL.
pub fn normalize_address(addr: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// What went wrong talking to the agent. The `Status` text is Consul's, which users grep.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Unexpected response code: {status} ({body})")]
    Status { status: u16, body: String },
    /// The request never got an HTTP answer; the text is the whole cause chain
    /// (`error sending request ...: tcp connect error: Connection refused`).
    #[error("{}", error_chain(.0))]
    Transport(#[from] reqwest::Error),
    #[error("failed to decode the response: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Blocking-query metadata from the response headers.
#[derive(Clone, Debug, Default)]
pub struct QueryMeta {
    pub last_index: u64,
    pub known_leader: bool,
    pub last_contact_ms: u64,
}

/// A raw response: status, metadata and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub meta: QueryMeta,
    pub body: bytes::Bytes,
}

#[derive(Clone, Debug)]
pub struct Client {
    cfg: ClientConfig,
    http: reqwest::Client,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Self {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(15 * 60));
        // Go's `http.ProxyFromEnvironment` never proxies loopback; reqwest would, and an
        // `http_proxy` meant for the internet would then swallow every local agent call.
        if is_loopback_url(&cfg.address) {
            builder = builder.no_proxy();
        }
        let http = builder.build().unwrap_or_default();
        Client { cfg, http }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Sends `method path?query` with `body`; any status is returned, not turned into an error.
    /// `path` must already be escaped (see [`escape_path`]).
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, Error> {
        let resp = self.send(method, path, query, body, None, None).await?;
        let status = resp.status().as_u16();
        let meta = query_meta(resp.headers());
        let body = resp.bytes().await?;
        Ok(Response { status, meta, body })
    }

    /// Builds and sends one request. `content_type` mirrors what Go's client declares
    /// (`application/json` for objects, `application/octet-stream` for KV values and
    /// event payloads); `timeout` overrides the client's for streams.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, Error> {
        let url = format!("{}{}", self.cfg.address, path);
        let mut req = self.http.request(method, url).query(query);
        if let Some(dc) = &self.cfg.datacenter {
            req = req.query(&[("dc", dc)]);
        }
        if let Some(t) = &self.cfg.token {
            req = req.header("X-Consul-Token", t);
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        Ok(req.send().await?)
    }

    /// Like [`Client::raw`] but a non-200 status becomes [`Error::Status`].
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, Error> {
        let r = self.raw(method, path, query, body).await?;
        if r.status != 200 {
            return Err(Error::Status {
                status: r.status,
                body: String::from_utf8_lossy(&r.body).trim().to_string(),
            });
        }
        Ok(r)
    }

    /// GET and decode JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(T, QueryMeta), Error> {
        let r = self.call(reqwest::Method::GET, path, query, None).await?;
        Ok((serde_json::from_slice(&r.body)?, r.meta))
    }

    /// PUT a body; returns the response body.
    pub async fn put(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, Error> {
        Ok(self
            .call(reqwest::Method::PUT, path, query, body)
            .await?
            .body)
    }

    /// Sends and turns a non-200 status into [`Error::Status`], with a content type.
    async fn call_typed(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<bytes::Bytes, Error> {
        let resp = self
            .send(method, path, query, body, Some(content_type), None)
            .await?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await?;
        if status != 200 {
            return Err(status_error(status, &body));
        }
        Ok(body)
    }

    /// PUT a JSON document.
    async fn put_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        query: &[(&str, String)],
        value: &T,
    ) -> Result<bytes::Bytes, Error> {
        let body = serde_json::to_vec(value)?;
        self.call_typed(reqwest::Method::PUT, path, query, Some(body), JSON)
            .await
    }

    /// GET that treats 404 as "nothing there" (KV reads), like Go's `KV` methods.
    async fn get_json_or_404<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, Error> {
        let r = self.raw(reqwest::Method::GET, path, query, None).await?;
        match r.status {
            200 => Ok(Some(serde_json::from_slice(&r.body)?)),
            404 => Ok(None),
            status => Err(status_error(status, &r.body)),
        }
    }

    // ---- agent -------------------------------------------------------------------------

    /// `GET /v1/agent/self`, undecoded: its `Config`/`Stats` shapes are agent-specific.
    pub async fn agent_self(&self) -> Result<serde_json::Value, Error> {
        Ok(self.get_json("/v1/agent/self", &[]).await?.0)
    }

    /// `GET /v1/agent/self` → `Config.NodeName` (Go's `Agent().NodeName()`).
    pub async fn agent_node_name(&self) -> Result<String, Error> {
        let me = self.agent_self().await?;
        Ok(me
            .pointer("/Config/NodeName")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string())
    }

    /// `GET /v1/agent/members`: `segment` as given (`_all` for every segment), `wan=1` for
    /// the WAN pool.
    pub async fn agent_members(
        &self,
        wan: bool,
        segment: Option<&str>,
    ) -> Result<Vec<AgentMember>, Error> {
        let mut q = Vec::new();
        if let Some(s) = segment.filter(|s| !s.is_empty()) {
            q.push(("segment", s.to_string()));
        }
        if wan {
            q.push(("wan", "1".to_string()));
        }
        Ok(self.get_json("/v1/agent/members", &q).await?.0)
    }

    /// `PUT /v1/agent/service/register`.
    pub async fn agent_service_register(&self, service: &ServiceDefinition) -> Result<(), Error> {
        self.put_json("/v1/agent/service/register", &[], service)
            .await?;
        Ok(())
    }

    /// `PUT /v1/agent/service/deregister/:id`.
    pub async fn agent_service_deregister(&self, id: &str) -> Result<(), Error> {
        let path = format!("/v1/agent/service/deregister/{}", escape_path(id));
        self.call_typed(reqwest::Method::PUT, &path, &[], None, JSON)
            .await?;
        Ok(())
    }

    /// `PUT /v1/agent/reload`.
    pub async fn agent_reload(&self) -> Result<(), Error> {
        self.call_typed(reqwest::Method::PUT, "/v1/agent/reload", &[], None, JSON)
            .await?;
        Ok(())
    }

    /// `PUT /v1/agent/leave`.
    pub async fn agent_leave(&self) -> Result<(), Error> {
        self.call_typed(reqwest::Method::PUT, "/v1/agent/leave", &[], None, JSON)
            .await?;
        Ok(())
    }

    /// `PUT /v1/agent/join/:addr` (`wan=1` to join the WAN pool).
    pub async fn agent_join(&self, addr: &str, wan: bool) -> Result<(), Error> {
        let path = format!("/v1/agent/join/{}", escape_path(addr));
        let q: Vec<(&str, String)> = if wan {
            vec![("wan", "1".into())]
        } else {
            vec![]
        };
        self.call_typed(reqwest::Method::PUT, &path, &q, None, JSON)
            .await?;
        Ok(())
    }

    /// `PUT /v1/agent/force-leave/:node` (`prune=1` also removes it from the member list,
    /// `wan=1` for the WAN pool).
    pub async fn agent_force_leave(&self, node: &str, prune: bool, wan: bool) -> Result<(), Error> {
        let path = format!("/v1/agent/force-leave/{}", escape_path(node));
        let mut q = Vec::new();
        if prune {
            q.push(("prune", "1".to_string()));
        }
        if wan {
            q.push(("wan", "1".to_string()));
        }
        self.call_typed(reqwest::Method::PUT, &path, &q, None, JSON)
            .await?;
        Ok(())
    }

    /// `GET /v1/agent/monitor?loglevel=..[&logjson]`: an endless stream of log lines.
    pub async fn agent_monitor(&self, log_level: &str, json: bool) -> Result<ByteStream, Error> {
        let mut q = Vec::new();
        if !log_level.is_empty() {
            q.push(("loglevel", log_level.to_string()));
        }
        if json {
            q.push(("logjson", "true".to_string()));
        }
        let resp = self
            .send(
                reqwest::Method::GET,
                "/v1/agent/monitor",
                &q,
                None,
                None,
                Some(STREAM_TIMEOUT),
            )
            .await?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.bytes().await?;
            return Err(status_error(status, &body));
        }
        Ok(ByteStream { resp })
    }

    // ---- catalog -----------------------------------------------------------------------

    /// `GET /v1/catalog/datacenters`.
    pub async fn catalog_datacenters(&self) -> Result<Vec<String>, Error> {
        Ok(self.get_json("/v1/catalog/datacenters", &[]).await?.0)
    }

    /// `GET /v1/catalog/nodes`.
    pub async fn catalog_nodes(&self, opts: &QueryOptions) -> Result<Vec<Node>, Error> {
        Ok(self.get_json("/v1/catalog/nodes", &opts.params()).await?.0)
    }

    /// `GET /v1/catalog/services`: service name → tags.
    pub async fn catalog_services(
        &self,
        opts: &QueryOptions,
    ) -> Result<BTreeMap<String, Vec<String>>, Error> {
        let (m, _): (BTreeMap<String, Option<Vec<String>>>, _) = self
            .get_json("/v1/catalog/services", &opts.params())
            .await?;
        Ok(m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect())
    }

    /// `GET /v1/catalog/service/:name[?tag=]`.
    pub async fn catalog_service(
        &self,
        name: &str,
        tag: Option<&str>,
        opts: &QueryOptions,
    ) -> Result<Vec<CatalogService>, Error> {
        let path = format!("/v1/catalog/service/{}", escape_path(name));
        let mut q = opts.params();
        if let Some(t) = tag.filter(|t| !t.is_empty()) {
            q.push(("tag", t.to_string()));
        }
        Ok(self.get_json(&path, &q).await?.0)
    }

    /// `GET /v1/catalog/node/:node`; `None` for an unknown node (Consul answers `null`).
    pub async fn catalog_node(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<Option<CatalogNode>, Error> {
        let path = format!("/v1/catalog/node/{}", escape_path(node));
        Ok(self.get_json(&path, &opts.params()).await?.0)
    }

    // ---- KV ----------------------------------------------------------------------------

    /// `GET /v1/kv/:key`; `None` when the key does not exist.
    pub async fn kv_get(&self, key: &str, opts: &QueryOptions) -> Result<Option<KvPair>, Error> {
        let found: Option<Vec<KvPair>> =
            self.get_json_or_404(&kv_path(key), &opts.params()).await?;
        Ok(found.and_then(|v| v.into_iter().next()))
    }

    /// `GET /v1/kv/:prefix?recurse`; empty when nothing matches.
    pub async fn kv_list(&self, prefix: &str, opts: &QueryOptions) -> Result<Vec<KvPair>, Error> {
        let mut q = opts.params();
        q.push(("recurse", String::new()));
        Ok(self
            .get_json_or_404(&kv_path(prefix), &q)
            .await?
            .unwrap_or_default())
    }

    /// `GET /v1/kv/:prefix?keys[&separator=]`; empty when nothing matches.
    pub async fn kv_keys(
        &self,
        prefix: &str,
        separator: &str,
        opts: &QueryOptions,
    ) -> Result<Vec<String>, Error> {
        let mut q = opts.params();
        q.push(("keys", String::new()));
        if !separator.is_empty() {
            q.push(("separator", separator.to_string()));
        }
        Ok(self
            .get_json_or_404(&kv_path(prefix), &q)
            .await?
            .unwrap_or_default())
    }

    /// `PUT /v1/kv/:key` with the raw value; `false` when a CAS, acquire or release lost.
    pub async fn kv_put(
        &self,
        key: &str,
        value: &[u8],
        flags: u64,
        mode: KvWrite<'_>,
    ) -> Result<bool, Error> {
        let mut q = Vec::new();
        if flags != 0 {
            q.push(("flags", flags.to_string()));
        }
        match mode {
            KvWrite::Set => {}
            KvWrite::Cas(index) => q.push(("cas", index.to_string())),
            KvWrite::Acquire(session) => q.push(("acquire", session.to_string())),
            KvWrite::Release(session) => q.push(("release", session.to_string())),
        }
        let body = self
            .call_typed(
                reqwest::Method::PUT,
                &kv_path(key),
                &q,
                Some(value.to_vec()),
                OCTET_STREAM,
            )
            .await?;
        Ok(is_true(&body))
    }

    /// `DELETE /v1/kv/:key`.
    pub async fn kv_delete(&self, key: &str) -> Result<bool, Error> {
        let body = self
            .call_typed(reqwest::Method::DELETE, &kv_path(key), &[], None, JSON)
            .await?;
        Ok(is_true(&body))
    }

    /// `DELETE /v1/kv/:key?cas=<index>`; `false` when the index no longer matches.
    pub async fn kv_delete_cas(&self, key: &str, index: u64) -> Result<bool, Error> {
        let q = [("cas", index.to_string())];
        let body = self
            .call_typed(reqwest::Method::DELETE, &kv_path(key), &q, None, JSON)
            .await?;
        Ok(is_true(&body))
    }

    /// `DELETE /v1/kv/:prefix?recurse`.
    pub async fn kv_delete_tree(&self, prefix: &str) -> Result<bool, Error> {
        let q = [("recurse", String::new())];
        let body = self
            .call_typed(reqwest::Method::DELETE, &kv_path(prefix), &q, None, JSON)
            .await?;
        Ok(is_true(&body))
    }

    // ---- events, operator --------------------------------------------------------------

    /// `PUT /v1/event/fire/:name` with the filters as query parameters and the payload as
    /// the raw body.
    pub async fn event_fire(&self, event: &FireEvent<'_>) -> Result<UserEvent, Error> {
        let path = format!("/v1/event/fire/{}", escape_path(event.name));
        let mut q = Vec::new();
        for (k, v) in [
            ("node", event.node_filter),
            ("service", event.service_filter),
            ("tag", event.tag_filter),
        ] {
            if !v.is_empty() {
                q.push((k, v.to_string()));
            }
        }
        let body = event.payload.map(<[u8]>::to_vec);
        let out = self
            .call_typed(reqwest::Method::PUT, &path, &q, body, OCTET_STREAM)
            .await?;
        Ok(serde_json::from_slice(&out)?)
    }

    /// `GET /v1/operator/raft/configuration`.
    pub async fn operator_raft_configuration(
        &self,
        opts: &QueryOptions,
    ) -> Result<RaftConfiguration, Error> {
        Ok(self
            .get_json("/v1/operator/raft/configuration", &opts.params())
            .await?
            .0)
    }

    /// `DELETE /v1/operator/raft/peer?id=`.
    pub async fn operator_raft_remove_peer_by_id(&self, id: &str) -> Result<(), Error> {
        let q = [("id", id.to_string())];
        self.call_typed(
            reqwest::Method::DELETE,
            "/v1/operator/raft/peer",
            &q,
            None,
            JSON,
        )
        .await?;
        Ok(())
    }

    /// `DELETE /v1/operator/raft/peer?address=`.
    pub async fn operator_raft_remove_peer_by_address(&self, address: &str) -> Result<(), Error> {
        let q = [("address", address.to_string())];
        self.call_typed(
            reqwest::Method::DELETE,
            "/v1/operator/raft/peer",
            &q,
            None,
            JSON,
        )
        .await?;
        Ok(())
    }
}

const JSON: &str = "application/json";
const OCTET_STREAM: &str = "application/octet-stream";

/// Streams (monitor) run until the user stops them; the client's whole-request timeout must
/// not cut them. A century is "never" without overflowing a deadline.
const STREAM_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Read options: Consul's `QueryOptions`, the parts the CLI uses.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    /// `?stale`: any server may answer.
    pub stale: bool,
    /// `?consistent`: the leader confirms its leadership first.
    pub consistent: bool,
    /// `?filter=` expression.
    pub filter: Option<String>,
    /// `?near=` node name (or `_agent`) to sort by round-trip time.
    pub near: Option<String>,
    /// `?node-meta=key:value`, repeated.
    pub node_meta: Vec<(String, String)>,
}

impl QueryOptions {
    /// The query parameters, in the spelling Go's client sends.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if self.stale {
            q.push(("stale", String::new()));
        }
        if self.consistent {
            q.push(("consistent", String::new()));
        }
        if let Some(f) = self.filter.as_ref().filter(|f| !f.is_empty()) {
            q.push(("filter", f.clone()));
        }
        if let Some(n) = self.near.as_ref().filter(|n| !n.is_empty()) {
            q.push(("near", n.clone()));
        }
        for (k, v) in &self.node_meta {
            q.push(("node-meta", format!("{k}:{v}")));
        }
        q
    }
}

/// How a KV write is conditioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvWrite<'a> {
    /// Unconditional write.
    Set,
    /// Check-and-set against this `ModifyIndex` (`0` = only if absent).
    Cas(u64),
    /// Write and take the lock for this session.
    Acquire(&'a str),
    /// Write and give up this session's lock.
    Release(&'a str),
}

/// A user event to fire: name, optional payload, and regex filters (empty = none).
#[derive(Clone, Copy, Debug, Default)]
pub struct FireEvent<'a> {
    pub name: &'a str,
    pub payload: Option<&'a [u8]>,
    pub node_filter: &'a str,
    pub service_filter: &'a str,
    pub tag_filter: &'a str,
}

/// A streaming response body (`/v1/agent/monitor`).
#[derive(Debug)]
pub struct ByteStream {
    resp: reqwest::Response,
}

impl ByteStream {
    /// The next chunk, or `None` when the agent closed the stream.
    pub async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, Error> {
        Ok(self.resp.chunk().await?)
    }
}

/// Go's URL path escaping (`url.URL.EscapedPath`): unreserved characters and
/// `$&+,/:;=@` stay, everything else (space, `?`, `#`, `%`, non-ASCII) is percent-encoded,
/// so KV keys and service IDs with any characters round-trip.
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// Escapes a name for use inside a request path.
pub fn escape_path(s: &str) -> String {
    utf8_percent_encode(s, PATH_SET).to_string()
}

/// `/v1/kv/<key>` with one leading `/` of the key dropped, as Go's client does.
fn kv_path(key: &str) -> String {
    format!(
        "/v1/kv/{}",
        escape_path(key.strip_prefix('/').unwrap_or(key))
    )
}

/// Whether a base URL points at this machine (`localhost`, `127.0.0.0/8`, `::1`).
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Go's client reads write results with `strings.Contains(body, "true")`.
fn is_true(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("true")
}

fn status_error(status: u16, body: &[u8]) -> Error {
    Error::Status {
        status,
        body: String::from_utf8_lossy(body).trim().to_string(),
    }
}

fn query_meta(h: &reqwest::header::HeaderMap) -> QueryMeta {
    let num = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    QueryMeta {
        last_index: num("X-Consul-Index"),
        known_leader: h.get("X-Consul-KnownLeader").is_some_and(|v| v == "true"),
        last_contact_ms: num("X-Consul-LastContact"),
    }
}

/// `error sending request for url (..): client error (Connect): tcp connect error: Connection
/// refused (os error 111)`: reqwest's own Display stops at the first line, which hides the
/// reason users need.
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_like_go() {
        assert_eq!(escape_path("a b/c?d#e%f"), "a%20b/c%3Fd%23e%25f");
        assert_eq!(escape_path("web:1@x=y,z;$&+"), "web:1@x=y,z;$&+");
        assert_eq!(escape_path("ç"), "%C3%A7");
        assert_eq!(kv_path("/foo/bar"), "/v1/kv/foo/bar");
        assert_eq!(kv_path(""), "/v1/kv/");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://127.0.0.1:8500"));
        assert!(is_loopback_url("http://localhost:8500/prefix"));
        assert!(is_loopback_url("https://[::1]:8501"));
        assert!(!is_loopback_url("http://10.0.0.1:8500"));
        assert!(!is_loopback_url("http://consul.example:8500"));
    }

    #[test]
    fn query_options_use_go_spellings() {
        let q = QueryOptions {
            stale: true,
            node_meta: vec![("rack".into(), "r1".into())],
            ..Default::default()
        };
        assert_eq!(
            q.params(),
            vec![
                ("stale", String::new()),
                ("node-meta", "rack:r1".to_string())
            ]
        );
    }
}
