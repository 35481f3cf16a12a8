//! The Raft log and vote in sled, durable before acknowledged.
//!
//! `append` writes the entries into sled and hands the flush callback to one flusher thread.
//! The flusher takes every callback waiting, runs one `flush` (an fsync), then completes them
//! in order: appends that arrive while a flush runs share the next one (group commit), and
//! openraft learns an entry is durable only after the fsync that covers it returned.

// openraft's StorageError is large and fixed by its trait signatures.
#![allow(clippy::result_large_err)]

use super::TypeConfig;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::Arc;

type NodeId = u64;

const VOTE_KEY: &[u8] = b"vote";
const PURGED_KEY: &[u8] = b"last_purged";
const COMMITTED_KEY: &[u8] = b"committed";

/// The log store; clones share the same sled trees.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    flusher: mpsc::Sender<LogFlushed<TypeConfig>>,
}

fn io_err<E: std::error::Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

fn read_err<E: std::error::Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StorageError<NodeId>> {
    postcard::to_allocvec(v).map_err(io_err)
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StorageError<NodeId>> {
    postcard::from_bytes(b).map_err(read_err)
}

impl LogStore {
    /// Opens the log in `db`.
    pub fn open(db: sled::Db) -> Result<LogStore, sled::Error> {
        let logs = db.open_tree("logs")?;
        let meta = db.open_tree("meta")?;
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let flush_db = db.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let result = flush_db.flush().map(|_| ());
                    for cb in batch {
                        let r = match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(std::io::Error::other(e.to_string())),
                        };
                        cb.log_io_completed(r);
                    }
                }
            })
            .map_err(|e| sled::Error::Io(std::io::Error::other(e.to_string())))?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                db,
                logs,
                meta,
                flusher: tx,
            }),
        })
    }

    async fn flush(&self) -> Result<(), StorageError<NodeId>> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(io_err)?
            .map_err(io_err)?;
        Ok(())
    }

    fn last_purged(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        match self.inner.meta.get(PURGED_KEY).map_err(read_err)? {
            Some(b) => Ok(Some(decode(&b)?)),
            None => Ok(None),
        }
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => *i + 1,
            Bound::Unbounded => 0,
        };
        let iter = match range.end_bound() {
            Bound::Included(i) => self.inner.logs.range(key(start)..=key(*i)),
            Bound::Excluded(i) => self.inner.logs.range(key(start)..key(*i)),
            Bound::Unbounded => self.inner.logs.range(key(start)..),
        };
        let mut out = Vec::new();
        for kv in iter {
            let (_, v) = kv.map_err(read_err)?;
            out.push(decode::<Entry<TypeConfig>>(&v)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id = self.last_purged()?;
        let last = match self.inner.logs.last().map_err(read_err)? {
            Some((_, v)) => Some(decode::<Entry<TypeConfig>>(&v)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner
            .meta
            .insert(VOTE_KEY, encode(vote)?)
            .map_err(io_err)?;
        // A vote must survive a crash before it is answered.
        self.flush().await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        match self.inner.meta.get(VOTE_KEY).map_err(read_err)? {
            Some(b) => Ok(Some(decode(&b)?)),
            None => Ok(None),
        }
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not flushed: losing it only means re-deriving the commit index after a restart.
        self.inner
            .meta
            .insert(COMMITTED_KEY, encode(&committed)?)
            .map_err(io_err)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        match self.inner.meta.get(COMMITTED_KEY).map_err(read_err)? {
            Some(b) => decode(&b),
            None => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for e in entries {
            batch.insert(&key(e.log_id.index), encode(&e)?);
        }
        self.inner.logs.apply_batch(batch).map_err(io_err)?;
        // The flusher completes the callback after the fsync that covers these entries.
        if let Err(mpsc::SendError(cb)) = self.inner.flusher.send(callback) {
            cb.log_io_completed(Err(std::io::Error::other("raft log flusher stopped")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let keys: Vec<sled::IVec> = self
            .inner
            .logs
            .range(key(log_id.index)..)
            .keys()
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        for k in keys {
            self.inner.logs.remove(k).map_err(io_err)?;
        }
        self.flush().await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner
            .meta
            .insert(PURGED_KEY, encode(&log_id)?)
            .map_err(io_err)?;
        let keys: Vec<sled::IVec> = self
            .inner
            .logs
            .range(..=key(log_id.index))
            .keys()
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        for k in keys {
            self.inner.logs.remove(k).map_err(io_err)?;
        }
        Ok(())
    }
}
