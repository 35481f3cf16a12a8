//! Harness for Tribune's multi-process integration suites.
//!
//! Every suite in `tests/tests/*.rs` starts real programs on loopback: the
//! `tribune` binary itself and the third-party tools that talk to it
//! (VictoriaMetrics or Prometheus, node_exporter, ...). Nothing listens on a
//! fixed port, every program gets its own temporary directory, and every
//! process is killed when its handle drops, also when a test panics.
//!
//! Read in this order:
//! - [`process`]: free loopback ports, locating binaries, the [`Spawned`]
//!   guard that owns a child process and its output files;
//! - [`http`]: one HTTP client setup and the [`Reply`] every helper returns;
//! - [`wait`]: [`wait_until`], the only way a suite waits for something;
//! - [`agent`]: [`Agent`], a running `tribune agent` (dev mode or from a
//!   config directory) with `http_get`, `http_put` and blocking-query helpers;
//! - [`stub`]: [`StatusServer`], a tiny HTTP server whose status a test sets
//!   (the target of health checks);
//! - [`scrape`]: node_exporter and the Prometheus-compatible scrapers that
//!   discover targets through `consul_sd_configs`.
//! - [`netns`]: [`netns::Lab`], network namespaces joined by a bridge, where
//!   a suite cuts one node off the others (partition tests; needs root).
//! - [`rsyslog`]: a private instance of Debian's rsyslogd with the seed's
//!   `local0.*` rule, for the logging suite.
//!
//! The `tribune` binary is found through `TRIBUNE_BIN` (set by
//! `scripts/test.sh` after it builds the binary) or next to the test
//! executable in the cargo target directory.

pub mod agent;
pub mod cluster;
pub mod http;
pub mod netns;
pub mod process;
pub mod rsyslog;
pub mod scrape;
pub mod stub;
pub mod wait;

pub use agent::{Agent, AgentPorts};
pub use http::Reply;
pub use process::Spawned;
pub use scrape::{NodeExporter, Scraper, ScraperKind};
pub use stub::StatusServer;
pub use wait::wait_until;

/// What to run when a program a suite needs is missing from this machine.
pub const INSTALL_HINT: &str =
    "run scripts/install-test-deps.sh (as root) to install the programs the test suites need";

/// Unwraps a harness result, panicking with the whole error chain (`{err:#}`)
/// so the failure message says what was asked and what came back.
#[track_caller]
pub fn must<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|err| panic!("{err:#}"))
}
