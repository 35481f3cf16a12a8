//! Incoming server RPC: accept connections on the server port and answer each request in
//! its own task, so a slow snapshot never holds up heartbeats on the same connection.

use super::wire::{self, Request, Response, RPC_PROTOCOL};
use super::Server;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Serves server RPC on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, server: Arc<Server>, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(target: "rpc", error = %e, "Accepting an RPC connection failed.");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let (mut rd, wr) = stream.into_split();
            let mut proto = [0u8; 1];
            if rd.read_exact(&mut proto).await.is_err() || proto[0] != RPC_PROTOCOL {
                tracing::debug!(target: "rpc", peer = %peer, "Closed a connection with an unknown protocol byte.");
                return;
            }
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
            tokio::spawn(async move {
                let mut wr = BufWriter::with_capacity(64 << 10, wr);
                while let Some(frame) = rx.recv().await {
                    if wr.write_all(&frame).await.is_err() {
                        return;
                    }
                    while let Ok(more) = rx.try_recv() {
                        if wr.write_all(&more).await.is_err() {
                            return;
                        }
                    }
                    if wr.flush().await.is_err() {
                        return;
                    }
                }
            });
            let mut buf = Vec::new();
            // The leader whose append entries arrive on this connection, if any.
            let mut leader = None;
            loop {
                let (id, req) = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = wire::read_frame::<_, Request>(&mut rd, &mut buf) => match r {
                        Ok(x) => x,
                        Err(_) => {
                            if let Some(l) = leader {
                                server.leader_connection_lost(l);
                            }
                            return;
                        }
                    },
                };
                if let Request::AppendEntries(r) = &req {
                    if r.vote.is_committed() {
                        leader = r.vote.leader_id().voted_for();
                    }
                }
                let (server, tx) = (server.clone(), tx.clone());
                tokio::spawn(async move {
                    let resp = server.handle(req).await;
                    match wire::encode(id, &resp) {
                        Ok(frame) => {
                            let _ = tx.send(frame);
                        }
                        Err(e) => {
                            tracing::error!(target: "rpc", error = %e, "Could not encode an RPC response.");
                            if let Ok(frame) = wire::encode(
                                id,
                                &Response::Error(wire::Failure::Other(e.to_string())),
                            ) {
                                let _ = tx.send(frame);
                            }
                        }
                    }
                });
            }
        });
    }
}
