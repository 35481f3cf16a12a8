//! The sans-IO gossip engine: foca (SWIM) plus what serf adds on top of memberlist: member
//! metadata, user events with Lamport time, leave intents (so a graceful leave is `left`,
//! not `failed`), force-leave, reaping, and push-pull state exchange.
//!
//! It owns no socket, no clock and no entropy source: the runtime hands it datagrams,
//! the current `Instant` and a seed, and collects [`Action`]s and [`GossipEvent`]s. That is
//! what lets the simulation tests run whole clusters deterministically in simulated time.
//!
//! One addition to SWIM's failure detection: when a probe goes unanswered, the runtime also
//! tries a TCP connection to the member's gossip port. "Connection refused" means no process
//! listens there any more (a crashed agent), so the member is declared failed at once
//! instead of after the suspicion timeout. A paused or overloaded agent still has its
//! listening socket, so the kernel accepts the connection and the member keeps the full
//! suspicion timeout to refute: fast detection of crashes without false positives.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foca::{
    BroadcastHandler, Codec, Config, Foca, Incarnation, Member as FocaMember, Notification,
    OwnedNotification, PeriodicParams, PostcardCodec, State, Timer,
};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use tracing::{debug, info, warn};

use super::keyring::OVERHEAD;
use super::wire::{
    Item, ItemKey, LeaveItem, MetaItem, MetaVersion, NodeId, PushPull, KIND_FOCA, KIND_HELLO,
    KIND_META, KIND_META_REQ, KIND_SYNC, MAX_UDP,
};
use super::{GossipConfig, GossipEvent, Member, MemberMeta, MemberStatus, Pool, UserEvent};

/// How often the core reaps and looks for members whose metadata is missing.
const TICK: Duration = Duration::from_millis(500);
/// A member whose metadata has not arrived this long after it came up is asked directly
/// (a datagram; every third attempt a push-pull).
const META_GRACE: Duration = Duration::from_millis(150);
const META_RETRY: Duration = Duration::from_secs(1);
/// Metadata of a name that never became a member is forgotten after this.
const ORPHAN_META: Duration = Duration::from_secs(300);
/// A joiner introduces itself directly to at most this many of the members it learned of;
/// gossip carries the news to the rest.
const HELLO_FANOUT: usize = 64;
/// Minimum spacing of the immediate gossip rounds sent when news arrives.
const EAGER_GOSSIP: Duration = Duration::from_millis(20);
/// User events remembered for de-duplication, and how far behind the Lamport clock an
/// event may be and still be delivered (serf's event buffer).
const EVENT_IDS: usize = 1024;
const EVENT_WINDOW: u64 = 512;
const LEAVE_IDS: usize = 1024;
/// Suspicions remembered so that one is logged once, however often the member is probed.
const SUSPICION_IDS: usize = 1024;
/// Largest encoded custom broadcast: it must share a packet with foca's header.
pub(crate) const MAX_ITEM: usize = 1024;
/// Largest encoded member metadata (memberlist's node meta limit).
pub(crate) const MAX_META: usize = 512;

/// foca's randomness: a seeded generator, so tests replay exactly.
pub(crate) struct GossipRng(StdRng);

impl rand_core::TryRng for GossipRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

/// What the runtime must do for the core.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Send a gossip payload (kind byte first) to a member's gossip address.
    Send { to: SocketAddr, payload: Vec<u8> },
    /// Try a TCP connection to this member and report "refused" back.
    CheckLiveness { id: NodeId },
    /// Exchange full state with this address (anti-entropy, or missing metadata).
    PushPull { addr: SocketAddr },
}

/// Collects what foca asks for during one call.
#[derive(Default)]
struct Outbox {
    sends: Vec<(NodeId, Vec<u8>)>,
    timers: Vec<(Duration, Timer<NodeId>)>,
    notes: Vec<OwnedNotification<NodeId>>,
}

impl foca::Runtime<NodeId> for Outbox {
    fn notify(&mut self, notification: Notification<'_, NodeId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: NodeId, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<NodeId>, after: Duration) {
        self.timers.push((after, event));
    }
}

/// State the broadcast handler (owned by foca) shares with the core.
#[derive(Default)]
struct Shared {
    inbox: Vec<Item>,
    meta_versions: HashMap<String, MetaVersion>,
    seen_events: HashSet<String>,
    event_order: VecDeque<String>,
    event_clock: u64,
    event_min: u64,
    seen_leaves: HashSet<LeaveItem>,
    leave_order: VecDeque<LeaveItem>,
}

impl Shared {
    /// Decides whether an item is news (then foca keeps disseminating it) and queues it.
    fn accept(&mut self, item: Item) -> Option<ItemKey> {
        let fresh = match &item {
            Item::Meta(m) => match self.meta_versions.get(&m.name) {
                Some(v) if *v >= m.version => false,
                _ => {
                    self.meta_versions.insert(m.name.clone(), m.version);
                    true
                }
            },
            Item::Event(e) => {
                if self.seen_events.contains(&e.id) {
                    false
                } else {
                    remember(
                        &mut self.seen_events,
                        &mut self.event_order,
                        e.id.clone(),
                        EVENT_IDS,
                    );
                    let too_old = e.ltime < self.event_min
                        || e.ltime.saturating_add(EVENT_WINDOW) < self.event_clock;
                    self.event_clock = self.event_clock.max(e.ltime.saturating_add(1));
                    !too_old
                }
            }
            Item::Leave(l) => {
                if self.seen_leaves.contains(l) {
                    false
                } else {
                    remember(
                        &mut self.seen_leaves,
                        &mut self.leave_order,
                        l.clone(),
                        LEAVE_IDS,
                    );
                    true
                }
            }
        };
        fresh.then(|| {
            let key = item.key();
            self.inbox.push(item);
            key
        })
    }
}

fn remember<T: Clone + Eq + std::hash::Hash>(
    set: &mut HashSet<T>,
    order: &mut VecDeque<T>,
    value: T,
    cap: usize,
) {
    if order.len() >= cap {
        if let Some(old) = order.pop_front() {
            set.remove(&old);
        }
    }
    order.push_back(value.clone());
    set.insert(value);
}

#[derive(Debug, thiserror::Error)]
#[error("malformed gossip broadcast: {0}")]
pub(crate) struct BadItem(#[from] postcard::Error);

struct Handler(Arc<Mutex<Shared>>);

impl BroadcastHandler<NodeId> for Handler {
    type Key = ItemKey;
    type Error = BadItem;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeId>,
    ) -> Result<Option<ItemKey>, BadItem> {
        let item: Item = postcard::from_bytes(data)?;
        Ok(self.0.lock().accept(item))
    }
}

/// One other member as this agent knows it.
struct Entry {
    id: NodeId,
    status: MemberStatus,
    /// When `status` last changed (reaping counts from here).
    since: Instant,
    /// The status last announced through an event; `None` before the first.
    reported: Option<MemberStatus>,
    meta_wanted: Option<Instant>,
    last_pull: Option<Instant>,
    meta_attempts: u32,
}

/// The numbers the core runs with.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) pool: Pool,
    pub(crate) name: String,
    pub(crate) advertise: SocketAddr,
    pub(crate) probe_interval: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) suspicion_mult: u32,
    pub(crate) retransmit_mult: u32,
    pub(crate) gossip_interval: Duration,
    pub(crate) gossip_nodes: usize,
    pub(crate) push_pull_interval: Duration,
    pub(crate) reconnect_timeout: Duration,
    pub(crate) tombstone_timeout: Duration,
}

impl Params {
    pub(crate) fn new(cfg: &GossipConfig, advertise: SocketAddr) -> Params {
        Params {
            pool: cfg.pool,
            name: cfg.name.clone(),
            advertise,
            probe_interval: cfg.probe_interval,
            probe_timeout: cfg.probe_timeout,
            suspicion_mult: cfg.suspicion_mult.max(1),
            retransmit_mult: cfg.retransmit_mult.max(1),
            gossip_interval: cfg.gossip_interval,
            gossip_nodes: cfg.gossip_nodes.max(1),
            push_pull_interval: cfg.push_pull_interval,
            reconnect_timeout: cfg.reconnect_timeout,
            tombstone_timeout: cfg.tombstone_timeout,
        }
    }

    /// memberlist's suspicion timeout: `mult × probe interval × max(1, log10(n))`.
    pub(crate) fn suspicion_timeout(&self, n: usize) -> Duration {
        let scale = (n.max(1) as f64).log10().max(1.0);
        self.probe_interval
            .mul_f64(f64::from(self.suspicion_mult) * scale)
    }

    /// memberlist's retransmit limit, `mult × ceil(log10(n + 1))`, but at least two gossip
    /// rounds' worth: news is gossiped at once to `gossip_nodes` members, and one round
    /// alone leaves a small cluster a few-percent chance that some member misses it.
    fn retransmits(&self, n: usize) -> NonZeroU8 {
        let scale = ((n + 1) as f64).log10().ceil().max(1.0);
        let tx = (f64::from(self.retransmit_mult) * scale)
            .max(2.0 * self.gossip_nodes as f64)
            .clamp(1.0, 255.0) as u8;
        NonZeroU8::new(tx).unwrap_or(NonZeroU8::MIN)
    }

    /// memberlist's push-pull scaling: slower beyond 32 members.
    fn push_pull_every(&self, n: usize) -> Duration {
        if n <= 32 {
            return self.push_pull_interval;
        }
        let mult = ((n as f64) / 32.0).log2().ceil() + 1.0;
        self.push_pull_interval.mul_f64(mult)
    }

    fn foca_config(&self, n: usize) -> Config {
        let three = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
        Config {
            probe_period: self.probe_interval,
            probe_rtt: self.probe_timeout,
            num_indirect_probes: three,
            max_transmissions: self.retransmits(n),
            suspect_to_down_after: self.suspicion_timeout(n),
            remove_down_after: Some(
                self.reconnect_timeout
                    .max(self.tombstone_timeout)
                    .max(Duration::from_secs(3600)),
            ),
            // One encrypted datagram: kind byte and crypto overhead included.
            max_packet_size: NonZeroUsize::new(MAX_UDP - OVERHEAD - 1).unwrap_or(NonZeroUsize::MIN),
            notify_down_members: true,
            // Push-pull covers what periodic announces would discover.
            periodic_announce: None,
            periodic_announce_to_down_members: Some(PeriodicParams {
                frequency: self.push_pull_interval * 2 + Duration::from_secs(5),
                num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            }),
            periodic_gossip: Some(PeriodicParams {
                frequency: self.gossip_interval,
                num_members: NonZeroUsize::new(self.gossip_nodes).unwrap_or(three),
            }),
        }
    }
}

/// Why a force-leave was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ForceLeave {
    Done,
    Alive,
    Unknown,
}

pub(crate) struct Core {
    p: Params,
    foca: Foca<NodeId, PostcardCodec, GossipRng, Handler>,
    shared: Arc<Mutex<Shared>>,
    out: Outbox,
    rng: StdRng,
    timers: BTreeMap<(Instant, u64), Timer<NodeId>>,
    timer_seq: u64,
    members: BTreeMap<String, Entry>,
    metas: HashMap<String, (MetaItem, Instant)>,
    leaves: HashMap<String, LeaveItem>,
    local_meta: MetaItem,
    local_status: MemberStatus,
    checking: HashSet<NodeId>,
    actions: Vec<Action>,
    events: Vec<GossipEvent>,
    next_tick: Instant,
    next_push_pull: Instant,
    last_eager: Option<Instant>,
    eager_due: Option<Instant>,
    meta_due: Option<Instant>,
    cluster_size: usize,
    dirty: bool,
    leaving: bool,
    left: bool,
    /// (member, incarnation) this member suspected after an unanswered probe.
    suspected: HashSet<(NodeId, Incarnation)>,
    /// This member's incarnation as its last outgoing header carried it: it rises when
    /// the member refutes a suspicion of itself.
    incarnation: Incarnation,
    suspicions: u64,
    refutations: u64,
}

impl Core {
    /// A core for one member. `bump` orders this run of the member against earlier ones
    /// (the runtime passes wall-clock milliseconds); `seed` drives every random choice.
    pub(crate) fn new(p: Params, meta: MemberMeta, bump: u64, seed: u64, now: Instant) -> Core {
        let id = NodeId {
            name: p.name.as_str().into(),
            addr: p.advertise,
            bump,
        };
        let shared = Arc::new(Mutex::new(Shared::default()));
        let foca = Foca::with_custom_broadcast(
            id,
            p.foca_config(1),
            GossipRng(StdRng::seed_from_u64(seed)),
            PostcardCodec,
            Handler(shared.clone()),
        );
        let mut rng = StdRng::seed_from_u64(seed.rotate_left(17) ^ 0x5eed_f00d_5eed);
        let first_push_pull = p.push_pull_interval.mul_f64(0.5 + rng.gen::<f64>());
        let local_meta = MetaItem {
            name: p.name.clone(),
            version: MetaVersion { bump, seq: 0 },
            meta,
        };
        let mut core = Core {
            foca,
            shared,
            out: Outbox::default(),
            rng,
            timers: BTreeMap::new(),
            timer_seq: 0,
            members: BTreeMap::new(),
            metas: HashMap::new(),
            leaves: HashMap::new(),
            local_meta,
            local_status: MemberStatus::Alive,
            checking: HashSet::new(),
            actions: Vec::new(),
            events: Vec::new(),
            next_tick: now + TICK,
            next_push_pull: now + first_push_pull,
            last_eager: None,
            eager_due: None,
            meta_due: None,
            cluster_size: 1,
            dirty: true,
            leaving: false,
            left: false,
            suspected: HashSet::new(),
            incarnation: 0,
            suspicions: 0,
            refutations: 0,
            p,
        };
        core.broadcast_local_meta(now);
        core
    }

    pub(crate) fn params(&self) -> &Params {
        &self.p
    }

    pub(crate) fn local_id(&self) -> &NodeId {
        self.foca.identity()
    }

    pub(crate) fn has_left(&self) -> bool {
        self.left
    }

    /// The earliest instant at which [`Core::handle_timers`] has work.
    pub(crate) fn next_wakeup(&self) -> Instant {
        let mut at = self.next_tick.min(self.next_push_pull);
        if let Some(((t, _), _)) = self.timers.first_key_value() {
            at = at.min(*t);
        }
        for t in [self.eager_due, self.meta_due].into_iter().flatten() {
            at = at.min(t);
        }
        at
    }

    pub(crate) fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    pub(crate) fn take_events(&mut self) -> Vec<GossipEvent> {
        std::mem::take(&mut self.events)
    }

    /// True once after the member list changed.
    pub(crate) fn take_dirty(&mut self) -> bool {
        std::mem::replace(&mut self.dirty, false)
    }

    /// A datagram's payload (kind byte first), already decrypted; `from` is the UDP source
    /// (`None` for a payload that came over TCP).
    pub(crate) fn handle_packet(&mut self, now: Instant, from: Option<SocketAddr>, payload: &[u8]) {
        if self.left {
            return;
        }
        match payload.split_first() {
            // Answered only to known members: no reflection towards arbitrary addresses.
            Some((&KIND_META_REQ, _)) => {
                if let Some(to) = from.filter(|a| self.is_member_addr(*a)) {
                    let mut payload = vec![KIND_META];
                    payload.extend(postcard::to_allocvec(&self.local_meta).unwrap_or_default());
                    self.actions.push(Action::Send { to, payload });
                }
            }
            Some((&KIND_SYNC, data)) => {
                let theirs = <[u8; 8]>::try_from(data).map(u64::from_be_bytes);
                if let (Ok(theirs), Some(addr)) = (theirs, from.filter(|a| self.is_member_addr(*a)))
                {
                    if theirs != self.state_digest() {
                        self.actions.push(Action::PushPull { addr });
                    }
                }
            }
            Some((&KIND_HELLO, data)) => match postcard::from_bytes::<(NodeId, MetaItem)>(data) {
                Ok((id, meta)) if id.name != self.local_id().name && meta.name == *id.name => {
                    self.ingest(Item::Meta(meta), false);
                    let alive = FocaMember::new(id, 0, State::Alive);
                    if let Err(e) =
                        self.foca
                            .apply_many(std::iter::once(alive), true, &mut self.out)
                    {
                        debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not apply an introduction.");
                    }
                    self.after_foca(now);
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(target: "gossip", pool = %self.p.pool, error = %e, "Ignored a malformed introduction.");
                }
            },
            Some((&KIND_META, data)) => match postcard::from_bytes::<MetaItem>(data) {
                Ok(m) => {
                    self.ingest(Item::Meta(m), false);
                    self.after_foca(now);
                }
                Err(e) => {
                    debug!(target: "gossip", pool = %self.p.pool, error = %e, "Ignored malformed metadata.");
                }
            },
            Some((&KIND_FOCA, data)) => {
                if let Err(e) = self.foca.handle_data(data, &mut self.out) {
                    debug!(target: "gossip", pool = %self.p.pool, error = %e, "Ignored a gossip packet.");
                }
                self.after_foca(now);
            }
            _ => debug!(target: "gossip", pool = %self.p.pool, "Ignored a packet of unknown kind."),
        }
    }

    /// Fires every due timer and the core's own periodic work.
    pub(crate) fn handle_timers(&mut self, now: Instant) {
        if self.left {
            return;
        }
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            let probed = match &timer {
                Timer::SendIndirectProbe { probed_id, .. } => Some(probed_id.clone()),
                _ => None,
            };
            if let Err(e) = self.foca.handle_timer(timer, &mut self.out) {
                debug!(target: "gossip", pool = %self.p.pool, error = %e, "A gossip timer could not run.");
            }
            // Indirect pings went out: the direct probe of this member went unanswered.
            if let Some(id) = probed {
                if !self.out.sends.is_empty() {
                    self.check_liveness(id);
                }
            }
            self.after_foca(now);
        }
        if self.eager_due.is_some_and(|t| now >= t) {
            self.eager_due = None;
            self.last_eager = Some(now);
            let _ = self.foca.gossip(&mut self.out);
            self.after_foca(now);
        }
        if self.meta_due.is_some_and(|t| now >= t) {
            self.request_metas(now);
        }
        if now >= self.next_tick {
            self.tick(now);
        }
        if now >= self.next_push_pull {
            let alive: Vec<SocketAddr> = self
                .members
                .values()
                .filter(|e| e.status == MemberStatus::Alive)
                .map(|e| e.id.addr)
                .collect();
            if !alive.is_empty() {
                // A digest first: the full state crosses only when the tables differ.
                let to = alive[self.rng.gen_range(0..alive.len())];
                let mut payload = vec![KIND_SYNC];
                payload.extend_from_slice(&self.state_digest().to_be_bytes());
                self.actions.push(Action::Send { to, payload });
            }
            // serf's reconnect: a failed member may only have been cut off; a push-pull
            // with one of them heals a partition (or fails fast against a dead port).
            let failed: Vec<SocketAddr> = self
                .members
                .values()
                .filter(|e| e.status == MemberStatus::Failed)
                .map(|e| e.id.addr)
                .collect();
            if !failed.is_empty() {
                let addr = failed[self.rng.gen_range(0..failed.len())];
                self.actions.push(Action::PushPull { addr });
            }
            self.next_push_pull = now + self.p.push_pull_every(self.cluster_size);
        }
    }

    fn is_member_addr(&self, addr: SocketAddr) -> bool {
        self.members.values().any(|e| e.id.addr == addr)
    }

    /// The runtime's report on a TCP connection attempt to a member that missed a probe.
    pub(crate) fn liveness_result(&mut self, now: Instant, id: &NodeId, refused: bool) {
        self.checking.remove(id);
        if !refused || self.left {
            return;
        }
        let Some(incarnation) = self
            .foca
            .iter_membership_state()
            .find(|m| m.id() == id && m.state() != State::Down)
            .map(FocaMember::incarnation)
        else {
            return;
        };
        info!(target: "gossip", pool = %self.p.pool, member = %id.name, addr = %id.addr,
            "Member missed a probe and its gossip port refuses connections; declaring it failed.");
        let down = FocaMember::new(id.clone(), incarnation, State::Down);
        if let Err(e) = self
            .foca
            .apply_many(std::iter::once(down), true, &mut self.out)
        {
            debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not apply a failure.");
        }
        self.after_foca(now);
    }

    // ----- push-pull ---------------------------------------------------------------------

    /// This member's state for a push-pull request.
    pub(crate) fn push_pull_request(&self, join: bool) -> PushPull {
        let mut members: Vec<FocaMember<NodeId>> = self
            .foca
            .iter_membership_state()
            .filter(|m| {
                m.state() != State::Down
                    || self
                        .members
                        .get(&*m.id().name)
                        .is_some_and(|e| &e.id == m.id())
            })
            .cloned()
            .collect();
        // foca keeps no entry for itself; incarnation 0 never overrides a newer one.
        members.push(FocaMember::new(self.local_id().clone(), 0, State::Alive));
        let mut digest: Vec<(String, MetaVersion)> = self
            .metas
            .iter()
            .filter(|(name, _)| self.members.contains_key(*name))
            .map(|(name, (m, _))| (name.clone(), m.version))
            .collect();
        digest.push((self.p.name.clone(), self.local_meta.version));
        let mut leaves: Vec<LeaveItem> = self
            .leaves
            .values()
            .filter(|l| {
                self.members.get(&l.name).is_some_and(|e| {
                    e.id.bump == l.bump
                        && matches!(e.status, MemberStatus::Leaving | MemberStatus::Left)
                })
            })
            .cloned()
            .collect();
        if self.leaving {
            leaves.push(self.own_leave());
        }
        PushPull {
            join,
            from: self.local_id().clone(),
            members,
            digest,
            metas: vec![self.local_meta.clone()],
            leaves,
            event_ltime: self.shared.lock().event_clock,
        }
    }

    /// Serves a peer's push-pull: merges its state and returns ours with the metadata it
    /// lacks.
    pub(crate) fn serve_push_pull(&mut self, now: Instant, req: PushPull) -> PushPull {
        let digest = req.digest.clone();
        if !self.left {
            self.merge_remote(req, true, false);
            self.after_foca(now);
        }
        let mut reply = self.push_pull_request(false);
        reply.metas = self.metas_newer_than(&digest);
        reply
    }

    /// Merges the reply to our push-pull; returns the metadata the peer lacks.
    pub(crate) fn apply_push_pull_reply(
        &mut self,
        now: Instant,
        reply: PushPull,
        join: bool,
    ) -> Vec<MetaItem> {
        if self.left {
            return Vec::new();
        }
        let digest = reply.digest.clone();
        let from = reply.from.clone();
        if join {
            self.adopt_newer_identity(now, &reply);
        }
        self.merge_remote(reply, !join, join);
        if join {
            self.record_down_members(now);
            self.introduce(&from);
            if let Err(e) = self.foca.announce(from, &mut self.out) {
                debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not announce.");
            }
        }
        self.after_foca(now);
        self.metas_newer_than(&digest)
    }

    /// Metadata sent by a push-pull peer after our reply.
    pub(crate) fn apply_metas(&mut self, now: Instant, metas: Vec<MetaItem>) {
        if self.left {
            return;
        }
        for m in metas {
            self.ingest(Item::Meta(m), true);
        }
        self.after_foca(now);
    }

    fn merge_remote(&mut self, pp: PushPull, broadcast: bool, join: bool) {
        {
            let mut s = self.shared.lock();
            s.event_clock = s.event_clock.max(pp.event_ltime);
            if join {
                // A joiner does not replay events fired before it arrived (serf's default).
                s.event_min = s.event_min.max(pp.event_ltime);
            }
        }
        for m in pp.metas {
            self.ingest(Item::Meta(m), broadcast);
        }
        for l in pp.leaves {
            self.ingest(Item::Leave(l), broadcast);
        }
        if let Err(e) = self
            .foca
            .apply_many(pp.members.into_iter(), broadcast, &mut self.out)
        {
            debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not merge remote state.");
        }
    }

    /// A restarted member may find the cluster still holding a later identity of its name
    /// (a clock that went backwards); it takes a bump above that one before announcing.
    fn adopt_newer_identity(&mut self, now: Instant, reply: &PushPull) {
        let me = self.local_id().clone();
        let Some(seen) = reply
            .members
            .iter()
            .map(FocaMember::id)
            .filter(|id| id.name == me.name && **id != me)
            .map(|id| id.bump)
            .max()
        else {
            return;
        };
        if seen < me.bump {
            return;
        }
        let new = NodeId {
            bump: seen + 1,
            ..me
        };
        debug!(target: "gossip", pool = %self.p.pool, bump = new.bump, "Taking a newer identity than the cluster's record of this member.");
        if let Err(e) = self.foca.change_identity(new.clone(), &mut self.out) {
            debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not change identity.");
            return;
        }
        self.local_meta.version = MetaVersion {
            bump: new.bump,
            seq: 0,
        };
        self.broadcast_local_meta(now);
    }

    /// After a join, tells the members just learned of about this one directly: one
    /// datagram each instead of waiting for gossip to reach them (joins converge in about
    /// one round trip, and no member is left to learn of the joiner only by push-pull).
    fn introduce(&mut self, seed: &NodeId) {
        let Ok(hello) = postcard::to_allocvec(&(self.local_id().clone(), self.local_meta.clone()))
        else {
            return;
        };
        let mut targets: Vec<SocketAddr> = self
            .foca
            .iter_members()
            .map(FocaMember::id)
            .filter(|id| id != &seed)
            .map(|id| id.addr)
            .collect();
        if targets.len() > HELLO_FANOUT {
            for i in 0..HELLO_FANOUT {
                let j = self.rng.gen_range(i..targets.len());
                targets.swap(i, j);
            }
            targets.truncate(HELLO_FANOUT);
        }
        for to in targets {
            let mut payload = Vec::with_capacity(hello.len() + 1);
            payload.push(KIND_HELLO);
            payload.extend_from_slice(&hello);
            self.actions.push(Action::Send { to, payload });
        }
    }

    /// After a join, members the cluster knows as failed or left are listed too (without
    /// events: this agent did not see them change).
    fn record_down_members(&mut self, now: Instant) {
        let down: Vec<NodeId> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Down)
            .map(|m| m.id().clone())
            .collect();
        for id in down {
            let name = id.name.to_string();
            if self.members.contains_key(&name) {
                continue;
            }
            let left = self.leaves.get(&name).is_some_and(|l| l.bump == id.bump);
            self.members.insert(
                name,
                Entry {
                    id,
                    status: if left {
                        MemberStatus::Left
                    } else {
                        MemberStatus::Failed
                    },
                    since: now,
                    reported: None,
                    meta_wanted: None,
                    last_pull: None,
                    meta_attempts: 0,
                },
            );
            self.dirty = true;
        }
    }

    fn metas_newer_than(&self, digest: &[(String, MetaVersion)]) -> Vec<MetaItem> {
        let known: HashMap<&str, MetaVersion> =
            digest.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let newer = |m: &MetaItem| known.get(m.name.as_str()).is_none_or(|v| *v < m.version);
        let mut out: Vec<MetaItem> = self
            .metas
            .iter()
            .filter(|(name, _)| self.members.contains_key(*name))
            .map(|(_, (m, _))| m)
            .filter(|m| newer(m))
            .cloned()
            .collect();
        if newer(&self.local_meta) {
            out.push(self.local_meta.clone());
        }
        out
    }

    /// FNV-1a over the member table as every member should see it (names, identities,
    /// statuses, metadata versions; this member included), so equal tables give equal
    /// digests on every agent.
    pub(crate) fn state_digest(&self) -> u64 {
        fn eat(h: &mut u64, bytes: &[u8]) {
            for b in bytes {
                *h ^= u64::from(*b);
                *h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        let mut rows: Vec<(&str, u64, u8, Option<MetaVersion>)> = self
            .members
            .iter()
            .map(|(name, e)| {
                let v = self.metas.get(name).map(|(m, _)| m.version);
                (name.as_str(), e.id.bump, e.status.code(), v)
            })
            .collect();
        rows.push((
            &self.p.name,
            self.local_id().bump,
            self.local_status.code(),
            Some(self.local_meta.version),
        ));
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for (name, bump, status, v) in rows {
            eat(&mut h, name.as_bytes());
            eat(&mut h, &[0]);
            eat(&mut h, &bump.to_be_bytes());
            eat(&mut h, &[status]);
            if let Some(v) = v {
                eat(&mut h, &v.bump.to_be_bytes());
                eat(&mut h, &v.seq.to_be_bytes());
            }
        }
        h
    }

    // ----- local operations --------------------------------------------------------------

    /// Fires a user event: it gets this member's Lamport time, is delivered here too, and
    /// spreads with foca's custom broadcasts.
    pub(crate) fn fire_event(&mut self, now: Instant, mut ev: UserEvent) -> Result<(), usize> {
        {
            let mut s = self.shared.lock();
            ev.ltime = s.event_clock;
            s.event_clock += 1;
        }
        let data = Item::Event(ev).encode();
        if data.len() > MAX_ITEM {
            return Err(data.len());
        }
        if let Err(e) = self.foca.add_broadcast(&data) {
            debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not queue a user event.");
        }
        self.after_foca(now);
        Ok(())
    }

    /// Replaces this member's metadata and spreads it.
    pub(crate) fn update_meta(&mut self, now: Instant, meta: MemberMeta) {
        self.local_meta.meta = meta;
        self.local_meta.version.seq += 1;
        self.broadcast_local_meta(now);
        self.dirty = true;
    }

    fn broadcast_local_meta(&mut self, now: Instant) {
        self.ingest(Item::Meta(self.local_meta.clone()), true);
        self.after_foca(now);
    }

    fn own_leave(&self) -> LeaveItem {
        LeaveItem {
            name: self.p.name.clone(),
            bump: self.local_id().bump,
            by: self.p.name.clone(),
        }
    }

    /// Graceful leave, step one: tell the cluster this member is leaving (`leaving`).
    pub(crate) fn leave_begin(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.local_status = MemberStatus::Leaving;
        self.dirty = true;
        self.ingest(Item::Leave(self.own_leave()), true);
        for _ in 0..self.fanout_rounds() {
            let _ = self.foca.gossip(&mut self.out);
        }
        self.after_foca(now);
    }

    /// Graceful leave, step two: declare this identity down and stop.
    pub(crate) fn leave_finish(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.leaving = true;
        let rounds = self.fanout_rounds();
        if let Err(e) = self.foca.leave_cluster(&mut self.out) {
            debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not leave cleanly.");
        }
        for _ in 1..rounds {
            let _ = self.foca.gossip(&mut self.out);
        }
        self.after_foca(now);
        self.local_status = MemberStatus::Left;
        self.left = true;
        self.timers.clear();
        self.dirty = true;
    }

    /// Enough gossip rounds (each to 3 random members) to reach most of a small cluster.
    fn fanout_rounds(&self) -> usize {
        let n = self.foca.num_members();
        n.div_ceil(3)
            .clamp(1, usize::from(self.p.retransmits(n + 1).get()))
    }

    /// Consul's `force-leave`: a failed member becomes `left` everywhere.
    pub(crate) fn force_leave(&mut self, now: Instant, name: &str) -> ForceLeave {
        if name == self.p.name {
            return ForceLeave::Alive;
        }
        let Some(e) = self.members.get(name) else {
            return ForceLeave::Unknown;
        };
        match e.status {
            MemberStatus::Alive | MemberStatus::Leaving => ForceLeave::Alive,
            MemberStatus::Left => ForceLeave::Done,
            MemberStatus::Failed => {
                let item = LeaveItem {
                    name: name.to_string(),
                    bump: e.id.bump,
                    by: self.p.name.clone(),
                };
                info!(target: "gossip", pool = %self.p.pool, member = %name, "Forcing a failed member to leave.");
                self.ingest(Item::Leave(item), true);
                self.after_foca(now);
                ForceLeave::Done
            }
        }
    }

    // ----- views -------------------------------------------------------------------------

    pub(crate) fn local(&self) -> Member {
        Member {
            name: self.p.name.clone(),
            addr: self.p.advertise,
            meta: self.local_meta.meta.clone(),
            status: self.local_status,
        }
    }

    /// Every member whose metadata is known, this one included, sorted by name.
    pub(crate) fn members(&self) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .members
            .iter()
            .filter_map(|(name, e)| self.view(name, e))
            .collect();
        out.push(self.local());
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn view(&self, name: &str, e: &Entry) -> Option<Member> {
        let (meta, _) = self.metas.get(name)?;
        Some(Member {
            name: name.to_string(),
            addr: e.id.addr,
            meta: meta.meta.clone(),
            status: e.status,
        })
    }

    // ----- internals ---------------------------------------------------------------------

    fn ingest(&mut self, item: Item, broadcast: bool) {
        if broadcast {
            if let Err(e) = self.foca.add_broadcast(&item.encode()) {
                debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not queue a broadcast.");
            }
        } else {
            self.shared.lock().accept(item);
        }
    }

    fn check_liveness(&mut self, id: NodeId) {
        if self.checking.insert(id.clone()) {
            self.actions.push(Action::CheckLiveness { id });
        }
    }

    fn schedule(&mut self, at: Instant, timer: Timer<NodeId>) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), timer);
    }

    /// Turns what foca produced into actions, table changes and events.
    fn after_foca(&mut self, now: Instant) {
        loop {
            let inbox = std::mem::take(&mut self.shared.lock().inbox);
            let notes = std::mem::take(&mut self.out.notes);
            let sends = std::mem::take(&mut self.out.sends);
            let timers = std::mem::take(&mut self.out.timers);
            if inbox.is_empty() && notes.is_empty() && sends.is_empty() && timers.is_empty() {
                break;
            }
            let news = !inbox.is_empty() || !notes.is_empty();
            // Intents and metadata first: a leave intent and the member's going down often
            // arrive in one packet, and the intent decides between `left` and `failed`.
            for item in inbox {
                self.apply_item(now, item);
            }
            for note in notes {
                self.apply_note(now, note);
            }
            if let Some((_, data)) = sends.first() {
                self.note_incarnation(data);
            }
            for (to, data) in sends {
                let mut payload = Vec::with_capacity(data.len() + 1);
                payload.push(KIND_FOCA);
                payload.extend_from_slice(&data);
                self.actions.push(Action::Send {
                    to: to.addr,
                    payload,
                });
            }
            for (after, timer) in timers {
                if let Timer::ChangeSuspectToDown {
                    member_id,
                    incarnation,
                    ..
                } = &timer
                {
                    self.note_suspicion(member_id, *incarnation);
                    self.check_liveness(member_id.clone());
                }
                self.schedule(now + after, timer);
            }
            self.resize();
            if news && !self.left {
                // Spread news now rather than at the next gossip tick: joins, failures and
                // events converge in a few round trips instead of a few intervals.
                match self.last_eager {
                    Some(t) if now < t + EAGER_GOSSIP => {
                        self.eager_due.get_or_insert(t + EAGER_GOSSIP);
                    }
                    _ => {
                        self.last_eager = Some(now);
                        self.eager_due = None;
                        let _ = self.foca.gossip(&mut self.out);
                    }
                }
            }
        }
    }

    /// Counts and logs a suspicion this member raised (memberlist's "Suspect X has failed,
    /// no acks received"), once per member and incarnation.
    fn note_suspicion(&mut self, id: &NodeId, incarnation: Incarnation) {
        if self.suspected.len() >= SUSPICION_IDS {
            self.suspected.clear();
        }
        if self.suspected.insert((id.clone(), incarnation)) {
            self.suspicions += 1;
            info!(target: "gossip", pool = %self.p.pool, member = %id.name, incarnation,
                "Suspecting a member: no ack received.");
        }
    }

    /// Reads this member's incarnation from an outgoing foca header: a rise means it
    /// refuted a suspicion of itself (memberlist's "Refuting a suspect message").
    fn note_incarnation(&mut self, data: &[u8]) {
        let Ok(header) = Codec::<NodeId>::decode_header(&mut PostcardCodec, data) else {
            return;
        };
        let now = header.src_incarnation;
        if now > self.incarnation {
            self.refutations += u64::from(now - self.incarnation);
            info!(target: "gossip", pool = %self.p.pool, incarnation = now,
                "Refuted a suspicion of this member.");
        }
        // A renewed identity starts again from 0.
        self.incarnation = now;
    }

    /// (suspicions raised, refutations made) since start.
    #[cfg(test)]
    pub(crate) fn suspicion_counts(&self) -> (u64, u64) {
        (self.suspicions, self.refutations)
    }

    /// Keeps foca's retransmit and suspicion settings in step with the cluster size.
    fn resize(&mut self) {
        let n = self.foca.num_members() + 1;
        if n == self.cluster_size {
            return;
        }
        self.cluster_size = n;
        if let Err(e) = self.foca.set_config(self.p.foca_config(n)) {
            debug!(target: "gossip", pool = %self.p.pool, error = %e, "Could not resize the gossip configuration.");
        }
    }

    fn apply_item(&mut self, now: Instant, item: Item) {
        match item {
            Item::Meta(m) => {
                if m.name == self.p.name {
                    if m.version > self.local_meta.version {
                        // An earlier run of this member spread a later version: outdo it.
                        self.local_meta.version = MetaVersion {
                            bump: m.version.bump.max(self.local_meta.version.bump),
                            seq: m.version.seq + 1,
                        };
                        self.broadcast_local_meta(now);
                    }
                    return;
                }
                let name = m.name.clone();
                let changed = self
                    .metas
                    .get(&name)
                    .is_none_or(|(old, _)| old.meta != m.meta);
                self.metas.insert(name.clone(), (m, now));
                self.dirty = true;
                let Some(e) = self.members.get_mut(&name) else {
                    return;
                };
                e.meta_wanted = None;
                e.meta_attempts = 0;
                let alive = matches!(
                    e.reported,
                    Some(MemberStatus::Alive | MemberStatus::Leaving)
                );
                if alive && changed {
                    if let Some(member) = self.members.get(&name).and_then(|e| self.view(&name, e))
                    {
                        debug!(target: "gossip", pool = %self.p.pool, member = %name, "Member updated its metadata.");
                        self.events.push(GossipEvent::Updated(member));
                    }
                } else {
                    self.report(&name);
                }
            }
            Item::Event(ev) => {
                debug!(target: "gossip", pool = %self.p.pool, event = %ev.name, id = %ev.id, ltime = ev.ltime, "Received a user event.");
                self.events.push(GossipEvent::User(ev));
            }
            Item::Leave(l) => self.apply_leave(l),
        }
    }

    fn apply_leave(&mut self, l: LeaveItem) {
        if l.name == self.p.name {
            if !l.graceful() && !self.leaving {
                info!(target: "gossip", pool = %self.p.pool, by = %l.by, "Ignored a force-leave of this alive member.");
            }
            return;
        }
        let name = l.name.clone();
        let Some(e) = self.members.get_mut(&name) else {
            if l.graceful() {
                self.leaves.insert(name, l);
            }
            return;
        };
        if e.id.bump != l.bump {
            if l.bump > e.id.bump && l.graceful() {
                self.leaves.insert(name, l);
            }
            return;
        }
        match (l.graceful(), e.status) {
            (true, MemberStatus::Alive) => {
                e.status = MemberStatus::Leaving;
                self.leaves.insert(name.clone(), l);
                self.dirty = true;
                info!(target: "gossip", pool = %self.p.pool, member = %name, "Member is leaving.");
                self.report(&name);
            }
            (_, MemberStatus::Failed) => {
                e.status = MemberStatus::Left;
                self.leaves.insert(name.clone(), l);
                self.dirty = true;
                self.report(&name);
            }
            (true, _) => {
                self.leaves.insert(name, l);
            }
            (false, _) => {}
        }
    }

    fn apply_note(&mut self, now: Instant, note: OwnedNotification<NodeId>) {
        match note {
            OwnedNotification::MemberUp(id) => {
                let name = id.name.to_string();
                let has_meta = self.metas.contains_key(&name);
                if self.leaves.get(&name).is_some_and(|l| l.bump < id.bump) {
                    self.leaves.remove(&name);
                }
                let e = self.members.entry(name.clone()).or_insert_with(|| Entry {
                    id: id.clone(),
                    status: MemberStatus::Alive,
                    since: now,
                    reported: None,
                    meta_wanted: None,
                    last_pull: None,
                    meta_attempts: 0,
                });
                e.id = id;
                e.status = MemberStatus::Alive;
                e.since = now;
                e.meta_wanted = (!has_meta).then_some(now);
                e.last_pull = None;
                e.meta_attempts = 0;
                if !has_meta {
                    let due = now + META_GRACE;
                    self.meta_due = Some(self.meta_due.map_or(due, |t| t.min(due)));
                }
                self.dirty = true;
                self.report(&name);
            }
            OwnedNotification::MemberDown(id) => {
                let name = id.name.to_string();
                let left = self.leaves.get(&name).is_some_and(|l| l.bump == id.bump);
                let e = self.members.entry(name.clone()).or_insert_with(|| Entry {
                    id: id.clone(),
                    status: MemberStatus::Failed,
                    since: now,
                    reported: None,
                    meta_wanted: None,
                    last_pull: None,
                    meta_attempts: 0,
                });
                e.id = id;
                e.status = if left {
                    MemberStatus::Left
                } else {
                    MemberStatus::Failed
                };
                e.since = now;
                e.meta_wanted = None;
                self.dirty = true;
                self.report(&name);
            }
            OwnedNotification::Rename(_, new) => {
                let name = new.name.to_string();
                if let Some(e) = self.members.get_mut(&name) {
                    let moved = e.id.addr != new.addr;
                    e.id = new;
                    self.dirty = true;
                    let alive = matches!(
                        e.reported,
                        Some(MemberStatus::Alive | MemberStatus::Leaving)
                    );
                    if moved && alive {
                        if let Some(member) =
                            self.members.get(&name).and_then(|e| self.view(&name, e))
                        {
                            info!(target: "gossip", pool = %self.p.pool, member = %name, addr = %member.addr, "Member changed its address.");
                            self.events.push(GossipEvent::Updated(member));
                        }
                    }
                }
            }
            OwnedNotification::Active => {
                debug!(target: "gossip", pool = %self.p.pool, "Connected to the gossip pool.");
            }
            OwnedNotification::Idle => {
                debug!(target: "gossip", pool = %self.p.pool, "No other member is alive.");
            }
            OwnedNotification::Defunct => {
                if !self.leaving {
                    warn!(target: "gossip", pool = %self.p.pool, "The cluster declared this member failed and it cannot rejoin.");
                }
            }
            OwnedNotification::Rejoin(id) => {
                warn!(target: "gossip", pool = %self.p.pool, bump = id.bump, "The cluster declared this member failed; rejoined with a new identity.");
                self.local_meta.version = MetaVersion {
                    bump: id.bump,
                    seq: 0,
                };
                self.broadcast_local_meta(now);
            }
        }
    }

    /// Emits the event that brings consumers from the last reported status to the current
    /// one. Members whose metadata is unknown stay invisible until it arrives.
    fn report(&mut self, name: &str) {
        let Some(e) = self.members.get(name) else {
            return;
        };
        let Some(member) = self.view(name, e) else {
            return;
        };
        let status = e.status;
        let event = match (e.reported, status) {
            (
                None | Some(MemberStatus::Failed | MemberStatus::Left),
                MemberStatus::Alive | MemberStatus::Leaving,
            ) => {
                info!(target: "gossip", pool = %self.p.pool, member = %name, addr = %member.addr, "Member joined.");
                Some(GossipEvent::Joined(member))
            }
            (Some(MemberStatus::Alive | MemberStatus::Leaving), MemberStatus::Failed) => {
                warn!(target: "gossip", pool = %self.p.pool, member = %name, addr = %member.addr, "Member failed.");
                Some(GossipEvent::Failed(member))
            }
            (
                Some(MemberStatus::Alive | MemberStatus::Leaving | MemberStatus::Failed),
                MemberStatus::Left,
            ) => {
                info!(target: "gossip", pool = %self.p.pool, member = %name, addr = %member.addr, "Member left.");
                Some(GossipEvent::Left(member))
            }
            _ => None,
        };
        let record = event.is_some()
            || matches!(
                (e.reported, status),
                (Some(MemberStatus::Alive), MemberStatus::Leaving)
                    | (Some(MemberStatus::Leaving), MemberStatus::Alive)
            );
        if record {
            if let Some(e) = self.members.get_mut(name) {
                e.reported = Some(status);
            }
        }
        if let Some(ev) = event {
            self.events.push(ev);
        }
    }

    /// Asks members that came up without metadata for it.
    fn request_metas(&mut self, now: Instant) {
        self.meta_due = None;
        let mut next: Option<Instant> = None;
        let mut asks = Vec::new();
        for e in self.members.values_mut() {
            let Some(since) = e.meta_wanted else { continue };
            if !matches!(e.status, MemberStatus::Alive | MemberStatus::Leaving) {
                continue;
            }
            let due = e.last_pull.map_or(since + META_GRACE, |t| t + META_RETRY);
            let due = if now >= due {
                e.last_pull = Some(now);
                e.meta_attempts += 1;
                asks.push(if e.meta_attempts % 3 == 0 {
                    Action::PushPull { addr: e.id.addr }
                } else {
                    Action::Send {
                        to: e.id.addr,
                        payload: vec![KIND_META_REQ],
                    }
                });
                now + META_RETRY
            } else {
                due
            };
            next = Some(next.map_or(due, |t| t.min(due)));
        }
        self.actions.extend(asks);
        self.meta_due = next;
    }

    /// Reaping and forgotten orphans.
    fn tick(&mut self, now: Instant) {
        self.next_tick = now + TICK;
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, e)| match e.status {
                MemberStatus::Failed => now >= e.since + self.p.reconnect_timeout,
                MemberStatus::Left => now >= e.since + self.p.tombstone_timeout,
                _ => false,
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            let member = self.members.get(&name).and_then(|e| self.view(&name, e));
            self.members.remove(&name);
            self.metas.remove(&name);
            self.leaves.remove(&name);
            self.dirty = true;
            if let Some(member) = member {
                info!(target: "gossip", pool = %self.p.pool, member = %name, status = member.status.as_str(), "Member reaped.");
                self.events.push(GossipEvent::Reaped(member));
            }
        }
        let members = &self.members;
        self.metas
            .retain(|name, (_, at)| members.contains_key(name) || now < *at + ORPHAN_META);
    }
}

#[cfg(test)]
impl Core {
    /// (active members in foca, entries, entries without metadata)
    pub(crate) fn counts(&self) -> (usize, usize, Vec<String>) {
        let missing = self
            .members
            .keys()
            .filter(|n| !self.metas.contains_key(*n))
            .cloned()
            .collect();
        (self.foca.num_members(), self.members.len(), missing)
    }

    pub(crate) fn suspected(&self) -> usize {
        self.foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .count()
    }
}
