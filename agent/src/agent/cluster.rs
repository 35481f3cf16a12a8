//! The agent's gossip pools: the LAN pool every agent joins and the WAN pool servers join,
//! retry-join, and the translation of gossip events into what the rest of the agent needs
//! (the leader's membership view, the user-event buffer, server addresses for clients).

use crate::config::RuntimeConfig;
use crate::gossip::{
    Gossip, GossipConfig, GossipEvent, Keyring, Member, MemberMeta, MemberStatus, Role,
};
use crate::local::LocalAgent;
use crate::rpc::leader::{ClusterMember, MemberState};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The agent's pools.
#[derive(Clone)]
pub struct Cluster {
    pub lan: Gossip,
    pub wan: Option<Gossip>,
}

fn keyring(cfg: &RuntimeConfig) -> anyhow::Result<Option<Keyring>> {
    match &cfg.encrypt {
        None => Ok(None),
        // The error names the key's problem, never the key.
        Some(secret) => Keyring::new(secret.expose())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("encrypt has invalid key: {e}")),
    }
}

fn tune(g: &mut GossipConfig, t: &crate::config::GossipConfig) {
    g.probe_interval = t.probe_interval;
    // memberlist accepts a timeout equal to the interval (Consul's -dev uses 100ms/100ms);
    // foca needs it strictly shorter.
    g.probe_timeout = t.probe_timeout.min(t.probe_interval * 4 / 5);
    g.suspicion_mult = t.suspicion_mult;
    g.retransmit_mult = t.retransmit_mult;
    g.gossip_interval = t.gossip_interval;
    g.gossip_nodes = t.gossip_nodes as usize;
}

/// Gossip's member as the leader sees it.
pub fn cluster_member(m: &Member) -> ClusterMember {
    ClusterMember {
        name: m.name.clone(),
        address: m.addr.ip().to_string(),
        node_id: m.meta.node_id.clone(),
        datacenter: m.meta.datacenter.clone(),
        server: m.meta.role == Role::Server,
        rpc_addr: m.meta.rpc_addr.map(|a| a.to_string()),
        bootstrap_expect: m.meta.bootstrap_expect,
        status: match m.status {
            MemberStatus::Alive => MemberState::Alive,
            MemberStatus::Leaving => MemberState::Leaving,
            MemberStatus::Left => MemberState::Left,
            MemberStatus::Failed => MemberState::Failed,
        },
    }
}

/// Where gossip's news goes: the event buffer, the server list, the leader's view.
pub struct Sinks {
    pub local: Arc<LocalAgent>,
    pub rpc: Arc<crate::rpc::Server>,
    pub members: watch::Sender<Vec<ClusterMember>>,
}

/// Starts the pools, joins `retry_join` in the background and feeds `sinks` until
/// `shutdown`.
pub async fn start(
    cfg: &RuntimeConfig,
    node_id: &str,
    http_addr: Option<SocketAddr>,
    sinks: Sinks,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<Cluster> {
    let Sinks {
        local,
        rpc,
        members,
    } = sinks;
    let meta = MemberMeta {
        role: if cfg.server {
            Role::Server
        } else {
            Role::Client
        },
        datacenter: cfg.datacenter.clone(),
        node_id: node_id.to_string(),
        rpc_addr: if cfg.server {
            cfg.rpc_advertise_addr()
        } else {
            None
        },
        http_addr,
        version: format!(
            "{}:tribune-{}",
            crate::structs::CONSUL_VERSION,
            crate::structs::TRIBUNE_VERSION
        ),
        bootstrap_expect: cfg.bootstrap_expect,
        segment: String::new(),
    };
    let keys = keyring(cfg)?;
    let keyring_dir = match (&cfg.data_dir, cfg.disable_keyring_file) {
        (Some(dir), false) => Some(dir.join("serf")),
        _ => None,
    };

    let bind = cfg
        .serf_lan_addr()
        .context("ports.serf_lan is disabled; every agent needs LAN gossip")?;
    let mut lan_cfg = GossipConfig::lan(cfg.node_name.clone(), bind, meta.clone());
    lan_cfg.advertise = SocketAddr::new(cfg.advertise_addr, bind.port());
    lan_cfg.keyring = keys.clone();
    lan_cfg.verify_incoming = cfg.encrypt_verify_incoming;
    lan_cfg.verify_outgoing = cfg.encrypt_verify_outgoing;
    lan_cfg.keyring_file = keyring_dir.as_ref().map(|d| d.join("local.keyring"));
    lan_cfg.reconnect_timeout = cfg.reconnect_timeout;
    tune(&mut lan_cfg, &cfg.gossip_lan);
    let (lan, mut lan_events) = Gossip::start(lan_cfg, shutdown.child_token())
        .await
        .with_context(|| format!("cannot start LAN gossip on {bind}"))?;

    let wan = match cfg.serf_wan_addr() {
        Some(wan_bind) if cfg.server => {
            let name = format!("{}.{}", cfg.node_name, cfg.datacenter);
            let mut w = GossipConfig::wan(name, wan_bind, meta);
            w.advertise = SocketAddr::new(cfg.advertise_addr_wan, wan_bind.port());
            w.keyring = keys;
            w.verify_incoming = cfg.encrypt_verify_incoming;
            w.verify_outgoing = cfg.encrypt_verify_outgoing;
            w.keyring_file = keyring_dir.as_ref().map(|d| d.join("remote.keyring"));
            w.reconnect_timeout = cfg.reconnect_timeout_wan;
            tune(&mut w, &cfg.gossip_wan);
            let (g, mut events) = Gossip::start(w, shutdown.child_token())
                .await
                .with_context(|| format!("cannot start WAN gossip on {wan_bind}"))?;
            // WAN events only matter to the (future) datacenter router; drain them.
            tracker.spawn(async move { while events.recv().await.is_some() {} });
            Some(g)
        }
        _ => None,
    };

    // Membership and user events; clients learn the servers to forward to from it.
    let datacenter = cfg.datacenter.clone();
    let publish = move |all: &[Member]| {
        let servers = all
            .iter()
            .filter(|m| {
                m.meta.role == Role::Server
                    && m.status == MemberStatus::Alive
                    && m.meta.datacenter == datacenter
            })
            .filter_map(|m| {
                Some((
                    m.meta.rpc_addr?.to_string(),
                    m.meta.http_addr.map(|a| a.to_string()),
                ))
            })
            .collect();
        rpc.set_servers(servers);
        members.send_replace(all.iter().map(cluster_member).collect());
    };
    publish(&lan.members());
    {
        let lan = lan.clone();
        tracker.spawn(async move {
            while let Some(ev) = lan_events.recv().await {
                // Event hooks (WASM plugins) hear member joins, failures and leaves.
                if let Some(p) = local.plugins() {
                    p.gossip_event(&ev);
                }
                match &ev {
                    GossipEvent::Joined(m) => tracing::info!(target: "gossip", member = %m.name, addr = %m.addr, "Member joined."),
                    GossipEvent::Failed(m) => tracing::warn!(target: "gossip", member = %m.name, "Member failed."),
                    GossipEvent::Left(m) => tracing::info!(target: "gossip", member = %m.name, "Member left."),
                    GossipEvent::Reaped(m) => tracing::info!(target: "gossip", member = %m.name, "Member reaped."),
                    GossipEvent::Updated(_) => {}
                    GossipEvent::User(u) => {
                        use base64::Engine;
                        local.events().push(tribune_api::types::UserEvent {
                            id: u.id.clone(),
                            name: u.name.clone(),
                            payload: (!u.payload.is_empty())
                                .then(|| base64::engine::general_purpose::STANDARD.encode(&u.payload)),
                            node_filter: u.node_filter.clone(),
                            service_filter: u.service_filter.clone(),
                            tag_filter: u.tag_filter.clone(),
                            version: 1,
                            ltime: u.ltime,
                        });
                        continue;
                    }
                }
                publish(&lan.members());
            }
        });
    }

    // retry_join / retry_join_wan, retried every interval until one succeeds.
    spawn_retry_join(
        tracker,
        lan.clone(),
        cfg.retry_join.clone(),
        cfg.retry_interval,
        cfg.retry_max,
        "LAN",
        shutdown.clone(),
    );
    if let Some(w) = &wan {
        spawn_retry_join(
            tracker,
            w.clone(),
            cfg.retry_join_wan.clone(),
            cfg.retry_interval_wan,
            cfg.retry_max_wan,
            "WAN",
            shutdown,
        );
    }
    Ok(Cluster { lan, wan })
}

fn spawn_retry_join(
    tracker: &TaskTracker,
    pool: Gossip,
    addrs: Vec<String>,
    interval: Duration,
    max: u32,
    which: &'static str,
    shutdown: CancellationToken,
) {
    if addrs.is_empty() {
        return;
    }
    tracker.spawn(async move {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match pool.join(&addrs).await {
                Ok(n) if n > 0 => {
                    tracing::info!(target: "gossip", pool = which, contacted = n, "Joined the cluster.");
                    return;
                }
                Ok(_) => tracing::warn!(target: "gossip", pool = which, attempt, "Join found no members; retrying."),
                Err(e) => tracing::warn!(target: "gossip", pool = which, attempt, error = %e, "Join failed; retrying."),
            }
            if max > 0 && attempt >= max {
                tracing::error!(target: "gossip", pool = which, attempts = attempt, "Giving up joining the cluster.");
                return;
            }
            // Retry quickly at first (peers often start together), then every interval.
            let wait = if attempt < 10 { Duration::from_millis(500).min(interval) } else { interval };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
}
