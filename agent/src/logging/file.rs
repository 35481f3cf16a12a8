//! `log_file`: the active file keeps the exact configured name; rotation renames it to a
//! timestamped archive `<stem>-<unixnanos><ext>` (Consul's rule since 2023, compat §14.5)
//! by size (`log_rotate_bytes`) and by age (`log_rotate_duration`), keeps exactly
//! `log_rotate_max_files` archives (0: all, -1: none) and gzips them when asked.
//!
//! The writer thread never touches the file system's metadata: renaming and opening run
//! on an opener thread (the writer keeps buffering lines meanwhile, each in the segment
//! of the file it belongs to), compressing and pruning on an archiver thread. A file moved or deleted behind our back
//! (logrotate without `copytruncate`, an operator's `rm`) is noticed within a second and
//! reopened under its name. A write error (disk full) keeps the unwritten bytes up to a
//! bound and retries; lines beyond it are dropped and counted.

use super::format;
use super::record::Record;
use super::redact::Redactor;
use super::sink::{Counters, Outcome, Sink};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The file name used when `log_file` names a directory (Consul's).
pub const DEFAULT_NAME: &str = "consul.log";
/// Buffered bytes written out at once.
const FLUSH_AT: usize = 64 * 1024;
/// Unwritten bytes kept while the file cannot be written (disk full).
const MAX_BACKLOG: usize = 4 * 1024 * 1024;
/// How often the active path is checked for having been moved or deleted.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// How `log_file` rotates.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// Rotate before a line would take the file past this size (0: never by size).
    pub bytes: u64,
    /// Rotate a non-empty file this long after it was opened (None: never by age).
    pub every: Option<Duration>,
    /// Archives kept: 0 all, -1 none, n the newest n.
    pub max_files: i64,
    pub compress: bool,
}

/// The active file's path for a `log_file` setting: a trailing `/` or an existing
/// directory means `<dir>/consul.log`.
pub fn active_path(log_file: &Path) -> PathBuf {
    let s = log_file.as_os_str().to_string_lossy();
    if s.ends_with('/') || log_file.is_dir() {
        log_file.join(DEFAULT_NAME)
    } else {
        log_file.to_path_buf()
    }
}

/// How archives of `active` are named: `(stem, ext)` of `consul.log` is `("consul", ".log")`.
#[derive(Clone, Debug)]
pub struct Naming {
    pub dir: PathBuf,
    pub stem: String,
    pub ext: String,
}

impl Naming {
    pub fn of(active: &Path) -> Naming {
        let dir = active
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = active
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEFAULT_NAME.to_string());
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
            _ => (name.clone(), String::new()),
        };
        Naming { dir, stem, ext }
    }

    pub fn archive(&self, nanos: u128) -> PathBuf {
        self.dir.join(format!("{}-{nanos}{}", self.stem, self.ext))
    }

    /// The timestamp of an archive's file name (plain or `.gz`), if it is one of ours.
    pub fn archive_time(&self, file_name: &str) -> Option<u128> {
        let rest = file_name.strip_prefix(&self.stem)?.strip_prefix('-')?;
        let rest = rest.strip_suffix(".gz").unwrap_or(rest);
        let digits = rest.strip_suffix(self.ext.as_str())?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Archives in the directory, oldest first, one entry per timestamp (an archive being
    /// compressed exists twice for a moment).
    pub fn archives(&self) -> Vec<(u128, Vec<PathBuf>)> {
        let mut found: std::collections::BTreeMap<u128, Vec<PathBuf>> = Default::default();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") {
                    continue;
                }
                if let Some(t) = self.archive_time(&name) {
                    found.entry(t).or_default().push(e.path());
                }
            }
        }
        found.into_iter().collect()
    }
}

/// Work for the opener thread: rename-and-reopen (rotation) or just reopen.
enum Job {
    Rotate(PathBuf),
    Reopen,
}

/// A file opened for the writer: the file, its (device, inode), its size.
type Opened = std::io::Result<(File, (u64, u64), u64)>;

/// The file sink.
///
/// Lines are kept in segments, one per file they belong in: `segs[0]` goes to the open
/// file, each later segment to a file not opened yet. Reaching the size limit starts a
/// new segment; once `segs[0]` is written, the opener thread is asked to rename the file
/// and open a new one, and until it answers the writer keeps buffering (never waiting).
pub struct FileSink {
    path: PathBuf,
    naming: Naming,
    rotation: Rotation,
    json: bool,
    /// None while the opener works (or after an open failed).
    file: Option<File>,
    /// (device, inode) of the open file.
    identity: (u64, u64),
    /// Bytes in the file the last segment goes to.
    size: u64,
    /// When the file of the last segment was started.
    opened: Instant,
    segs: std::collections::VecDeque<Vec<u8>>,
    buffered: usize,
    line: Vec<u8>,
    last_check: Instant,
    last_nanos: u128,
    /// A request is with the opener: when it was made, and whether it rotates.
    waiting: Option<(Instant, bool)>,
    jobs: crossbeam_channel::Sender<Job>,
    opened_rx: crossbeam_channel::Receiver<Opened>,
    counters: Arc<Counters>,
    failing: bool,
}

impl FileSink {
    /// Opens (creating directories) the active file; fails if it cannot be written.
    pub fn open(
        log_file: &Path,
        rotation: Rotation,
        json: bool,
        counters: Arc<Counters>,
    ) -> std::io::Result<FileSink> {
        let path = active_path(log_file);
        let naming = Naming::of(&path);
        std::fs::create_dir_all(&naming.dir)?;
        let (file, identity, size) = open_append(&path)?;
        let (archive_tx, archive_rx) = crossbeam_channel::unbounded::<PathBuf>();
        let archiver = Archiver {
            naming: naming.clone(),
            rotation: rotation.clone(),
        };
        std::thread::Builder::new()
            .name("tribune-log-archive".into())
            .spawn(move || archiver.run(archive_rx))?;
        let (jobs, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (opened_tx, opened_rx) = crossbeam_channel::unbounded::<Opened>();
        let active = path.clone();
        std::thread::Builder::new()
            .name("tribune-log-open".into())
            .spawn(move || opener(active, jobs_rx, opened_tx, archive_tx))?;
        let mut segs = std::collections::VecDeque::new();
        segs.push_back(Vec::with_capacity(FLUSH_AT * 2));
        Ok(FileSink {
            path,
            naming,
            rotation,
            json,
            file: Some(file),
            identity,
            size,
            opened: Instant::now(),
            segs,
            buffered: 0,
            line: Vec::with_capacity(512),
            last_check: Instant::now(),
            last_nanos: 0,
            waiting: None,
            jobs,
            opened_rx,
            counters,
            failing: false,
        })
    }

    /// Takes the file the opener prepared, if it is ready.
    fn take_opened(&mut self) {
        let Some((asked, rotating)) = self.waiting else {
            return;
        };
        let Ok(result) = self.opened_rx.try_recv() else {
            return;
        };
        self.waiting = None;
        match result {
            Ok((f, id, size)) => {
                self.file = Some(f);
                self.identity = id;
                if self.segs.len() == 1 {
                    self.size = size + self.segs[0].len() as u64;
                }
                if rotating {
                    self.counters.note_rotation(asked.elapsed());
                }
            }
            Err(e) => {
                if !self.failing {
                    self.failing = true;
                    tracing::error!(target: "agent", path = %self.path.display(), error = %e,
                        "Cannot open the log file; keeping lines in memory and retrying.");
                }
            }
        }
    }

    /// Asks the opener for a new file: after renaming the current one if `rotate`.
    fn request(&mut self, rotate: bool) {
        if self.waiting.is_some() {
            return;
        }
        self.file = None;
        let job = if rotate {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                .max(self.last_nanos + 1);
            self.last_nanos = nanos;
            Job::Rotate(self.naming.archive(nanos))
        } else {
            Job::Reopen
        };
        if self.jobs.send(job).is_ok() {
            self.waiting = Some((Instant::now(), rotate));
        }
    }

    /// Writes what it can: the first segment to the open file and, once that is done
    /// and a later segment waits, asks for the next file.
    fn write_out(&mut self) {
        loop {
            self.take_opened();
            // Without a file (the opener is busy, or failed and `tick` retries) the
            // lines stay buffered.
            let Some(file) = self.file.as_mut() else {
                return;
            };
            let seg = &mut self.segs[0];
            let mut done = 0;
            let mut error = None;
            while done < seg.len() {
                match file.write(&seg[done..]) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            seg.drain(..done);
            self.buffered -= done;
            if let Some(e) = error {
                if !self.failing {
                    self.failing = true;
                    tracing::error!(target: "agent", path = %self.path.display(), error = %e,
                        "Cannot write the log file; keeping lines in memory and retrying.");
                }
                return;
            }
            if self.failing {
                self.failing = false;
                tracing::info!(target: "agent", path = %self.path.display(), "Writing the log file again.");
            }
            if self.segs.len() == 1 {
                return;
            }
            self.segs.pop_front();
            self.request(true);
        }
    }

    /// Whether the active path still names the open file.
    fn still_ours(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) == self.identity,
            Err(_) => false,
        }
    }

    /// Starts a new segment: the lines from here on go to the next file.
    fn cut(&mut self) {
        self.segs.push_back(Vec::with_capacity(FLUSH_AT));
        self.size = 0;
        self.opened = Instant::now();
    }
}

fn open_append(path: &Path) -> Opened {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let m = f.metadata()?;
    Ok((f, (m.dev(), m.ino()), m.len()))
}

/// The opener thread: renames and opens on the writer's behalf, so a slow file system
/// (a journal commit, a directory busy with an unlink) never holds the writer.
fn opener(
    path: PathBuf,
    jobs: crossbeam_channel::Receiver<Job>,
    opened: crossbeam_channel::Sender<Opened>,
    archives: crossbeam_channel::Sender<PathBuf>,
) {
    super::sink::lower_priority();
    while let Ok(job) = jobs.recv() {
        if let Job::Rotate(archive) = job {
            match std::fs::rename(&path, &archive) {
                Ok(()) => {
                    let _ = archives.send(archive);
                }
                Err(e) => {
                    tracing::error!(target: "agent", path = %path.display(), error = %e, "Cannot rotate the log file.");
                }
            }
        }
        if opened.send(open_append(&path)).is_err() {
            return;
        }
    }
}

impl Sink for FileSink {
    fn name(&self) -> &'static str {
        "file"
    }

    fn write(&mut self, rec: &Arc<Record>, redactor: &Redactor) -> Outcome {
        self.line.clear();
        if self.json {
            format::json_line(&mut self.line, rec);
        } else {
            format::text_line(&mut self.line, rec);
        }
        redactor.scrub_record(rec, &mut self.line);
        let len = self.line.len();
        if self.buffered + len > MAX_BACKLOG {
            self.write_out();
            if self.buffered + len > MAX_BACKLOG {
                return Outcome::Dropped;
            }
        }
        if self.rotation.bytes > 0 && self.size > 0 && self.size + len as u64 > self.rotation.bytes
        {
            self.cut();
        }
        if let Some(seg) = self.segs.back_mut() {
            seg.extend_from_slice(&self.line);
        }
        self.buffered += len;
        self.size += len as u64;
        if self.segs[0].len() >= FLUSH_AT || self.segs.len() > 1 {
            self.write_out();
        }
        Outcome::Written
    }

    fn flush(&mut self) {
        self.write_out();
    }

    fn tick(&mut self) {
        if self.file.is_none() && self.waiting.is_none() {
            // The last open failed: try again.
            self.request(false);
        }
        if let Some(every) = self.rotation.every {
            if self.size > 0 && self.opened.elapsed() >= every {
                self.cut();
            }
        }
        if self.file.is_some() && self.last_check.elapsed() >= REOPEN_CHECK {
            self.last_check = Instant::now();
            if !self.still_ours() {
                self.write_out();
                if self.segs.len() == 1 {
                    self.request(false);
                }
            }
        }
        self.write_out();
    }

    fn close(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            self.write_out();
            let done = self.buffered == 0 || Instant::now() >= deadline;
            if done {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(f) = &self.file {
            let _ = f.sync_data();
        }
    }
}

/// Compresses and prunes archives off the writer's thread.
struct Archiver {
    naming: Naming,
    rotation: Rotation,
}

impl Archiver {
    fn run(self, rx: crossbeam_channel::Receiver<PathBuf>) {
        super::sink::lower_priority();
        // Archives left uncompressed by an earlier run are handled at start too.
        self.prune();
        if self.rotation.compress {
            for (_, paths) in self.naming.archives() {
                if paths.len() == 1 && !paths[0].to_string_lossy().ends_with(".gz") {
                    self.compress(&paths[0]);
                }
            }
        }
        while let Ok(archive) = rx.recv() {
            // Pruning first: an archive about to be deleted need not be compressed.
            self.prune();
            if self.rotation.compress && archive.exists() {
                self.compress(&archive);
            }
        }
    }

    fn compress(&self, path: &Path) {
        let mut gz = path.as_os_str().to_owned();
        gz.push(".gz");
        let gz = PathBuf::from(gz);
        let mut tmp = gz.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let result = (|| -> std::io::Result<()> {
            let mut input = File::open(path)?;
            let out = File::create(&tmp)?;
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?.sync_data()?;
            std::fs::rename(&tmp, &gz)?;
            std::fs::remove_file(path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(target: "agent", path = %path.display(), error = %e, "Cannot compress a rotated log file.");
        }
    }

    fn prune(&self) {
        let keep = match self.rotation.max_files {
            0 => return,
            n if n < 0 => 0,
            n => n as usize,
        };
        let archives = self.naming.archives();
        let excess = archives.len().saturating_sub(keep);
        for (_, paths) in archives.into_iter().take(excess) {
            for p in paths {
                // Freeing the blocks happens under the file's own lock, so the directory
                // (and a rename the opener does in it) is held only for a moment.
                if let Ok(f) = OpenOptions::new().write(true).open(&p) {
                    let _ = f.set_len(0);
                }
                if let Err(e) = std::fs::remove_file(&p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(target: "agent", path = %p.display(), error = %e, "Cannot delete an old log file.");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::Level;
    use super::*;

    fn rotation(bytes: u64, max_files: i64, compress: bool) -> Rotation {
        Rotation {
            bytes,
            every: None,
            max_files,
            compress,
        }
    }

    fn rec(n: usize) -> Arc<Record> {
        Arc::new(Record::now(
            Level::Info,
            "agent",
            &format!("line {n:05} {}", "x".repeat(80)),
        ))
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Flushes until every buffered line is in a file (rotations complete).
    fn drain(sink: &mut FileSink) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.buffered > 0 || sink.waiting.is_some() {
            assert!(Instant::now() < deadline, "the sink did not drain");
            sink.flush();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn naming_follows_consul() {
        assert_eq!(
            active_path(Path::new("/var/log/tribune/")),
            PathBuf::from("/var/log/tribune/consul.log")
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(active_path(dir.path()), dir.path().join("consul.log"));
        assert_eq!(
            active_path(Path::new("/x/agent.log")),
            PathBuf::from("/x/agent.log")
        );
        let n = Naming::of(Path::new("/x/agent.log"));
        assert_eq!(n.archive(17), PathBuf::from("/x/agent-17.log"));
        assert_eq!(n.archive_time("agent-17.log"), Some(17));
        assert_eq!(n.archive_time("agent-17.log.gz"), Some(17));
        assert_eq!(n.archive_time("agent.log"), None);
        assert_eq!(n.archive_time("agent-x.log"), None);
        assert_eq!(n.archive_time("other-17.log"), None);
        let n = Naming::of(Path::new("/x/tribune"));
        assert_eq!(n.archive(5), PathBuf::from("/x/tribune-5"));
        assert_eq!(n.archive_time("tribune-5.gz"), Some(5));
    }

    #[test]
    fn rotation_by_size_keeps_exactly_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let counters = Arc::new(Counters::default());
        let mut sink = FileSink::open(
            &dir.path().join("a.log"),
            rotation(1000, 3, false),
            false,
            counters.clone(),
        )
        .unwrap();
        let r = Redactor::new(Vec::<String>::new());
        for n in 0..100 {
            assert_eq!(sink.write(&rec(n), &r), Outcome::Written);
        }
        drain(&mut sink);
        wait_for("3 archives", || names(dir.path()).len() == 4);
        let files = names(dir.path());
        assert_eq!(files.last().unwrap(), "a.log", "{files:?}");
        for f in &files[..3] {
            assert!(f.starts_with("a-") && f.ends_with(".log"), "{files:?}");
            let size = std::fs::metadata(dir.path().join(f)).unwrap().len();
            assert!(size <= 1000 && size > 800, "{f}: {size}");
        }
        // The newest archive ends where the active file starts.
        let last = std::fs::read_to_string(dir.path().join(&files[2])).unwrap();
        let active = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
        let tail: usize = last.lines().last().unwrap()[45..50].parse().unwrap();
        let head: usize = active.lines().next().unwrap()[45..50].parse().unwrap();
        assert_eq!(head, tail + 1);
        assert!(
            counters
                .rotations
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 10
        );
    }

    #[test]
    fn rotation_by_time_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        let mut rot = rotation(0, 2, true);
        rot.every = Some(Duration::from_millis(50));
        let mut sink = FileSink::open(
            &dir.path().join("c.log"),
            rot,
            true,
            Arc::new(Counters::default()),
        )
        .unwrap();
        let r = Redactor::new(Vec::<String>::new());
        for n in 0..5 {
            sink.write(&rec(n), &r);
            drain(&mut sink);
            std::thread::sleep(Duration::from_millis(60));
            sink.tick();
            drain(&mut sink);
        }
        // An empty file is not rotated however long it is open.
        std::thread::sleep(Duration::from_millis(60));
        sink.tick();
        drain(&mut sink);
        wait_for("2 compressed archives", || {
            let f = names(dir.path());
            f.len() == 3 && f.iter().filter(|n| n.ends_with(".log.gz")).count() == 2
        });
        let files = names(dir.path());
        let mut text = String::new();
        let gz = std::fs::File::open(dir.path().join(&files[1])).unwrap();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut text).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(
            v["@message"].as_str().unwrap().starts_with("line 00004"),
            "{text}"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("c.log")).unwrap().len(),
            0
        );
    }

    #[test]
    fn minus_one_keeps_no_archives_and_zero_keeps_all() {
        for (max, want) in [(-1i64, 0usize), (0, 6)] {
            let dir = tempfile::tempdir().unwrap();
            let mut sink = FileSink::open(
                &dir.path().join("d.log"),
                rotation(200, max, false),
                false,
                Arc::new(Counters::default()),
            )
            .unwrap();
            let r = Redactor::new(Vec::<String>::new());
            for n in 0..7 {
                sink.write(&rec(n), &r);
            }
            drain(&mut sink);
            wait_for("archives pruned", || names(dir.path()).len() == want + 1);
        }
    }

    #[test]
    fn a_moved_file_is_reopened_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.log");
        let mut sink = FileSink::open(
            &path,
            rotation(0, 0, false),
            false,
            Arc::new(Counters::default()),
        )
        .unwrap();
        let r = Redactor::new(Vec::<String>::new());
        sink.write(&rec(1), &r);
        drain(&mut sink);
        std::fs::rename(&path, dir.path().join("m.log.1")).unwrap();
        sink.last_check = Instant::now() - REOPEN_CHECK;
        sink.tick();
        sink.write(&rec(2), &r);
        drain(&mut sink);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("line 00002"));
        assert!(std::fs::read_to_string(dir.path().join("m.log.1"))
            .unwrap()
            .contains("line 00001"));
    }

    #[test]
    fn an_unwritable_path_fails_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let err = FileSink::open(
            &dir.path().join("file/x.log"),
            rotation(0, 0, false),
            false,
            Arc::new(Counters::default()),
        );
        assert!(err.is_err());
    }
}
