//! The gRPC probe: `grpc.health.v1.Health/Check` over HTTP/2 cleartext (prior knowledge).
//!
//! The target is `host:port[/service]`. The request message (field 1: the service name) is
//! encoded by hand behind gRPC's 5-byte frame header; the reply's `status` (field 1) and the
//! `grpc-status` trailer are read back. `SERVING` is passing with Consul's output
//! `gRPC check <target>: success`; anything else is critical, worded like grpc-go's errors
//! (`rpc error: code = ... desc = ...`, `gRPC <target> serving status: NOT_SERVING`).
//! No TLS in this build: `GRPCUseTLS` checks are reported critical by the runner.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, TE, USER_AGENT};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::clock::{timeout_at, Clock};
use super::{io_error_text, Outcome};

/// The health service method every gRPC health check calls.
pub(crate) const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// A health reply is a few bytes; anything past this is not one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub(crate) struct GrpcProbe {
    target: String,
    server: String,
    service: String,
    timeout: Duration,
}

/// grpc-go's names for status codes, as its errors print them.
fn code_name(code: u32) -> String {
    let name = match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        other => return format!("Code({other})"),
    };
    name.to_string()
}

const UNKNOWN: u32 = 2;
const INTERNAL: u32 = 13;
const UNAVAILABLE: u32 = 14;

fn rpc_error(code: u32, desc: impl std::fmt::Display) -> String {
    format!("rpc error: code = {} desc = {desc}", code_name(code))
}

/// `HealthCheckResponse.ServingStatus` names.
fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        other => other.to_string(),
    }
}

/// grpc-go's mapping of a non-200 HTTP status to a gRPC code.
fn code_for_http_status(status: u16) -> u32 {
    match status {
        400 => INTERNAL,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => UNAVAILABLE,
        _ => UNKNOWN,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A gRPC frame holding `HealthCheckRequest { service }`.
pub(crate) fn encode_request(service: &str) -> Bytes {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0); // not compressed
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

/// Reads field 1 of `HealthCheckResponse` out of one gRPC frame; absent means 0 (proto3).
pub(crate) fn decode_response(frame: &[u8]) -> Result<u64, String> {
    let malformed = || rpc_error(INTERNAL, "grpc: failed to unmarshal the received message");
    if frame.len() < 5 {
        return Err(rpc_error(
            INTERNAL,
            "grpc: the server sent no response message",
        ));
    }
    if frame[0] != 0 {
        return Err(rpc_error(
            INTERNAL,
            "grpc: compressed responses are not supported",
        ));
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let message = frame.get(5..5 + len).ok_or_else(malformed)?;
    let mut at = 0;
    let mut status = 0;
    while at < message.len() {
        let tag = read_varint(message, &mut at).ok_or_else(malformed)?;
        match tag & 7 {
            0 => {
                let v = read_varint(message, &mut at).ok_or_else(malformed)?;
                if tag >> 3 == 1 {
                    status = v;
                }
            }
            1 => at += 8,
            2 => {
                let l = read_varint(message, &mut at).ok_or_else(malformed)?;
                at = at
                    .checked_add(usize::try_from(l).map_err(|_| malformed())?)
                    .ok_or_else(malformed)?;
            }
            5 => at += 4,
            _ => return Err(malformed()),
        }
        if at > message.len() {
            return Err(malformed());
        }
    }
    Ok(status)
}

/// `grpc-message` is percent-encoded on the wire.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Aborts the spawned HTTP/2 connection driver when the probe is done or cancelled.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl GrpcProbe {
    pub(crate) fn new(target: &str, timeout: Duration) -> GrpcProbe {
        let (server, service) = target.split_once('/').unwrap_or((target, ""));
        GrpcProbe {
            target: target.to_string(),
            server: server.to_string(),
            service: service.to_string(),
            timeout,
        }
    }

    pub(crate) async fn run(&self, clock: &dyn Clock) -> Outcome {
        let deadline = clock.now() + self.timeout;
        match timeout_at(clock, deadline, self.call()).await {
            Ok(Ok(1)) => Outcome::passing(format!("gRPC check {}: success", self.target)),
            Ok(Ok(status)) => Outcome::critical(format!(
                "gRPC {} serving status: {}",
                self.target,
                serving_status_name(status)
            )),
            Ok(Err(text)) => Outcome::critical(text),
            Err(_) => Outcome::critical(rpc_error(4, "context deadline exceeded")),
        }
    }

    async fn connect(&self) -> Result<TcpStream, String> {
        let dial_error = |what: String| {
            rpc_error(
                UNAVAILABLE,
                format!("connection error: desc = \"transport: Error while dialing: {what}\""),
            )
        };
        let addrs = tokio::net::lookup_host(self.server.as_str())
            .await
            .map_err(|e| {
                dial_error(format!(
                    "dial tcp: lookup {}: {}",
                    self.server,
                    io_error_text(&e)
                ))
            })?;
        let mut last = dial_error(format!("dial tcp: lookup {}: no such host", self.server));
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    last = dial_error(format!("dial tcp {addr}: connect: {}", io_error_text(&e)))
                }
            }
        }
        Err(last)
    }

    async fn call(&self) -> Result<u64, String> {
        let stream = self.connect().await?;
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| rpc_error(UNAVAILABLE, format!("connection error: desc = \"{e}\"")))?;
        let _driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));

        let request = http::Request::post(format!("http://{}{HEALTH_CHECK_PATH}", self.server))
            .header(CONTENT_TYPE, "application/grpc")
            .header(TE, "trailers")
            .header(USER_AGENT, "Consul Health Check")
            .body(Full::new(encode_request(&self.service)))
            .map_err(|e| rpc_error(INTERNAL, e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| rpc_error(UNAVAILABLE, e))?;
        let (parts, mut body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(rpc_error(
                code_for_http_status(parts.status.as_u16()),
                format!(
                    "unexpected HTTP status code received from server: {} ({})",
                    parts.status.as_u16(),
                    parts.status.canonical_reason().unwrap_or("")
                ),
            ));
        }

        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| rpc_error(UNAVAILABLE, e))?;
            match frame.into_data() {
                Ok(chunk) => {
                    if data.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(rpc_error(8, "grpc: received message larger than max"));
                    }
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            }
        }

        // A "trailers-only" reply carries grpc-status in its headers.
        let status_source = match &trailers {
            Some(t) if t.contains_key("grpc-status") => t,
            _ => &parts.headers,
        };
        let code = status_source
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .ok_or_else(|| {
                rpc_error(
                    INTERNAL,
                    "server closed the stream without sending trailers",
                )
            })?;
        if code != 0 {
            let message = status_source
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .map(percent_decode)
                .unwrap_or_default();
            return Err(rpc_error(code, message));
        }
        decode_response(&data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::clock::{ManualClock, TokioClock};
    use crate::checks::Status;
    use http_body_util::combinators::BoxBody;
    use hyper::body::Incoming;
    use std::convert::Infallible;
    use std::sync::Arc;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    fn frame_with_status(status: u8) -> Bytes {
        Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status])
    }

    /// Decodes `HealthCheckRequest.service` from a request frame.
    fn decode_service(frame: &[u8]) -> String {
        let msg = &frame[5..];
        if msg.is_empty() {
            return String::new();
        }
        assert_eq!(msg[0], 0x0a);
        let mut at = 1;
        let len = read_varint(msg, &mut at).unwrap() as usize;
        String::from_utf8(msg[at..at + len].to_vec()).unwrap()
    }

    async fn health(
        req: http::Request<Incoming>,
        hung: mpsc::UnboundedSender<()>,
    ) -> Result<http::Response<BoxBody<Bytes, Infallible>>, Infallible> {
        assert_eq!(req.uri().path(), HEALTH_CHECK_PATH);
        assert_eq!(req.headers()[CONTENT_TYPE], "application/grpc");
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let service = decode_service(&body);
        let ok_trailers = || {
            let mut t = http::HeaderMap::new();
            t.insert("grpc-status", "0".parse().unwrap());
            t
        };
        let reply = |status: u8| {
            http::Response::builder()
                .header(CONTENT_TYPE, "application/grpc")
                .body(
                    Full::new(frame_with_status(status))
                        .with_trailers(std::future::ready(Some(Ok(ok_trailers()))))
                        .boxed(),
                )
                .unwrap()
        };
        Ok(match service.as_str() {
            "" | "ok" => reply(1),
            "down" => reply(2),
            "hang" => {
                let _ = hung.send(());
                std::future::pending().await
            }
            _ => http::Response::builder()
                .header(CONTENT_TYPE, "application/grpc")
                .header("grpc-status", "5")
                .header("grpc-message", "unknown%20service")
                .body(Full::new(Bytes::new()).boxed())
                .unwrap(),
        })
    }

    /// A tiny h2c server answering the health protocol. Services: `""`/`ok` serving,
    /// `down` not serving, `hang` never answers (and says so on the receiver), anything
    /// else `NotFound`.
    async fn health_server() -> (String, mpsc::UnboundedReceiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (hung_tx, hung) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let hung_tx = hung_tx.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| health(req, hung_tx.clone()));
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, hung)
    }

    #[test]
    fn request_encoding() {
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_request("web")[..],
            &[0, 0, 0, 0, 5, 0x0a, 3, b'w', b'e', b'b']
        );
        assert_eq!(decode_service(&encode_request("web")), "web");
    }

    #[test]
    fn response_decoding_skips_unknown_fields() {
        assert_eq!(decode_response(&frame_with_status(1)).unwrap(), 1);
        assert_eq!(decode_response(&[0, 0, 0, 0, 0]).unwrap(), 0);
        // field 2 (string "ab"), then field 1 = 2
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 6, 0x12, 2, b'a', b'b', 0x08, 2]).unwrap(),
            2
        );
        assert!(decode_response(&[0, 0, 0, 0, 3, 0x12, 9, b'a']).is_err());
        assert!(decode_response(&[1, 0, 0, 0, 0]).is_err());
        assert!(decode_response(&[]).is_err());
    }

    #[test]
    fn grpc_message_is_percent_decoded() {
        assert_eq!(percent_decode("unknown%20service"), "unknown service");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é%"), "%é%");
    }

    #[tokio::test]
    async fn serving_is_passing() {
        let (addr, _) = health_server().await;
        for target in [addr.clone(), format!("{addr}/ok")] {
            let out = GrpcProbe::new(&target, Duration::from_secs(10))
                .run(&TokioClock)
                .await;
            assert_eq!(
                out,
                Outcome::passing(format!("gRPC check {target}: success"))
            );
        }
    }

    #[tokio::test]
    async fn not_serving_is_critical() {
        let target = format!("{}/down", health_server().await.0);
        let out = GrpcProbe::new(&target, Duration::from_secs(10))
            .run(&TokioClock)
            .await;
        assert_eq!(
            out,
            Outcome::critical(format!("gRPC {target} serving status: NOT_SERVING"))
        );
    }

    #[tokio::test]
    async fn error_status_is_critical() {
        let target = format!("{}/nosuch", health_server().await.0);
        let out = GrpcProbe::new(&target, Duration::from_secs(10))
            .run(&TokioClock)
            .await;
        assert_eq!(
            out,
            Outcome::critical("rpc error: code = NotFound desc = unknown service")
        );
    }

    #[tokio::test]
    async fn refused_is_critical() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let out = GrpcProbe::new(&addr.to_string(), Duration::from_secs(10))
            .run(&TokioClock)
            .await;
        assert_eq!(out.status, Status::Critical);
        assert_eq!(
            out.output,
            format!("rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp {addr}: connect: connection refused\"")
        );
    }

    #[tokio::test]
    async fn plain_http_server_is_critical() {
        let server = crate::checks::testutil::raw_http_server(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
        .await;
        let target = server.base.trim_start_matches("http://").to_string();
        let out = GrpcProbe::new(&target, Duration::from_secs(10))
            .run(&TokioClock)
            .await;
        assert_eq!(out.status, Status::Critical);
        assert!(
            out.output
                .starts_with("rpc error: code = Unavailable desc = "),
            "{}",
            out.output
        );
    }

    #[tokio::test]
    async fn timeout_is_critical() {
        let (addr, mut hung) = health_server().await;
        let target = format!("{addr}/hang");
        let clock = Arc::new(ManualClock::new());
        let probe = GrpcProbe::new(&target, Duration::from_secs(4));
        let run = tokio::spawn({
            let clock = clock.clone();
            async move { probe.run(&*clock).await }
        });
        hung.recv().await.unwrap();
        clock.advance(Duration::from_secs(4));
        assert_eq!(
            run.await.unwrap(),
            Outcome::critical(
                "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
            )
        );
    }
}
