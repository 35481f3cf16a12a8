//! The agent process: startup as a script, one shutdown tree, reload.
//!
//! Startup order: logging → identity (node ID) → HTTP listeners bound → state store and Raft
//! → RPC → local state (persisted and config services/checks, checks running) → serving → background
//! tasks (check results, anti-entropy, leader duties) → ready. Shutdown runs the other way:
//! listeners, then checks, then Raft, then the logs are flushed.

mod cluster;

pub use cluster::Cluster;

use crate::checks::{CheckUpdate, RunnerOptions};
use crate::config::{AgentFlags, RuntimeConfig};
use crate::http::{AgentInfo, Control, HttpState, Limits, WaitLimits};
use crate::local::{LocalAgent, LocalOptions, NodeInfo};
use crate::rpc::leader::{ClusterMember, LeaderConfig, MemberState};
use crate::rpc::Server;
use crate::state::Store;
use crate::structs::{CONSUL_VERSION, TRIBUNE_VERSION};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often anti-entropy compares the whole local state with the catalog.
const FULL_SYNC_INTERVAL: Duration = Duration::from_secs(60);

/// Runs the agent until it is told to stop (signal, `leave`).
pub async fn run(cfg: RuntimeConfig, flags: AgentFlags) -> anyhow::Result<()> {
    let log = crate::logging::init(&cfg).context("cannot set up logging")?;
    let started = std::time::Instant::now();

    if let Some(dir) = &cfg.data_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data_dir {}", dir.display()))?;
    }
    let node_id = node_id(&cfg)?;
    if let Some(pid) = &cfg.pid_file {
        std::fs::write(pid, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid_file {}", pid.display()))?;
    }
    if cfg.acl.enabled {
        tracing::warn!(target: "acl",
            "ACLs are configured but this release does not enforce them yet: every request is allowed. Do not rely on default_policy = deny.");
    }
    if cfg.bootstrap_expect > 1 {
        tracing::info!(target: "agent", expect = cfg.bootstrap_expect, "Waiting for the expected servers to join before bootstrapping the cluster.");
    }

    // Listeners first: a port in use fails the start before any data is touched.
    let mut listeners = Vec::new();
    for addr in cfg.http_addrs() {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
        listeners.push(listener);
    }

    let rpc_listener = match cfg.rpc_addr() {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for server RPC on {addr}"))?,
        ),
        None => None,
    };

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    // State store and Raft.
    let store = Arc::new(Store::new());
    let raft_node_id = crate::raft::node_id_from_uuid(&node_id);
    let rpc_addr = cfg
        .rpc_advertise_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| format!("{}:8300", cfg.advertise_addr));
    let raft_opts = crate::raft::RaftOptions {
        node_id: raft_node_id,
        rpc_addr: rpc_addr.clone(),
        data_dir: cfg.data_dir.clone(),
        bootstrap: cfg.dev || cfg.bootstrap || cfg.bootstrap_expect == 1,
        raft_multiplier: cfg.raft_multiplier,
        snapshot_threshold: cfg.raft_snapshot_threshold,
        trailing_logs: cfg.raft_trailing_logs,
    };
    let pool = Arc::new(crate::rpc::Pool::new());
    // Only servers run Raft; a client agent's store stays empty and it forwards.
    let raft = if cfg.server {
        Some(crate::raft::start(&raft_opts, store.clone(), pool.clone()).await?)
    } else {
        None
    };
    let rpc = Arc::new(Server::new(raft, store.clone(), raft_node_id, pool));

    // Local state and checks.
    let (updates_tx, mut updates_rx) = tokio::sync::mpsc::unbounded_channel::<CheckUpdate>();
    let mut tagged = cfg.tagged_addresses.clone();
    let advertise = cfg.advertise_addr.to_string();
    for k in ["lan", "lan_ipv4", "wan", "wan_ipv4"] {
        tagged
            .entry(k.to_string())
            .or_insert_with(|| advertise.clone());
    }
    let mut meta = cfg.node_meta.clone();
    meta.insert("consul-network-segment".into(), String::new());
    meta.insert("consul-version".into(), CONSUL_VERSION.into());
    let node = NodeInfo {
        node_name: cfg.node_name.clone(),
        node_id: node_id.clone(),
        datacenter: cfg.datacenter.clone(),
        address: advertise.clone(),
        tagged_addresses: tagged,
        meta,
    };
    let local = Arc::new(LocalAgent::new(
        node,
        LocalOptions {
            data_dir: cfg.data_dir.clone(),
            checks: runner_options(&cfg),
            check_update_interval: Duration::from_secs(300),
        },
        rpc.clone(),
        updates_tx,
    ));
    // WASM plugins: loaded before any service or check, so tag rewriters see persisted
    // and config services and `wasm` checks find their plugin. Compiled components are
    // cached under data_dir, so a restart does not compile again.
    let mut plugin_opts = crate::plugins::HostOptions::new(&cfg.node_name, cfg.data_dir.as_deref());
    plugin_opts.kv = Some(store.clone() as Arc<dyn crate::plugins::KvSource>);
    let plugins = crate::plugins::Plugins::new(plugin_opts)
        .map_err(anyhow::Error::msg)
        .context("cannot start the plugin host")?;
    {
        let (host, configs) = (plugins.clone(), cfg.plugins.clone());
        tokio::task::spawn_blocking(move || host.reload(&configs))
            .await
            .context("loading plugins failed")?;
    }
    local.set_plugins(plugins.clone());
    match local.load_persisted() {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(target: "agent", entries = n, "Restored services and checks registered over the API.")
        }
        Err(e) => {
            tracing::error!(target: "agent", error = %e, "Could not read the persisted local state.")
        }
    }
    for e in local.replace_config_entries(&cfg.services, &cfg.checks) {
        tracing::error!(target: "agent", error = %e, "A service or check from the config files was refused.");
    }

    // HTTP.
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(4);
    let info = AgentInfo {
        node_name: cfg.node_name.clone(),
        node_id: node_id.clone(),
        datacenter: cfg.datacenter.clone(),
        primary_datacenter: cfg.primary_datacenter.clone(),
        server: cfg.server,
        advertise_addr: advertise.clone(),
        serf_lan_port: u16::try_from(cfg.ports.serf_lan).unwrap_or(0),
        server_port: u16::try_from(cfg.ports.server).unwrap_or(0),
        ui: cfg.ui,
        bootstrap_expect: cfg.bootstrap_expect,
        debug_config: debug_config(&cfg),
    };
    let limits = Limits {
        wait: WaitLimits {
            default: cfg.default_query_time,
            max: cfg.max_query_time,
        },
        kv_max_value_size: cfg.kv_max_value_size,
        txn_max_req_len: cfg.txn_max_req_len,
        session_ttl_min: cfg.session_ttl_min,
    };
    // Not `shutdown` itself: cancelling that stops the gossip pools at once, and a
    // `tribune leave` must first tell the others (they record `left`, not `failed`).
    let leave_requested = CancellationToken::new();
    let control = Control {
        reload: reload_tx,
        leave: leave_requested.clone(),
    };
    let acl = crate::acl::Acl::new(
        cfg.acl
            .tokens
            .default
            .as_ref()
            .map(|t| t.expose().to_string()),
    );
    // Cluster membership as the leader sees it (this agent alone until gossip joins it).
    let (members_tx, members_rx) = tokio::sync::watch::channel(vec![ClusterMember {
        name: cfg.node_name.clone(),
        address: advertise.clone(),
        node_id: node_id.clone(),
        datacenter: cfg.datacenter.clone(),
        server: cfg.server,
        rpc_addr: Some(rpc_addr.clone()),
        bootstrap_expect: cfg.bootstrap_expect,
        status: MemberState::Alive,
    }]);
    let http_addr = listeners.first().and_then(|l| l.local_addr().ok());
    let cluster = cluster::start(
        &cfg,
        &node_id,
        http_addr,
        cluster::Sinks {
            local: local.clone(),
            rpc: rpc.clone(),
            members: members_tx,
        },
        &tracker,
        shutdown.clone(),
    )
    .await?;
    let http_state = Arc::new(HttpState::new(
        rpc.clone(),
        local.clone(),
        acl,
        info,
        control,
        limits,
        cluster.clone(),
    ));
    let http_shutdown = shutdown.child_token();
    let mut http_addrs = Vec::new();
    for listener in listeners {
        http_addrs.push(listener.local_addr()?);
        let (st, stop) = (http_state.clone(), http_shutdown.clone());
        tracker.spawn(async move {
            if let Err(e) = crate::http::serve(listener, st, stop).await {
                tracing::error!(target: "http", error = %e, "The HTTP server stopped.");
            }
        });
    }

    if let Some(listener) = rpc_listener {
        tracker.spawn(crate::rpc::serve(
            listener,
            rpc.clone(),
            shutdown.child_token(),
        ));
    }

    // Background tasks.
    {
        let local = local.clone();
        tracker.spawn(async move {
            while let Some(u) = updates_rx.recv().await {
                local.apply_check_update(u);
            }
        });
    }
    tracker.spawn(
        local
            .clone()
            .run_sync(FULL_SYNC_INTERVAL, shutdown.child_token()),
    );
    let leader_cfg = LeaderConfig {
        node: local.node_record(),
        datacenter: cfg.datacenter.clone(),
        server_port: i64::from(cfg.ports.server.max(0)),
        bootstrap_expect: cfg.bootstrap_expect,
    };
    tracker.spawn(crate::rpc::leader::run(
        rpc.clone(),
        leader_cfg,
        members_rx,
        shutdown.child_token(),
    ));

    // Leader changes, for event hooks.
    {
        let (rpc, plugins, stop) = (rpc.clone(), plugins.clone(), shutdown.child_token());
        tracker.spawn(async move {
            // Client agents run no Raft: they learn of leaders elsewhere.
            let Some(mut metrics) = rpc.raft().map(|r| r.metrics()) else {
                return;
            };
            let mut last: Option<String> = None;
            loop {
                let leader = rpc.leader_addr();
                if leader != last {
                    plugins.leader_changed(leader.as_deref().unwrap_or(""));
                    last = leader;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = metrics.changed() => if changed.is_err() { return },
                }
            }
        });
    }

    print_banner(&cfg, &node_id, &http_addrs, &rpc_addr);
    tracing::info!(target: "agent", node = %cfg.node_name, datacenter = %cfg.datacenter,
        startup_ms = started.elapsed().as_millis() as u64, "Agent started.");

    // Signals and reloads until shutdown. The handlers are in place before systemd hears
    // READY=1: a SIGTERM right after it must stop the agent gracefully.
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    notify_systemd("READY=1");
    // Whether to leave the cluster gracefully: always on `leave`, per config on signals.
    let leave = loop {
        tokio::select! {
            _ = leave_requested.cancelled() => break true,
            _ = shutdown.cancelled() => break true,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!(target: "agent", "Caught interrupt, shutting down.");
                break !cfg.skip_leave_on_interrupt;
            }
            _ = sigterm.recv() => {
                tracing::info!(target: "agent", "Caught terminate, shutting down.");
                break cfg.leave_on_terminate;
            }
            _ = sighup.recv() => {
                if let Err(e) = reload(&flags, &local, &log) {
                    tracing::error!(target: "agent", error = %e, "Reload failed; the previous configuration stays active.");
                }
            }
            Some(reply) = reload_rx.recv() => {
                let r = reload(&flags, &local, &log);
                if let Err(e) = &r {
                    tracing::error!(target: "agent", error = %e, "Reload failed; the previous configuration stays active.");
                }
                let _ = reply.send(r);
            }
        }
    };

    // Ordered shutdown: listeners, checks, gossip leave, background tasks, Raft.
    notify_systemd("STOPPING=1");
    // Whatever watches the leave token (monitor streams) stops on every shutdown.
    leave_requested.cancel();
    http_shutdown.cancel();
    local.stop_checks();
    if let Some(p) = local.plugins() {
        p.shutdown();
    }
    if leave {
        if let Err(e) = cluster.lan.leave(Duration::from_secs(5)).await {
            tracing::warn!(target: "gossip", error = %e, "Leaving the LAN pool failed.");
        }
        if let Some(wan) = &cluster.wan {
            let _ = wan.leave(Duration::from_secs(5)).await;
        }
    }
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(target: "agent", "Some tasks did not stop within 5s.");
    }
    if let Some(raft) = rpc.raft() {
        if let Err(e) = raft.shutdown().await {
            tracing::warn!(target: "raft", error = %e, "Raft did not shut down cleanly.");
        }
    }
    tracing::info!(target: "agent", "Agent stopped.");
    drop(log);
    Ok(())
}

fn runner_options(cfg: &RuntimeConfig) -> RunnerOptions {
    RunnerOptions {
        enable_script_checks: cfg.enable_script_checks,
        enable_local_script_checks: cfg.enable_local_script_checks,
        output_max_size: cfg.check_output_max_size,
    }
}

/// Re-reads the configuration: services, checks, plugins and the log level (compat §14.4).
fn reload(
    flags: &AgentFlags,
    local: &LocalAgent,
    log: &crate::logging::Handle,
) -> Result<(), String> {
    let (cfg, warnings) = crate::config::load(flags).map_err(|e| e.to_string())?;
    for w in warnings {
        tracing::warn!(target: "agent", "{w}");
    }
    log.set_level(&cfg.log_level).map_err(|e| e.to_string())?;
    // Plugins first, so re-registered config services meet the new tag rewriters. A plugin
    // that fails to load is listed as failed (GET /v1/agent/plugins); the reload goes on.
    if let Some(plugins) = local.plugins() {
        let failed = plugins.reload(&cfg.plugins);
        if !failed.is_empty() {
            tracing::warn!(target: "agent", failed = failed.len(),
                "Some plugins failed to load; see GET /v1/agent/plugins.");
        }
    }
    let errors = local.replace_config_entries(&cfg.services, &cfg.checks);
    if let Some(e) = errors.first() {
        return Err(e.to_string());
    }
    local.trigger_sync();
    tracing::info!(target: "agent", "Configuration reloaded.");
    Ok(())
}

/// The node's UUID: from config, else from `data_dir/node-id`, else a new one saved there.
fn node_id(cfg: &RuntimeConfig) -> anyhow::Result<String> {
    if let Some(id) = &cfg.node_id {
        return Ok(id.clone());
    }
    let Some(dir) = &cfg.data_dir else {
        return Ok(uuid::Uuid::new_v4().to_string());
    };
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if uuid::Uuid::parse_str(s.trim()).is_ok() => Ok(s.trim().to_string()),
        Ok(_) => anyhow::bail!("{}: not a UUID", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            crate::raft::write_atomic(dir, "node-id", id.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The runtime configuration for `/v1/agent/self` `DebugConfig`, secrets hidden.
fn debug_config(cfg: &RuntimeConfig) -> serde_json::Value {
    let hidden = |s: &Option<crate::config::Secret>| if s.is_some() { "hidden" } else { "" };
    serde_json::json!({
        "Datacenter": cfg.datacenter,
        "PrimaryDatacenter": cfg.primary_datacenter,
        "NodeName": cfg.node_name,
        "DataDir": cfg.data_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "DevMode": cfg.dev,
        "ServerMode": cfg.server,
        "Bootstrap": cfg.bootstrap,
        "BootstrapExpect": cfg.bootstrap_expect,
        "BindAddr": cfg.bind_addr.to_string(),
        "AdvertiseAddrLAN": cfg.advertise_addr.to_string(),
        "ClientAddrs": cfg.client_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "HTTPPort": cfg.ports.http,
        "DNSPort": cfg.ports.dns,
        "SerfPortLAN": cfg.ports.serf_lan,
        "SerfPortWAN": cfg.ports.serf_wan,
        "ServerPort": cfg.ports.server,
        "RetryJoinLAN": cfg.retry_join,
        "EncryptKey": hidden(&cfg.encrypt),
        "ACLsEnabled": cfg.acl.enabled,
        "ACLDefaultPolicy": cfg.acl.default_policy,
        "ACLInitialManagementToken": hidden(&cfg.acl.tokens.initial_management),
        "ACLAgentToken": hidden(&cfg.acl.tokens.agent),
        "UIConfig": {"Enabled": cfg.ui},
        "LogLevel": cfg.log_level,
        "EnableSyslog": cfg.enable_syslog,
        "SyslogFacility": cfg.syslog_facility,
        "EnableScriptChecks": cfg.enable_script_checks,
        "EnableLocalScriptChecks": cfg.enable_local_script_checks,
        "Revision": "tribune",
        "Version": CONSUL_VERSION,
        "TribuneVersion": TRIBUNE_VERSION,
    })
}

fn print_banner(cfg: &RuntimeConfig, node_id: &str, http: &[std::net::SocketAddr], rpc_addr: &str) {
    let client = http
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("==> Starting Tribune agent...");
    eprintln!(
        "               Version: 'tribune {TRIBUNE_VERSION} (Consul {CONSUL_VERSION} compatible)'"
    );
    eprintln!("               Node ID: '{node_id}'");
    eprintln!("             Node name: '{}'", cfg.node_name);
    eprintln!(
        "            Datacenter: '{}' (Segment: '<all>')",
        cfg.datacenter
    );
    eprintln!(
        "                Server: {} (Bootstrap: {})",
        cfg.server,
        cfg.dev || cfg.bootstrap || cfg.bootstrap_expect == 1
    );
    eprintln!(
        "           Client Addr: [{client}] (HTTP: {}, DNS: not served by this release)",
        cfg.ports.http
    );
    eprintln!("          Cluster Addr: {rpc_addr}");
    eprintln!("               Encrypt: Gossip: {}", cfg.encrypt.is_some());
    eprintln!();
    eprintln!("==> Log data will now stream in as it occurs:");
}

/// Tells systemd (`Type=notify`) about our state, when started by it.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let p = Path::new(&path);
    if let Err(e) = sock.send_to(state.as_bytes(), p) {
        tracing::debug!(target: "agent", error = %e, "sd_notify failed.");
    }
}
