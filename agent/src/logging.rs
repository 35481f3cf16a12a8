//! Logging: every line is a `tracing` event with a fixed subsystem target (`agent`, `raft`,
//! `gossip`, `http`, `checks`, `plugins`, `acl`, `dns`, `rpc`) and fields, sent to the
//! console (text or `log_json`), a rotated `log_file`, syslog (local socket or remote UDP/
//! TCP) and live monitors (`GET /v1/agent/monitor`).
//!
//! The rule everything here follows: logging never blocks the agent. The calling thread
//! only captures the event and offers it to each sink's bounded queue; each sink has its own
//! thread that formats, scrubs secrets and writes. A sink that is slow or gone (syslog
//! stopped, disk full) loses lines, counts them ([`stats`]) and says so in a periodic
//! warning through the other sinks.
//!
//! Owns the global `tracing` subscriber. Must not be used by the FSM or the state store for
//! anything but events.
//!
//! Read in this order:
//! - `record`: the captured event, levels, the subsystem of a target, secret field names;
//! - `layer`: the `tracing` layer: filtering by level and handing records to queues;
//! - `sink`: the bounded queues and their worker threads;
//! - `format`: text (hclog's shape) and JSON (Consul's `@` keys) lines, timestamps;
//! - `redact`: secrets out of every formatted line;
//! - `console`, `file` (rotation, archives, compression), `syslog` (RFC 5424/3164, unix,
//!   UDP, TCP with RFC 6587 framing), `monitor` (the live log and its history).

mod console;
mod file;
mod format;
mod layer;
mod monitor;
mod record;
mod redact;
mod sink;
mod syslog;

pub use monitor::Subscription;
pub use record::{Level, SUBSYSTEMS};

use crate::config::RuntimeConfig;
use layer::{Shared, TribuneLayer};
use monitor::{Hub, MonitorSink};
use parking_lot::Mutex;
use redact::Redactor;
use sink::{SharedRedactor, Sink, Worker, QUEUE_CAPACITY};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid log level {0:?}")]
    Level(String),
    #[error("logging is already initialised")]
    AlreadyInitialised,
    #[error("cannot open log file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start a logging thread: {0}")]
    Thread(std::io::Error),
}

/// How long dropping the [`Handle`] waits for the sinks to write what they hold.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// What one sink has done since start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkStats {
    /// `console`, `file`, `syslog` or `monitor`.
    pub sink: &'static str,
    /// Lines written (or handed to the kernel / the collector connection).
    pub written: u64,
    /// Lines lost: queue full (sink slow or gone) or refused by the sink.
    pub dropped: u64,
    /// Lines waiting in the queue now.
    pub queued: usize,
    /// File rotations, and for the last ones the time from the decision to rotate until
    /// lines went to the new file (renaming and opening run off the writer's thread).
    pub rotations: u64,
    pub rotation_times: Vec<Duration>,
}

/// The running logging system. Keep it for the life of the agent: it changes the level at
/// reload, opens monitors, and when dropped flushes the sinks (waiting at most two
/// seconds for a sink that is stuck) and stops their threads.
pub struct Handle {
    shared: Arc<Shared>,
    hub: Arc<Hub>,
    redactor: SharedRedactor,
    workers: Vec<Worker>,
}

/// What the HTTP monitor and [`stats`] reach without a handle (the subscriber is global).
struct Global {
    shared: Arc<Shared>,
    hub: Arc<Hub>,
}

static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

/// Installs the global subscriber for the agent with the sinks `cfg` asks for.
pub fn init(cfg: &RuntimeConfig) -> Result<Handle, LogError> {
    let (layer, handle) = build(cfg)?;
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .map_err(|_| LogError::AlreadyInitialised)?;
    *GLOBAL.lock() = Some(Global {
        shared: handle.shared.clone(),
        hub: handle.hub.clone(),
    });
    tracing::callsite::rebuild_interest_cache();
    Ok(handle)
}

/// The sinks `cfg` asks for, their threads started, and the layer feeding them; nothing
/// installed globally (tests install it for a scope with `tracing::subscriber::with_default`).
pub fn build(
    cfg: &RuntimeConfig,
) -> Result<
    (
        impl tracing_subscriber::Layer<tracing_subscriber::Registry>,
        Handle,
    ),
    LogError,
> {
    let level = parse_level(&cfg.log_level)?;
    let redactor = SharedRedactor::new(Redactor::new(secrets(cfg)));
    let monitor_level = Arc::new(AtomicU8::new(0));
    let hub = Arc::new(Hub::new(monitor_level.clone(), redactor.clone()));

    let mut sinks: Vec<(Box<dyn Sink>, Arc<sink::Counters>)> = Vec::new();
    if cfg.log_stdout {
        sinks.push((
            Box::new(console::ConsoleSink::new(cfg.log_json)),
            Arc::default(),
        ));
    }
    if let Some(path) = &cfg.log_file {
        let counters = Arc::new(sink::Counters::default());
        let rotation = file::Rotation {
            bytes: cfg.log_rotate_bytes,
            every: (!cfg.log_rotate_duration.is_zero()).then_some(cfg.log_rotate_duration),
            max_files: cfg.log_rotate_max_files,
            compress: cfg.log_rotate_compress,
        };
        let f = file::FileSink::open(path, rotation, cfg.log_json, counters.clone()).map_err(
            |source| LogError::File {
                path: file::active_path(path),
                source,
            },
        )?;
        sinks.push((Box::new(f), counters));
    }
    if cfg.enable_syslog {
        let s = syslog::SyslogSink::new(syslog::SyslogOptions {
            address: cfg.syslog_address.clone(),
            facility: cfg.syslog_facility.clone(),
            tag: cfg.syslog_tag.clone(),
            format: cfg.syslog_format,
            udp_rate: cfg.syslog_udp_rate,
            hostname: syslog::hostname(),
        });
        sinks.push((Box::new(s), Arc::default()));
    }

    let mut workers = Vec::new();
    for (i, (s, counters)) in sinks.into_iter().enumerate() {
        workers.push(
            Worker::spawn(i, s, QUEUE_CAPACITY, redactor.clone(), counters)
                .map_err(LogError::Thread)?,
        );
    }
    let monitor = Worker::spawn(
        workers.len(),
        Box::new(MonitorSink(hub.clone())),
        QUEUE_CAPACITY,
        redactor.clone(),
        Arc::default(),
    )
    .map_err(LogError::Thread)?;
    let shared = Arc::new(Shared {
        sink_level: AtomicU8::new(level as u8),
        monitor_level,
        sinks: workers.iter().map(|w| w.queue.clone()).collect(),
        monitor: monitor.queue.clone(),
    });
    workers.push(monitor);
    let layer = TribuneLayer {
        shared: shared.clone(),
    };
    Ok((
        layer,
        Handle {
            shared,
            hub,
            redactor,
            workers,
        },
    ))
}

fn parse_level(level: &str) -> Result<Level, LogError> {
    Level::parse(level).ok_or_else(|| LogError::Level(level.to_string()))
}

/// The configured secrets hidden in every line: ACL tokens, the gossip key, and the
/// tokens of services and checks from config files.
fn secrets(cfg: &RuntimeConfig) -> Vec<String> {
    let t = &cfg.acl.tokens;
    let mut out: Vec<String> = [
        &t.initial_management,
        &t.agent,
        &t.agent_recovery,
        &t.default,
        &t.replication,
        &t.dns,
        &t.config_file_service_registration,
        &cfg.encrypt,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.expose().to_string())
    .collect();
    for s in &cfg.services {
        out.push(s.token.clone());
        out.extend(s.check.iter().chain(&s.checks).map(|c| c.token.clone()));
    }
    out.extend(cfg.checks.iter().map(|c| c.token.clone()));
    out.retain(|s| !s.is_empty());
    out
}

impl Handle {
    /// Changes the sinks' level (`log_level` is reloadable).
    pub fn set_level(&self, level: &str) -> Result<(), LogError> {
        let level = parse_level(level)?;
        let old = self.shared.sink_level.swap(level as u8, Ordering::AcqRel);
        if old != level as u8 {
            tracing::callsite::rebuild_interest_cache();
        }
        Ok(())
    }

    /// Applies what a reload may change: the level and the secrets to hide.
    pub fn apply(&self, cfg: &RuntimeConfig) -> Result<(), LogError> {
        self.set_level(&cfg.log_level)?;
        self.redactor.replace(Redactor::new(secrets(cfg)));
        Ok(())
    }

    /// A live log stream at `level` (any of Consul's level names), text or JSON.
    pub fn monitor(&self, level: &str, json: bool) -> Result<Subscription, LogError> {
        Ok(self.hub.subscribe(parse_level(level)?, json))
    }

    /// Counters of every sink.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.workers.iter().map(|w| w.stats()).collect()
    }

    /// Waits until every sink has written what was logged before the call, or `timeout`
    /// passes; true if all did.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for w in &self.workers {
            w.queue.nudge();
        }
        // A record is counted in a queue until its worker has written and flushed it.
        std::thread::sleep(Duration::from_millis(2));
        loop {
            if self.workers.iter().all(|w| w.queue.is_idle()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            for w in &self.workers {
                w.queue.nudge();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        {
            let mut g = GLOBAL.lock();
            if g.as_ref()
                .is_some_and(|g| Arc::ptr_eq(&g.shared, &self.shared))
            {
                *g = None;
            }
        }
        for w in &self.workers {
            w.request_stop();
        }
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        for w in &mut self.workers {
            w.join_until(deadline);
        }
    }
}

/// A live log stream from the agent's logging system: `None` when logging is not
/// initialised (a handler in a test), an error for an unknown level.
pub fn subscribe(level: &str, json: bool) -> Result<Option<Subscription>, LogError> {
    let level = parse_level(level)?;
    let hub = GLOBAL.lock().as_ref().map(|g| g.hub.clone());
    Ok(hub.map(|h| h.subscribe(level, json)))
}

/// Now as Go prints a UTC time (`2026-11-25 12:00:00 +0000 UTC`), as Consul's metrics
/// endpoint shows its `Timestamp`.
pub fn go_utc_now() -> String {
    let (secs, nanos) = record::now();
    let mut out = Vec::with_capacity(24);
    format::rfc3339_millis(&mut out, secs, nanos);
    let mut text = String::from_utf8_lossy(&out[..19.min(out.len())]).replace('T', " ");
    text.push_str(" +0000 UTC");
    text
}

/// Counters of every sink of the running logging system (empty when not initialised).
/// Exported as metrics: `written`, `dropped` per sink.
pub fn stats() -> Vec<SinkStats> {
    let g = GLOBAL.lock();
    let Some(g) = g.as_ref() else {
        return Vec::new();
    };
    g.shared
        .sinks
        .iter()
        .chain(std::iter::once(&g.shared.monitor))
        .map(|q| sink::queue_stats(q))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> RuntimeConfig {
        let mut cfg = crate::config::dev_config("t");
        cfg.log_level = "info".into();
        cfg.log_json = true;
        cfg.log_stdout = false;
        cfg.log_file = Some(dir.join("logs/"));
        cfg.acl.tokens.initial_management = Some(crate::config::Secret::new(
            "a7777777-7777-4777-8777-777777777777",
        ));
        cfg
    }

    fn file_lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("logs/consul.log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn events_reach_the_file_and_monitors_with_secrets_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let (layer, handle) = build(&config(dir.path())).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let mut mon = handle.monitor("debug", false).unwrap();
            tracing::info!(target: "http", token = "abc", url = "/v1/kv/a?token=zzz&dc=dc1",
                "Request finished.");
            tracing::debug!(target: "agent", "Only the monitor sees this.");
            tracing::info!(target: "openraft::core", "A library's info is below its threshold.");
            tracing::warn!(target: "openraft::core", term = 3u64, "A library's warning.");
            {
                let span = tracing::info_span!(target: "checks", "check", check_id = "web");
                let _e = span.enter();
                tracing::info!(target: "checks", "Check is now passing.");
            }
            tracing::info!(target: "checks", output = "got a7777777-7777-4777-8777-777777777777",
                "Secret in an output.");
            assert!(handle.flush(Duration::from_secs(5)));
            let lines = file_lines(dir.path());
            assert_eq!(lines.len(), 4, "{lines:#?}");
            assert_eq!(lines[0]["@module"], "http");
            assert_eq!(lines[0]["@level"], "info");
            assert_eq!(lines[0]["@message"], "Request finished.");
            assert_eq!(lines[0]["token"], "<hidden>");
            assert_eq!(lines[0]["url"], "/v1/kv/a?token=<hidden>&dc=dc1");
            assert_eq!(lines[1]["@module"], "raft");
            assert_eq!(lines[1]["@origin"], "openraft::core");
            assert_eq!(lines[1]["term"], 3);
            assert_eq!(lines[2]["check_id"], "web", "span fields reach the event");
            assert_eq!(lines[3]["output"], "got <hidden>");
            let mut seen = Vec::new();
            while let Some(l) = mon.try_next() {
                seen.push(String::from_utf8(l.to_vec()).unwrap());
            }
            assert_eq!(seen.len(), 5, "{seen:#?}");
            assert!(
                seen[1].contains("[DEBUG] agent: Only the monitor sees this."),
                "{seen:#?}"
            );
            assert!(seen
                .iter()
                .all(|l| !l.contains("zzz") && !l.contains("a7777777")));
        });
        let stats = handle.stats();
        assert_eq!(
            stats.iter().map(|s| s.sink).collect::<Vec<_>>(),
            vec!["file", "monitor"]
        );
        assert_eq!(stats[0].written, 4);
        assert_eq!(stats[0].dropped, 0);
    }

    #[test]
    fn the_level_is_reloadable() {
        let dir = tempfile::tempdir().unwrap();
        let (layer, handle) = build(&config(dir.path())).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "agent", "Not yet.");
            handle.set_level("DEBUG").unwrap();
            tracing::debug!(target: "agent", "Now.");
            handle.set_level("err").unwrap();
            tracing::warn!(target: "agent", "Not any more.");
            tracing::error!(target: "agent", "Errors still.");
            assert!(handle.flush(Duration::from_secs(5)));
            let msgs: Vec<String> = file_lines(dir.path())
                .iter()
                .map(|l| l["@message"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(msgs, vec!["Now.", "Errors still."]);
            assert!(matches!(handle.set_level("loud"), Err(LogError::Level(_))));
            assert!(handle.monitor("loud", false).is_err());
        });
    }

    #[test]
    fn an_unopenable_log_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "").unwrap();
        let mut cfg = config(dir.path());
        cfg.log_file = Some(dir.path().join("f/x.log"));
        match build(&cfg) {
            Err(LogError::File { path, .. }) => assert!(path.ends_with("f/x.log")),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a file below a file"),
        }
    }
}
