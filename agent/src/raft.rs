//! openraft glue: the type configuration, the log store (a write-ahead log of our own with
//! group commit: one `fdatasync` per batch of appends, before openraft counts an entry as
//! durable), the state machine over the [`crate::state::Store`], and the network between
//! servers.
//!
//! Why not sled (DESIGN §5): sled's `flush` ends in `sync_file_range`, which neither
//! flushes the device cache nor the file's metadata, and took three of them per flush;
//! measured here, a replicated write cost 1.4 ms at one client with it and 0.8 ms with the
//! write-ahead log on the same busy machine.
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

/// What applying one Raft entry answered: one response per command it carried (a batch of
/// concurrent writes carries several; blank and membership entries none).
pub type Responses = Vec<CommandResponse>;

openraft::declare_raft_types!(
    /// Tribune's Raft types.
    pub TypeConfig:
        D = Command,
        R = Responses,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// The shortest election timeout (ms, before `raft_multiplier` stretches it).
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 800;
/// The longest election timeout, which is also openraft's leader lease (ms).
pub const LEADER_LEASE_MS: u64 = 1200;

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
    /// `raft_snapshot_threshold`: entries between snapshots.
    pub snapshot_threshold: u64,
    /// `raft_trailing_logs`: entries kept behind a snapshot, so that a follower a little
    /// behind catches up from the log; one further behind gets the snapshot.
    pub trailing_logs: u64,
}

impl Default for RaftOptions {
    fn default() -> RaftOptions {
        RaftOptions {
            node_id: 0,
            rpc_addr: String::new(),
            data_dir: None,
            bootstrap: false,
            raft_multiplier: 5,
            snapshot_threshold: 16384,
            trailing_logs: 10240,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("raft: cannot open the log in {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
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
    // Heartbeat every 100 ms; a follower stands for election after 0.8–1.2 s without one,
    // and openraft's leader lease (the timeout's maximum) makes the others refuse to vote
    // until 1.2 s after they last heard the leader: a leader change needs a majority to miss
    // twelve heartbeats. With 0.5–1 s, an idle cluster changed leader twice in ten minutes
    // while this 2-core host ran at load 17 (etcd's own p99 reached 0.9 s at that moment).
    // The lease also bounds failover from below: a follower that sees the leader's
    // connection drop stands right after it (`rpc::Server::leader_connection_lost`).
    // Consul's raft_multiplier (default 5) only stretches these, never shortens them.
    let mult = u64::from(opts.raft_multiplier.max(1));
    let stretch = mult.saturating_sub(5).max(1);
    let config = openraft::Config {
        cluster_name: "tribune".into(),
        heartbeat_interval: 100,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS * stretch,
        election_timeout_max: LEADER_LEASE_MS * stretch,
        // Consul's raft_snapshot_threshold and raft_trailing_logs (16384 and 10240). A
        // snapshot serialises the whole store; with batched entries, 16384 entries are
        // usually many more writes than that.
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(opts.snapshot_threshold.max(1)),
        max_in_snapshot_log_to_keep: opts.trailing_logs,
        // An entry may carry a batch of up to 64 KiB of writes (rpc::MAX_BATCH_BYTES): keep an
        // append well under the RPC frame limit.
        max_payload_entries: 128,
        ..Default::default()
    };
    let config = Arc::new(
        config
            .validate()
            .map_err(|e| RaftError::Start(e.to_string()))?,
    );

    let (wal_dir, snap_dir) = match &opts.data_dir {
        Some(dir) => (
            Some(dir.join("raft").join("wal")),
            Some(dir.join("raft").join("snapshots")),
        ),
        None => (None, None),
    };
    if let Some(dir) = &opts.data_dir {
        let old_log = dir.join("raft").join("log");
        if old_log.exists() && !dir.join("raft").join("wal").exists() {
            // Versions before the write-ahead log kept the log in sled; the snapshot in
            // raft/snapshots still restores the state it covers.
            tracing::warn!(target: "raft", path = %old_log.display(), "Ignoring a Raft log in the old sled format: entries after the last snapshot are not replayed.");
        }
    }
    let log = LogStore::open(wal_dir.as_deref()).map_err(|source| RaftError::Open {
        path: wal_dir
            .as_ref()
            .map_or_else(|| "(memory)".into(), |p| p.display().to_string()),
        source,
    })?;
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
