//! The WebAssembly plugin host: health checks, tag rewriters and event hooks written in
//! any language that builds a component for the contract in `sdk/wit/v0.1`.
//!
//! Read in this order:
//! - [`manifest`]: the plugin's side: kind, declared capabilities, event subscriptions
//!   (`plugin.toml`, embedded in the component);
//! - [`settings`]: the operator's side: `plugins[]` grants, limits, events;
//! - `pattern`: the allowlists both sides are written in;
//! - `loader`: file → compiled (cached on disk by content hash) → checked (contract
//!   version, imports) → linked `InstancePre`;
//! - `runtime`: the one engine, per-call store state and limits, epoch ticker, workers;
//! - `capability`: the host imports (log, clock, config, http, tcp, kv);
//! - `host`: the registry, the three call paths, quarantine, counters;
//! - [`events`]: what the agent reports to hooks;
//! - `glue`: the one-line call sites of the check runner and the local agent.
//!
//! Owns: loading, sandboxing and calling plugins. Must not touch: HTTP (the API handler
//! reads [`Plugins::list`]), the catalog (the agent hands in a [`KvSource`]).

mod bindings;
mod capability;
pub mod events;
mod glue;
mod host;
mod loader;
pub mod manifest;
mod pattern;
mod runtime;
pub mod settings;

pub use capability::KvSource;
pub use events::{Event, Health, MemberView, ServiceView};
pub use glue::CheckProbe;
pub use host::{
    default_cache_dir, CallInput, CheckOutcome, CheckRequest, CheckStatus, Counters, HostOptions,
    PluginStatus, Plugins, QUARANTINE_AFTER,
};
pub use loader::{Analysis, WIT_PACKAGE, WIT_VERSION};
pub use manifest::{append_stamps, Kind};
pub use runtime::OUTPUT_CAP;
pub use settings::{check_config, ConfigProblem};

/// Compiles and analyses a component file without loading it (`tribune plugin inspect`):
/// kind, contract version, SDK, manifest, imports and exports, and every reason it would
/// be refused. Uses the compilation cache in `cache_dir`.
pub fn inspect(
    path: &std::path::Path,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<Analysis, String> {
    let wasm = loader::read(path)?;
    let (engine, _) = runtime::engine(&runtime::EngineOptions {
        cache_dir,
        enforce_limits: true,
    })?;
    let (_, analysis) = loader::analyze(&engine, &wasm)?;
    Ok(analysis)
}
