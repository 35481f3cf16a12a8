//! Test support: a tiny HTTP/1.1 server on `127.0.0.1:0` that answers canned responses by
//! `METHOD /path` and records every request, plus a helper that runs a whole command line
//! in-process against it with captured output.

use super::ui::{Env, Ui};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the fake agent saw it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A canned answer.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

pub(crate) fn reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        body: body.into(),
    }
}

pub(crate) struct FakeAgent {
    pub addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeAgent {
    /// Starts serving `routes` (`"GET /v1/agent/members"` → reply); anything else gets a 404.
    pub async fn start(routes: Vec<(&str, Reply)>) -> FakeAgent {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let routes: Arc<Vec<(String, Reply)>> = Arc::new(
            routes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let routes = routes.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    let key = format!("{} {}", req.method, req.path);
                    let r = routes
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, r)| r.clone())
                        .unwrap_or_else(|| reply(404, format!("no route for {key}")));
                    seen.lock().unwrap().push(req);
                    let head = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         X-Consul-Index: 7\r\nConnection: close\r\n\r\n",
                        r.status,
                        r.body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&r.body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        FakeAgent { addr, seen }
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The only request so far.
    pub fn one(&self) -> Seen {
        let s = self.seen();
        assert_eq!(s.len(), 1, "expected one request, got {s:?}");
        s[0].clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Seen {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// What a command run produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tribune <args>` in-process with `env` and `stdin`.
pub(crate) async fn run_cli(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Outcome {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env = Env::from_pairs(env);
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input = stdin;
    let code = {
        let mut ui = Ui {
            out: &mut out,
            err: &mut err,
            stdin: &mut input,
            env: &env,
        };
        super::run(&args, &mut ui).await
    };
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&out).to_string(),
        stderr: String::from_utf8_lossy(&err).to_string(),
    }
}

/// Runs a command against `agent` (its address in `CONSUL_HTTP_ADDR`).
pub(crate) async fn run_at(agent: &FakeAgent, args: &[&str]) -> Outcome {
    run_cli(args, &[("CONSUL_HTTP_ADDR", &agent.addr)], b"").await
}
