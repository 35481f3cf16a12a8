//! [`StatusServer`]: a tiny HTTP server on loopback whose answer status a test
//! sets, the target of the agent's HTTP (and TCP) health checks.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP/1.1 server answering every request with the current status and a
/// short body (`status <code>`), closing each connection after one answer.
/// It runs as a task of the test's runtime and stops when dropped.
#[derive(Debug)]
pub struct StatusServer {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicU64>,
    last: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusServer {
    /// Binds `127.0.0.1:0` and starts answering with `status`.
    pub async fn start(status: u16) -> anyhow::Result<StatusServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind the stub HTTP server")?;
        let addr = listener.local_addr()?;
        let status = Arc::new(AtomicU16::new(status));
        let requests = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(String::new()));
        let (st, rq, ls) = (status.clone(), requests.clone(), last.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (st, rq, ls) = (st.clone(), rq.clone(), ls.clone());
                tokio::spawn(async move {
                    // Read the request head; health checks send no body.
                    let mut buf = vec![0u8; 8192];
                    let mut len = 0;
                    while len < buf.len() {
                        match conn.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => len += n,
                        }
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    if let Ok(mut l) = ls.lock() {
                        *l = String::from_utf8_lossy(&buf[..len]).into_owned();
                    }
                    rq.fetch_add(1, Ordering::SeqCst);
                    let code = st.load(Ordering::SeqCst);
                    let body = format!("status {code}");
                    let head = format!(
                        "HTTP/1.1 {code} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n",
                        reason(code),
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Ok(StatusServer {
            addr,
            status,
            requests,
            last,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Changes the status of the next answers.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The head (and whatever of the body came with it) of the last request.
    pub fn last_request(&self) -> String {
        self.last.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reason phrase Go's `http.StatusText` gives, for the codes tests use.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
