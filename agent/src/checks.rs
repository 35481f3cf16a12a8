//! Health checks: validates check definitions the way Consul does and runs them.
//!
//! Owns the check runner only. It never touches the catalog or the local state: every
//! result leaves as a [`CheckUpdate`] on a channel, and the caller (the agent's local
//! state) stores it and decides when to sync. The caller also owns the initial status of
//! a check (see [`initial_status`]), the `DeregisterCriticalServiceAfter` reaper and the
//! persistence of TTL state.
//!
//! Read in this order:
//! - this file: the public face ([`validate`], [`Runner`], [`Status`], [`CheckUpdate`]);
//! - `checks/validate.rs`: Consul's validation rules and their exact messages;
//! - `checks/damping.rs`: flap damping (`SuccessBeforePassing`, `FailuresBeforeWarning`,
//!   `FailuresBeforeCritical`), a pure state machine;
//! - `checks/runner.rs`: one Tokio task per check, the interval loop, TTL timers;
//! - `checks/http.rs`, `checks/tcp.rs` (TCP and UDP), `checks/grpc.rs`, `checks/script.rs`:
//!   one probe per check type, each returning a status and Consul's output text.
//!
//! Time and randomness are injected ([`Runner::with_clock`]): production uses Tokio's clock
//! and a random first-run stagger, tests a [`ManualClock`] and a fixed stagger, so nothing
//! here needs a real sleep to test. `checks/clock.rs` holds both clocks.

use std::fmt;
use std::str::FromStr;

use tribune_api::types::CheckDefinition;

mod clock;
mod damping;
mod grpc;
mod http;
mod runner;
pub(crate) use runner::cap_ttl_output;
mod script;
mod tcp;
#[cfg(test)]
mod testutil;
mod validate;

pub use clock::{Clock, ManualClock, Sleep, TokioClock};
pub use runner::Runner;
pub use validate::validate;

/// Captured output is capped at this many bytes unless configured otherwise
/// (Consul's `check_output_max_size` default).
pub const DEFAULT_OUTPUT_MAX_SIZE: usize = 4096;

/// The status of a check. Consul stores only these three (`maintenance` is an aggregate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Passing,
    Warning,
    Critical,
}

impl Status {
    /// Consul's spelling: `"passing"`, `"warning"`, `"critical"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of `passing`, `warning`, `critical`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid check status {0:?}: must be passing, warning or critical")]
pub struct ParseStatusError(pub String);

impl FromStr for Status {
    type Err = ParseStatusError;

    /// Exact, lowercase match, as Consul's `ValidStatus`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "passing" => Ok(Status::Passing),
            "warning" => Ok(Status::Warning),
            "critical" => Ok(Status::Critical),
            other => Err(ParseStatusError(other.to_string())),
        }
    }
}

/// The status a newly registered check starts with: the definition's `Status` when it is
/// valid, otherwise `critical` (Consul's default). The runner never emits this itself, so
/// re-adding a check keeps whatever status the caller already stores.
pub fn initial_status(def: &CheckDefinition) -> Status {
    def.status.parse().unwrap_or(Status::Critical)
}

/// A check result worth storing: emitted only when the status or the output changed since
/// the last update for that check (output-only changes included; the caller rate-limits
/// syncing them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckUpdate {
    pub check_id: String,
    pub status: Status,
    pub output: String,
}

/// Agent-wide settings for the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerOptions {
    /// `enable_script_checks`: script checks allowed from anywhere, the HTTP API included.
    pub enable_script_checks: bool,
    /// `enable_local_script_checks`: script checks allowed from local config files only.
    pub enable_local_script_checks: bool,
    /// `check_output_max_size`: cap on captured output in bytes; 0 means the default 4096.
    /// A check's own `OutputMaxSize` may lower it, never raise it.
    pub output_max_size: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            enable_script_checks: false,
            enable_local_script_checks: false,
            output_max_size: DEFAULT_OUTPUT_MAX_SIZE,
        }
    }
}

/// The kind of a check, chosen from its definition in Consul's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckType {
    Http,
    Tcp,
    Ttl,
    Grpc,
    Script,
    Alias,
    Udp,
    /// Tribune's extension: a check run by a WASM plugin.
    Wasm,
}

impl CheckType {
    /// The `Type` string Consul reports in `HealthCheck` objects.
    pub fn type_str(&self) -> &'static str {
        match self {
            CheckType::Http => "http",
            CheckType::Tcp => "tcp",
            CheckType::Ttl => "ttl",
            CheckType::Grpc => "grpc",
            CheckType::Script => "script",
            CheckType::Alias => "alias",
            CheckType::Udp => "udp",
            CheckType::Wasm => "wasm",
        }
    }
}

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_str())
    }
}

/// Why a check was refused. The texts are Consul's, byte for byte, because clients match
/// them; the HTTP layer adds `Invalid check: ` where Consul does and picks the status code
/// (`NoTtl` is a `500` in Consul, the others `400`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The definition breaks one of Consul's rules; the text is Consul's message.
    #[error("{0}")]
    Invalid(String),
    /// A script check arrived over the HTTP API without `enable_script_checks`.
    #[error(
        "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true"
    )]
    ScriptsDisabled,
    /// A script check came from a config file without `enable_local_script_checks`
    /// (or `enable_script_checks`).
    #[error(
        "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"
    )]
    LocalScriptsDisabled,
    /// A TTL update for a check that is unknown or not a TTL check. Spring Cloud Consul and
    /// others match this text to re-register.
    #[error("CheckID {0:?} does not have associated TTL")]
    NoTtl(String),
}

/// What one probe run found, before flap damping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) status: Status,
    pub(crate) output: String,
}

impl Outcome {
    pub(crate) fn passing(output: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Passing,
            output: output.into(),
        }
    }
    pub(crate) fn warning(output: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Warning,
            output: output.into(),
        }
    }
    pub(crate) fn critical(output: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Critical,
            output: output.into(),
        }
    }
}

/// Go's rendering of an OS error: `connection refused` rather than Rust's
/// `Connection refused (os error 111)`. Outputs are read by people used to Consul's.
pub(crate) fn io_error_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a char boundary.
pub(crate) fn truncate_at_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_consul_spelling() {
        for s in [Status::Passing, Status::Warning, Status::Critical] {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
            assert_eq!(s.to_string(), s.as_str());
        }
        assert!("Passing".parse::<Status>().is_err());
        assert!("maintenance".parse::<Status>().is_err());
        assert!("".parse::<Status>().is_err());
    }

    #[test]
    fn type_strings_are_consuls() {
        let all = [
            (CheckType::Http, "http"),
            (CheckType::Tcp, "tcp"),
            (CheckType::Ttl, "ttl"),
            (CheckType::Grpc, "grpc"),
            (CheckType::Script, "script"),
            (CheckType::Alias, "alias"),
            (CheckType::Udp, "udp"),
            (CheckType::Wasm, "wasm"),
        ];
        for (t, s) in all {
            assert_eq!(t.type_str(), s);
        }
    }

    #[test]
    fn error_texts_are_consuls() {
        assert_eq!(
            CheckError::ScriptsDisabled.to_string(),
            "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true"
        );
        assert_eq!(
            CheckError::LocalScriptsDisabled.to_string(),
            "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"
        );
        assert_eq!(
            CheckError::NoTtl("service:web".into()).to_string(),
            "CheckID \"service:web\" does not have associated TTL"
        );
        assert_eq!(CheckError::Invalid("x y".into()).to_string(), "x y");
    }

    #[test]
    fn initial_status_defaults_to_critical() {
        let mut def = CheckDefinition::default();
        assert_eq!(initial_status(&def), Status::Critical);
        def.status = "passing".into();
        assert_eq!(initial_status(&def), Status::Passing);
        def.status = "bogus".into();
        assert_eq!(initial_status(&def), Status::Critical);
    }

    #[test]
    fn io_errors_read_like_go() {
        let err = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_error_text(&err), "connection refused");
        let err = std::io::Error::other("Custom thing");
        assert_eq!(io_error_text(&err), "custom thing");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_at_boundary("héllo", 2), "h");
        assert_eq!(truncate_at_boundary("héllo", 3), "hé");
        assert_eq!(truncate_at_boundary("abc", 10), "abc");
    }
}
