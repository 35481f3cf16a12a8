//! Outgoing server RPC connections: one multiplexed connection per peer address, a writer
//! task that batches frames into few syscalls, a reader task that routes responses by id.

use super::wire::{self, Request, Response, WireError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to {0} closed")]
    Closed(String),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error(transparent)]
    Wire(#[from] WireError),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

struct Conn {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    alive: Arc<std::sync::atomic::AtomicBool>,
}

/// Connections to other servers, keyed by `host:port`.
#[derive(Default)]
pub struct Pool {
    conns: Mutex<HashMap<String, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    async fn conn(&self, addr: &str) -> Result<Arc<Conn>, CallError> {
        if let Some(c) = self.conns.lock().get(addr) {
            if c.alive.load(Ordering::Relaxed) {
                return Ok(c.clone());
            }
        }
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .map_err(|_| CallError::Connect {
                addr: addr.into(),
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| CallError::Connect {
                addr: addr.into(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (mut rd, wr) = stream.into_split();
        let mut wr = BufWriter::with_capacity(64 << 10, wr);
        wire::write_preamble(&mut wr).await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let pending: Pending = Arc::default();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        // Writer: drain every queued frame, then flush once.
        let alive_w = alive.clone();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
                while let Ok(more) = rx.try_recv() {
                    if wr.write_all(&more).await.is_err() {
                        alive_w.store(false, Ordering::Relaxed);
                        return;
                    }
                }
                if wr.flush().await.is_err() {
                    break;
                }
            }
            alive_w.store(false, Ordering::Relaxed);
        });
        // Reader: route responses; on error fail everything pending.
        let (pending_r, alive_r) = (pending.clone(), alive.clone());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok((id, resp)) = wire::read_frame::<_, Response>(&mut rd, &mut buf).await {
                if let Some(tx) = pending_r.lock().remove(&id) {
                    let _ = tx.send(resp);
                }
            }
            alive_r.store(false, Ordering::Relaxed);
            pending_r.lock().clear();
        });
        let conn = Arc::new(Conn {
            frames: tx,
            pending,
            alive,
        });
        self.conns.lock().insert(addr.to_string(), conn.clone());
        Ok(conn)
    }

    /// Sends `req` to `addr` and waits for its response.
    pub async fn call(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let conn = self.conn(addr).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(id, req)?;
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(id, tx);
        if conn.frames.send(frame).is_err() {
            conn.pending.lock().remove(&id);
            conn.alive.store(false, Ordering::Relaxed);
            return Err(CallError::Closed(addr.into()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(CallError::Closed(addr.into())),
            Err(_) => {
                conn.pending.lock().remove(&id);
                Err(CallError::Timeout(timeout, addr.into()))
            }
        }
    }
}
