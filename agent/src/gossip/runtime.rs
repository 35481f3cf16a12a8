//! The tokio driver of the gossip engine: one task owns the engine and the UDP socket and
//! feeds it datagrams, timers and commands (datagrams first, so a member that was paused
//! reads the acks waiting in its socket before its overdue timers judge anyone); one task
//! accepts TCP connections (push-pull, keyring queries, oversized packets); short tasks do
//! outgoing TCP work and report back through the command channel.

use std::collections::{BTreeMap, HashMap};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::engine::{Action, Core, ForceLeave, Params, MAX_META};
use super::keyring::{self, Keyring};
use super::wire::{
    error_frame, read_frame, write_all, Crypto, KeyringOp, KeyringReply, MetaItem, NodeId,
    PushPull, TcpMsg, WireError, MAX_UDP,
};
use super::{
    GossipConfig, GossipError, GossipEvent, GossipStats, KeyringSummary, Member, MemberMeta,
    MemberStatus, Pool, UserEvent,
};

/// Deadline of one TCP exchange (memberlist's TCPTimeout).
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of one keyring query to one member.
const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer whose messages fail to decrypt is warned about at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Capacity of the public event channel (a forwarder task buffers beyond it, so a slow
/// consumer never stalls failure detection).
const EVENT_CAPACITY: usize = 1024;

/// Requests to the task that owns the engine.
pub(crate) enum Cmd {
    /// A gossip payload that came over TCP, decrypted.
    Packet(Vec<u8>),
    Liveness {
        id: NodeId,
        refused: bool,
    },
    BuildPushPull {
        join: bool,
        reply: oneshot::Sender<PushPull>,
    },
    ServePushPull {
        req: PushPull,
        reply: oneshot::Sender<PushPull>,
    },
    PushPullReply {
        reply: PushPull,
        join: bool,
        metas: oneshot::Sender<Vec<MetaItem>>,
    },
    Metas(Vec<MetaItem>),
    FireEvent {
        ev: UserEvent,
        done: oneshot::Sender<Result<(), usize>>,
    },
    UpdateMeta(MemberMeta),
    ForceLeave {
        name: String,
        done: oneshot::Sender<ForceLeave>,
    },
    Leave {
        timeout: Duration,
        done: oneshot::Sender<()>,
    },
    #[cfg(test)]
    Pause(Duration),
}

pub(crate) struct View {
    pub(crate) members: Vec<Member>,
    pub(crate) local: Member,
}

/// What every task of one pool shares.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    bind_port: u16,
    pub(crate) cmd: mpsc::UnboundedSender<Cmd>,
    pub(crate) view: RwLock<View>,
    pub(crate) keyring: RwLock<Option<Keyring>>,
    keyring_file: Option<PathBuf>,
    verify_incoming: bool,
    verify_outgoing: bool,
    probe_timeout: Duration,
    /// Cancelled when the engine task has stopped.
    pub(crate) stopped: CancellationToken,
    warned: Mutex<HashMap<(IpAddr, String), Instant>>,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    udp_sent: AtomicU64,
    udp_sent_bytes: AtomicU64,
    udp_received: AtomicU64,
    udp_received_bytes: AtomicU64,
    tcp_sent_bytes: AtomicU64,
    tcp_received_bytes: AtomicU64,
}

fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

impl Inner {
    fn crypto<'a>(&self, ring: &'a Option<Keyring>) -> Crypto<'a> {
        Crypto {
            keyring: ring.as_ref(),
            verify_incoming: self.verify_incoming,
            verify_outgoing: self.verify_outgoing,
        }
    }

    fn frame(&self, msg: &TcpMsg) -> Vec<u8> {
        let ring = self.keyring.read();
        let f = self.crypto(&ring).frame(msg);
        add(&self.stats.tcp_sent_bytes, f.len());
        f
    }

    pub(crate) fn stats(&self) -> GossipStats {
        let c = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GossipStats {
            udp_sent: get(&c.udp_sent),
            udp_sent_bytes: get(&c.udp_sent_bytes),
            udp_received: get(&c.udp_received),
            udp_received_bytes: get(&c.udp_received_bytes),
            tcp_sent_bytes: get(&c.tcp_sent_bytes),
            tcp_received_bytes: get(&c.tcp_received_bytes),
        }
    }

    async fn read_msg(&self, stream: &mut TcpStream) -> Result<TcpMsg, WireError> {
        let (header, body) = tokio::time::timeout(TCP_TIMEOUT, read_frame(stream))
            .await
            .map_err(|_| WireError::Timeout)??;
        add(&self.stats.tcp_received_bytes, body.len() + 5);
        let ring = self.keyring.read();
        self.crypto(&ring).unframe(header, &body)
    }

    /// Logs a refused message: loudly (rate-limited per peer) when keys differ.
    fn rejected(&self, peer: SocketAddr, what: &str, e: &WireError) {
        if !e.is_key_mismatch() {
            debug!(target: "gossip", pool = %self.pool, peer = %peer, error = %e, "Ignored a malformed gossip {what}.");
            return;
        }
        let now = Instant::now();
        let key = (peer.ip(), e.to_string());
        let mut warned = self.warned.lock();
        if warned.get(&key).is_some_and(|t| now < *t + WARN_EVERY) {
            return;
        }
        if warned.len() > 1024 {
            warned.clear();
        }
        warned.insert(key, now);
        warn!(target: "gossip", pool = %self.pool, peer = %peer, error = %e,
            "Rejected a gossip {what}: the peer's encryption key or settings do not match this agent's.");
    }

    /// Applies a keyring operation to this member's keyring and persists it.
    fn local_keyring_op(&self, op: &KeyringOp) -> KeyringReply {
        let mut guard = self.keyring.write();
        let Some(ring) = guard.as_mut() else {
            return KeyringReply {
                error: Some(GossipError::EncryptionDisabled.to_string()),
                ..KeyringReply::default()
            };
        };
        let (res, done) = match op {
            KeyringOp::List => (Ok(()), None),
            KeyringOp::Install(k) => (ring.install(k), Some("Installed a gossip encryption key.")),
            KeyringOp::Use(k) => (
                ring.use_key(k),
                Some("Changed the primary gossip encryption key."),
            ),
            KeyringOp::Remove(k) => (ring.remove(k), Some("Removed a gossip encryption key.")),
        };
        let mut error = res.err().map(|e| e.to_string());
        if let (None, Some(msg)) = (&error, done) {
            info!(target: "gossip", pool = %self.pool, keys = ring.keys().len(), "{msg}");
            if let Some(path) = &self.keyring_file {
                if let Err(e) = keyring::save_file(path, ring) {
                    warn!(target: "gossip", pool = %self.pool, path = %path.display(), error = %e, "Could not persist the keyring.");
                    error = Some(format!("failed to persist the keyring: {e}"));
                }
            }
        }
        KeyringReply {
            keys: ring.keys(),
            primary: ring.primary().to_string(),
            error,
        }
    }
}

fn now() -> Instant {
    Instant::now()
}

pub(crate) fn check_meta(meta: &MemberMeta) -> Result<(), GossipError> {
    let len = postcard::to_allocvec(meta)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if len > MAX_META {
        return Err(GossipError::MetaTooLarge(len));
    }
    Ok(())
}

/// Consul's rule: once a keyring file exists it wins over `encrypt` (with a warning);
/// otherwise `encrypt` seeds it.
fn resolve_keyring(cfg: &GossipConfig) -> Result<Option<Keyring>, GossipError> {
    let Some(path) = &cfg.keyring_file else {
        return Ok(cfg.keyring.clone());
    };
    match keyring::load_file(path).map_err(GossipError::KeyringFile)? {
        Some(from_file) => {
            if cfg.keyring.is_some() {
                let which = match cfg.pool {
                    Pool::Lan => "LAN",
                    Pool::Wan => "WAN",
                };
                warn!(target: "gossip", pool = %cfg.pool, path = %path.display(),
                    "WARNING: {which} keyring exists but -encrypt given, using keyring");
            }
            Ok(Some(from_file))
        }
        None => {
            if let Some(ring) = &cfg.keyring {
                keyring::save_file(path, ring).map_err(|e| {
                    GossipError::KeyringFile(format!(
                        "cannot write keyring file {}: {e}",
                        path.display()
                    ))
                })?;
            }
            Ok(cfg.keyring.clone())
        }
    }
}

/// UDP and TCP on one port; with port 0, retries until a port is free for both.
async fn bind(pool: Pool, addr: SocketAddr) -> Result<(UdpSocket, TcpListener), GossipError> {
    let err = |source| GossipError::Bind { pool, addr, source };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let udp = UdpSocket::bind(addr).await.map_err(err)?;
        let port = udp.local_addr().map_err(err)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if addr.port() == 0 && attempts < 20 => continue,
            Err(e) => return Err(err(e)),
        }
    }
}

pub(crate) async fn start(
    cfg: GossipConfig,
    shutdown: CancellationToken,
) -> Result<(Arc<Inner>, mpsc::Receiver<GossipEvent>), GossipError> {
    if cfg.name.is_empty() {
        return Err(GossipError::Config("the member name is empty".into()));
    }
    if cfg.probe_timeout.is_zero() || cfg.probe_timeout >= cfg.probe_interval {
        return Err(GossipError::Config(
            "probe_timeout must be above zero and below probe_interval".into(),
        ));
    }
    if cfg.gossip_interval.is_zero() || cfg.push_pull_interval.is_zero() {
        return Err(GossipError::Config(
            "gossip_interval and push_pull_interval must be above zero".into(),
        ));
    }
    check_meta(&cfg.meta)?;
    let ring = resolve_keyring(&cfg)?;
    let (udp, tcp) = bind(cfg.pool, cfg.bind).await?;
    let bound = udp.local_addr().map_err(|source| GossipError::Bind {
        pool: cfg.pool,
        addr: cfg.bind,
        source,
    })?;
    let advertise = SocketAddr::new(
        if cfg.advertise.ip().is_unspecified() {
            bound.ip()
        } else {
            cfg.advertise.ip()
        },
        if cfg.advertise.port() == 0 {
            bound.port()
        } else {
            cfg.advertise.port()
        },
    );
    if advertise.ip().is_unspecified() {
        return Err(GossipError::Config(
            "an advertise address is needed when binding to all interfaces".into(),
        ));
    }

    let started = now();
    // Wall-clock milliseconds order this run of the member after earlier ones.
    let bump = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut seed = [0u8; 8];
    keyring::fill_random(&mut seed);
    let core = Core::new(
        Params::new(&cfg, advertise),
        reachable(cfg.meta.clone(), advertise.ip()),
        bump,
        u64::from_le_bytes(seed),
        started,
    );

    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<GossipEvent>();
    let (pub_tx, pub_rx) = mpsc::channel(EVENT_CAPACITY);
    let encrypted = ring.is_some();
    let inner = Arc::new(Inner {
        pool: cfg.pool,
        name: cfg.name.clone(),
        addr: advertise,
        bind_port: bound.port(),
        cmd: cmd_tx,
        view: RwLock::new(View {
            members: core.members(),
            local: core.local(),
        }),
        keyring: RwLock::new(ring),
        keyring_file: cfg.keyring_file.clone(),
        verify_incoming: cfg.verify_incoming,
        verify_outgoing: cfg.verify_outgoing,
        probe_timeout: cfg.probe_timeout,
        stopped: CancellationToken::new(),
        warned: Mutex::new(HashMap::new()),
        stats: Counters::default(),
    });
    info!(target: "gossip", pool = %cfg.pool, member = %cfg.name, addr = %advertise, bind = %bound, encrypted,
        "Gossip pool started.");

    let stop = shutdown.child_token();
    tokio::spawn(accept_loop(inner.clone(), tcp, stop.clone()));
    tokio::spawn(async move {
        let mut open = true;
        while let Some(ev) = ev_rx.recv().await {
            if open && pub_tx.send(ev).await.is_err() {
                open = false;
            }
        }
    });
    tokio::spawn(engine_loop(
        core,
        Arc::new(udp),
        inner.clone(),
        cmd_rx,
        ev_tx,
        stop,
    ));
    Ok((inner, pub_rx))
}

struct Leaving {
    at: Instant,
    done: oneshot::Sender<()>,
}

async fn engine_loop(
    mut core: Core,
    udp: Arc<UdpSocket>,
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<GossipEvent>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    let mut leaving: Option<Leaving> = None;
    loop {
        let mut wake = core.next_wakeup();
        if let Some(l) = &leaving {
            wake = wake.min(l.at);
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            r = udp.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    add(&inner.stats.udp_received, 1);
                    add(&inner.stats.udp_received_bytes, n);
                    let opened = {
                        let ring = inner.keyring.read();
                        inner.crypto(&ring).open_packet(&buf[..n])
                    };
                    match opened {
                        Ok(payload) => core.handle_packet(now(), Some(from), &payload),
                        Err(e) => inner.rejected(from, "datagram", &e),
                    }
                }
                Err(e) => debug!(target: "gossip", pool = %inner.pool, error = %e, "A gossip datagram could not be read."),
            },
            Some(cmd) = rx.recv() => {
                if let Some(l) = handle_cmd(&mut core, &inner, cmd).await {
                    leaving = Some(l);
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {
                let t = now();
                if leaving.as_ref().is_some_and(|l| t >= l.at) {
                    core.leave_finish(t);
                    flush(&mut core, &udp, &inner, &events).await;
                    info!(target: "gossip", pool = %inner.pool, member = %inner.name, "Left the gossip pool.");
                    if let Some(l) = leaving.take() {
                        let _ = l.done.send(());
                    }
                    break;
                }
                core.handle_timers(t);
            }
        }
        flush(&mut core, &udp, &inner, &events).await;
    }
    stop.cancel();
    inner.stopped.cancel();
}

/// Addresses in the metadata others can use: an HTTP or RPC listener bound to all
/// interfaces (`client_addr: "0.0.0.0"`, as in the seed) is advertised at this member's
/// gossip IP. Others forward requests there; `0.0.0.0` would reach themselves.
fn reachable(mut meta: MemberMeta, ip: std::net::IpAddr) -> MemberMeta {
    for a in [&mut meta.http_addr, &mut meta.rpc_addr]
        .into_iter()
        .flatten()
    {
        if a.ip().is_unspecified() {
            a.set_ip(ip);
        }
    }
    meta
}

async fn handle_cmd(core: &mut Core, inner: &Arc<Inner>, cmd: Cmd) -> Option<Leaving> {
    let t = now();
    match cmd {
        Cmd::Packet(p) => core.handle_packet(t, None, &p),
        Cmd::Liveness { id, refused } => core.liveness_result(t, &id, refused),
        Cmd::BuildPushPull { join, reply } => {
            let _ = reply.send(core.push_pull_request(join));
        }
        Cmd::ServePushPull { req, reply } => {
            let _ = reply.send(core.serve_push_pull(t, req));
        }
        Cmd::PushPullReply { reply, join, metas } => {
            let lacking = core.apply_push_pull_reply(t, reply, join);
            // A joiner's `members()` shows the merged roster by the time `join` returns.
            publish_view(core, inner);
            let _ = metas.send(lacking);
        }
        Cmd::Metas(m) => core.apply_metas(t, m),
        Cmd::FireEvent { ev, done } => {
            let _ = done.send(core.fire_event(t, ev));
        }
        Cmd::UpdateMeta(meta) => core.update_meta(t, reachable(meta, inner.addr.ip())),
        Cmd::ForceLeave { name, done } => {
            let _ = done.send(core.force_leave(t, &name));
        }
        Cmd::Leave { timeout, done } => {
            if core.has_left() {
                let _ = done.send(());
                return None;
            }
            info!(target: "gossip", pool = %inner.pool, member = %inner.name, "Leaving the gossip pool.");
            core.leave_begin(t);
            // Let the intent spread before the member goes down, so others record `left`.
            let p = core.params();
            let spread = (p.gossip_interval * 3).max(Duration::from_millis(400));
            return Some(Leaving {
                at: t + spread.min(timeout / 2),
                done,
            });
        }
        #[cfg(test)]
        Cmd::Pause(d) => tokio::time::sleep(d).await,
    }
    None
}

async fn flush(
    core: &mut Core,
    udp: &UdpSocket,
    inner: &Arc<Inner>,
    events: &mpsc::UnboundedSender<GossipEvent>,
) {
    for action in core.take_actions() {
        match action {
            Action::Send { to, payload } => {
                let packet = {
                    let ring = inner.keyring.read();
                    inner.crypto(&ring).seal_packet(&payload)
                };
                if packet.len() <= MAX_UDP {
                    add(&inner.stats.udp_sent, 1);
                    add(&inner.stats.udp_sent_bytes, packet.len());
                    if let Err(e) = udp.send_to(&packet, to).await {
                        debug!(target: "gossip", pool = %inner.pool, to = %to, error = %e, "A gossip datagram could not be sent.");
                    }
                } else {
                    tokio::spawn(send_over_tcp(inner.clone(), to, payload));
                }
            }
            Action::CheckLiveness { id } => {
                tokio::spawn(check_liveness(inner.clone(), id));
            }
            Action::PushPull { addr } => {
                let req = core.push_pull_request(false);
                let inner = inner.clone();
                tokio::spawn(async move {
                    if let Err(e) = push_pull(&inner, addr, req, false).await {
                        debug!(target: "gossip", pool = %inner.pool, peer = %addr, error = %e, "Push-pull failed.");
                    }
                });
            }
        }
    }
    for ev in core.take_events() {
        let _ = events.send(ev);
    }
    publish_view(core, inner);
}

fn publish_view(core: &mut Core, inner: &Inner) {
    if core.take_dirty() {
        *inner.view.write() = View {
            members: core.members(),
            local: core.local(),
        };
    }
}

async fn check_liveness(inner: Arc<Inner>, id: NodeId) {
    let refused = matches!(
        tokio::time::timeout(inner.probe_timeout, TcpStream::connect(id.addr)).await,
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused
    );
    let _ = inner.cmd.send(Cmd::Liveness { id, refused });
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, WireError> {
    let s = tokio::time::timeout(TCP_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| WireError::Timeout)??;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn send_over_tcp(inner: Arc<Inner>, to: SocketAddr, payload: Vec<u8>) {
    let res = async {
        let mut s = connect(to).await?;
        write_all(&mut s, &inner.frame(&TcpMsg::Packet(payload))).await
    }
    .await;
    if let Err(e) = res {
        debug!(target: "gossip", pool = %inner.pool, to = %to, error = %e, "A large gossip message could not be sent.");
    }
}

/// One push-pull as the initiator: our state out, theirs in, then the metadata they lack.
async fn push_pull(
    inner: &Arc<Inner>,
    addr: SocketAddr,
    req: PushPull,
    join: bool,
) -> Result<(), WireError> {
    let mut s = connect(addr).await?;
    write_all(&mut s, &inner.frame(&TcpMsg::PushPull(req))).await?;
    let reply = match inner.read_msg(&mut s).await? {
        TcpMsg::PushPullReply(r) => r,
        _ => return Err(WireError::Unexpected),
    };
    let (tx, rx) = oneshot::channel();
    inner
        .cmd
        .send(Cmd::PushPullReply {
            reply,
            join,
            metas: tx,
        })
        .map_err(|_| WireError::Stopped)?;
    let metas = rx.await.map_err(|_| WireError::Stopped)?;
    write_all(&mut s, &inner.frame(&TcpMsg::Metas(metas))).await
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_conn(inner.clone(), stream, peer));
                }
                Err(e) => {
                    debug!(target: "gossip", pool = %inner.pool, error = %e, "A gossip connection could not be accepted.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn serve_conn(inner: Arc<Inner>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let msg = match inner.read_msg(&mut stream).await {
        Ok(m) => m,
        Err(e) => {
            inner.rejected(peer, "connection", &e);
            if e.is_key_mismatch() {
                // Tell the peer why (fixed texts only), so its join fails with a reason.
                let _ = write_all(&mut stream, &error_frame(&e.to_string())).await;
            }
            return;
        }
    };
    match msg {
        TcpMsg::PushPull(req) => {
            let (tx, rx) = oneshot::channel();
            if inner
                .cmd
                .send(Cmd::ServePushPull { req, reply: tx })
                .is_err()
            {
                return;
            }
            let Ok(reply) = rx.await else { return };
            if write_all(&mut stream, &inner.frame(&TcpMsg::PushPullReply(reply)))
                .await
                .is_err()
            {
                return;
            }
            match inner.read_msg(&mut stream).await {
                Ok(TcpMsg::Metas(m)) => {
                    let _ = inner.cmd.send(Cmd::Metas(m));
                }
                Ok(_) => {}
                Err(e) => inner.rejected(peer, "connection", &e),
            }
        }
        TcpMsg::Keyring(op) => {
            let reply = inner.local_keyring_op(&op);
            let _ = write_all(&mut stream, &inner.frame(&TcpMsg::KeyringReply(reply))).await;
        }
        TcpMsg::Packet(p) => {
            let _ = inner.cmd.send(Cmd::Packet(p));
        }
        _ => {
            debug!(target: "gossip", pool = %inner.pool, peer = %peer, "Ignored an unexpected gossip message.");
        }
    }
}

/// `host`, `host:port`, `ip`, `[v6]`, `[v6]:port` → (host, port).
fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip.to_string(), default_port));
    }
    if let Some(host) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Ok((host.to_string(), default_port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => port
            .parse::<u16>()
            .map(|p| (host.to_string(), p))
            .map_err(|_| format!("invalid port {port:?}")),
        Some(_) => Err("invalid address".to_string()),
        None if s.is_empty() => Err("empty address".to_string()),
        None => Ok((s.to_string(), default_port)),
    }
}

async fn resolve(s: &str, default_port: u16) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = split_host_port(s, default_port)?;
    let mut out: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?
        .collect();
    out.dedup();
    if out.is_empty() {
        return Err("no addresses found".to_string());
    }
    Ok(out)
}

pub(crate) async fn join(inner: &Arc<Inner>, addrs: &[String]) -> Result<usize, GossipError> {
    let attempts = addrs.iter().map(|a| async move {
        let targets = resolve(a, inner.bind_port).await?;
        let mut errors = Vec::new();
        let mut ok = 0usize;
        for t in targets {
            let (tx, rx) = oneshot::channel();
            inner
                .cmd
                .send(Cmd::BuildPushPull {
                    join: true,
                    reply: tx,
                })
                .map_err(|_| WireError::Stopped.to_string())?;
            let req = rx.await.map_err(|_| WireError::Stopped.to_string())?;
            match push_pull(inner, t, req, true).await {
                Ok(()) => ok += 1,
                Err(e) => errors.push(
                    if e.is_key_mismatch() || matches!(e, WireError::Remote(_)) {
                        format!("{e} (is the gossip encryption key the same on every agent?)")
                    } else {
                        e.to_string()
                    },
                ),
            }
        }
        if ok == 0 {
            Err(errors.join("; "))
        } else {
            Ok(ok)
        }
    });
    let results = futures::future::join_all(attempts).await;
    let mut contacted = 0;
    let mut errors = Vec::new();
    for (addr, r) in addrs.iter().zip(results) {
        match r {
            Ok(n) => contacted += n,
            Err(e) => {
                warn!(target: "gossip", pool = %inner.pool, addr = %addr, error = %e, "Could not join through this address.");
                errors.push(format!("Error joining address '{addr}': {e}"));
            }
        }
    }
    if contacted == 0 {
        return Err(GossipError::Join(if errors.is_empty() {
            "no address given".to_string()
        } else {
            errors.join("\n")
        }));
    }
    info!(target: "gossip", pool = %inner.pool, contacted, "Joined the gossip pool.");
    Ok(contacted)
}

pub(crate) async fn leave(inner: &Arc<Inner>, timeout: Duration) -> Result<(), GossipError> {
    let left = || inner.view.read().local.status == MemberStatus::Left;
    if left() {
        return Ok(());
    }
    let (tx, rx) = oneshot::channel();
    if inner.cmd.send(Cmd::Leave { timeout, done: tx }).is_ok()
        && matches!(
            tokio::time::timeout(timeout + Duration::from_secs(1), rx).await,
            Ok(Ok(()))
        )
    {
        return Ok(());
    }
    // The pool may have stopped after leaving while this request was queued.
    if left() {
        Ok(())
    } else {
        Err(GossipError::Shutdown)
    }
}

pub(crate) async fn force_leave(inner: &Arc<Inner>, name: &str) -> Result<(), GossipError> {
    let (tx, rx) = oneshot::channel();
    inner
        .cmd
        .send(Cmd::ForceLeave {
            name: name.to_string(),
            done: tx,
        })
        .map_err(|_| GossipError::Shutdown)?;
    match rx.await.map_err(|_| GossipError::Shutdown)? {
        ForceLeave::Unknown => Err(GossipError::NoSuchMember(name.to_string())),
        ForceLeave::Alive => {
            info!(target: "gossip", pool = %inner.pool, member = %name, "Force-leave of an alive member has no effect.");
            Ok(())
        }
        ForceLeave::Done => Ok(()),
    }
}

pub(crate) async fn fire_event(inner: &Arc<Inner>, ev: UserEvent) -> Result<(), GossipError> {
    let (tx, rx) = oneshot::channel();
    inner
        .cmd
        .send(Cmd::FireEvent { ev, done: tx })
        .map_err(|_| GossipError::Shutdown)?;
    rx.await
        .map_err(|_| GossipError::Shutdown)?
        .map_err(|_| GossipError::EventTooLarge)
}

async fn remote_keyring(
    inner: &Arc<Inner>,
    addr: SocketAddr,
    op: &KeyringOp,
) -> Result<KeyringReply, WireError> {
    let exchange = async {
        let mut s = connect(addr).await?;
        write_all(&mut s, &inner.frame(&TcpMsg::Keyring(op.clone()))).await?;
        match inner.read_msg(&mut s).await? {
            TcpMsg::KeyringReply(r) => Ok(r),
            _ => Err(WireError::Unexpected),
        }
    };
    tokio::time::timeout(KEYRING_TIMEOUT, exchange)
        .await
        .map_err(|_| WireError::Timeout)?
}

/// Runs a keyring operation on every alive member (serf's key query) and counts keys.
pub(crate) async fn keyring_op(
    inner: &Arc<Inner>,
    op: KeyringOp,
) -> Result<KeyringSummary, GossipError> {
    {
        let ring = inner.keyring.read();
        let Some(ring) = ring.as_ref() else {
            return Err(GossipError::EncryptionDisabled);
        };
        match &op {
            KeyringOp::List => {}
            KeyringOp::Install(k) | KeyringOp::Use(k) => keyring::validate_key(k)?,
            KeyringOp::Remove(k) => {
                keyring::validate_key(k)?;
                if ring.primary() == k {
                    return Err(super::KeyError::RemovePrimary.into());
                }
            }
        }
    }
    let targets: Vec<Member> = inner
        .view
        .read()
        .members
        .iter()
        .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Leaving))
        .cloned()
        .collect();
    let asks = targets.iter().map(|m| {
        let op = &op;
        async move {
            if m.name == inner.name {
                Ok(inner.local_keyring_op(op))
            } else {
                remote_keyring(inner, m.addr, op).await
            }
        }
    });
    let replies = futures::future::join_all(asks).await;
    let mut sum = KeyringSummary {
        pool: Some(inner.pool),
        num_nodes: targets.len(),
        ..KeyringSummary::default()
    };
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for (m, r) in targets.iter().zip(replies) {
        match r {
            Ok(reply) => {
                sum.num_resp += 1;
                if let Some(e) = reply.error {
                    sum.num_err += 1;
                    sum.messages.insert(m.name.clone(), e);
                }
                for k in reply.keys {
                    *keys.entry(k).or_default() += 1;
                }
                if !reply.primary.is_empty() {
                    *sum.primary_keys.entry(reply.primary).or_default() += 1;
                }
            }
            Err(e) => {
                sum.messages.insert(m.name.clone(), e.to_string());
            }
        }
    }
    sum.keys = keys;
    let message = if sum.num_err > 0 {
        Some(format!(
            "{}/{} nodes reported failure",
            sum.num_err, sum.num_nodes
        ))
    } else if sum.num_resp != sum.num_nodes {
        Some(format!(
            "{}/{} nodes reported success",
            sum.num_resp, sum.num_nodes
        ))
    } else {
        None
    };
    match message {
        Some(message) => Err(GossipError::Keyring {
            message,
            summary: Box::new(sum),
        }),
        None => Ok(sum),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn join_addresses_take_consul_forms() {
        let d = 8301;
        assert_eq!(
            split_host_port("10.0.0.1", d).unwrap(),
            ("10.0.0.1".into(), 8301)
        );
        assert_eq!(
            split_host_port("10.0.0.1:9000", d).unwrap(),
            ("10.0.0.1".into(), 9000)
        );
        assert_eq!(
            split_host_port("[::1]:9000", d).unwrap(),
            ("::1".into(), 9000)
        );
        assert_eq!(split_host_port("[::1]", d).unwrap(), ("::1".into(), 8301));
        assert_eq!(split_host_port("::1", d).unwrap(), ("::1".into(), 8301));
        assert_eq!(
            split_host_port("node-1", d).unwrap(),
            ("node-1".into(), 8301)
        );
        assert_eq!(
            split_host_port("node-1:7", d).unwrap(),
            ("node-1".into(), 7)
        );
        assert!(split_host_port("node-1:x", d).is_err());
        assert!(split_host_port("", d).is_err());
    }
}
