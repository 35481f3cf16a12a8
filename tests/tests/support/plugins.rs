//! Shared by the plugin suites (`plugins.rs`, `plugins_hostile.rs`): where the built
//! components are, agents configured with plugins, the check views they read, and two
//! small servers plugins talk to (a JSON/webhook HTTP server and a TCP banner server).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tribune_tests::{must, wait_until, Agent};

/// How long a check result may take to show (first runs are staggered over the interval).
pub const SETTLE: Duration = Duration::from_secs(20);

/// The directory `scripts/build-plugins.sh` writes components to.
pub fn plugin_dir() -> PathBuf {
    match std::env::var_os("TRIBUNE_PLUGIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/tribune-plugins/components"),
    }
}

/// A built component by name (`http-json`, `fixture-spin`, `example-python`, ...).
pub fn component(name: &str) -> PathBuf {
    let path = plugin_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh (or set TRIBUNE_PLUGIN_DIR)",
        path.display()
    );
    path
}

/// A `plugins[]` entry for a built component; `extra` is merged in.
pub fn plugin(name: &str, file: &str, extra: Value) -> Value {
    let mut p = json!({"name": name, "path": component(file)});
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    p
}

/// An agent with these plugins and services (a single server, from a config file).
pub async fn agent_with(plugins: Vec<Value>, services: Vec<Value>) -> Agent {
    must(
        Agent::start_with_config(
            json!({"plugins": plugins, "services": services, "log_level": "debug"}),
        )
        .await,
    )
}

/// A service with one `wasm` check on `plugin`.
pub fn service_with_check(service: &str, plugin: &str, config: Value, timeout: &str) -> Value {
    json!({
        "name": service,
        "port": 80,
        "checks": [{
            "name": format!("{service}-check"),
            "wasm": {"plugin": plugin, "config": config},
            "interval": "1s",
            "timeout": timeout,
        }],
    })
}

/// A check as `/v1/agent/checks` shows it, found by name.
pub async fn check(agent: &Agent, name: &str) -> anyhow::Result<Value> {
    let checks = agent.get_json("/v1/agent/checks").await?;
    checks
        .as_object()
        .and_then(|m| m.values().find(|c| c["Name"] == name))
        .cloned()
        .with_context(|| format!("no check named {name} in {checks}"))
}

/// Waits until the named check has `status` and an output containing `needle`.
pub async fn wait_check(agent: &Agent, name: &str, status: &str, needle: &str) -> Value {
    must(
        wait_until(
            SETTLE,
            &format!("check {name} to be {status} with {needle:?}"),
            || async {
                let c = check(agent, name).await?;
                let out = c["Output"].as_str().unwrap_or_default();
                if c["Status"] == status && out.contains(needle) {
                    Ok(c)
                } else {
                    bail!("status {} output {out:?}", c["Status"])
                }
            },
        )
        .await,
    )
}

/// `GET /v1/agent/plugins`, one entry by name.
pub async fn plugin_status(agent: &Agent, name: &str) -> anyhow::Result<Value> {
    let all = agent.get_json("/v1/agent/plugins").await?;
    all.as_array()
        .and_then(|a| a.iter().find(|p| p["Name"] == name))
        .cloned()
        .with_context(|| format!("no plugin {name} in {all}"))
}

/// Runs the `tribune` binary: (exit code, stdout, stderr).
pub fn tribune(args: &[&str]) -> (i32, String, String) {
    let bin = must(tribune_tests::process::tribune_bin());
    let out = Command::new(bin).args(args).output().expect("run tribune");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An HTTP server on loopback answering every request with the current (status, body),
/// and keeping every request body it received (webhook deliveries). The first
/// `fail_first` requests are answered 503.
#[derive(Clone)]
pub struct JsonServer {
    pub addr: std::net::SocketAddr,
    reply: Arc<Mutex<(u16, String)>>,
    pub bodies: Arc<Mutex<Vec<String>>>,
    fail_first: Arc<Mutex<u32>>,
    pub requests: Arc<Mutex<u32>>,
}

impl JsonServer {
    pub async fn start(status: u16, body: &str) -> JsonServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = JsonServer {
            addr: listener.local_addr().expect("addr"),
            reply: Arc::new(Mutex::new((status, body.to_string()))),
            bodies: Arc::new(Mutex::new(Vec::new())),
            fail_first: Arc::new(Mutex::new(0)),
            requests: Arc::new(Mutex::new(0)),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, len) = loop {
                        let n = match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                    *s.requests.lock().unwrap() += 1;
                    let fail = {
                        let mut f = s.fail_first.lock().unwrap();
                        if *f > 0 {
                            *f -= 1;
                            true
                        } else {
                            false
                        }
                    };
                    let (code, text) = if fail {
                        (503, "busy".to_string())
                    } else {
                        if !body.is_empty() {
                            s.bodies.lock().unwrap().push(body);
                        }
                        s.reply.lock().unwrap().clone()
                    };
                    let resp = format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        server
    }

    pub fn set(&self, status: u16, body: &str) {
        *self.reply.lock().unwrap() = (status, body.to_string());
    }

    pub fn fail_next(&self, n: u32) {
        *self.fail_first.lock().unwrap() = n;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect()
    }
}

/// A TCP server that, per connection, optionally waits for `expect` then writes `answer`
/// (a Redis answering PING, a MySQL sending its handshake).
pub async fn banner_server(expect: &'static [u8], answer: Vec<u8>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                if !expect.is_empty() {
                    let mut got = Vec::new();
                    let mut b = [0u8; 256];
                    while !got.windows(expect.len()).any(|w| w == expect) {
                        match conn.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&b[..n]),
                        }
                    }
                }
                let _ = conn.write_all(&answer).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}
