//! The server's endpoints: every write goes through Raft, every read states its consistency.
//!
//! Owns: the link between the HTTP layer and Raft plus the state store. HTTP never reaches
//! Raft or the store directly: it asks this module to apply a command or to make a read safe
//! (`default`: served by the leader; `stale`: served locally; `consistent`: the leader first
//! confirms it still leads a quorum). Client agents and cross-DC forwarding plug in here.

pub mod leader;
mod listener;
mod pool;
mod wire;

pub use listener::serve;
pub use pool::{CallError, Pool};
pub use wire::{Failure, Request, Response};

use crate::raft::Raft;
use crate::state::Store;
use crate::structs::{msg, Command, CommandResponse};
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use std::time::Instant;

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    Default,
    Stale,
    Consistent,
}

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Consul's `No cluster leader` (HTTP 500).
    #[error("{}", msg::NO_LEADER)]
    NoLeader,
    #[error("raft: {0}")]
    Raft(String),
    #[error("rpc: {0}")]
    Call(#[from] CallError),
}

/// How long a forwarded request may take.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Leadership facts for `X-Consul-KnownLeader` / `X-Consul-LastContact` and `/v1/status`.
#[derive(Clone, Debug, Default)]
pub struct LeaderStatus {
    pub known_leader: bool,
    pub is_leader: bool,
    /// Milliseconds since this server last heard from the leader (0 on the leader).
    pub last_contact_ms: u64,
    /// Filled only by [`Server::leader_addr`] callers; `None` from `leader_status`.
    pub leader_addr: Option<String>,
}

/// A server: Raft plus the store it feeds.
pub struct Server {
    raft: Raft,
    store: Arc<Store>,
    node_id: u64,
    started: Instant,
    sessions: SessionTimers,
    metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
    pool: Arc<Pool>,
}

impl Server {
    pub fn new(raft: Raft, store: Arc<Store>, node_id: u64, pool: Arc<Pool>) -> Server {
        let metrics = raft.metrics();
        Server {
            raft,
            store,
            node_id,
            started: Instant::now(),
            sessions: SessionTimers::default(),
            metrics,
            pool,
        }
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn session_timers(&self) -> &SessionTimers {
        &self.sessions
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Applies `cmd` through Raft; returns once it is committed (fsynced on a quorum) and
    /// applied. A follower forwards the command to the leader.
    pub async fn apply(&self, cmd: Command) -> Result<CommandResponse, RpcError> {
        self.apply_hops(cmd, 0).await
    }

    async fn apply_hops(&self, cmd: Command, hops: u8) -> Result<CommandResponse, RpcError> {
        match self.raft.client_write(cmd.clone()).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let Some(leader) = f
                    .leader_node
                    .filter(|_| hops == 0 && f.leader_id != Some(self.node_id))
                else {
                    return Err(RpcError::NoLeader);
                };
                match self
                    .pool
                    .call(&leader.addr, &Request::Apply(cmd), FORWARD_TIMEOUT)
                    .await?
                {
                    Response::Apply(r) => Ok(r),
                    Response::Error(Failure::NoLeader) => Err(RpcError::NoLeader),
                    Response::Error(Failure::Other(e)) => Err(RpcError::Raft(e)),
                    other => Err(RpcError::Raft(format!(
                        "unexpected answer to a forwarded write: {other:?}"
                    ))),
                }
            }
            Err(e) => Err(RpcError::Raft(e.to_string())),
        }
    }

    /// Makes a read at `mode` safe to serve from the local store. `default` and `consistent`
    /// are linearizable: the leader confirms it still leads, and a follower waits until it
    /// has applied everything the leader had committed (a ReadIndex read).
    pub async fn read_barrier(&self, mode: Consistency) -> Result<(), RpcError> {
        match mode {
            Consistency::Stale => Ok(()),
            Consistency::Default if self.leader_status().is_leader => Ok(()),
            _ if self.leader_status().is_leader => self.read_index().await.map(|_| ()),
            _ => {
                let addr = self.leader_addr().ok_or(RpcError::NoLeader)?;
                let index = match self
                    .pool
                    .call(&addr, &Request::ReadIndex, FORWARD_TIMEOUT)
                    .await?
                {
                    Response::ReadIndex(i) => i,
                    Response::Error(Failure::NoLeader) => return Err(RpcError::NoLeader),
                    Response::Error(Failure::Other(e)) => return Err(RpcError::Raft(e)),
                    other => {
                        return Err(RpcError::Raft(format!(
                            "unexpected answer to a read index: {other:?}"
                        )))
                    }
                };
                self.wait_applied(index).await
            }
        }
    }

    /// On the leader: confirms leadership with a quorum; the index reads must wait for.
    async fn read_index(&self) -> Result<u64, RpcError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map_or(0, |l| l.index)),
            Err(RaftError::APIError(_)) => Err(RpcError::NoLeader),
            Err(e) => Err(RpcError::Raft(e.to_string())),
        }
    }

    async fn wait_applied(&self, index: u64) -> Result<(), RpcError> {
        let mut rx = self.metrics.clone();
        let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
        loop {
            if rx.borrow().last_applied.is_some_and(|l| l.index >= index) || index == 0 {
                return Ok(());
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(RpcError::NoLeader) },
                _ = tokio::time::sleep_until(deadline) => return Err(RpcError::Raft(format!("timed out applying up to index {index}"))),
            }
        }
    }

    /// Answers one incoming server RPC.
    pub async fn handle(&self, req: Request) -> Response {
        fn fail(e: impl std::fmt::Display) -> Response {
            Response::Error(Failure::Other(e.to_string()))
        }
        match req {
            Request::AppendEntries(r) => self
                .raft
                .append_entries(r)
                .await
                .map_or_else(fail, Response::AppendEntries),
            Request::Vote(r) => self.raft.vote(r).await.map_or_else(fail, Response::Vote),
            Request::InstallSnapshot(r) => self
                .raft
                .install_snapshot(r)
                .await
                .map_or_else(fail, Response::InstallSnapshot),
            Request::Apply(cmd) => match self.apply_hops(cmd, 1).await {
                Ok(r) => Response::Apply(r),
                Err(RpcError::NoLeader) => Response::Error(Failure::NoLeader),
                Err(e) => fail(e),
            },
            Request::ReadIndex => match self.read_index().await {
                Ok(i) => Response::ReadIndex(i),
                Err(RpcError::NoLeader) => Response::Error(Failure::NoLeader),
                Err(e) => fail(e),
            },
            Request::NodeState { node } => {
                let (n, services, checks) = self.store.read(|t| {
                    (
                        t.node(&node).cloned(),
                        t.node_services(&node).cloned().collect(),
                        t.node_checks(&node).cloned().collect(),
                    )
                });
                Response::NodeState {
                    node: n,
                    services,
                    checks,
                }
            }
        }
    }

    /// Leadership facts. Borrows the metrics (no clone): this runs on every read.
    pub fn leader_status(&self) -> LeaderStatus {
        let m = self.metrics.borrow();
        let leader = m.current_leader;
        let is_leader = leader == Some(self.node_id);
        let last_contact_ms = if is_leader {
            0
        } else {
            m.millis_since_quorum_ack
                .unwrap_or_else(|| self.started.elapsed().as_millis() as u64)
        };
        LeaderStatus {
            known_leader: leader.is_some(),
            is_leader,
            last_contact_ms,
            leader_addr: None,
        }
    }

    /// The leader's server RPC address (`/v1/status/leader`), if one is known.
    pub fn leader_addr(&self) -> Option<String> {
        let m = self.metrics.borrow();
        let id = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// Raft voter addresses (`/v1/status/peers`).
    pub fn peers(&self) -> Vec<String> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone()))
            .collect()
    }

    /// Waits until this server leads (or `timeout` passes).
    pub async fn wait_for_leader(&self, timeout: std::time::Duration) -> bool {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if rx.borrow().current_leader == Some(self.node_id) {
                return true;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return false },
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }
}

/// Session TTL deadlines, kept by the leader in memory like Consul's (a new leader restarts
/// every clock at its full TTL). Sessions expire after twice their TTL (Consul's grace).
#[derive(Default)]
pub struct SessionTimers {
    deadlines: parking_lot::Mutex<std::collections::HashMap<String, Instant>>,
}

impl SessionTimers {
    /// (Re)starts the clock of session `id`.
    pub fn reset(&self, id: &str, ttl: std::time::Duration) {
        self.deadlines
            .lock()
            .insert(id.to_string(), Instant::now() + ttl * 2);
    }

    pub fn remove(&self, id: &str) {
        self.deadlines.lock().remove(id);
    }

    /// Sessions past their deadline; sessions with a TTL but no clock get one started.
    pub fn expired(&self, with_ttl: &[(String, std::time::Duration)]) -> Vec<String> {
        let now = Instant::now();
        let mut d = self.deadlines.lock();
        let live: std::collections::HashSet<&str> =
            with_ttl.iter().map(|(id, _)| id.as_str()).collect();
        d.retain(|id, _| live.contains(id.as_str()));
        let mut out = Vec::new();
        for (id, ttl) in with_ttl {
            match d.get(id) {
                None => {
                    d.insert(id.clone(), now + *ttl * 2);
                }
                Some(deadline) if *deadline <= now => out.push(id.clone()),
                Some(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
