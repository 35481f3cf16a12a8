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
use crate::structs::{msg, Command, CommandResponse, KvVerb};
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

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
/// How long a write may wait on the leader to commit before it fails (Consul's
/// `rpc_hold_timeout`): a leader that cannot reach a quorum answers instead of hanging.
const RPC_HOLD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7);
/// How long a write forwarded to the leader may take: the leader's own deadline plus room
/// for its answer to come back. On timeout the pooled connection is dropped.
const FORWARD_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);
/// How often a write or read waiting on this leader checks that it still leads.
const LEADERSHIP_POLL: std::time::Duration = std::time::Duration::from_millis(100);

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
    /// The leader's write batcher (see [`propose_loop`]); `None` on a client agent.
    proposals: Option<mpsc::UnboundedSender<Proposal>>,
    /// Linearizable reads waiting for the next leadership check (see [`read_index_loop`]).
    reads: Arc<ReadIndexBatch>,
    /// `raft_multiplier`'s stretch of the election timeouts and the leader lease.
    lease_stretch: u64,
    /// Check-quorum: a leader whose last acknowledgement by a quorum is older than this
    /// (ms) no longer counts itself leader (see [`Server::quorum_lost`]).
    check_quorum_ms: u64,
    /// The term in which this server last became leader, and when it noticed: bounds
    /// check-quorum before the first acknowledgement of a new term.
    leading_since: parking_lot::Mutex<(u64, Instant)>,
}

/// Why a batched write or read-index round failed; cloned to every waiter of the batch.
#[derive(Clone, Debug)]
enum BatchError {
    NotLeader,
    Other(String),
}

impl From<BatchError> for RpcError {
    fn from(e: BatchError) -> RpcError {
        match e {
            BatchError::NotLeader => RpcError::NoLeader,
            BatchError::Other(e) => RpcError::Raft(e),
        }
    }
}

/// One client write waiting for the batcher.
type Proposal = (
    Command,
    oneshot::Sender<Result<CommandResponse, BatchError>>,
);

/// Most commands in one Raft entry, and most key and value bytes (sled keeps a value
/// larger than a quarter of its 512 KiB segments in a file of its own).
const MAX_BATCH: usize = 512;
const MAX_BATCH_BYTES: usize = 64 << 10;
/// Batches proposed and not yet applied, at most. While they are in flight, new writes
/// queue up and leave together in the next batch: this is what turns many concurrent
/// writes into few entries, appends and fsyncs.
const MAX_IN_FLIGHT: usize = 2;
/// How long a write or linearizable read waits for an election to finish before it fails
/// with `No cluster leader` (Consul's `rpc_hold_timeout` is 7 s).
const LEADER_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

/// The KV key a write touches, if it may share a Raft entry with writes to other keys.
/// Also its size, for [`MAX_BATCH_BYTES`].
fn batch_key(cmd: &Command) -> Option<(&str, usize)> {
    match cmd {
        Command::Kv(op)
            if matches!(
                op.verb,
                KvVerb::Set | KvVerb::Cas | KvVerb::Delete | KvVerb::DeleteCas
            ) =>
        {
            Some((&op.key, op.key.len() + op.value.len() + op.session.len()))
        }
        _ => None,
    }
}

fn key_hash(key: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key)
}

/// The leader's write batcher: takes the first waiting write, then every other one already
/// queued (up to [`MAX_BATCH`]) that touches another key, and proposes them as one entry.
/// Two writes to the same key never share an entry (each keeps its own modify index), and a
/// write that is not a plain KV set/cas/delete always travels alone. At most
/// [`MAX_IN_FLIGHT`] batches are in Raft at once.
async fn propose_loop(raft: Raft, mut rx: mpsc::UnboundedReceiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carry: Option<Proposal> = None;
    let mut keys: std::collections::HashSet<u64> = std::collections::HashSet::new();
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // A write whose caller stopped waiting (it was refused when this leader lost its
        // quorum, or timed out) is not proposed: it was never acknowledged.
        let first = loop {
            let p = match carry.take() {
                Some(p) => p,
                None => match rx.recv().await {
                    Some(p) => p,
                    None => return,
                },
            };
            if !p.1.is_closed() {
                break p;
            }
        };
        let mut batch = vec![first];
        if let Some((k, mut bytes)) = batch_key(&batch[0].0) {
            keys.clear();
            keys.insert(key_hash(k));
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                let Ok(next) = rx.try_recv() else { break };
                if next.1.is_closed() {
                    continue;
                }
                match batch_key(&next.0) {
                    Some((k, n)) if keys.insert(key_hash(k)) => {
                        bytes += n;
                        batch.push(next);
                    }
                    _ => {
                        carry = Some(next);
                        break;
                    }
                }
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(permit);
        });
    }
}

async fn propose(raft: &Raft, mut batch: Vec<Proposal>) {
    let (cmd, waiters) = if batch.len() == 1 {
        let Some((cmd, tx)) = batch.pop() else { return };
        (cmd, vec![tx])
    } else {
        let mut waiters = Vec::with_capacity(batch.len());
        let mut cmds = Vec::with_capacity(batch.len());
        for (cmd, tx) in batch {
            cmds.push(cmd);
            waiters.push(tx);
        }
        (Command::Batch(cmds), waiters)
    };
    match raft.client_write(cmd).await {
        Ok(r) => {
            for (tx, resp) in waiters.into_iter().zip(r.data) {
                let _ = tx.send(Ok(resp));
            }
        }
        Err(e) => {
            let e = match e {
                RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => BatchError::NotLeader,
                other => BatchError::Other(other.to_string()),
            };
            for tx in waiters {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

/// Linearizable reads waiting on the leader: one leadership check (a heartbeat round to a
/// quorum) serves every read that was waiting when it started.
#[derive(Default)]
struct ReadIndexBatch {
    waiting: parking_lot::Mutex<Vec<oneshot::Sender<Result<u64, BatchError>>>>,
    wake: Notify,
}

/// Leadership checks running at once, at most. A read waits for a check that started after
/// it arrived; letting the next check start while one is still out saves it up to a round.
const MAX_READ_ROUNDS: usize = 3;

async fn read_index_loop(raft: Raft, batch: Arc<ReadIndexBatch>) {
    let rounds = Arc::new(Semaphore::new(MAX_READ_ROUNDS));
    // openraft restores a restarted leader in its old term without committing a new entry,
    // and the commit index it restores is a lazily saved hint: entries acknowledged before
    // a crash can sit above it. So reads also wait for the whole log this leader held at its
    // first successful check (a leader never truncates its own log; everything in it
    // commits). Found by the cluster_failure suite: all servers SIGKILLed, restarted.
    let floor = Arc::new(std::sync::OnceLock::<u64>::new());
    loop {
        batch.wake.notified().await;
        let Ok(permit) = rounds.clone().acquire_owned().await else {
            return;
        };
        let waiters = std::mem::take(&mut *batch.waiting.lock());
        if waiters.is_empty() {
            continue;
        }
        let (raft, floor) = (raft.clone(), floor.clone());
        tokio::spawn(async move {
            // Every waiter arrived before this check started, so its answer is fresh enough.
            let r = match raft.ensure_linearizable().await {
                Ok(log_id) => {
                    let floor =
                        *floor.get_or_init(|| raft.metrics().borrow().last_log_index.unwrap_or(0));
                    Ok(log_id.map_or(0, |l| l.index).max(floor))
                }
                Err(RaftError::APIError(_)) => Err(BatchError::NotLeader),
                Err(e) => Err(BatchError::Other(e.to_string())),
            };
            drop(permit);
            for tx in waiters {
                let _ = tx.send(r.clone());
            }
        });
    }
}

impl Server {
    /// Call from within the tokio runtime: a server spawns its write and read batchers.
    pub fn new(raft: Option<Raft>, store: Arc<Store>, node_id: u64, pool: Arc<Pool>) -> Server {
        let metrics = raft.as_ref().map(|r| r.metrics());
        let lease_stretch = raft.as_ref().map_or(1, |r| {
            r.config().election_timeout_max / crate::raft::LEADER_LEASE_MS
        });
        // The longest election timeout plus four heartbeats: by then the followers have
        // stood for election without us, and a healthy leader on a busy host (which misses
        // a 100 ms heartbeat now and then) is far from it.
        let check_quorum_ms = raft.as_ref().map_or(u64::MAX, |r| {
            r.config().election_timeout_max + 4 * r.config().heartbeat_interval
        });
        let reads = Arc::new(ReadIndexBatch::default());
        let proposals = raft.as_ref().map(|r| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(propose_loop(r.clone(), rx));
            tokio::spawn(read_index_loop(r.clone(), reads.clone()));
            tx
        });
        Server {
            proposals,
            reads,
            lease_stretch: lease_stretch.max(1),
            check_quorum_ms,
            leading_since: parking_lot::Mutex::new((0, Instant::now())),
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
        let Some(proposals) = &self.proposals else {
            // A client agent: any server forwards to its leader.
            let addr = self.pick_server().ok_or(RpcError::NoServers)?;
            return forward_apply(&self.pool, &addr, cmd).await;
        };
        let leader = self.wait_for_any_leader().await?;
        if leader == self.node_id {
            let (tx, rx) = oneshot::channel();
            proposals
                .send((cmd, tx))
                .map_err(|_| RpcError::Raft("the write batcher stopped".into()))?;
            return match self.while_leading(rx, RPC_HOLD_TIMEOUT).await? {
                Some(r) => r.map_err(RpcError::from),
                None => Err(RpcError::Raft("the write batcher stopped".into())),
            };
        }
        // A follower forwards once; a forwarded write that meets another follower fails.
        if hops > 0 {
            return Err(RpcError::NoLeader);
        }
        let addr = self.node_addr(leader).ok_or(RpcError::NoLeader)?;
        forward_apply(&self.pool, &addr, cmd).await
    }

    /// Waits for `rx` (the answer to a write or a leadership check this leader started) while
    /// this server still leads, at most `hold`. Fails with `No cluster leader` as soon as
    /// check-quorum says it lost its majority, and with a timeout after `hold`; either way
    /// the outcome is unknown to the caller (the entry may still commit), never acknowledged.
    /// `None`: the sender was dropped.
    async fn while_leading<T>(
        &self,
        mut rx: oneshot::Receiver<T>,
        hold: std::time::Duration,
    ) -> Result<Option<T>, RpcError> {
        let deadline = tokio::time::Instant::now() + hold;
        let mut poll = tokio::time::interval(LEADERSHIP_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = &mut rx => return Ok(r.ok()),
                _ = poll.tick() => {
                    if !self.leader_status().is_leader {
                        return Err(RpcError::NoLeader);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(RpcError::Raft(format!(
                        "timed out after {hold:?} waiting for a quorum to commit the write; it was not acknowledged and may or may not be applied"
                    )));
                }
            }
        }
    }

    /// Check-quorum, which openraft 0.9 lacks: true on a leader that no quorum has
    /// acknowledged (heartbeats or appends) for [`Server::check_quorum_ms`]. Such a leader
    /// is cut off from its majority, which elects another one; until openraft hears of the
    /// new term (after a heal) it keeps its role, so this server refuses to act as leader
    /// instead: `/v1/status/leader` says "", writes and linearizable reads fail with
    /// `No cluster leader`. (Stepping down by starting an election would raise the term and
    /// disturb the majority's leader on heal; openraft has no other way to step down.)
    fn quorum_lost(&self, m: &openraft::RaftMetrics<u64, openraft::BasicNode>) -> bool {
        if m.current_leader != Some(self.node_id) {
            return false;
        }
        match m.millis_since_quorum_ack {
            Some(ms) => ms > self.check_quorum_ms,
            // Elected, not yet acknowledged by a quorum: count from when we noticed.
            None => {
                let mut since = self.leading_since.lock();
                if since.0 != m.current_term {
                    *since = (m.current_term, Instant::now());
                }
                since.1.elapsed().as_millis() as u64 > self.check_quorum_ms
            }
        }
    }

    /// The leader this server acts on: openraft's, unless that is us without a quorum.
    fn effective_leader(&self, m: &openraft::RaftMetrics<u64, openraft::BasicNode>) -> Option<u64> {
        if self.quorum_lost(m) {
            None
        } else {
            m.current_leader
        }
    }

    /// The current leader's id; during an election, waits up to [`LEADER_HOLD`] for one.
    async fn wait_for_any_leader(&self) -> Result<u64, RpcError> {
        let Some(mut rx) = self.metrics.clone() else {
            return Err(RpcError::NoLeader);
        };
        let deadline = tokio::time::Instant::now() + LEADER_HOLD;
        loop {
            {
                let m = rx.borrow_and_update();
                // A leader cut off from its quorum fails at once: waiting will not help.
                if self.quorum_lost(&m) {
                    return Err(RpcError::NoLeader);
                }
                if let Some(l) = m.current_leader {
                    return Ok(l);
                }
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(RpcError::NoLeader) },
                _ = tokio::time::sleep_until(deadline) => return Err(RpcError::NoLeader),
            }
        }
    }

    /// The server RPC address of member `id`.
    fn node_addr(&self, id: u64) -> Option<String> {
        let m = self.metrics.as_ref()?.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// Makes a read at `mode` safe to serve from the local store. `default` and `consistent`
    /// are linearizable: the leader confirms it still leads, and a follower waits until it
    /// has applied everything the leader had committed (a ReadIndex read).
    pub async fn read_barrier(&self, mode: Consistency) -> Result<(), RpcError> {
        match mode {
            Consistency::Stale => Ok(()),
            Consistency::Default if self.leader_status().is_leader => Ok(()),
            _ if self.leader_status().is_leader => {
                let index = self.read_index().await?;
                self.wait_applied(index).await
            }
            _ => {
                let addr = self.leader_addr().ok_or(RpcError::NoLeader)?;
                let index = match self
                    .pool
                    .call_or_reset(&addr, &Request::ReadIndex, FORWARD_WRITE_TIMEOUT)
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

    /// On the leader: confirms leadership with a quorum; the index reads must wait for. The
    /// check is shared with every other read waiting at the time ([`read_index_loop`]).
    async fn read_index(&self) -> Result<u64, RpcError> {
        if self.raft.is_none() {
            return Err(RpcError::NoLeader);
        }
        if !self.leader_status().is_leader {
            return Err(RpcError::NoLeader);
        }
        let (tx, rx) = oneshot::channel();
        self.reads.waiting.lock().push(tx);
        self.reads.wake.notify_one();
        match self.while_leading(rx, RPC_HOLD_TIMEOUT).await? {
            Some(r) => r.map_err(RpcError::from),
            None => Err(RpcError::Raft("the read-index batcher stopped".into())),
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

    /// The connection on which leader `leader` sent us append entries has closed. If the
    /// leader crashed, no heartbeat will come: rather than wait for a random election timeout
    /// (which the other followers would refuse anyway until their leader lease runs out),
    /// the first of the remaining voters stands for election just after the lease expires,
    /// the next one 300 ms later if still nobody leads. A leader that is alive and merely
    /// reconnected keeps sending heartbeats, and then nothing happens.
    pub fn leader_connection_lost(self: &Arc<Self>, leader: u64) {
        let Some(raft) = self.raft.clone() else {
            return;
        };
        let Some(metrics) = self.metrics.clone() else {
            return;
        };
        let (current, voters) = {
            let m = metrics.borrow();
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            (m.current_leader, voters)
        };
        if current != Some(leader) || leader == self.node_id {
            return;
        }
        let Some(rank) = voters
            .iter()
            .filter(|v| **v != leader)
            .position(|v| *v == self.node_id)
        else {
            return;
        };
        let contact = self
            .last_leader_contact
            .load(std::sync::atomic::Ordering::Relaxed);
        let server = self.clone();
        tokio::spawn(async move {
            let lease = crate::raft::LEADER_LEASE_MS * server.lease_stretch;
            // The first survivor stands just after the lease; the next one 300 ms later if
            // nobody leads by then (the first one cannot win when its log is behind). One
            // try each: measured over 20 kills, retrying made the worst case worse (5.5 s
            // against 1.6 s), as two candidates outbid each other's terms.
            let at = server.started
                + std::time::Duration::from_millis(contact + lease + 30 + 300 * rank as u64);
            tokio::time::sleep_until(at.into()).await;
            let heard = server
                .last_leader_contact
                .load(std::sync::atomic::Ordering::Relaxed);
            let now_leader = metrics.borrow().current_leader;
            // Someone leads again (or the old leader is back): nothing to do.
            if heard != contact || (now_leader.is_some() && now_leader != Some(leader)) {
                return;
            }
            tracing::info!(target: "rpc", leader, "The leader's connection closed and it has been silent for a lease: standing for election.");
            let _ = raft.trigger().elect().await;
        });
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
        let leader = self.effective_leader(&m);
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
        let id = self.effective_leader(&m)?;
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

/// Sends a write to the server at `addr` (a leader, or any server from a client agent).
async fn forward_apply(pool: &Pool, addr: &str, cmd: Command) -> Result<CommandResponse, RpcError> {
    match pool
        .call_or_reset(addr, &Request::Apply(cmd), FORWARD_WRITE_TIMEOUT)
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
