//! Configuration: Consul's config files and `agent` flags → an immutable [`RuntimeConfig`].
//!
//! Owns reading `-config-file`/`-config-dir`/`-hcl` sources (JSON and HCL), the flags of
//! `tribune agent`, validation, merging and defaults. It must not touch the network, start
//! tasks or log: warnings are returned to the caller, who logs them once logging is up.
//! Nothing here reaches the Raft FSM (DESIGN §3).
//!
//! Read in this order:
//! - `flags`: Go-style flag parsing into [`AgentFlags`].
//! - `source`: files and directories (lexical order, `.json`/`.hcl`), HCL → JSON.
//! - `schema`: the table of every accepted key with its type and doc (the raw layer), and
//!   the walk that reports every problem of a source at once, naming file, key and value.
//! - `definitions`: `service`/`check` definitions, which bind case-insensitively through
//!   `tribune_api::decode` like the HTTP API does.
//! - `merge`: Consul's merge rules (scalars override, lists append, objects deep-merge),
//!   remembering which source set each key.
//! - `builder`: defaults, legacy keys, cross-key rules → [`RuntimeConfig`].
//! - `runtime`: the output types; `Debug` never prints a secret.
//!
//! Merge order (Consul's): `-dev` defaults, list-valued flags, files in command-line
//! order (directories expanded), the other flags, `-hcl` fragments. Reloading is calling
//! [`load`] again with the same flags.

mod builder;
mod definitions;
mod error;
mod flags;
mod host;
mod merge;
mod runtime;
mod schema;
mod source;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, ConfigErrors};
pub use flags::{agent_flags_usage, parse_agent_flags, AgentFlags};
pub use runtime::{
    AclConfig, AclTokens, Addresses, DnsConfig, DnsSoa, GossipConfig, HttpConfig, PluginConfig,
    Ports, RuntimeConfig, Secret, SyslogAddress, SyslogFormat,
};
pub use source::ConfigFormat;

use builder::{Host, Mode};
use std::path::PathBuf;

/// Loads the agent's configuration from its flags: every source read, checked, merged and
/// defaulted. Returns the config and the warnings to log (deprecated keys, ignored
/// settings, skipped files); or every problem found.
pub fn load(flags: &AgentFlags) -> Result<(RuntimeConfig, Vec<String>), ConfigErrors> {
    let mode = Mode {
        dev: flags.dev,
        require_data_dir: !flags.dev,
    };
    builder::build(
        flags,
        &flags.config_paths,
        flags.config_format,
        mode,
        &Host::system(),
    )
    .map_err(ConfigErrors)
}

/// `tribune validate PATH...`: checks files and directories as a non-dev agent would load
/// them, except that `data_dir` may be absent.
pub fn validate_paths(paths: &[PathBuf]) -> Result<(RuntimeConfig, Vec<String>), ConfigErrors> {
    validate_paths_as(paths, None)
}

/// The configuration `tribune agent -dev -node <node_name>` would load, built without
/// reading files or the host: a fixture for other modules' tests.
pub fn dev_config(node_name: &str) -> RuntimeConfig {
    let host = Host {
        hostname: Some(node_name.to_string()),
        ipv4: Vec::new(),
    };
    let flags = AgentFlags {
        dev: true,
        ..AgentFlags::default()
    };
    let mode = Mode {
        dev: true,
        require_data_dir: false,
    };
    match builder::build(&flags, &[], None, mode, &host) {
        Ok((config, _)) => config,
        // Invariant: -dev defaults alone are valid (tested in `tests::dev_config_fixture`),
        // and nothing else is read.
        Err(errors) => panic!("-dev defaults are invalid: {}", ConfigErrors(errors)),
    }
}

/// [`validate_paths`] with `-config-format` given.
pub fn validate_paths_as(
    paths: &[PathBuf],
    format: Option<ConfigFormat>,
) -> Result<(RuntimeConfig, Vec<String>), ConfigErrors> {
    let mode = Mode {
        dev: false,
        require_data_dir: false,
    };
    builder::build(&AgentFlags::default(), paths, format, mode, &Host::system())
        .map_err(ConfigErrors)
}
