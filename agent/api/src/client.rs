//! A small async client for the agent's HTTP API, configured like Consul's Go client
//! (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE`).

use serde::de::DeserializeOwned;
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
        ClientConfig { address: "http://127.0.0.1:8500".into(), token: None, datacenter: None }
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
    #[error("{0}")]
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15 * 60))
            .build()
            .unwrap_or_default();
        Client { cfg, http }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Sends `method path?query` with `body`; any status is returned, not turned into an error.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, Error> {
        let url = format!("{}{}", self.cfg.address, path);
        let mut req = self.http.request(method, url).query(query);
        if let Some(dc) = &self.cfg.datacenter {
            req = req.query(&[("dc", dc)]);
        }
        if let Some(t) = &self.cfg.token {
            req = req.header("X-Consul-Token", t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let h = resp.headers();
        let num = |name: &str| {
            h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        let meta = QueryMeta {
            last_index: num("X-Consul-Index"),
            known_leader: h.get("X-Consul-KnownLeader").is_some_and(|v| v == "true"),
            last_contact_ms: num("X-Consul-LastContact"),
        };
        let body = resp.bytes().await?;
        Ok(Response { status, meta, body })
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
        Ok(self.call(reqwest::Method::PUT, path, query, body).await?.body)
    }
}
