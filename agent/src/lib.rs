//! Tribune: a service-discovery, health-checking and configuration agent that speaks
//! Consul's HTTP API, CLI and config files.
//!
//! Read in this order (Consul's vocabulary, so Consul's docs are a map of the code):
//! - [`structs`]: internal types, the versioned Raft commands, Consul's client-visible strings.
//! - [`state`]: the in-memory state store, written only by the Raft FSM, with fine-grained
//!   watches so a blocking query wakes only for the data it returned.
//! - [`raft`]: openraft glue: the write-ahead log store (fdatasync before ack), the state machine and
//!   its snapshots, the network.
//! - [`rpc`]: the server's endpoints: writes through Raft, reads with a consistency mode.
//! - [`local`]: services and checks owned by this agent, persisted, synced by anti-entropy.
//! - [`checks`]: HTTP, TCP, TTL, gRPC and script checks with flap damping.
//! - [`gossip`]: the LAN/WAN member pools: foca (SWIM) with encrypted UDP+TCP transport,
//!   keyring, member metadata, user events, leave and failure detection.
//! - [`plugins`]: the sandboxed WebAssembly host for check, tag-rewrite and event-hook plugins.
//! - [`http`]: Consul's `/v1/` API: one route table, token resolution, blocking queries.
//! - [`filter`]: the `?filter=` expression language.
//! - [`acl`]: token resolution and the authorizer every handler asks.
//! - [`config`]: files and flags → an immutable `RuntimeConfig`, every error at once.
//! - [`agent`]: startup as a script, one shutdown tree, reload.
//! - [`cli`]: the `tribune` command line (the daemon and the client verbs).
//! - [`logging`]: tracing setup.
//!
//! Dependency rules: `state` knows only `structs`; neither `state` nor the FSM reads config;
//! `http` goes through `rpc`, never to raft or state directly.

pub mod acl;
pub mod agent;
pub mod checks;
pub mod cli;
pub mod config;
pub mod filter;
pub mod gossip;
pub mod http;
pub mod local;
pub mod logging;
pub mod plugins;
pub mod raft;
pub mod rpc;
pub mod state;
pub mod structs;
