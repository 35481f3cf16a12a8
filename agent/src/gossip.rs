//! Gossip: the LAN pool (every agent) and the WAN pool (servers, members named
//! `<node>.<dc>`), with the same code. foca (SWIM) is the membership core, driven sans-IO;
//! this module supplies the rest of what Consul gets from serf and memberlist:
//!
//! - transport: UDP datagrams for foca, a TCP listener on the same port for push-pull state
//!   exchange with joiners (and periodically), keyring queries and oversized messages;
//! - encryption: AES-GCM keyed by the primary key, every installed key tried on receipt,
//!   in memberlist's layout (compat §12.2), `encrypt_verify_incoming`/`_outgoing`;
//! - the keyring: install/use/remove/list fanned out to every member, persisted in
//!   `serf/local.keyring` (or `remote.keyring`) with Consul's file-wins rule;
//! - member metadata (role, datacenter, node id, RPC/HTTP addresses, version,
//!   bootstrap_expect, segment), versioned and spread as a custom broadcast;
//! - user events (Lamport time, de-duplicated) and graceful leave (`left`, not `failed`),
//!   force-leave, and reaping after `reconnect_timeout`.
//!
//! What it must not touch: raft, the catalog, HTTP. The leader turns [`GossipEvent`]s into
//! catalog changes elsewhere. Keys never reach a log line or an error text.
//!
//! Read `engine` for the protocol logic (no IO, simulated in tests), `runtime` for the
//! tokio driver, `wire` for the formats and `keyring` for the crypto.

mod engine;
mod keyring;
mod runtime;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use keyring::{keygen, validate_key, KeyError, Keyring};

/// The environment variable that shortens `reconnect_timeout` of the LAN pool below
/// Consul's 8-minute minimum. **For tests only** (the integration suites reap failed members
/// in seconds); users set `reconnect_timeout` in the config, which refuses less than `8m`.
pub const TEST_RECONNECT_TIMEOUT_ENV: &str = "TRIBUNE_TEST_RECONNECT_TIMEOUT";

/// [`TEST_RECONNECT_TIMEOUT_ENV`] as a Go duration (`"5s"`), if set and not empty.
fn test_reconnect_timeout() -> Result<Option<Duration>, GossipError> {
    let Some(v) = std::env::var_os(TEST_RECONNECT_TIMEOUT_ENV).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let v = v.to_string_lossy();
    match tribune_api::parse_go_duration(&v) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        Ok(_) => Err(GossipError::Config(format!(
            "{TEST_RECONNECT_TIMEOUT_ENV}={v:?}: the timeout must be above zero"
        ))),
        Err(e) => Err(GossipError::Config(format!(
            "{TEST_RECONNECT_TIMEOUT_ENV}={v:?} is not a duration: {e}"
        ))),
    }
}

/// Which gossip pool an instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Lan,
    Wan,
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pool::Lan => "lan",
            Pool::Wan => "wan",
        })
    }
}

/// How one gossip pool runs. [`GossipConfig::lan`] and [`GossipConfig::wan`] give Consul's
/// defaults; the agent overrides from `gossip_lan`/`gossip_wan` and the other config keys.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    pub pool: Pool,
    /// Member name: the node name in the LAN pool, `<node>.<dc>` in the WAN pool.
    pub name: String,
    /// Where the UDP socket and the TCP listener bind (port 0 picks one for both).
    pub bind: SocketAddr,
    /// The address other members use. An unspecified IP or port 0 take the bound ones.
    pub advertise: SocketAddr,
    pub meta: MemberMeta,
    /// From `encrypt`; `None` runs unencrypted (unless the keyring file has keys).
    pub keyring: Option<Keyring>,
    /// `encrypt_verify_incoming`: refuse plaintext when a keyring is present.
    pub verify_incoming: bool,
    /// `encrypt_verify_outgoing`: encrypt what is sent when a keyring is present.
    pub verify_outgoing: bool,
    /// `<data_dir>/serf/local.keyring` (LAN) or `remote.keyring` (WAN); `None` when
    /// `disable_keyring_file` or `-dev`. Once written, it wins over `keyring`.
    pub keyring_file: Option<PathBuf>,
    /// `gossip_*.probe_interval` (1 s LAN, 5 s WAN).
    pub probe_interval: Duration,
    /// `gossip_*.probe_timeout` (500 ms LAN, 3 s WAN); below `probe_interval`.
    pub probe_timeout: Duration,
    /// `gossip_*.suspicion_mult` (4 LAN, 6 WAN): suspicion lasts
    /// `mult × probe_interval × max(1, log10(members))`.
    pub suspicion_mult: u32,
    /// `gossip_*.retransmit_mult` (4): each update is sent `mult × ceil(log10(n+1))` times.
    pub retransmit_mult: u32,
    /// `gossip_*.gossip_interval` (200 ms LAN, 500 ms WAN).
    pub gossip_interval: Duration,
    /// `gossip_*.gossip_nodes` (3 LAN, 4 WAN).
    pub gossip_nodes: usize,
    /// Full state exchange with one random member (30 s LAN, 60 s WAN; slower past 32).
    pub push_pull_interval: Duration,
    /// `reconnect_timeout` / `reconnect_timeout_wan` (72 h): failed members are reaped after.
    pub reconnect_timeout: Duration,
    /// Left members are reaped after this (24 h, serf's tombstone timeout).
    pub tombstone_timeout: Duration,
}

impl GossipConfig {
    /// Consul's LAN defaults.
    pub fn lan(name: impl Into<String>, bind: SocketAddr, meta: MemberMeta) -> GossipConfig {
        GossipConfig {
            pool: Pool::Lan,
            name: name.into(),
            bind,
            advertise: bind,
            meta,
            keyring: None,
            verify_incoming: true,
            verify_outgoing: true,
            keyring_file: None,
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            suspicion_mult: 4,
            retransmit_mult: 4,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            push_pull_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(72 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
        }
    }

    /// Consul's WAN defaults (servers only; name is `<node>.<dc>`).
    pub fn wan(name: impl Into<String>, bind: SocketAddr, meta: MemberMeta) -> GossipConfig {
        GossipConfig {
            pool: Pool::Wan,
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_mult: 6,
            gossip_interval: Duration::from_millis(500),
            gossip_nodes: 4,
            push_pull_interval: Duration::from_secs(60),
            ..GossipConfig::lan(name, bind, meta)
        }
    }
}

/// A server or a client agent (Consul's `role` tag: `consul` / `node`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Role {
    Server,
    #[default]
    Client,
}

/// What a member tells the others about itself (at most 512 bytes encoded).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberMeta {
    pub role: Role,
    pub datacenter: String,
    /// The node's UUID (`id` tag).
    pub node_id: String,
    /// Server RPC address (`port` tag); servers only.
    pub rpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    /// The `build` tag: `<consul version>:<our build>`, e.g. `1.17.0:tribune-0.1.0`.
    pub version: String,
    /// `bootstrap_expect` (`expect` tag); 0 when unset.
    pub bootstrap_expect: u32,
    pub segment: String,
}

/// Consul's member status codes (`/v1/agent/members` `Status`; 0 = none is never used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    Alive = 1,
    Leaving = 2,
    Left = 3,
    Failed = 4,
}

impl MemberStatus {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The word `consul members` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }
}

/// One member of a pool as this agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Gossip address (IP and serf port).
    pub addr: SocketAddr,
    pub meta: MemberMeta,
    pub status: MemberStatus,
}

impl Member {
    /// Consul's serf tags for `/v1/agent/members` (compat §12.1).
    pub fn tags(&self) -> BTreeMap<String, String> {
        let m = &self.meta;
        let server = m.role == Role::Server;
        let mut t = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            t.insert(k.to_string(), v);
        };
        put("role", if server { "consul" } else { "node" }.into());
        put("dc", m.datacenter.clone());
        put("segment", m.segment.clone());
        put("id", m.node_id.clone());
        put("vsn", "2".into());
        put("vsn_min", "2".into());
        put("vsn_max", "3".into());
        put("build", m.version.clone());
        if server {
            if let Some(rpc) = m.rpc_addr {
                put("port", rpc.port().to_string());
            }
            put("raft_vsn", "3".into());
            if m.bootstrap_expect > 0 {
                put("expect", m.bootstrap_expect.to_string());
            }
        }
        t
    }
}

/// What happened in the pool, in the order this agent learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipEvent {
    /// A member is alive (new, or back after failing or leaving).
    Joined(Member),
    /// Its metadata or address changed.
    Updated(Member),
    Failed(Member),
    /// Left gracefully, or was force-left after failing.
    Left(Member),
    /// Forgotten after `reconnect_timeout` (failed) or the tombstone timeout (left).
    Reaped(Member),
    /// A user event (`consul event`); delivered once per agent, the firing one included.
    User(UserEvent),
}

/// Consul's user event (compat §9.1, §16.7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserEvent {
    pub id: String,
    pub name: String,
    pub payload: Vec<u8>,
    pub node_filter: String,
    pub service_filter: String,
    pub tag_filter: String,
    /// Lamport time, assigned by the firing agent.
    pub ltime: u64,
}

/// serf's limit on a user event's name plus payload.
pub const USER_EVENT_SIZE_LIMIT: usize = 512;

/// The result of a keyring operation across the pool (compat §12.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyringSummary {
    pub pool: Option<Pool>,
    /// Every key → how many members have it installed. Secrets: never log.
    pub keys: BTreeMap<String, usize>,
    /// Primary key → how many members use it.
    pub primary_keys: BTreeMap<String, usize>,
    /// Members asked (alive ones, this agent included).
    pub num_nodes: usize,
    /// Members that answered, with or without an error.
    pub num_resp: usize,
    pub num_err: usize,
    /// Member name → its error.
    pub messages: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("failed to bind the gossip {pool} listener on {addr}: {source}")]
    Bind {
        pool: Pool,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid gossip configuration: {0}")]
    Config(String),
    /// A key was refused; the text never contains it.
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("{0}")]
    KeyringFile(String),
    #[error("gossip encryption is not enabled")]
    EncryptionDisabled,
    /// A keyring operation some members failed (`<n>/<m> nodes reported failure`).
    #[error("{message}")]
    Keyring {
        message: String,
        summary: Box<KeyringSummary>,
    },
    /// Every address failed; one `Error joining address '<addr>': <why>` per address.
    #[error("{0}")]
    Join(String),
    #[error("No node found with name '{0}'")]
    NoSuchMember(String),
    #[error("node metadata is {0} bytes, over the limit of 512")]
    MetaTooLarge(usize),
    #[error(
        "user event exceeds configured limit of {USER_EVENT_SIZE_LIMIT} bytes before encoding"
    )]
    EventTooLarge,
    #[error("the gossip pool is shut down")]
    Shutdown,
}

/// Traffic counters of one pool since it started (payload bytes, without IP/UDP/TCP
/// headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipStats {
    pub udp_sent: u64,
    pub udp_sent_bytes: u64,
    pub udp_received: u64,
    pub udp_received_bytes: u64,
    pub tcp_sent_bytes: u64,
    pub tcp_received_bytes: u64,
}

/// A running gossip pool. Cheap to clone; every clone drives the same pool.
#[derive(Clone)]
pub struct Gossip {
    inner: Arc<runtime::Inner>,
}

impl fmt::Debug for Gossip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gossip")
            .field("pool", &self.inner.pool)
            .field("name", &self.inner.name)
            .field("addr", &self.inner.addr)
            .finish()
    }
}

impl Gossip {
    /// Binds the sockets, loads the keyring and starts the pool (alone until [`join`]).
    /// Events arrive on the returned channel; cancelling `shutdown` stops the pool at once
    /// without leaving (call [`leave`] first for a graceful exit).
    ///
    /// [`join`]: Gossip::join
    /// [`leave`]: Gossip::leave
    pub async fn start(
        mut cfg: GossipConfig,
        shutdown: CancellationToken,
    ) -> Result<(Gossip, mpsc::Receiver<GossipEvent>), GossipError> {
        if cfg.pool == Pool::Lan {
            if let Some(d) = test_reconnect_timeout()? {
                tracing::warn!(target: "gossip", timeout = ?d,
                    "TRIBUNE_TEST_RECONNECT_TIMEOUT is set: failed LAN members are reaped after this test-only timeout.");
                cfg.reconnect_timeout = d;
            }
        }
        let (inner, events) = runtime::start(cfg, shutdown).await?;
        Ok((Gossip { inner }, events))
    }

    /// Joins the pool through these addresses (`host`, `host:port`, `[v6]:port`; the
    /// default port is this pool's). Returns how many answered; an error only when none did.
    pub async fn join(&self, addrs: &[String]) -> Result<usize, GossipError> {
        runtime::join(&self.inner, addrs).await
    }

    /// Every member whose metadata is known, this one included, failed and left members
    /// until reaped; sorted by name.
    pub fn members(&self) -> Vec<Member> {
        self.inner.view.read().members.clone()
    }

    /// This member.
    pub fn local(&self) -> Member {
        self.inner.view.read().local.clone()
    }

    /// The advertised gossip address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    pub fn pool(&self) -> Pool {
        self.inner.pool
    }

    /// Traffic counters since start.
    pub fn stats(&self) -> GossipStats {
        self.inner.stats()
    }

    /// Whether gossip is encrypted (`consul info` `serf_lan.encrypted`).
    pub fn encrypted(&self) -> bool {
        self.inner.keyring.read().is_some()
    }

    /// Leaves gracefully (others see `left`), then stops the pool. Bounded by `timeout`.
    pub async fn leave(&self, timeout: Duration) -> Result<(), GossipError> {
        runtime::leave(&self.inner, timeout).await
    }

    /// Consul's `force-leave`: a failed member becomes `left` on every agent. No effect on
    /// an alive member (it would refute); an unknown name is an error.
    pub async fn force_leave(&self, name: &str) -> Result<(), GossipError> {
        runtime::force_leave(&self.inner, name).await
    }

    /// Sends a user event to every member (this one included), each delivering it once.
    /// `ltime` is assigned here.
    pub async fn fire_user_event(&self, ev: UserEvent) -> Result<(), GossipError> {
        if ev.name.len() + ev.payload.len() > USER_EVENT_SIZE_LIMIT {
            return Err(GossipError::EventTooLarge);
        }
        runtime::fire_event(&self.inner, ev).await
    }

    /// `consul keyring -list`: every alive member's keys, counted.
    pub async fn keyring_list(&self) -> Result<KeyringSummary, GossipError> {
        runtime::keyring_op(&self.inner, wire::KeyringOp::List).await
    }

    /// `consul keyring -install`: adds a key on every member (it decrypts at once).
    pub async fn keyring_install(&self, key: &str) -> Result<KeyringSummary, GossipError> {
        runtime::keyring_op(
            &self.inner,
            wire::KeyringOp::Install(key.trim().to_string()),
        )
        .await
    }

    /// `consul keyring -use`: makes an installed key the primary on every member.
    pub async fn keyring_use(&self, key: &str) -> Result<KeyringSummary, GossipError> {
        runtime::keyring_op(&self.inner, wire::KeyringOp::Use(key.trim().to_string())).await
    }

    /// `consul keyring -remove`: removes a key from every member; never the primary.
    pub async fn keyring_remove(&self, key: &str) -> Result<KeyringSummary, GossipError> {
        runtime::keyring_op(&self.inner, wire::KeyringOp::Remove(key.trim().to_string())).await
    }

    /// Replaces this member's metadata; the others see [`GossipEvent::Updated`].
    pub fn update_meta(&self, meta: MemberMeta) -> Result<(), GossipError> {
        runtime::check_meta(&meta)?;
        self.inner
            .cmd
            .send(runtime::Cmd::UpdateMeta(meta))
            .map_err(|_| GossipError::Shutdown)
    }

    /// Resolves when the pool has stopped (after a leave or the shutdown token).
    pub async fn stopped(&self) {
        self.inner.stopped.cancelled().await;
    }

    /// Stops driving the pool for `d`, as a SIGSTOP would (tests only).
    #[cfg(test)]
    pub(crate) fn pause(&self, d: Duration) {
        let _ = self.inner.cmd.send(runtime::Cmd::Pause(d));
    }
}
