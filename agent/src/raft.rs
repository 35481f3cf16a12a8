//! openraft glue: the type configuration, the sled log store, the state machine over the
//! [`crate::state::Store`], and the network between servers.
//!
//! Owns: the Raft instance's lifecycle and its on-disk files under `data_dir/raft`.
//! Must not touch: config parsing, HTTP. Every catalog, KV and session write reaches the
//! store only through [`openraft::Raft::client_write`] and the state machine's `apply`.

mod log_store;
mod network;
mod state_machine;

pub use log_store::LogStore;
pub(crate) use state_machine::write_atomic;
pub use state_machine::StateMachine;

use crate::state::Store;
use crate::structs::{Command, CommandResponse};
use openraft::BasicNode;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

openraft::declare_raft_types!(
    /// Tribune's Raft types.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// How to start this server's Raft.
#[derive(Clone, Debug)]
pub struct RaftOptions {
    pub node_id: u64,
    /// The server RPC address other servers reach us on (`host:port`).
    pub rpc_addr: String,
    /// `None` keeps everything in memory (`-dev`).
    pub data_dir: Option<PathBuf>,
    /// Form a cluster of one if this server has never been part of one.
    pub bootstrap: bool,
    /// Consul's `performance.raft_multiplier`: scales every timeout.
    pub raft_multiplier: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("raft: cannot open the log in {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("raft: {0}")]
    Storage(String),
    #[error("raft: {0}")]
    Start(String),
}

/// A node id from the node's UUID, stable across restarts.
pub fn node_id_from_uuid(uuid: &str) -> u64 {
    // FNV-1a: stable, no dependency, and collisions between a few servers are negligible.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in uuid.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Opens the log and state machine and starts Raft.
pub async fn start(
    opts: &RaftOptions,
    store: Arc<Store>,
    pool: Arc<crate::rpc::Pool>,
) -> Result<Raft, RaftError> {
    // DESIGN: heartbeat ~100 ms, election 1–2 s, sized for a loaded 2-core host. Consul's
    // raft_multiplier (default 5) only stretches timeouts beyond that, never below.
    let mult = u64::from(opts.raft_multiplier.max(1));
    let stretch = mult.saturating_sub(5).max(1);
    let config = openraft::Config {
        cluster_name: "tribune".into(),
        heartbeat_interval: 100,
        election_timeout_min: 1000 * stretch,
        election_timeout_max: 2000 * stretch,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        max_payload_entries: 1024,
        ..Default::default()
    };
    let config = Arc::new(
        config
            .validate()
            .map_err(|e| RaftError::Start(e.to_string()))?,
    );

    let (db, snap_dir) = match &opts.data_dir {
        Some(dir) => {
            let log_path = dir.join("raft").join("log");
            let db = sled::Config::new()
                .path(&log_path)
                .mode(sled::Mode::HighThroughput)
                .open()
                .map_err(|source| RaftError::Open {
                    path: log_path.display().to_string(),
                    source,
                })?;
            (db, Some(dir.join("raft").join("snapshots")))
        }
        None => {
            let db = sled::Config::new()
                .temporary(true)
                .open()
                .map_err(|source| RaftError::Open {
                    path: "(memory)".into(),
                    source,
                })?;
            (db, None)
        }
    };
    let log = LogStore::open(db).map_err(|e| RaftError::Storage(e.to_string()))?;
    let sm = StateMachine::open(store, snap_dir).map_err(|e| RaftError::Storage(e.to_string()))?;
    let raft = Raft::new(opts.node_id, config, network::Network { pool }, log, sm)
        .await
        .map_err(|e| RaftError::Start(e.to_string()))?;

    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| RaftError::Start(e.to_string()))?;
    if !initialized && opts.bootstrap {
        let mut members = BTreeMap::new();
        members.insert(
            opts.node_id,
            BasicNode {
                addr: opts.rpc_addr.clone(),
            },
        );
        raft.initialize(members)
            .await
            .map_err(|e| RaftError::Start(e.to_string()))?;
    } else if initialized {
        // A lone voter need not wait out an election timeout after a restart.
        let alone = raft
            .with_raft_state(|s| {
                let voters: Vec<u64> = s.membership_state.effective().voter_ids().collect();
                voters.len() == 1
            })
            .await
            .unwrap_or(false);
        if alone {
            let _ = raft.trigger().elect().await;
        }
    }
    Ok(raft)
}
