//! Tribune's view of Consul's HTTP API, shared by the agent and every client.
//!
//! - [`types`]: the JSON objects (compat reference §16), field for field.
//! - [`decode`]: Consul's lenient request decoding (case-insensitive keys, `null` as absent).
//! - [`duration`]: Go's `time.Duration` on the wire.
//! - [`client`]: a small typed async client over HTTP, honouring `CONSUL_HTTP_*`.

pub mod client;
pub mod decode;
pub mod duration;
pub mod types;

pub use client::{Client, ClientConfig, Error, QueryMeta};
pub use duration::{format_go_duration, parse_go_duration, GoDuration};
