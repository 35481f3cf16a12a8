//! The host imports a plugin calls: `log`, `clock`, `config` (always there) and the
//! capabilities `http`, `tcp`, `kv-read`. A capability call goes through only when the
//! plugin's manifest declares the target AND the operator grants it; otherwise the guest
//! gets `host-error::denied` with a sentence saying which side is missing. Every call
//! counts against the host-call quota, and network calls never outlive the invocation's
//! deadline (the epoch cannot interrupt the host while it waits).

use super::bindings::types::{HostError, Level};
use super::bindings::{clock, config, http, kv, log, tcp, types};
use super::manifest::Declared;
use super::pattern::{split_target, AddrPattern, PrefixPattern};
use super::runtime::CallState;
use super::settings::{Grants, Limits};
use std::sync::Arc;
use std::time::Duration;

/// Longest log line kept from a plugin.
const LOG_LINE_CAP: usize = 1024;
/// Largest HTTP response body handed to a plugin.
const HTTP_BODY_CAP: usize = 1 << 20;
/// Largest TCP read handed to a plugin.
const TCP_READ_CAP: usize = 64 << 10;
/// Keys a `kv.keys` call returns at most.
const KV_KEYS_CAP: usize = 1000;

/// Read access to the agent's KV store, for `kv-read`.
pub trait KvSource: Send + Sync {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn keys(&self, prefix: &str, limit: usize) -> Vec<String>;
}

impl KvSource for crate::state::Store {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.read(|t| t.kv_get(key).map(|e| e.value.clone()))
    }

    fn keys(&self, prefix: &str, limit: usize) -> Vec<String> {
        self.read(|t| {
            t.kv_list(prefix)
                .take(limit)
                .map(|e| e.key.clone())
                .collect()
        })
    }
}

/// Where capability calls do their I/O: the agent's runtime, driven from the plugin
/// worker threads (which are not runtime threads, so `block_on` is allowed there).
#[derive(Clone)]
pub struct Io {
    pub handle: tokio::runtime::Handle,
    pub http: reqwest::Client,
}

impl Io {
    pub fn new(handle: tokio::runtime::Handle) -> Io {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("tribune-plugin/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Io { handle, http }
    }
}

/// What every call of one plugin shares: identity, configuration, the effective
/// capabilities and limits.
pub struct PluginCtx {
    pub name: String,
    pub node_name: String,
    pub config_json: String,
    pub declared: Declared,
    pub grants: Grants,
    pub limits: Limits,
    pub kv: Option<Arc<dyn KvSource>>,
    pub io: Option<Io>,
    /// Limits enforced (always, but in benchmarks measuring their cost).
    pub enforce: bool,
}

impl PluginCtx {
    fn allow_addr(
        &self,
        cap: &str,
        declared: &[AddrPattern],
        granted: &[AddrPattern],
        host: &str,
        port: u16,
    ) -> Result<(), String> {
        let name = &self.name;
        if declared.is_empty() {
            return Err(format!(
                "capability `{cap}` is not declared in the manifest of plugin {name:?}"
            ));
        }
        if !declared.iter().any(|p| p.matches(host, port)) {
            return Err(format!(
                "{cap} to {host}:{port} is outside what plugin {name:?} declares ({})",
                list(declared)
            ));
        }
        if granted.is_empty() {
            return Err(format!(
                "capability `{cap}` is not granted to plugin {name:?} (plugins[].grants.{cap})"
            ));
        }
        if !granted.iter().any(|p| p.matches(host, port)) {
            return Err(format!(
                "{cap} to {host}:{port} is not granted to plugin {name:?} (granted: {})",
                list(granted)
            ));
        }
        Ok(())
    }

    pub fn allow_http(&self, host: &str, port: u16) -> Result<(), String> {
        self.allow_addr("http", &self.declared.http, &self.grants.http, host, port)
    }

    pub fn allow_tcp(&self, host: &str, port: u16) -> Result<(), String> {
        self.allow_addr("tcp", &self.declared.tcp, &self.grants.tcp, host, port)
    }

    /// `key_or_prefix` must lie under a declared and a granted prefix.
    pub fn allow_kv(&self, key_or_prefix: &str) -> Result<(), String> {
        let name = &self.name;
        let (declared, granted) = (&self.declared.kv_read, &self.grants.kv_read);
        if declared.is_empty() {
            return Err(format!(
                "capability `kv-read` is not declared in the manifest of plugin {name:?}"
            ));
        }
        if !declared.iter().any(|p| p.covers(key_or_prefix)) {
            return Err(format!(
                "kv-read of {key_or_prefix:?} is outside what plugin {name:?} declares ({})",
                list(declared)
            ));
        }
        if granted.is_empty() {
            return Err(format!(
                "capability `kv-read` is not granted to plugin {name:?} (plugins[].grants.kv-read)"
            ));
        }
        if !granted
            .iter()
            .any(|p: &PrefixPattern| p.covers(key_or_prefix))
        {
            return Err(format!(
                "kv-read of {key_or_prefix:?} is not granted to plugin {name:?} (granted: {})",
                list(granted)
            ));
        }
        Ok(())
    }

    pub fn log_allowed(&self) -> bool {
        self.declared.log && self.grants.log
    }
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cuts `s` to at most `max` bytes on a char boundary.
pub fn cap_str(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

impl types::Host for CallState {}

impl log::Host for CallState {
    fn log(&mut self, level: Level, mut message: String) -> wasmtime::Result<()> {
        self.host_call()?;
        if !self.plugin.log_allowed() {
            return Ok(());
        }
        cap_str(&mut message, LOG_LINE_CAP);
        let plugin = self.plugin.name.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "plugins", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "plugins", plugin, "{message}"),
            Level::Info => tracing::info!(target: "plugins", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "plugins", plugin, "{message}"),
            Level::Error => tracing::error!(target: "plugins", plugin, "{message}"),
        }
        Ok(())
    }
}

impl clock::Host for CallState {
    fn now_unix_ms(&mut self) -> wasmtime::Result<u64> {
        self.host_call()?;
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0))
    }

    fn remaining_ms(&mut self) -> wasmtime::Result<u32> {
        self.host_call()?;
        Ok(u32::try_from(self.remaining().as_millis()).unwrap_or(u32::MAX))
    }
}

impl config::Host for CallState {
    fn plugin_name(&mut self) -> wasmtime::Result<String> {
        self.host_call()?;
        Ok(self.plugin.name.clone())
    }

    fn plugin_config(&mut self) -> wasmtime::Result<String> {
        self.host_call()?;
        Ok(self.plugin.config_json.clone())
    }

    fn node_name(&mut self) -> wasmtime::Result<String> {
        self.host_call()?;
        Ok(self.plugin.node_name.clone())
    }
}

/// The time an exchange may take: what it asks for, never more than what is left.
fn exchange_timeout(asked_ms: u32, remaining: Duration) -> Duration {
    if asked_ms == 0 {
        remaining
    } else {
        remaining.min(Duration::from_millis(u64::from(asked_ms)))
    }
}

impl http::Host for CallState {
    fn fetch(&mut self, req: http::Request) -> wasmtime::Result<Result<http::Response, HostError>> {
        self.host_call()?;
        let url = match reqwest::Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => {
                return Ok(Err(HostError::Invalid(format!(
                    "bad URL {:?}: {e}",
                    req.url
                ))))
            }
        };
        if url.scheme() != "http" {
            return Ok(Err(HostError::Invalid(format!(
                "only http:// URLs are supported in this version, not {}://",
                url.scheme()
            ))));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Ok(Err(HostError::Invalid(format!(
                "URL {:?} has no host",
                req.url
            ))));
        };
        if let Err(why) = self.plugin.allow_http(host, port) {
            return Ok(Err(self.deny(why)));
        }
        let method = match req.method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "PATCH") => {
                reqwest::Method::from_bytes(m.as_bytes()).unwrap_or(reqwest::Method::GET)
            }
            other => {
                return Ok(Err(HostError::Invalid(format!(
                    "unsupported method {other:?}"
                ))))
            }
        };
        let Some(io) = self.plugin.io.clone() else {
            return Ok(Err(HostError::Failed("no network in this context".into())));
        };
        let timeout = exchange_timeout(req.timeout_ms, self.remaining());
        if timeout.is_zero() {
            return Ok(Err(HostError::Timeout(
                "the invocation's deadline has passed".into(),
            )));
        }
        let mut builder = io.http.request(method, url.clone());
        for (k, v) in &req.headers {
            if k.eq_ignore_ascii_case("host") {
                continue;
            }
            builder = builder.header(k.as_str(), v.as_str());
        }
        if !req.body.is_empty() {
            builder = builder.body(req.body);
        }
        let target = format!("{host}:{port}");
        let exchange = async move {
            let mut resp = builder.send().await?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                let room = HTTP_BODY_CAP - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= HTTP_BODY_CAP {
                    break;
                }
            }
            Ok::<_, reqwest::Error>(http::Response {
                status,
                headers,
                body,
            })
        };
        let result = io
            .handle
            .block_on(async { tokio::time::timeout(timeout, exchange).await });
        Ok(match result {
            Err(_) => Err(HostError::Timeout(format!(
                "http {target}: no answer within {}",
                tribune_api::duration::format_go_duration(timeout)
            ))),
            Ok(Err(e)) => Err(HostError::Failed(format!(
                "http {target}: {}",
                reqwest_error_text(&e)
            ))),
            Ok(Ok(resp)) => Ok(resp),
        })
    }
}

/// reqwest's error the way a person reads it: the OS error when there is one
/// (`connect: connection refused`), else reqwest's own text.
fn reqwest_error_text(e: &reqwest::Error) -> String {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let what = if e.is_connect() { "connect" } else { "read" };
            return format!("{what}: {}", crate::checks::io_error_text(io));
        }
        src = s.source();
    }
    if e.is_connect() {
        "connect: connection failed".to_string()
    } else {
        e.to_string()
    }
}

impl tcp::Host for CallState {
    fn request(&mut self, ex: tcp::Exchange) -> wasmtime::Result<Result<Vec<u8>, HostError>> {
        self.host_call()?;
        let Some((host, port)) = split_target(&ex.address) else {
            return Ok(Err(HostError::Invalid(format!(
                "expected host:port, not {:?}",
                ex.address
            ))));
        };
        if let Err(why) = self.plugin.allow_tcp(host, port) {
            return Ok(Err(self.deny(why)));
        }
        let Some(io) = self.plugin.io.clone() else {
            return Ok(Err(HostError::Failed("no network in this context".into())));
        };
        let timeout = exchange_timeout(ex.timeout_ms, self.remaining());
        if timeout.is_zero() {
            return Ok(Err(HostError::Timeout(
                "the invocation's deadline has passed".into(),
            )));
        }
        let max = match ex.max_bytes {
            0 => 4096,
            n => (n as usize).min(TCP_READ_CAP),
        };
        let address = ex.address.clone();
        let result = io.handle.block_on(tcp_exchange(
            address.clone(),
            ex.send,
            ex.read_until,
            max,
            timeout,
        ));
        Ok(result.map_err(|e| match e {
            TcpFailure::Timeout => HostError::Timeout(format!(
                "tcp {address}: no answer within {}",
                tribune_api::duration::format_go_duration(timeout)
            )),
            TcpFailure::Io(what, err) => HostError::Failed(format!(
                "tcp {address}: {what}: {}",
                crate::checks::io_error_text(&err)
            )),
        }))
    }
}

enum TcpFailure {
    Timeout,
    Io(&'static str, std::io::Error),
}

async fn tcp_exchange(
    address: String,
    send: Vec<u8>,
    until: Vec<u8>,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, TcpFailure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(&address))
        .await
        .map_err(|_| TcpFailure::Timeout)?
        .map_err(|e| TcpFailure::Io("connect", e))?;
    if !send.is_empty() {
        tokio::time::timeout_at(deadline, stream.write_all(&send))
            .await
            .map_err(|_| TcpFailure::Timeout)?
            .map_err(|e| TcpFailure::Io("write", e))?;
    }
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            // The deadline after some bytes: hand over what arrived.
            Err(_) if !got.is_empty() => break,
            Err(_) => return Err(TcpFailure::Timeout),
            Ok(Err(e)) if !got.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                break
            }
            Ok(Err(e)) => return Err(TcpFailure::Io("read", e)),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            break;
        }
        let room = max - got.len();
        got.extend_from_slice(&buf[..n.min(room)]);
        if got.len() >= max {
            break;
        }
        if !until.is_empty() && got.windows(until.len()).any(|w| w == until.as_slice()) {
            break;
        }
    }
    Ok(got)
}

impl kv::Host for CallState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        self.host_call()?;
        if let Err(why) = self.plugin.allow_kv(&key) {
            return Ok(Err(self.deny(why)));
        }
        Ok(match &self.plugin.kv {
            Some(kv) => Ok(kv.get(&key)),
            None => Err(HostError::Failed("no KV store in this context".into())),
        })
    }

    fn keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        self.host_call()?;
        if let Err(why) = self.plugin.allow_kv(&prefix) {
            return Ok(Err(self.deny(why)));
        }
        Ok(match &self.plugin.kv {
            Some(kv) => Ok(kv.keys(&prefix, KV_KEYS_CAP)),
            None => Err(HostError::Failed("no KV store in this context".into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(declared: Declared, grants: Grants) -> PluginCtx {
        PluginCtx {
            name: "p".into(),
            node_name: "n".into(),
            config_json: "null".into(),
            declared,
            grants,
            limits: Limits::default(),
            kv: None,
            io: None,
            enforce: true,
        }
    }

    #[test]
    fn a_capability_needs_both_the_manifest_and_the_grant() {
        let any = || vec![AddrPattern::parse_http("*").unwrap()];
        let local = || vec![AddrPattern::parse_http("127.0.0.1").unwrap()];
        let e = ctx(Declared::default(), Grants::default())
            .allow_http("127.0.0.1", 80)
            .unwrap_err();
        assert!(e.contains("not declared in the manifest"), "{e}");
        let e = ctx(
            Declared {
                http: any(),
                ..Default::default()
            },
            Grants::default(),
        )
        .allow_http("127.0.0.1", 80)
        .unwrap_err();
        assert!(e.contains("not granted"), "{e}");
        let c = ctx(
            Declared {
                http: any(),
                ..Default::default()
            },
            Grants {
                http: local(),
                ..Default::default()
            },
        );
        assert!(c.allow_http("127.0.0.1", 80).is_ok());
        let e = c.allow_http("10.0.0.1", 80).unwrap_err();
        assert!(
            e.contains("not granted") && e.contains("granted: 127.0.0.1"),
            "{e}"
        );
        let c = ctx(
            Declared {
                http: local(),
                ..Default::default()
            },
            Grants {
                http: any(),
                ..Default::default()
            },
        );
        let e = c.allow_http("10.0.0.1", 80).unwrap_err();
        assert!(e.contains("outside what plugin"), "{e}");
    }

    #[test]
    fn kv_prefixes_need_both_sides() {
        let c = ctx(
            Declared {
                kv_read: vec![PrefixPattern::new("app/")],
                ..Default::default()
            },
            Grants {
                kv_read: vec![PrefixPattern::new("app/web/")],
                ..Default::default()
            },
        );
        assert!(c.allow_kv("app/web/x").is_ok());
        assert!(c.allow_kv("app/db/x").unwrap_err().contains("not granted"));
        assert!(c.allow_kv("other").unwrap_err().contains("outside"));
    }

    #[test]
    fn strings_are_cut_on_char_boundaries() {
        let mut s = "héllo".to_string();
        cap_str(&mut s, 2);
        assert_eq!(s, "h");
    }
}
