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
    /// The reader task: stopped with the connection, so a connection dropped while its peer
    /// is unreachable (a partition) leaves no task waiting on a socket that may never close.
    reader: tokio::task::AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
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
        let reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok((id, resp)) = wire::read_frame::<_, Response>(&mut rd, &mut buf).await {
                if let Some(tx) = pending_r.lock().remove(&id) {
                    let _ = tx.send(resp);
                }
            }
            alive_r.store(false, Ordering::Relaxed);
            pending_r.lock().clear();
        })
        .abort_handle();
        let conn = Arc::new(Conn {
            frames: tx,
            pending,
            alive,
            reader,
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
        self.call_inner(addr, req, timeout, false).await
    }

    /// Like [`Pool::call`], but a timeout also drops the connection: the next call dials
    /// afresh instead of queueing behind a peer that stopped answering (a forwarded write
    /// to a leader cut off by a partition). Other calls waiting on it fail as closed.
    pub async fn call_or_reset(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        self.call_inner(addr, req, timeout, true).await
    }

    async fn call_inner(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
        reset_on_timeout: bool,
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
                if reset_on_timeout {
                    conn.alive.store(false, Ordering::Relaxed);
                    let mut conns = self.conns.lock();
                    if conns.get(addr).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                        conns.remove(addr);
                    }
                }
                Err(CallError::Timeout(timeout, addr.into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A peer that accepts connections, reads whatever comes and never answers (a leader
    /// behind a partition, as far as the caller can tell). Counts the connections.
    async fn silent_peer() -> (String, Arc<AtomicU64>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicU64::new(0));
        let n = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                n.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf).await, Ok(k) if k > 0) {}
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn rpc_call_or_reset_drops_a_connection_that_timed_out() {
        let (addr, accepted) = silent_peer().await;
        let pool = Pool::new();
        let t = Duration::from_millis(200);
        // A plain call keeps the connection for the next caller.
        let r = pool.call(&addr, &Request::ReadIndex, t).await;
        assert!(matches!(r, Err(CallError::Timeout(..))), "{r:?}");
        assert!(pool.conns.lock().contains_key(&addr));
        let r = pool.call(&addr, &Request::ReadIndex, t).await;
        assert!(matches!(r, Err(CallError::Timeout(..))), "{r:?}");
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
        // A forwarded write that times out drops it: the next call dials again.
        let r = pool.call_or_reset(&addr, &Request::ReadIndex, t).await;
        assert!(matches!(r, Err(CallError::Timeout(..))), "{r:?}");
        assert!(!pool.conns.lock().contains_key(&addr));
        let r = pool.call_or_reset(&addr, &Request::ReadIndex, t).await;
        assert!(matches!(r, Err(CallError::Timeout(..))), "{r:?}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while accepted.load(Ordering::Relaxed) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "no new connection");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
