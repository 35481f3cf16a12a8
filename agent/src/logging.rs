//! Logging: `tracing` events to stderr, as text or JSON, with a reloadable level.
//!
//! Every event has a fixed subsystem target (`agent`, `raft`, `http`, `checks`, ...) and
//! fields. Secrets never enter an event. Syslog and rotated files attach here.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the level of the running subscriber (`log_level` is reloadable).
pub struct Handle {
    filter: reload::Handle<EnvFilter, Registry>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid log level {0:?}")]
    Level(String),
    #[error("logging is already initialised")]
    AlreadyInitialised,
}

fn filter_for(level: &str) -> Result<EnvFilter, LogError> {
    let lvl = match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "" | "info" => "info",
        "warn" | "warning" => "warn",
        "err" | "error" => "error",
        other => return Err(LogError::Level(other.to_string())),
    };
    // Our own targets at the chosen level; dependencies one step quieter.
    let quieter = match lvl {
        "trace" => "info",
        _ => "warn",
    };
    EnvFilter::try_new(format!(
        "{quieter},agent={lvl},raft={lvl},http={lvl},checks={lvl},gossip={lvl},plugins={lvl},acl={lvl},dns={lvl},rpc={lvl},tribune_agent={lvl}"
    ))
    .map_err(|_| LogError::Level(level.to_string()))
}

impl Handle {
    pub fn set_level(&self, level: &str) -> Result<(), LogError> {
        let f = filter_for(level)?;
        self.filter
            .reload(f)
            .map_err(|_| LogError::AlreadyInitialised)
    }
}

/// Installs the global subscriber for the agent.
pub fn init(cfg: &crate::config::RuntimeConfig) -> Result<Handle, LogError> {
    let (filter, handle) = reload::Layer::new(filter_for(&cfg.log_level)?);
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(true);
    let res = if cfg.log_json {
        registry.with(fmt.json().flatten_event(true)).try_init()
    } else {
        registry.with(fmt).try_init()
    };
    res.map_err(|_| LogError::AlreadyInitialised)?;
    Ok(Handle { filter: handle })
}
