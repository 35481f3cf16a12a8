//! The Raft state machine: applies committed commands to the [`Store`] and snapshots it.
//!
//! The store itself is in memory; durability comes from the log plus snapshots. A snapshot
//! is written to `data_dir/raft/snapshots/current.snap` (temp file, fsync, rename, fsync of
//! the directory) before openraft may purge the log it covers.

// openraft's StorageError is large and fixed by its trait signatures.
#![allow(clippy::result_large_err)]

use super::{Responses, TypeConfig};
use crate::state::Store;
use crate::structs::Command;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type NodeId = u64;

/// A snapshot: the store's bytes and what they cover.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

pub struct StateMachine {
    store: Arc<Store>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    dir: Option<PathBuf>,
    current: Option<StoredSnapshot>,
    snapshot_seq: u64,
}

fn snap_err<E: std::error::Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &e).into()
}

fn read_snap_err<E: std::error::Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, &e).into()
}

impl StateMachine {
    /// Opens the state machine, restoring the store from the last snapshot in `dir`.
    pub fn open(
        store: Arc<Store>,
        dir: Option<PathBuf>,
    ) -> Result<StateMachine, StorageError<NodeId>> {
        let mut sm = StateMachine {
            store,
            last_applied: None,
            membership: StoredMembership::default(),
            dir,
            current: None,
            snapshot_seq: 0,
        };
        if let Some(dir) = &sm.dir {
            std::fs::create_dir_all(dir).map_err(snap_err)?;
            let path = dir.join("current.snap");
            if path.exists() {
                let bytes = std::fs::read(&path).map_err(read_snap_err)?;
                let snap = decode_snapshot(&bytes).map_err(read_snap_err)?;
                sm.install(snap)?;
            }
        }
        Ok(sm)
    }

    fn install(&mut self, snap: StoredSnapshot) -> Result<(), StorageError<NodeId>> {
        self.store.restore(&snap.data).map_err(read_snap_err)?;
        self.last_applied = snap.meta.last_log_id;
        self.membership = snap.meta.last_membership.clone();
        self.current = Some(snap);
        Ok(())
    }

    fn persist(&self, snap: &StoredSnapshot) -> Result<(), StorageError<NodeId>> {
        let Some(dir) = &self.dir else { return Ok(()) };
        write_atomic(dir, "current.snap", &encode_snapshot(snap)?).map_err(snap_err)
    }
}

const SNAPSHOT_VERSION: u8 = 1;

fn encode_snapshot(s: &StoredSnapshot) -> Result<Vec<u8>, StorageError<NodeId>> {
    postcard::to_extend(s, vec![SNAPSHOT_VERSION]).map_err(snap_err)
}

fn decode_snapshot(b: &[u8]) -> Result<StoredSnapshot, std::io::Error> {
    match b.split_first() {
        Some((&SNAPSHOT_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| std::io::Error::other(format!("snapshot: {e}")))
        }
        _ => Err(std::io::Error::other("snapshot: unsupported version")),
    }
}

/// Writes `name` in `dir` so that a crash leaves either the old or the new file.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Builds a snapshot from data captured on the state machine's task.
pub struct Builder {
    snap: StoredSnapshot,
    dir: Option<PathBuf>,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        if let Some(dir) = &self.dir {
            let bytes = encode_snapshot(&self.snap)?;
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || write_atomic(&dir, "current.snap", &bytes))
                .await
                .map_err(snap_err)?
                .map_err(snap_err)?;
        }
        Ok(Snapshot {
            meta: self.snap.meta.clone(),
            snapshot: Box::new(Cursor::new(self.snap.data.clone())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Responses>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter();
        let mut out = Vec::with_capacity(entries.size_hint().0);
        for e in entries {
            self.last_applied = Some(e.log_id);
            let index = e.log_id.index;
            match e.payload {
                EntryPayload::Blank => out.push(Vec::new()),
                EntryPayload::Normal(Command::Batch(cmds)) => {
                    out.push(self.store.apply_batch(index, &cmds))
                }
                EntryPayload::Normal(cmd) => out.push(vec![self.store.apply(index, &cmd)]),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Vec::new());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        let last = self.last_applied;
        let id = match last {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.snapshot_seq),
            None => format!("empty-{}", self.snapshot_seq),
        };
        let snap = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: last,
                last_membership: self.membership.clone(),
                snapshot_id: id,
            },
            data: self.store.snapshot(),
        };
        self.current = Some(snap.clone());
        Builder {
            snap,
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        self.persist(&snap)?;
        tracing::info!(target: "raft", last_index = meta.last_log_id.map(|l| l.index).unwrap_or(0),
            bytes = snap.data.len(), "Installed a snapshot from the leader.");
        self.install(snap)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.current.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
