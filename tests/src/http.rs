//! HTTP plumbing shared by every helper: one client setup and [`Reply`], a
//! fully read response whose status the caller checks.

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};

/// Per-request timeout for ordinary (non-blocking) calls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for loopback servers: no proxy (CI machines may set one in the
/// environment), bounded connect and request times.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .build()
        // Only TLS backend initialisation can fail here, and this client has none.
        .expect("build an HTTP client without TLS")
}

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Reply {
    /// What was asked, e.g. `GET http://127.0.0.1:4711/v1/agent/self`.
    pub request: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Sends `request` and reads the whole body.
    pub async fn send(request: RequestBuilder) -> anyhow::Result<Reply> {
        let (client, request) = request.build_split();
        let request = request.context("build request")?;
        let label = format!("{} {}", request.method(), request.url());
        let response = client
            .execute(request)
            .await
            .with_context(|| format!("{label}: request failed"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("{label}: reading the body failed"))?
            .to_vec();
        Ok(Reply {
            request: label,
            status,
            headers,
            body,
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "{}: body is not JSON (status {}): {}",
                self.request,
                self.status,
                self.text()
            )
        })
    }

    /// The `X-Consul-Index` header, if present and numeric.
    pub fn index(&self) -> Option<u64> {
        self.header("x-consul-index")?.parse().ok()
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// Fails unless the status is `code`, quoting the request and the body.
    pub fn expect_status(self, code: u16) -> anyhow::Result<Reply> {
        if self.status.as_u16() != code {
            bail!(
                "{}: expected {code}, got {}: {}",
                self.request,
                self.status,
                self.text()
            );
        }
        Ok(self)
    }

    /// Fails unless the status is 200, quoting the request and the body.
    pub fn ensure_ok(self) -> anyhow::Result<Reply> {
        if self.status != StatusCode::OK {
            bail!(
                "{}: expected 200, got {}: {}",
                self.request,
                self.status,
                self.text()
            );
        }
        Ok(self)
    }
}

/// Appends `key=value` to a path that may already carry a query string.
pub fn with_query(path: &str, key: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={value}")
}

/// Formats a duration the way Go clients send `wait`: whole milliseconds.
pub fn go_millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_appended() {
        assert_eq!(with_query("/v1/kv/a", "index", "3"), "/v1/kv/a?index=3");
        assert_eq!(
            with_query("/v1/kv/a?recurse", "index", "3"),
            "/v1/kv/a?recurse&index=3"
        );
        assert_eq!(go_millis(Duration::from_secs(120)), "120000ms");
    }
}
