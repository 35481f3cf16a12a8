//! The HTTP probe: Consul's request, status rule and output text.
//!
//! - Method (default `GET`), `Header` (multi-valued), `Body`; `User-Agent: Consul Health
//!   Check` and `Accept: text/plain, text/*, */*` unless the definition sets them.
//! - 2xx is passing, 429 warning, anything else (errors and timeouts included) critical.
//! - Output `HTTP <method> <url>: <code> <reason> Output: <body>`; on error Go's shape,
//!   `Get "<url>": <error>`.
//! - Redirects are never followed: a 3xx is reported as it is, hence critical.
//!   (Consul follows them unless `DisableRedirects`; not following is deliberate here.)
//! - At most `max_output` bytes of the body are read, then the connection is dropped.
//!   (Consul reads the whole body and keeps its tail; we keep its head and stop early.)
//! - One connection per run, no keep-alive, as Consul. The timeout covers the whole
//!   exchange; a body cut short by it still reports the status code.
//! - `http://` only: this build has no TLS, so an `https://` URL is critical with a clear
//!   output. Proxies come from the environment except for loopback targets, as Go's.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue, ACCEPT, USER_AGENT};
use tracing::debug;
use tribune_api::types::CheckDefinition;

use super::clock::{timeout_at, Clock};
use super::{io_error_text, Outcome};

/// Consul's `User-Agent` for HTTP checks.
pub(crate) const USER_AGENT_VALUE: &str = "Consul Health Check";
/// Consul's default `Accept` for HTTP checks.
pub(crate) const ACCEPT_VALUE: &str = "text/plain, text/*, */*";

pub(crate) struct HttpProbe {
    method: String,
    url: String,
    timeout: Duration,
    max_output: usize,
    /// What each run sends, or the output to report on every run when the definition
    /// cannot produce a request (Consul fails at run time too, not at registration).
    prepared: Result<Prepared, String>,
}

struct Prepared {
    client: reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    headers: http::HeaderMap,
    body: String,
}

/// Go's `url.Error` operation: `Get`, `Post`, ...
fn go_op(method: &str) -> String {
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => {
            first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
        }
        None => "Get".to_string(),
    }
}

impl HttpProbe {
    pub(crate) fn new(def: &CheckDefinition, timeout: Duration, max_output: usize) -> HttpProbe {
        let method = if def.method.is_empty() {
            "GET".to_string()
        } else {
            def.method.clone()
        };
        let url = def.http.clone();
        let prepared = prepare(&method, &url, def);
        HttpProbe {
            method,
            url,
            timeout,
            max_output,
            prepared,
        }
    }

    fn failed(&self, err: impl std::fmt::Display) -> Outcome {
        Outcome::critical(format!("{} {:?}: {err}", go_op(&self.method), self.url))
    }

    pub(crate) async fn run(&self, clock: &dyn Clock) -> Outcome {
        let prepared = match &self.prepared {
            Ok(prepared) => prepared,
            Err(output) => return Outcome::critical(output.clone()),
        };
        let mut request = prepared
            .client
            .request(prepared.method.clone(), prepared.url.clone())
            .headers(prepared.headers.clone());
        if !prepared.body.is_empty() {
            request = request.body(prepared.body.clone());
        }
        let deadline = clock.now() + self.timeout;
        let mut response =
            match timeout_at(clock, deadline, request.send()).await {
                Ok(Ok(response)) => response,
                Ok(Err(err)) => return self.failed(describe(&err)),
                Err(_) => return self.failed(
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                ),
            };

        let code = response.status();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| code.canonical_reason().map(str::to_string))
            .unwrap_or_default();

        let mut body = Vec::new();
        while body.len() < self.max_output {
            match timeout_at(clock, deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    let take = chunk.len().min(self.max_output - body.len());
                    body.extend_from_slice(&chunk[..take]);
                }
                Ok(Ok(None)) => break,
                Ok(Err(err)) => {
                    debug!(target: "checks", error = %err, "Check stopped reading a response body after an error.");
                    break;
                }
                Err(_) => {
                    debug!(target: "checks", "Check stopped reading a response body at its timeout.");
                    break;
                }
            }
        }
        // Dropping the response closes the connection: the rest of the body is never read.
        drop(response);

        let status_line = if reason.is_empty() {
            code.as_u16().to_string()
        } else {
            format!("{} {reason}", code.as_u16())
        };
        let output = format!(
            "HTTP {} {}: {status_line} Output: {}",
            self.method,
            self.url,
            String::from_utf8_lossy(&body)
        );
        match code.as_u16() {
            200..=299 => Outcome::passing(output),
            429 => Outcome::warning(output),
            _ => Outcome::critical(output),
        }
    }
}

fn prepare(method: &str, url: &str, def: &CheckDefinition) -> Result<Prepared, String> {
    let op = go_op(method);
    let fail = |err: String| format!("{op} {url:?}: {err}");

    let parsed_method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("net/http: invalid method {method:?}"))?;
    let parsed = reqwest::Url::parse(url).map_err(|err| format!("parse {url:?}: {err}"))?;
    match parsed.scheme() {
        "http" => {}
        "https" => {
            return Err(fail(
                "https is not supported by this agent (built without TLS); use an http:// URL or a TCP check"
                    .to_string(),
            ))
        }
        other => return Err(fail(format!("unsupported protocol scheme {other:?}"))),
    }

    let mut headers = http::HeaderMap::new();
    for (name, values) in &def.header {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| fail(format!("net/http: invalid header field name {name:?}")))?;
        for value in values {
            let value = HeaderValue::from_str(value)
                .map_err(|_| fail(format!("net/http: invalid header field value for {name:?}")))?;
            headers.append(header.clone(), value);
        }
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    }
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_VALUE));
    }

    let loopback = parsed.host_str().is_some_and(|host| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0);
    if loopback {
        builder = builder.no_proxy();
    }
    let client = builder.build().map_err(|err| fail(err.to_string()))?;
    Ok(Prepared {
        client,
        method: parsed_method,
        url: parsed,
        headers,
        body: def.body.clone(),
    })
}

/// The most telling part of a reqwest error, in Go's words where they differ.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            .to_string();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut innermost = None;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if err.is_connect() {
                let target = err
                    .url()
                    .map(|u| {
                        format!(
                            "{}:{}",
                            u.host_str().unwrap_or_default(),
                            u.port_or_known_default().unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                return format!("dial tcp {target}: connect: {}", io_error_text(io));
            }
            return io_error_text(io);
        }
        innermost = Some(e);
        source = e.source();
    }
    match innermost {
        Some(e) => e.to_string(),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::clock::{ManualClock, TokioClock};
    use crate::checks::testutil::{hanging_server, raw_http_server, streaming_server};
    use crate::checks::Status;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn def(url: &str) -> CheckDefinition {
        CheckDefinition {
            http: url.to_string(),
            ..Default::default()
        }
    }

    fn response(status_line: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn passing_on_2xx_with_consul_headers() {
        let mut server = raw_http_server(response("200 OK", "all good")).await;
        let url = format!("{}/health", server.base);
        let probe = HttpProbe::new(&def(&url), Duration::from_secs(10), 4096);
        let out = probe.run(&TokioClock).await;
        assert_eq!(
            out,
            Outcome::passing(format!("HTTP GET {url}: 200 OK Output: all good"))
        );
        let request = server.requests.recv().await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /health http/1.1\r\n"), "{request}");
        assert!(
            request.contains("\r\nuser-agent: consul health check\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\naccept: text/plain, text/*, */*\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn method_headers_and_body_are_sent() {
        let mut server = raw_http_server(response("201 Created", "")).await;
        let url = format!("{}/x", server.base);
        let mut header = BTreeMap::new();
        header.insert("Accept".to_string(), vec!["application/json".to_string()]);
        header.insert(
            "X-Multi".to_string(),
            vec!["a".to_string(), "b".to_string()],
        );
        let d = CheckDefinition {
            method: "POST".into(),
            header,
            body: "{\"ping\":1}".into(),
            ..def(&url)
        };
        let out = HttpProbe::new(&d, Duration::from_secs(10), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(
            out,
            Outcome::passing(format!("HTTP POST {url}: 201 Created Output: "))
        );
        let request = server.requests.recv().await.unwrap();
        let lower = request.to_ascii_lowercase();
        assert!(lower.starts_with("post /x http/1.1\r\n"), "{request}");
        assert!(
            lower.contains("\r\naccept: application/json\r\n"),
            "{request}"
        );
        assert!(!lower.contains("text/plain"), "{request}");
        assert!(
            lower.contains("\r\nx-multi: a\r\n") && lower.contains("\r\nx-multi: b\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\n{\"ping\":1}"), "{request}");
    }

    #[tokio::test]
    async fn too_many_requests_is_warning() {
        let server = raw_http_server(response("429 Too Many Requests", "slow down")).await;
        let url = format!("{}/", server.base);
        let out = HttpProbe::new(&def(&url), Duration::from_secs(10), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(
            out,
            Outcome::warning(format!(
                "HTTP GET {url}: 429 Too Many Requests Output: slow down"
            ))
        );
    }

    #[tokio::test]
    async fn server_error_is_critical_with_its_reason() {
        let server = raw_http_server(response("503 Down For Maintenance", "later")).await;
        let url = format!("{}/", server.base);
        let out = HttpProbe::new(&def(&url), Duration::from_secs(10), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(
            out,
            Outcome::critical(format!(
                "HTTP GET {url}: 503 Down For Maintenance Output: later"
            ))
        );
    }

    #[tokio::test]
    async fn redirect_is_not_followed() {
        let mut target = raw_http_server(response("200 OK", "followed")).await;
        let redirect = format!(
            "HTTP/1.1 302 Found\r\nLocation: {}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            target.base
        );
        let mut server = raw_http_server(redirect.into_bytes()).await;
        let url = format!("{}/", server.base);
        let out = HttpProbe::new(&def(&url), Duration::from_secs(10), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(
            out,
            Outcome::critical(format!("HTTP GET {url}: 302 Found Output: "))
        );
        assert!(server.requests.recv().await.is_some());
        assert!(
            target.requests.try_recv().is_err(),
            "the redirect target must not be contacted"
        );
    }

    #[tokio::test]
    async fn output_is_capped_at_max_size() {
        let body: String = (0..1024 * 1024)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let server = raw_http_server(response("200 OK", &body)).await;
        let url = format!("{}/", server.base);
        let out = HttpProbe::new(&def(&url), Duration::from_secs(10), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(out.status, Status::Passing);
        assert_eq!(
            out.output,
            format!("HTTP GET {url}: 200 OK Output: {}", &body[..4096])
        );
    }

    #[tokio::test]
    async fn endless_body_is_not_read_to_the_end() {
        let (base, closed) = streaming_server().await;
        let url = format!("{base}/");
        let out = HttpProbe::new(&def(&url), Duration::from_secs(60), 100)
            .run(&TokioClock)
            .await;
        assert_eq!(
            out,
            Outcome::passing(format!(
                "HTTP GET {url}: 200 OK Output: {}",
                "x".repeat(100)
            ))
        );
        // The server notices the probe hung up long before the 60 s timeout.
        tokio::time::timeout(Duration::from_secs(30), closed)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn timeout_is_critical() {
        let (base, mut accepted) = hanging_server().await;
        let url = format!("{base}/slow");
        let clock = Arc::new(ManualClock::new());
        let probe = HttpProbe::new(&def(&url), Duration::from_secs(5), 4096);
        let run = tokio::spawn({
            let clock = clock.clone();
            async move { probe.run(&*clock).await }
        });
        accepted.recv().await.unwrap();
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            run.await.unwrap(),
            Outcome::critical(format!(
                "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
    }

    #[tokio::test]
    async fn refused_connection_is_critical() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/");
        let out = HttpProbe::new(&def(&url), Duration::from_secs(10), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(
            out,
            Outcome::critical(format!(
                "Get {url:?}: dial tcp {addr}: connect: connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn https_is_critical_with_a_clear_output() {
        let url = "https://127.0.0.1:1/health";
        let out = HttpProbe::new(&def(url), Duration::from_secs(10), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(out.status, Status::Critical);
        assert_eq!(
            out.output,
            format!("Get {url:?}: https is not supported by this agent (built without TLS); use an http:// URL or a TCP check")
        );
    }

    #[tokio::test]
    async fn malformed_definitions_are_critical() {
        let out = HttpProbe::new(&def("not a url"), Duration::from_secs(1), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(out.status, Status::Critical);
        assert!(
            out.output.starts_with("parse \"not a url\": "),
            "{}",
            out.output
        );
        let bad_method = CheckDefinition {
            method: "GE T".into(),
            ..def("http://127.0.0.1:1/")
        };
        let out = HttpProbe::new(&bad_method, Duration::from_secs(1), 4096)
            .run(&TokioClock)
            .await;
        assert_eq!(out, Outcome::critical("net/http: invalid method \"GE T\""));
    }
}
