//! The Raft log and vote: a write-ahead log of our own, durable before acknowledged.
//!
//! Entries go to segment files `data_dir/raft/wal/<first index>.wal`, preallocated to
//! [`SEGMENT_BYTES`] (as etcd does, so that an `fdatasync` need not grow the file), as
//! records `[u32 length][u32 check][postcard entry]`. `append` writes the records with one
//! `pwrite` and hands openraft's callback to the flusher thread, which takes every callback
//! waiting, runs one `fdatasync` per segment written, then completes them in order: appends
//! that arrive while a sync runs share the next one (group commit), and openraft learns an
//! entry is durable only after the sync that covers it returned.
//!
//! The vote and the purge point live in `meta` (written to a temporary file, synced, renamed,
//! directory synced); the commit index, which openraft can re-learn, is rewritten in place in
//! `committed` on every change, without a sync. On open, the segments are scanned in order; the log ends at the first record
//! that is torn, fails its check, or does not continue the previous one (index + 1, term
//! never lower), and what follows is discarded.
//!
//! The bytes of the most recent [`CACHED_ENTRIES`] entries (at most [`CACHED_BYTES`]) stay
//! in memory, so replication
//! and the state machine read them without a system call. Without a data directory (`-dev`)
//! the log lives in memory only.

// openraft's StorageError is large and fixed by its trait signatures.
#![allow(clippy::result_large_err)]

use super::TypeConfig;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

type NodeId = u64;

/// Preallocated size of a segment (a segment holds whole appends and may grow past it).
const SEGMENT_BYTES: u64 = 64 << 20;
/// Entries whose encoded bytes stay in memory.
const CACHED_ENTRIES: usize = 8192;
/// And at most this many bytes of them (a batched entry can be 64 KiB).
const CACHED_BYTES: usize = 16 << 20;
/// Record header: length and check.
const HEADER: u64 = 8;
/// Version byte of the `meta` file.
const META_VERSION: u8 = 1;

/// The log store; clones share the same log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    wal: Mutex<Wal>,
    flusher: mpsc::Sender<Flush>,
}

/// Work for the flusher thread: an append's callback and the segment it wrote.
struct Flush {
    file: Arc<File>,
    callback: LogFlushed<TypeConfig>,
}

/// What must survive a crash besides the entries.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Meta {
    vote: Option<Vote<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

struct Segment {
    /// The index of the first entry written to it (its file name).
    first: u64,
    file: Arc<File>,
    path: PathBuf,
    /// Where the next record goes.
    end: u64,
}

/// Where one entry is.
struct Loc {
    log_id: LogId<NodeId>,
    /// Position in `Wal::segs` is found by `seg_first`.
    seg_first: u64,
    /// Offset of the record's payload.
    off: u64,
    len: u32,
    bytes: Option<Arc<[u8]>>,
}

struct Wal {
    /// `None`: in memory only.
    dir: Option<PathBuf>,
    segs: Vec<Segment>,
    locs: VecDeque<Loc>,
    /// Log index of `locs[0]` (or of the next entry when `locs` is empty).
    first: u64,
    /// `locs[..cached_from - first]` have dropped their bytes.
    cached_from: u64,
    /// Bytes held by the cached entries.
    cached_bytes: usize,
    meta: Meta,
    committed: Option<LogId<NodeId>>,
    /// The `committed` file, rewritten in place (one small `pwrite`) on every change.
    committed_file: Option<File>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
}

fn io_err<E: std::error::Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

fn read_err<E: std::error::Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn vote_err<E: std::error::Error + 'static>(e: E) -> StorageError<NodeId> {
    StorageIOError::write_vote(&e).into()
}

/// A fast 32-bit check of a record's payload against torn or stale writes (not a MAC).
fn check(payload: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ payload.len() as u64;
    let mut chunks = payload.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    for b in chunks.remainder() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as u32
}

/// `committed` record: `[u32 check][u64 term][u64 node][u64 index]`, all zero for none.
fn encode_committed(c: Option<LogId<NodeId>>) -> [u8; 28] {
    let mut out = [0u8; 28];
    if let Some(c) = c {
        out[4..12].copy_from_slice(&c.leader_id.term.to_le_bytes());
        out[12..20].copy_from_slice(&c.leader_id.node_id.to_le_bytes());
        out[20..28].copy_from_slice(&c.index.to_le_bytes());
        let sum = check(&out[4..]);
        out[0..4].copy_from_slice(&sum.to_le_bytes());
    }
    out
}

fn decode_committed(b: &[u8]) -> Option<LogId<NodeId>> {
    let b: &[u8; 28] = b.get(..28)?.try_into().ok()?;
    let word = |r: std::ops::Range<usize>| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[r]);
        u64::from_le_bytes(w)
    };
    let sum = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if sum == 0 || check(&b[4..]) != sum {
        return None;
    }
    Some(LogId::new(
        openraft::CommittedLeaderId::new(word(4..12), word(12..20)),
        word(20..28),
    ))
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.wal")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn create_segment(dir: &Path, first: u64) -> std::io::Result<Segment> {
    let path = dir.join(segment_name(first));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    preallocate(&file, SEGMENT_BYTES)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Segment {
        first,
        file: Arc::new(file),
        path,
        end: 0,
    })
}

#[allow(unsafe_code)]
fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: posix_fallocate only reads its integer arguments; the fd is open and ours.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc == 0 {
        Ok(())
    } else if rc == libc::EOPNOTSUPP || rc == libc::EINVAL {
        // A filesystem without fallocate: the file grows as it is written.
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

impl Wal {
    fn seg_index(&self, first: u64) -> usize {
        self.segs
            .iter()
            .rposition(|s| s.first == first)
            .unwrap_or(0)
    }

    fn last_log_id(&self) -> Option<LogId<NodeId>> {
        self.locs.back().map(|l| l.log_id).or(self.meta.purged)
    }

    fn save_meta(&self) -> std::io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let bytes = postcard::to_extend(&self.meta, vec![META_VERSION])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        super::write_atomic(dir, "meta", &bytes)
    }

    /// Drops cached bytes beyond the most recent [`CACHED_ENTRIES`] entries or
    /// [`CACHED_BYTES`] bytes.
    fn trim_cache(&mut self) {
        if self.dir.is_none() {
            return;
        }
        let last = self.first + self.locs.len() as u64;
        let keep_from = last.saturating_sub(CACHED_ENTRIES as u64);
        while self.cached_from < last
            && (self.cached_from < keep_from || self.cached_bytes > CACHED_BYTES)
        {
            let i = (self.cached_from.saturating_sub(self.first)) as usize;
            if let Some(b) = self.locs.get_mut(i).and_then(|l| l.bytes.take()) {
                self.cached_bytes = self.cached_bytes.saturating_sub(b.len());
            }
            self.cached_from += 1;
        }
    }

    /// Recounts the cached bytes (after a truncation or a purge removed entries).
    fn recount_cache(&mut self) {
        self.cached_bytes = self
            .locs
            .iter()
            .filter_map(|l| l.bytes.as_ref().map(|b| b.len()))
            .sum();
    }

    /// Opens (or creates) the log in `dir`, recovering what a crash left.
    fn open(dir: &Path) -> std::io::Result<Wal> {
        std::fs::create_dir_all(dir)?;
        let meta = match std::fs::read(dir.join("meta")) {
            Ok(b) => match b.split_first() {
                Some((&META_VERSION, rest)) => postcard::from_bytes(rest)
                    .map_err(|e| std::io::Error::other(format!("raft meta: {e}")))?,
                _ => return Err(std::io::Error::other("raft meta: unsupported version")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Meta::default(),
            Err(e) => return Err(e),
        };
        let committed = std::fs::read(dir.join("committed"))
            .ok()
            .and_then(|b| decode_committed(&b));
        let committed_file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("committed"))?;
        let mut firsts: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".wal")?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        firsts.sort_unstable();
        let purged_index = meta.purged.map(|p| p.index);
        let mut wal = Wal {
            dir: Some(dir.to_path_buf()),
            segs: Vec::new(),
            locs: VecDeque::new(),
            first: purged_index.map_or(0, |p| p + 1),
            cached_from: 0,
            cached_bytes: 0,
            meta,
            committed,
            committed_file: Some(committed_file),
            buf: Vec::new(),
        };
        let mut prev: Option<LogId<NodeId>> = wal.meta.purged;
        let mut ended = false;
        for first in firsts {
            let path = dir.join(segment_name(first));
            if ended {
                std::fs::remove_file(&path)?;
                continue;
            }
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let size = file.metadata()?.len();
            let mut off = 0u64;
            let mut head = [0u8; HEADER as usize];
            let mut payload = Vec::new();
            loop {
                if off + HEADER > size || file.read_exact_at(&mut head, off).is_err() {
                    break;
                }
                let len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
                let sum = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
                if len == 0 || off + HEADER + len > size {
                    break;
                }
                payload.resize(len as usize, 0);
                if file.read_exact_at(&mut payload, off + HEADER).is_err() || check(&payload) != sum
                {
                    break;
                }
                let Ok(e) = postcard::from_bytes::<Entry<TypeConfig>>(&payload) else {
                    break;
                };
                let id = e.log_id;
                let purged = purged_index.is_some_and(|p| id.index <= p);
                if !purged {
                    let follows = match prev {
                        Some(p) if wal.locs.is_empty() && Some(p) == wal.meta.purged => {
                            id.index == p.index + 1
                        }
                        Some(p) => id.index == p.index + 1 && id.leader_id >= p.leader_id,
                        None => true,
                    };
                    if !follows {
                        break;
                    }
                    if wal.locs.is_empty() {
                        wal.first = id.index;
                    }
                    wal.locs.push_back(Loc {
                        log_id: id,
                        seg_first: first,
                        off: off + HEADER,
                        len: len as u32,
                        bytes: None,
                    });
                    prev = Some(id);
                }
                off += HEADER + len;
            }
            // Whatever follows the last good record is garbage: mark the end.
            if off + HEADER <= size {
                let mut tail = [0u8; HEADER as usize];
                if file.read_exact_at(&mut tail, off).is_ok() && tail != [0u8; HEADER as usize] {
                    ended = true;
                    file.write_all_at(&[0u8; HEADER as usize], off)?;
                    file.sync_data()?;
                }
            }
            wal.segs.push(Segment {
                first,
                file: Arc::new(file),
                path,
                end: off,
            });
        }
        wal.cached_from = wal.first;
        Ok(wal)
    }
}

impl LogStore {
    /// Opens the log in `dir` (`data_dir/raft/wal`), or in memory when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> std::io::Result<LogStore> {
        let wal = match dir {
            Some(d) => Wal::open(d)?,
            None => Wal {
                dir: None,
                segs: Vec::new(),
                locs: VecDeque::new(),
                first: 0,
                cached_from: 0,
                cached_bytes: 0,
                meta: Meta::default(),
                committed: None,
                committed_file: None,
                buf: Vec::new(),
            },
        };
        let (tx, rx) = mpsc::channel::<Flush>();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flusher(rx))?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                wal: Mutex::new(wal),
                flusher: tx,
            }),
        })
    }
}

/// Group commit: one `fdatasync` per segment for every append waiting.
fn flusher(rx: mpsc::Receiver<Flush>) {
    let mut batch: Vec<Flush> = Vec::new();
    let mut files: Vec<Arc<File>> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        files.clear();
        for f in &batch {
            if !files.iter().any(|x| Arc::ptr_eq(x, &f.file)) {
                files.push(f.file.clone());
            }
        }
        let mut result: Result<(), String> = Ok(());
        for f in &files {
            if let Err(e) = f.sync_data() {
                result = Err(e.to_string());
            }
        }
        for job in batch.drain(..) {
            let r = result.clone().map_err(std::io::Error::other);
            job.callback.log_io_completed(r);
        }
    }
}

/// Where to read one entry from: its cached bytes, or (file, offset, length).
type Part = (Option<Arc<[u8]>>, Option<Arc<File>>, u64, u32);

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        // Collect under the lock, decode outside it.
        let mut parts: Vec<Part> = Vec::new();
        {
            let w = self.inner.wal.lock();
            let last = w.first + w.locs.len() as u64;
            let start = match range.start_bound() {
                Bound::Included(i) => *i,
                Bound::Excluded(i) => *i + 1,
                Bound::Unbounded => 0,
            }
            .max(w.first);
            let end = match range.end_bound() {
                Bound::Included(i) => *i + 1,
                Bound::Excluded(i) => *i,
                Bound::Unbounded => last,
            }
            .min(last);
            for i in start..end {
                let l = &w.locs[(i - w.first) as usize];
                let file = match &l.bytes {
                    Some(_) => None,
                    None => Some(w.segs[w.seg_index(l.seg_first)].file.clone()),
                };
                parts.push((l.bytes.clone(), file, l.off, l.len));
            }
        }
        let mut out = Vec::with_capacity(parts.len());
        let mut buf = Vec::new();
        for (bytes, file, off, len) in parts {
            let e = match (bytes, file) {
                (Some(b), _) => postcard::from_bytes(&b).map_err(read_err)?,
                (None, Some(f)) => {
                    buf.resize(len as usize, 0);
                    f.read_exact_at(&mut buf, off).map_err(read_err)?;
                    postcard::from_bytes(&buf).map_err(read_err)?
                }
                (None, None) => return Err(read_err(std::io::Error::other("entry without data"))),
            };
            out.push(e);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let w = self.inner.wal.lock();
        Ok(LogState {
            last_purged_log_id: w.meta.purged,
            last_log_id: w.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        // A vote must survive a crash before it is answered.
        let mut w = self.inner.wal.lock();
        w.meta.vote = Some(*vote);
        w.save_meta().map_err(vote_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.wal.lock().meta.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not synced: it is a hint (openraft can re-learn it from a quorum), but it reaches
        // the page cache before any write it covers is acknowledged, so a killed process
        // restarts knowing everything it had committed.
        let mut w = self.inner.wal.lock();
        w.committed = committed;
        if let Some(f) = &w.committed_file {
            f.write_all_at(&encode_committed(committed), 0)
                .map_err(io_err)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let w = self.inner.wal.lock();
        // Never claim more than the log holds.
        Ok(w.committed.filter(|c| Some(*c) <= w.last_log_id()))
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
        let mut w = self.inner.wal.lock();
        let w = &mut *w;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        // (log id, payload start in buf, payload length)
        let mut added: Vec<(LogId<NodeId>, usize, usize)> = Vec::new();
        for e in entries {
            let head = buf.len();
            buf.extend_from_slice(&[0u8; HEADER as usize]);
            buf = postcard::to_extend(&e, buf).map_err(io_err)?;
            let len = buf.len() - head - HEADER as usize;
            let sum = check(&buf[head + HEADER as usize..]);
            buf[head..head + 4].copy_from_slice(&(len as u32).to_le_bytes());
            buf[head + 4..head + 8].copy_from_slice(&sum.to_le_bytes());
            added.push((e.log_id, head + HEADER as usize, len));
        }
        if added.is_empty() {
            w.buf = buf;
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        if w.locs.is_empty() {
            w.first = added[0].0.index;
            w.cached_from = w.first;
        }
        let Some(dir) = w.dir.clone() else {
            // In memory: nothing to sync.
            for (id, start, len) in added {
                w.locs.push_back(Loc {
                    log_id: id,
                    seg_first: 0,
                    off: 0,
                    len: len as u32,
                    bytes: Some(Arc::from(&buf[start..start + len])),
                });
            }
            w.buf = buf;
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let roll = match w.segs.last() {
            None => true,
            Some(s) => s.end > 0 && s.end + buf.len() as u64 > SEGMENT_BYTES,
        };
        if roll {
            let seg = create_segment(&dir, added[0].0.index).map_err(io_err)?;
            w.segs.push(seg);
        }
        let Some(seg) = w.segs.last_mut() else {
            return Err(io_err(std::io::Error::other("no wal segment")));
        };
        let base = seg.end;
        seg.file.write_all_at(&buf, base).map_err(io_err)?;
        seg.end += buf.len() as u64;
        let (seg_first, file) = (seg.first, seg.file.clone());
        for (id, start, len) in added {
            w.locs.push_back(Loc {
                log_id: id,
                seg_first,
                off: base + start as u64,
                len: len as u32,
                bytes: Some(Arc::from(&buf[start..start + len])),
            });
            w.cached_bytes += len;
        }
        w.trim_cache();
        // Do not keep a huge buffer around after a large append.
        if buf.capacity() <= 1 << 20 {
            w.buf = buf;
        }
        // The flusher completes the callback after the sync that covers these entries.
        if let Err(mpsc::SendError(job)) = self.inner.flusher.send(Flush { file, callback }) {
            job.callback
                .log_io_completed(Err(std::io::Error::other("raft log flusher stopped")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut w = self.inner.wal.lock();
        let w = &mut *w;
        if log_id.index < w.first {
            w.locs.clear();
        } else {
            let keep = (log_id.index - w.first) as usize;
            if keep >= w.locs.len() {
                return Ok(());
            }
            let cut_seg = w.locs[keep].seg_first;
            let cut_off = w.locs[keep].off - HEADER;
            w.locs.truncate(keep);
            if w.dir.is_some() {
                // Later segments go; the segment of the cut ends there.
                while w.segs.last().is_some_and(|s| s.first > cut_seg) {
                    if let Some(s) = w.segs.pop() {
                        std::fs::remove_file(&s.path).map_err(io_err)?;
                    }
                }
                if let Some(s) = w.segs.last_mut() {
                    s.end = cut_off;
                    s.file
                        .write_all_at(&[0u8; HEADER as usize], cut_off)
                        .map_err(io_err)?;
                    s.file.sync_data().map_err(io_err)?;
                }
            }
        }
        if w.locs.is_empty() {
            w.first = log_id.index;
        }
        w.cached_from = w.cached_from.min(w.first + w.locs.len() as u64);
        w.recount_cache();
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut w = self.inner.wal.lock();
        let w = &mut *w;
        w.meta.purged = Some(log_id);
        // The purge point must be durable before the entries it covers disappear.
        w.save_meta().map_err(io_err)?;
        while w
            .locs
            .front()
            .is_some_and(|l| l.log_id.index <= log_id.index)
        {
            w.locs.pop_front();
        }
        w.first = w.locs.front().map_or(log_id.index + 1, |l| l.log_id.index);
        w.cached_from = w.cached_from.max(w.first);
        w.recount_cache();
        // A segment goes once every entry in it is purged: the next one starts at or
        // before the first entry kept.
        while w.segs.len() > 1 && w.segs[1].first <= log_id.index + 1 {
            let s = w.segs.remove(0);
            std::fs::remove_file(&s.path).map_err(io_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn ids(store: &LogStore) -> Vec<u64> {
        store
            .inner
            .wal
            .lock()
            .locs
            .iter()
            .map(|l| l.log_id.index)
            .collect()
    }

    #[test]
    fn the_commit_index_round_trips_and_a_damaged_one_is_ignored() {
        let c = LogId::new(CommittedLeaderId::new(7, 42), 1234);
        let mut b = encode_committed(Some(c));
        assert_eq!(decode_committed(&b), Some(c));
        assert_eq!(decode_committed(&encode_committed(None)), None);
        b[25] ^= 1;
        assert_eq!(decode_committed(&b), None);
    }

    #[test]
    fn the_check_sees_a_changed_byte() {
        let a = b"0123456789abcdefXYZ".to_vec();
        let mut b = a.clone();
        b[17] ^= 1;
        assert_ne!(check(&a), check(&b));
        assert_eq!(check(&a), check(&a.clone()));
    }

    #[test]
    fn a_reopened_log_keeps_entries_vote_and_purge_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = LogStore::open(Some(dir.path())).unwrap();
            // Write records by hand (no openraft callback outside a Raft instance).
            {
                let mut w = s.inner.wal.lock();
                let seg = create_segment(dir.path(), 1).unwrap();
                let mut off = 0;
                for i in 1..=5u64 {
                    let payload = postcard::to_allocvec(&entry(1, i)).unwrap();
                    let mut rec = (payload.len() as u32).to_le_bytes().to_vec();
                    rec.extend_from_slice(&check(&payload).to_le_bytes());
                    rec.extend_from_slice(&payload);
                    seg.file.write_all_at(&rec, off).unwrap();
                    off += rec.len() as u64;
                }
                // A torn record: a header that promises more than was written.
                seg.file
                    .write_all_at(&[200, 0, 0, 0, 1, 2, 3, 4, 9], off)
                    .unwrap();
                w.segs.push(seg);
            }
            s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
            s.purge(LogId::new(CommittedLeaderId::new(1, 1), 2))
                .await
                .unwrap();
            drop(s);
            let mut s = LogStore::open(Some(dir.path())).unwrap();
            assert_eq!(ids(&s), vec![3, 4, 5]);
            assert_eq!(
                s.read_vote().await.unwrap(),
                Some(Vote::new_committed(1, 1))
            );
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(2));
            assert_eq!(st.last_log_id.map(|l| l.index), Some(5));
            let got = s.try_get_log_entries(3..=4).await.unwrap();
            assert_eq!(
                got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
                vec![3, 4]
            );
            // Truncation survives a reopen too.
            s.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4))
                .await
                .unwrap();
            drop(s);
            let s = LogStore::open(Some(dir.path())).unwrap();
            assert_eq!(ids(&s), vec![3]);
        });
    }
}
