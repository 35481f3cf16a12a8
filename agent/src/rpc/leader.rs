//! The servers' cluster duties (Consul's `leader.go`).
//!
//! Before a cluster exists: bootstrap Raft once `bootstrap_expect` servers of this datacenter
//! see each other. On the leader: turn gossip membership into catalog state (every member a
//! node with a `serfHealth` check, critical when it fails, removed when it leaves), keep the
//! Raft voters in step with the alive servers, register the `consul` service, and expire
//! sessions whose TTL ran out. Gossip reaches this module only as [`ClusterMember`] values,
//! so the gossip layer knows nothing of Raft.

use super::{RpcError, Server};
use crate::structs::{
    self, health, msg, Command, DeregisterRequest, RegisterRequest, CONSUL_VERSION,
};
use openraft::BasicNode;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A gossip member as the leader needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMember {
    pub name: String,
    /// The member's IP address (the catalog node address).
    pub address: String,
    pub node_id: String,
    pub datacenter: String,
    pub server: bool,
    /// Server RPC address (`host:port`), servers only.
    pub rpc_addr: Option<String>,
    pub bootstrap_expect: u32,
    pub status: MemberState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Alive,
    Leaving,
    Left,
    Failed,
}

/// What this server is, for bootstrap and self-registration.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub node: structs::Node,
    pub datacenter: String,
    pub server_port: i64,
    pub bootstrap_expect: u32,
}

/// Runs the server's cluster duties until `shutdown`.
pub async fn run(
    server: Arc<Server>,
    cfg: LeaderConfig,
    mut members: watch::Receiver<Vec<ClusterMember>>,
    shutdown: CancellationToken,
) {
    let mut registered_term = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Leadership changes wake the loop at once, so a new leader registers itself (and the
    // `consul` service) right after its election rather than on the next tick.
    let mut raft_metrics = server.raft().map(|r| r.metrics());
    let mut was_leader = false;
    // Servers seen failed: when one vanishes from gossip (reaped after `reconnect_timeout`)
    // the leader removes it from the Raft voters too, like Consul's `handleReapMember`.
    let mut failed_servers: BTreeMap<String, u64> = BTreeMap::new();
    // Every member this agent's gossip has listed. Only those can have been reaped: after a
    // restart the pool knows nobody until it (re)joins, and a catalog node the new leader
    // has not heard of yet is not gone.
    let mut seen = Seen {
        names: BTreeSet::new(),
        since: tokio::time::Instant::now(),
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            r = members.changed() => if r.is_err() { return },
            changed = async {
                match raft_metrics.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => {
                if !changed {
                    return;
                }
                // Metrics change on every commit; only a change of leadership matters here.
                if server.leader_status().is_leader == was_leader {
                    continue;
                }
            }
        }
        was_leader = server.leader_status().is_leader;
        let view: Vec<ClusterMember> = members.borrow_and_update().clone();
        let reaped = reaped_servers(&mut failed_servers, &view, &cfg.datacenter);
        seen.names.extend(view.iter().map(|m| m.name.clone()));
        if cfg.bootstrap_expect > 1 {
            maybe_bootstrap(&server, &cfg, &view).await;
        }
        if !server.leader_status().is_leader {
            registered_term = None;
            continue;
        }
        let Some(raft) = server.raft() else { return };
        let term = raft.metrics().borrow().current_term;
        if registered_term != Some(term) {
            match register_self(&server, &cfg).await {
                Ok(()) => registered_term = Some(term),
                Err(e) => {
                    tracing::warn!(target: "rpc", error = %e, "Could not register this server in the catalog.")
                }
            }
        }
        if let Err(e) = remove_voters(&server, &reaped).await {
            tracing::warn!(target: "rpc", error = %e, "Removing reaped servers from the Raft voters failed.");
        }
        if let Err(e) = reconcile(&server, &cfg, &view, &seen).await {
            tracing::warn!(target: "rpc", error = %e, "Reconciling gossip membership into the catalog failed.");
        }
        expire_sessions(&server).await;
    }
}

/// Updates the failed servers seen so far; returns the Raft ids of those that are gone from
/// the view (reaped). A server that comes back alive is no longer a candidate.
fn reaped_servers(
    failed: &mut BTreeMap<String, u64>,
    view: &[ClusterMember],
    datacenter: &str,
) -> Vec<u64> {
    let present: BTreeSet<&str> = view.iter().map(|m| m.name.as_str()).collect();
    let mut reaped = Vec::new();
    failed.retain(|name, id| {
        let gone = !present.contains(name.as_str());
        if gone {
            reaped.push(*id);
        }
        !gone
    });
    for m in view
        .iter()
        .filter(|m| m.server && m.datacenter == datacenter)
    {
        if m.status == MemberState::Failed {
            failed.insert(m.name.clone(), crate::raft::node_id_from_uuid(&m.node_id));
        } else {
            failed.remove(&m.name);
        }
    }
    reaped
}

/// Removes reaped servers from the Raft voters (on the leader; never itself).
async fn remove_voters(server: &Server, reaped: &[u64]) -> Result<(), RpcError> {
    let Some(raft) = server.raft() else {
        return Ok(());
    };
    if reaped.is_empty() || !server.leader_status().is_leader {
        return Ok(());
    }
    let voters: BTreeSet<u64> = {
        let m = raft.metrics().borrow().membership_config.clone();
        m.membership().voter_ids().collect()
    };
    let want: BTreeSet<u64> = voters
        .iter()
        .copied()
        .filter(|id| !reaped.contains(id) || *id == server.node_id())
        .collect();
    if want == voters || want.is_empty() {
        return Ok(());
    }
    tracing::info!(target: "rpc", removed = voters.len() - want.len(), "Removing reaped servers from the Raft voters.");
    raft.change_membership(want, false)
        .await
        .map_err(|e| RpcError::Raft(e.to_string()))?;
    Ok(())
}

/// Bootstraps Raft when `bootstrap_expect` servers of this datacenter are alive. Only the
/// lowest-named of them initializes, so every server agrees on the first configuration.
async fn maybe_bootstrap(server: &Server, cfg: &LeaderConfig, view: &[ClusterMember]) {
    let Some(raft) = server.raft() else { return };
    if raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    let servers: Vec<&ClusterMember> = view
        .iter()
        .filter(|m| m.server && m.status == MemberState::Alive && m.datacenter == cfg.datacenter)
        .collect();
    for m in &servers {
        if m.bootstrap_expect != 0 && m.bootstrap_expect != cfg.bootstrap_expect {
            tracing::error!(target: "rpc", member = %m.name, theirs = m.bootstrap_expect, ours = cfg.bootstrap_expect,
                "Member has a conflicting bootstrap_expect value; not bootstrapping.");
            return;
        }
    }
    if (servers.len() as u32) < cfg.bootstrap_expect {
        return;
    }
    let lowest = servers.iter().map(|m| m.name.as_str()).min();
    if lowest != Some(cfg.node.node.as_str()) {
        return;
    }
    let mut voters = BTreeMap::new();
    for m in &servers {
        let Some(addr) = &m.rpc_addr else { return };
        voters.insert(
            crate::raft::node_id_from_uuid(&m.node_id),
            BasicNode { addr: addr.clone() },
        );
    }
    tracing::info!(target: "rpc", servers = voters.len(), "Found the expected servers; bootstrapping the cluster.");
    if let Err(e) = raft.initialize(voters).await {
        tracing::warn!(target: "rpc", error = %e, "Bootstrap did not happen.");
    }
}

/// The members gossip has listed since this agent started.
struct Seen {
    names: BTreeSet<String>,
    since: tokio::time::Instant,
}

/// How long after start a catalog node gossip never listed is still given to show up
/// (retry_join, push-pull) before its `serfHealth` turns critical.
const UNSEEN_GRACE: Duration = Duration::from_secs(60);

/// Makes the catalog and the Raft voters match gossip's view.
async fn reconcile(
    server: &Server,
    cfg: &LeaderConfig,
    view: &[ClusterMember],
    seen: &Seen,
) -> Result<(), RpcError> {
    let local: Vec<&ClusterMember> = view
        .iter()
        .filter(|m| m.datacenter == cfg.datacenter)
        .collect();
    for m in &local {
        if m.name == cfg.node.node {
            continue;
        }
        let (status, output) = match m.status {
            MemberState::Alive => (health::PASSING, msg::SERF_ALIVE),
            MemberState::Failed => (health::CRITICAL, msg::SERF_FAILED),
            MemberState::Left | MemberState::Leaving => {
                let known = server.store().read(|t| t.node(&m.name).is_some());
                if known && m.status == MemberState::Left {
                    tracing::info!(target: "rpc", member = %m.name, "Member left; deregistering its node.");
                    server
                        .apply(Command::Deregister(DeregisterRequest {
                            node: m.name.clone(),
                            service_id: None,
                            check_id: None,
                        }))
                        .await?;
                }
                continue;
            }
        };
        let current = server.store().read(|t| {
            (
                t.node(&m.name).map(|n| (n.address.clone(), n.id.clone())),
                t.check(&m.name, msg::SERF_CHECK_ID)
                    .map(|c| c.status.clone()),
            )
        });
        let node_ok = current
            .0
            .as_ref()
            .is_some_and(|(a, id)| *a == m.address && *id == m.node_id);
        if node_ok && current.1.as_deref() == Some(status) {
            continue;
        }
        let check = structs::Check {
            node: m.name.clone(),
            check_id: msg::SERF_CHECK_ID.into(),
            name: msg::SERF_CHECK_NAME.into(),
            status: status.into(),
            output: output.into(),
            ..Default::default()
        };
        let node = structs::Node {
            id: m.node_id.clone(),
            node: m.name.clone(),
            address: m.address.clone(),
            datacenter: cfg.datacenter.clone(),
            ..Default::default()
        };
        server
            .apply(Command::Register(RegisterRequest {
                node,
                // The agent's own sync owns tagged addresses and meta; keep them.
                skip_node_update: current.0.is_some() && node_ok,
                service: None,
                checks: vec![check],
            }))
            .await?;
    }
    // Catalog nodes whose agents vanished from gossip entirely (reaped) go too. Nodes without
    // a serfHealth check are external services registered through the catalog: never touched.
    let known: BTreeSet<&str> = local.iter().map(|m| m.name.as_str()).collect();
    let (orphans, unseen): (Vec<String>, Vec<String>) = server.store().read(|t| {
        t.nodes()
            .filter(|n| n.node != cfg.node.node && !known.contains(n.node.as_str()))
            .filter(|n| t.check(&n.node, msg::SERF_CHECK_ID).is_some())
            .map(|n| n.node.clone())
            .partition(|n| seen.names.contains(n))
    });
    for node in orphans {
        tracing::info!(target: "rpc", node = %node, "Member was reaped; deregistering its node.");
        server
            .apply(Command::Deregister(DeregisterRequest {
                node,
                service_id: None,
                check_id: None,
            }))
            .await?;
    }
    // Never listed by this agent's gossip (e.g. it died while the cluster was down): once
    // gossip had time to find it, its node is reported unreachable, not removed.
    if seen.since.elapsed() >= UNSEEN_GRACE {
        for node in unseen {
            let critical = server.store().read(|t| {
                t.check(&node, msg::SERF_CHECK_ID)
                    .is_some_and(|c| c.status == health::CRITICAL)
            });
            if critical {
                continue;
            }
            tracing::warn!(target: "rpc", node = %node, "Node is unknown to gossip; marking serfHealth critical.");
            let check = structs::Check {
                node: node.clone(),
                check_id: msg::SERF_CHECK_ID.into(),
                name: msg::SERF_CHECK_NAME.into(),
                status: health::CRITICAL.into(),
                output: msg::SERF_FAILED.into(),
                ..Default::default()
            };
            let known_node = server.store().read(|t| t.node(&node).cloned());
            let Some(n) = known_node else { continue };
            server
                .apply(Command::Register(RegisterRequest {
                    node: n,
                    skip_node_update: true,
                    service: None,
                    checks: vec![check],
                }))
                .await?;
        }
    }
    reconcile_voters(server, &local).await
}

/// Adds alive servers as voters and removes servers that left.
async fn reconcile_voters(server: &Server, members: &[&ClusterMember]) -> Result<(), RpcError> {
    let Some(raft) = server.raft() else {
        return Ok(());
    };
    let voters: BTreeSet<u64> = {
        let m = raft.metrics().borrow().membership_config.clone();
        m.membership().voter_ids().collect()
    };
    let mut want = voters.clone();
    for m in members.iter().filter(|m| m.server) {
        let id = crate::raft::node_id_from_uuid(&m.node_id);
        match (m.status, &m.rpc_addr) {
            (MemberState::Alive, Some(addr)) if !voters.contains(&id) => {
                tracing::info!(target: "rpc", server = %m.name, "Adding server as a Raft voter.");
                raft.add_learner(id, BasicNode { addr: addr.clone() }, true)
                    .await
                    .map_err(|e| RpcError::Raft(e.to_string()))?;
                want.insert(id);
            }
            (MemberState::Left, _) if voters.contains(&id) && id != server.node_id() => {
                tracing::info!(target: "rpc", server = %m.name, "Removing a server that left from the Raft voters.");
                want.remove(&id);
            }
            _ => {}
        }
    }
    if want != voters {
        raft.change_membership(want, false)
            .await
            .map_err(|e| RpcError::Raft(e.to_string()))?;
    }
    Ok(())
}

async fn register_self(server: &Server, cfg: &LeaderConfig) -> Result<(), RpcError> {
    let mut meta = BTreeMap::new();
    for (k, v) in [
        ("raft_version", "3"),
        ("serf_protocol_current", "2"),
        ("serf_protocol_min", "1"),
        ("serf_protocol_max", "5"),
        ("version", CONSUL_VERSION),
    ] {
        meta.insert(k.to_string(), v.to_string());
    }
    let consul = structs::Service {
        node: cfg.node.node.clone(),
        id: "consul".into(),
        service: "consul".into(),
        port: cfg.server_port,
        weights_passing: 1,
        weights_warning: 1,
        meta,
        ..Default::default()
    };
    let serf = structs::Check {
        node: cfg.node.node.clone(),
        check_id: msg::SERF_CHECK_ID.into(),
        name: msg::SERF_CHECK_NAME.into(),
        status: health::PASSING.into(),
        output: msg::SERF_ALIVE.into(),
        ..Default::default()
    };
    let r = server
        .apply(Command::Register(RegisterRequest {
            node: cfg.node.clone(),
            skip_node_update: false,
            service: Some(consul),
            checks: vec![serf],
        }))
        .await?;
    if let Some((_, e)) = r.errors.first() {
        return Err(RpcError::Raft(e.clone()));
    }
    Ok(())
}

async fn expire_sessions(server: &Server) {
    let with_ttl: Vec<(String, Duration)> = server.store().read(|t| {
        t.sessions()
            .filter_map(|s| {
                let ttl = tribune_api::parse_go_duration(&s.ttl).ok()?;
                (!ttl.is_zero()).then(|| (s.id.clone(), ttl))
            })
            .collect()
    });
    if with_ttl.is_empty() {
        return;
    }
    for id in server.session_timers().expired(&with_ttl) {
        tracing::info!(target: "rpc", session = %id, "Session TTL expired; destroying it.");
        if server
            .apply(Command::SessionDestroy { id: id.clone() })
            .await
            .is_ok()
        {
            server.session_timers().remove(&id);
        }
    }
}
