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
    /// A client agent that knows no server yet.
    #[error("No known Consul servers")]
    NoServers,
}

/// The catalog's rows for one node.
#[derive(Clone, Debug, Default)]
pub struct NodeState {
    pub node: Option<crate::structs::Node>,
    pub services: Vec<crate::structs::Service>,
    pub checks: Vec<crate::structs::Check>,
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

/// This agent's way to the catalog. On a server: Raft plus the store it feeds. On a client
/// agent (`raft` is `None`, the store stays empty): writes go to a known server over RPC and
/// the HTTP layer forwards reads to a server's HTTP API.
pub struct Server {
    raft: Option<Raft>,
    store: Arc<Store>,
    node_id: u64,
    started: Instant,
    sessions: SessionTimers,
    metrics: Option<tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>>,
    pool: Arc<Pool>,
    /// Known servers of this datacenter (RPC address, HTTP address), from gossip.
    servers: parking_lot::RwLock<Vec<(String, Option<String>)>>,
    /// Milliseconds after `started` at which the leader last reached us (append entries,
    /// heartbeats included): a follower's `X-Consul-LastContact`.
    last_leader_contact: std::sync::atomic::AtomicU64,
}

impl Server {
    pub fn new(raft: Option<Raft>, store: Arc<Store>, node_id: u64, pool: Arc<Pool>) -> Server {
        let metrics = raft.as_ref().map(|r| r.metrics());
        Server {
            raft,
            store,
            node_id,
            started: Instant::now(),
            sessions: SessionTimers::default(),
            metrics,
            pool,
            servers: parking_lot::RwLock::new(Vec::new()),
            last_leader_contact: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The Raft instance; `None` on a client agent.
    pub fn raft(&self) -> Option<&Raft> {
        self.raft.as_ref()
    }

    pub fn is_server(&self) -> bool {
        self.raft.is_some()
    }

    /// Replaces the known servers (gossip's alive servers of this datacenter).
    pub fn set_servers(&self, servers: Vec<(String, Option<String>)>) {
        *self.servers.write() = servers;
    }

    /// HTTP addresses of the known servers, for a client agent's forwarding.
    pub fn server_http_addrs(&self) -> Vec<String> {
        self.servers
            .read()
            .iter()
            .filter_map(|(_, h)| h.clone())
            .collect()
    }

    /// A random known server's RPC address.
    fn pick_server(&self) -> Option<String> {
        let s = self.servers.read();
        if s.is_empty() {
            return None;
        }
        Some(s[rand::random::<usize>() % s.len()].0.clone())
    }

    /// The catalog's view of one node (anti-entropy): local on a server after a read
    /// barrier, from a server over RPC on a client agent.
    pub async fn node_state(&self, node: &str) -> Result<NodeState, RpcError> {
        if self.raft.is_some() {
            self.read_barrier(Consistency::Default).await?;
            return Ok(self.store.read(|t| NodeState {
                node: t.node(node).cloned(),
                services: t.node_services(node).cloned().collect(),
                checks: t.node_checks(node).cloned().collect(),
            }));
        }
        let addr = self.pick_server().ok_or(RpcError::NoServers)?;
        match self
            .pool
            .call(
                &addr,
                &Request::NodeState {
                    node: node.to_string(),
                },
                FORWARD_TIMEOUT,
            )
            .await?
        {
            Response::NodeState {
                node,
                services,
                checks,
            } => Ok(NodeState {
                node,
                services,
                checks,
            }),
            Response::Error(Failure::NoLeader) => Err(RpcError::NoLeader),
            Response::Error(Failure::Other(e)) => Err(RpcError::Raft(e)),
            other => Err(RpcError::Raft(format!(
                "unexpected answer to a node state request: {other:?}"
            ))),
        }
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
        let Some(raft) = &self.raft else {
            // A client agent: any server forwards to its leader.
            let addr = self.pick_server().ok_or(RpcError::NoServers)?;
            return match self
                .pool
                .call(&addr, &Request::Apply(cmd), FORWARD_TIMEOUT)
                .await?
            {
                Response::Apply(r) => Ok(r),
                Response::Error(Failure::NoLeader) => Err(RpcError::NoLeader),
                Response::Error(Failure::Other(e)) => Err(RpcError::Raft(e)),
                other => Err(RpcError::Raft(format!(
                    "unexpected answer to a forwarded write: {other:?}"
                ))),
            };
        };
        match raft.client_write(cmd.clone()).await {
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
        let raft = self.raft.as_ref().ok_or(RpcError::NoLeader)?;
        match raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map_or(0, |l| l.index)),
            Err(RaftError::APIError(_)) => Err(RpcError::NoLeader),
            Err(e) => Err(RpcError::Raft(e.to_string())),
        }
    }

    async fn wait_applied(&self, index: u64) -> Result<(), RpcError> {
        let Some(mut rx) = self.metrics.clone() else {
            return Ok(());
        };
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
        let raft = match (&self.raft, &req) {
            (Some(r), _) => Some(r),
            (None, Request::AppendEntries(_) | Request::Vote(_) | Request::InstallSnapshot(_)) => {
                return fail("this agent is not a server");
            }
            (None, _) => None,
        };
        match req {
            Request::AppendEntries(r) => match raft {
                Some(raft) => {
                    let now = self.started.elapsed().as_millis() as u64;
                    self.last_leader_contact
                        .store(now, std::sync::atomic::Ordering::Relaxed);
                    raft.append_entries(r)
                        .await
                        .map_or_else(fail, Response::AppendEntries)
                }
                None => fail("this agent is not a server"),
            },
            Request::Vote(r) => match raft {
                Some(raft) => raft.vote(r).await.map_or_else(fail, Response::Vote),
                None => fail("this agent is not a server"),
            },
            Request::InstallSnapshot(r) => match raft {
                Some(raft) => raft
                    .install_snapshot(r)
                    .await
                    .map_or_else(fail, Response::InstallSnapshot),
                None => fail("this agent is not a server"),
            },
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
        let Some(metrics) = &self.metrics else {
            let known = !self.servers.read().is_empty();
            return LeaderStatus {
                known_leader: known,
                is_leader: false,
                last_contact_ms: 0,
                leader_addr: None,
            };
        };
        let m = metrics.borrow();
        let leader = m.current_leader;
        let is_leader = leader == Some(self.node_id);
        let last_contact_ms = if is_leader {
            0
        } else {
            let at = self
                .last_leader_contact
                .load(std::sync::atomic::Ordering::Relaxed);
            (self.started.elapsed().as_millis() as u64).saturating_sub(at)
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
        let m = self.metrics.as_ref()?.borrow();
        let id = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// Raft voter addresses (`/v1/status/peers`).
    pub fn peers(&self) -> Vec<String> {
        let Some(metrics) = &self.metrics else {
            return Vec::new();
        };
        let m = metrics.borrow().clone();
        let membership = m.membership_config.membership();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone()))
            .collect()
    }

    /// Waits until this server leads (or `timeout` passes).
    pub async fn wait_for_leader(&self, timeout: std::time::Duration) -> bool {
        let Some(mut rx) = self.metrics.clone() else {
            return false;
        };
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
