//! Gossip tests in two layers.
//!
//! `sim`: whole clusters of [`Core`]s on a simulated network in simulated time, driven
//! deterministically from a printed seed: convergence, crash detection (with and without
//! the refused-connection signal), a 2 s pause that must refute, graceful leave, user events.
//!
//! The rest: real `Gossip` instances on 127.0.0.1 port 0 (UDP + TCP, encryption on), with
//! generous time bounds; measured times are printed (`cargo test -- --nocapture`).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "HxAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";
const K3: &str = "AAECAwQFBgcICQoLDA0ODw==";

fn meta(i: usize) -> MemberMeta {
    MemberMeta {
        role: if i < 3 { Role::Server } else { Role::Client },
        datacenter: "dc1".into(),
        node_id: format!("00000000-0000-0000-0000-{i:012}"),
        rpc_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8300))),
        http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8500))),
        version: "1.17.0:tribune-0.1.0".into(),
        bootstrap_expect: if i < 3 { 3 } else { 0 },
        segment: String::new(),
    }
}

fn init_logs() {
    if std::env::var_os("GOSSIP_TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("gossip=debug")
            .with_test_writer()
            .try_init();
    }
}

// ---------------------------------------------------------------------------------------
// Simulation
// ---------------------------------------------------------------------------------------

mod sim {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::super::engine::{Action, Core, Params};
    use super::*;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Health {
        Up,
        /// Stopped (SIGSTOP): packets wait in its socket, TCP connects are accepted.
        Paused(Instant),
        /// Crashed: nothing answers; `refuses` = its port refuses TCP (same host).
        Dead {
            refuses: bool,
        },
    }

    struct Node {
        core: Core,
        addr: SocketAddr,
        health: Health,
        events: Vec<GossipEvent>,
    }

    struct Sim {
        now: Instant,
        nodes: Vec<Node>,
        /// (deliver at, seq, destination, payload or liveness result)
        queue: BinaryHeap<Reverse<(Instant, u64, usize, Delivery)>>,
        seq: u64,
        rng: StdRng,
        push_pulls: usize,
        /// Members cut off from the rest (packets and connections across are lost).
        cut: Vec<usize>,
    }

    #[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
    enum Delivery {
        Packet(SocketAddr, Vec<u8>),
        Liveness(usize, bool),
    }

    fn params(i: usize) -> Params {
        let mut cfg =
            GossipConfig::lan(format!("node-{i}"), "127.0.0.1:0".parse().unwrap(), meta(i));
        cfg.reconnect_timeout = Duration::from_secs(30);
        Params::new(&cfg, SocketAddr::from(([10, 0, 0, 1], 8000 + i as u16)))
    }

    impl Sim {
        fn new(n: usize, seed: u64) -> Sim {
            let start = Instant::now();
            let nodes = (0..n)
                .map(|i| {
                    let p = params(i);
                    let addr = p.advertise;
                    Node {
                        core: Core::new(
                            p,
                            meta(i),
                            1_000 + i as u64,
                            seed ^ (i as u64 * 7919),
                            start,
                        ),
                        addr,
                        health: Health::Up,
                        events: Vec::new(),
                    }
                })
                .collect();
            Sim {
                now: start,
                nodes,
                queue: BinaryHeap::new(),
                seq: 0,
                rng: StdRng::seed_from_u64(seed),
                push_pulls: 0,
                cut: Vec::new(),
            }
        }

        fn crosses(&self, i: usize, j: usize) -> bool {
            !self.cut.is_empty() && self.cut.contains(&i) != self.cut.contains(&j)
        }

        fn index(&self, addr: SocketAddr) -> Option<usize> {
            self.nodes.iter().position(|n| n.addr == addr)
        }

        fn push(&mut self, at: Instant, to: usize, d: Delivery) {
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq, to, d)));
        }

        /// Routes what node `i` asked for; collects its events.
        fn drain(&mut self, i: usize) {
            let actions = self.nodes[i].core.take_actions();
            let evs = self.nodes[i].core.take_events();
            self.nodes[i].events.extend(evs);
            for a in actions {
                match a {
                    Action::Send { to, payload } => {
                        let Some(j) = self.index(to) else { continue };
                        // 0.2–2 ms of latency, 0.5 % loss.
                        if self.crosses(i, j) || self.rng.gen_bool(0.005) {
                            continue;
                        }
                        let lat = Duration::from_micros(self.rng.gen_range(200..2_000));
                        let from = self.nodes[i].addr;
                        self.push(self.now + lat, j, Delivery::Packet(from, payload));
                    }
                    Action::CheckLiveness { id } => {
                        let Some(j) = self.index(id.addr) else {
                            continue;
                        };
                        let refused = self.nodes[j].health == Health::Dead { refuses: true }
                            && !self.crosses(i, j);
                        self.push(
                            self.now + Duration::from_millis(1),
                            i,
                            Delivery::Liveness(j, refused),
                        );
                    }
                    Action::PushPull { addr } => {
                        if let Some(j) = self.index(addr) {
                            self.push_pull(i, j, false);
                        }
                    }
                }
            }
        }

        fn push_pull(&mut self, from: usize, to: usize, join: bool) -> bool {
            if self.nodes[to].health != Health::Up
                || self.nodes[from].health != Health::Up
                || self.crosses(from, to)
            {
                return false;
            }
            self.push_pulls += 1;
            let now = self.now;
            let req = self.nodes[from].core.push_pull_request(join);
            let reply = self.nodes[to].core.serve_push_pull(now, req);
            let metas = self.nodes[from]
                .core
                .apply_push_pull_reply(now, reply, join);
            self.nodes[to].core.apply_metas(now, metas);
            self.drain(to);
            self.drain(from);
            true
        }

        fn join(&mut self, i: usize, seed: usize) {
            assert!(self.push_pull(i, seed, true));
        }

        /// Advances simulated time to `until`, delivering packets and firing timers.
        fn run_until(&mut self, until: Instant) {
            loop {
                for i in 0..self.nodes.len() {
                    if let Health::Paused(t) = self.nodes[i].health {
                        if self.now >= t {
                            self.nodes[i].health = Health::Up;
                        }
                    }
                }
                let mut next = until;
                if let Some(Reverse((t, ..))) = self.queue.peek() {
                    next = next.min(*t);
                }
                for n in &self.nodes {
                    match n.health {
                        Health::Up => next = next.min(n.core.next_wakeup()),
                        Health::Paused(t) => next = next.min(t),
                        Health::Dead { .. } => {}
                    }
                }
                if next > until {
                    self.now = until;
                    return;
                }
                self.now = self.now.max(next);
                // Packets first: a resumed member reads its socket before its timers fire.
                while let Some(Reverse((t, ..))) = self.queue.peek() {
                    if *t > self.now {
                        break;
                    }
                    let Some(Reverse((_, _, to, d))) = self.queue.pop() else {
                        break;
                    };
                    match self.nodes[to].health {
                        Health::Dead { .. } => continue,
                        Health::Paused(resume) if resume <= self.now => {
                            self.nodes[to].health = Health::Up;
                        }
                        Health::Paused(resume) => {
                            self.push(resume, to, d);
                            continue;
                        }
                        Health::Up => {}
                    }
                    let now = self.now;
                    match d {
                        Delivery::Packet(from, p) => {
                            self.nodes[to].core.handle_packet(now, Some(from), &p)
                        }
                        Delivery::Liveness(j, refused) => {
                            let id = NodeIdOf::of(&self.nodes[j].core);
                            self.nodes[to].core.liveness_result(now, &id, refused);
                        }
                    }
                    self.drain(to);
                }
                for i in 0..self.nodes.len() {
                    if self.nodes[i].health == Health::Up
                        && self.nodes[i].core.next_wakeup() <= self.now
                    {
                        let now = self.now;
                        self.nodes[i].core.handle_timers(now);
                        self.drain(i);
                    }
                }
                if self.now >= until {
                    return;
                }
            }
        }

        fn run_for(&mut self, d: Duration) {
            let until = self.now + d;
            self.run_until(until);
        }

        /// Runs in 10 ms steps until `f` holds or `max` passes; returns the time taken.
        fn run_until_true(&mut self, max: Duration, f: impl Fn(&Sim) -> bool) -> Option<Duration> {
            let begin = self.now;
            while self.now < begin + max {
                if f(self) {
                    return Some(self.now - begin);
                }
                self.run_for(Duration::from_millis(10));
            }
            f(self).then(|| self.now - begin)
        }

        fn status_at(&self, observer: usize, name: &str) -> Option<MemberStatus> {
            self.nodes[observer]
                .core
                .members()
                .into_iter()
                .find(|m| m.name == name)
                .map(|m| m.status)
        }

        fn all_see(&self, n: usize, skip: &[usize]) -> bool {
            self.nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .all(|(_, node)| {
                    let m = node.core.members();
                    m.len() == n && m.iter().all(|m| m.status == MemberStatus::Alive)
                })
        }

        fn count_events(&self, observer: usize, f: impl Fn(&GossipEvent) -> bool) -> usize {
            self.nodes[observer].events.iter().filter(|e| f(e)).count()
        }
    }

    /// The current identity of a core (its bump changes on rejoin).
    struct NodeIdOf;
    impl NodeIdOf {
        fn of(core: &Core) -> super::super::wire::NodeId {
            core.local_id().clone()
        }
    }

    fn formed(n: usize, seed: u64) -> Sim {
        formed_in(n, seed).0
    }

    /// Joins `n` members one by one through node-0; returns the time to converge after the
    /// last join.
    fn formed_in(n: usize, seed: u64) -> (Sim, Duration) {
        let mut sim = Sim::new(n, seed);
        for i in 1..n {
            sim.join(i, 0);
            sim.run_for(Duration::from_millis(5));
        }
        let t = sim
            .run_until_true(Duration::from_secs(10), |s| s.all_see(n, &[]))
            .unwrap_or_else(|| {
                for (i, node) in sim.nodes.iter().enumerate() {
                    let m = node.core.members();
                    let bad: Vec<String> = m
                        .iter()
                        .filter(|m| m.status != MemberStatus::Alive)
                        .map(|m| format!("{}={:?}", m.name, m.status))
                        .collect();
                    println!(
                        "node-{i}: sees {} {bad:?} {:?}",
                        m.len(),
                        node.core.counts()
                    );
                }
                panic!("{n} members did not converge (seed {seed})")
            });
        (sim, t)
    }

    #[test]
    fn sixteen_members_converge_and_stay_quiet() {
        let (mut sim, t) = formed_in(16, 11);
        println!("sim: 16 members converged {t:?} after the last join");
        // Equal tables, equal digests: idle anti-entropy sends 8-byte digests, no state.
        let d = sim.nodes[0].core.state_digest();
        assert!(sim.nodes.iter().all(|n| n.core.state_digest() == d));
        // An idle minute: no suspicion survives, nobody fails, no push-pull is needed.
        let before = sim.push_pulls;
        sim.run_for(Duration::from_secs(60));
        assert!(sim.all_see(16, &[]));
        assert_eq!(sim.push_pulls, before);
        for i in 0..16 {
            assert_eq!(
                sim.count_events(i, |e| matches!(e, GossipEvent::Failed(_))),
                0
            );
        }
    }

    fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
        v.sort();
        (v[v.len() / 2], v[v.len() - 1])
    }

    /// 16 members, one crashes (its port refuses TCP, as on one host after kill -9):
    /// every survivor marks it failed. 20 seeds; median and worst printed.
    #[test]
    fn crash_is_detected_fast_when_the_port_refuses() {
        let mut times = Vec::new();
        for seed in 1..=20 {
            let mut sim = formed(16, seed);
            println!("gossip sim seed {seed}");
            // Crash at a seed-dependent phase of the probe cycle.
            sim.run_for(Duration::from_millis(seed * 47 % 1000));
            let victim = (seed as usize % 15) + 1;
            let name = format!("node-{victim}");
            sim.nodes[victim].health = Health::Dead { refuses: true };
            let t = sim
                .run_until_true(Duration::from_secs(15), |s| {
                    (0..16)
                        .filter(|i| *i != victim)
                        .all(|i| s.status_at(i, &name) == Some(MemberStatus::Failed))
                })
                .unwrap_or_else(|| panic!("crash not detected (seed {seed})"));
            println!("  seed {seed}: {t:?}");
            times.push(t);
        }
        let (med, max) = median(times);
        println!(
            "sim: crash seen failed by all 15 survivors: median {med:?}, worst {max:?} (20 seeds)"
        );
        assert!(
            med < Duration::from_secs(3) && max < Duration::from_secs(5),
            "{med:?} {max:?}"
        );
    }

    #[test]
    fn unreachable_member_fails_after_suspicion() {
        let mut sim = formed(16, 31);
        sim.nodes[7].health = Health::Dead { refuses: false };
        let t = sim
            .run_until_true(Duration::from_secs(20), |s| {
                (0..16)
                    .filter(|i| *i != 7)
                    .all(|i| s.status_at(i, "node-7") == Some(MemberStatus::Failed))
            })
            .expect("failure detected");
        println!("sim: unreachable (no refusal) member seen failed by all in {t:?}");
        // Probe (≤ ~2 s) + suspicion (4 × 1 s × log10 16 = 4.8 s) + dissemination.
        assert!(
            t >= Duration::from_millis(4800) && t < Duration::from_secs(12),
            "{t:?}"
        );
        // Reaped after reconnect_timeout (30 s here).
        sim.run_for(Duration::from_secs(32));
        assert_eq!(sim.status_at(0, "node-7"), None);
        assert_eq!(
            sim.count_events(
                0,
                |e| matches!(e, GossipEvent::Reaped(m) if m.name == "node-7")
            ),
            1
        );
    }

    /// 16 members, one stops for 2 s (SIGSTOP: packets wait, TCP connects are accepted):
    /// it is suspected and refutes; nobody is declared failed. 10 seeds.
    #[test]
    fn two_second_pause_refutes() {
        let mut suspicions = 0;
        for seed in 100..110 {
            let mut sim = formed(16, seed);
            sim.run_for(Duration::from_millis(seed * 53 % 1000));
            let victim = (seed as usize % 15) + 1;
            let resume = sim.now + Duration::from_secs(2);
            sim.nodes[victim].health = Health::Paused(resume);
            let mut peak = 0;
            let end = sim.now + Duration::from_secs(12);
            while sim.now < end {
                sim.run_for(Duration::from_millis(50));
                peak = peak.max(
                    (0..16)
                        .map(|i| sim.nodes[i].core.suspected())
                        .sum::<usize>(),
                );
            }
            suspicions += usize::from(peak > 0);
            let raised: u64 = (0..16)
                .map(|i| sim.nodes[i].core.suspicion_counts().0)
                .sum();
            let refuted = sim.nodes[victim].core.suspicion_counts().1;
            assert_eq!(
                peak > 0,
                raised > 0,
                "seed {seed}: suspicions counted {raised}"
            );
            if peak > 0 {
                assert!(
                    refuted >= 1,
                    "seed {seed}: suspected but no refutation counted"
                );
            }
            assert!(sim.all_see(16, &[]), "seed {seed}");
            for i in 0..16 {
                let failed = sim.count_events(i, |e| matches!(e, GossipEvent::Failed(_)));
                assert_eq!(failed, 0, "seed {seed}: node-{i} saw a failure");
            }
        }
        println!(
            "sim: 2 s pause: suspected in {suspicions}/10 runs, refuted every time, 0 failures"
        );
    }

    /// 8 members split 5/3 long enough for each side to declare the other failed; after
    /// the cut heals, reconnect push-pulls and identity renewal bring everyone back.
    #[test]
    fn partition_heals() {
        let mut sim = formed(8, 81);
        sim.cut = vec![5, 6, 7];
        let t = sim
            .run_until_true(Duration::from_secs(30), |s| {
                s.status_at(0, "node-6") == Some(MemberStatus::Failed)
                    && s.status_at(6, "node-0") == Some(MemberStatus::Failed)
            })
            .expect("each side sees the other failed");
        println!("sim: partition detected by both sides in {t:?}");
        sim.cut.clear();
        let t = sim
            .run_until_true(Duration::from_secs(180), |s| s.all_see(8, &[]))
            .expect("partition heals");
        println!("sim: partition healed {t:?} after the cut was removed");
        assert!(
            sim.count_events(
                0,
                |e| matches!(e, GossipEvent::Joined(m) if m.name == "node-6")
            ) >= 2
        );
    }

    #[test]
    fn graceful_leave_is_left_everywhere() {
        let mut sim = formed(6, 51);
        let now = sim.now;
        sim.nodes[5].core.leave_begin(now);
        sim.drain(5);
        sim.run_for(Duration::from_millis(600));
        let now = sim.now;
        sim.nodes[5].core.leave_finish(now);
        sim.drain(5);
        sim.nodes[5].health = Health::Dead { refuses: true };
        let t = sim
            .run_until_true(Duration::from_secs(5), |s| {
                (0..5).all(|i| s.status_at(i, "node-5") == Some(MemberStatus::Left))
            })
            .expect("left everywhere");
        println!("sim: leave seen by all in {t:?} (after the 600 ms intent phase)");
        for i in 0..5 {
            assert_eq!(
                sim.count_events(i, |e| matches!(e, GossipEvent::Failed(_))),
                0
            );
            assert_eq!(
                sim.count_events(
                    i,
                    |e| matches!(e, GossipEvent::Left(m) if m.name == "node-5")
                ),
                1
            );
        }
    }

    #[test]
    fn user_event_reaches_everyone_once() {
        let mut sim = formed(10, 61);
        sim.run_for(Duration::from_secs(1));
        let now = sim.now;
        let ev = UserEvent {
            id: "ev-1".into(),
            name: "deploy".into(),
            payload: b"v2".to_vec(),
            ..UserEvent::default()
        };
        sim.nodes[4].core.fire_event(now, ev).unwrap();
        sim.drain(4);
        let t = sim
            .run_until_true(Duration::from_secs(5), |s| {
                (0..10).all(|i| s.count_events(i, |e| matches!(e, GossipEvent::User(_))) == 1)
            })
            .expect("event delivered");
        println!("sim: user event delivered to 10 members in {t:?}");
        sim.run_for(Duration::from_secs(10));
        for i in 0..10 {
            assert_eq!(
                sim.count_events(i, |e| matches!(e, GossipEvent::User(u) if u.id == "ev-1")),
                1
            );
        }
    }

    #[test]
    fn metadata_updates_spread_and_push_pull_state_outgrows_a_datagram() {
        let (mut sim, t) = formed_in(50, 71);
        println!("sim: 50 members converged {t:?} after the last join");
        let req = sim.nodes[0].core.push_pull_request(true);
        let encoded = postcard::to_allocvec(&req).unwrap().len();
        let mut reply = sim.nodes[0].core.push_pull_request(false);
        reply.metas = (1..50)
            .map(|i| {
                let m = sim.nodes[i].core.local();
                super::super::wire::MetaItem {
                    name: m.name,
                    version: super::super::wire::MetaVersion { bump: 1, seq: 0 },
                    meta: m.meta,
                }
            })
            .collect();
        let full = postcard::to_allocvec(&reply).unwrap().len();
        println!("sim: push-pull of 50 members: request {encoded} B, join reply {full} B");
        assert!(full > super::super::wire::MAX_UDP * 4);
        let mut m = meta(9);
        m.version = "1.18.0:tribune-0.2.0".into();
        let now = sim.now;
        sim.nodes[9].core.update_meta(now, m.clone());
        sim.drain(9);
        let t = sim
            .run_until_true(Duration::from_secs(5), |s| {
                (0..50).all(|i| {
                    s.nodes[i]
                        .core
                        .members()
                        .iter()
                        .any(|x| x.name == "node-9" && x.meta == m)
                })
            })
            .expect("metadata spread");
        println!("sim: metadata update reached 50 members in {t:?}");
        assert!(
            sim.count_events(
                0,
                |e| matches!(e, GossipEvent::Updated(x) if x.name == "node-9")
            ) >= 1
        );
    }
}

// ---------------------------------------------------------------------------------------
// Real sockets
// ---------------------------------------------------------------------------------------

struct Node {
    g: Gossip,
    events: mpsc::Receiver<GossipEvent>,
    stop: CancellationToken,
    seen: Vec<GossipEvent>,
}

impl Node {
    fn name(&self) -> String {
        self.g.local().name
    }

    /// Moves pending events into `seen`.
    fn poll(&mut self) -> &[GossipEvent] {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        &self.seen
    }

    fn status_of(&self, name: &str) -> Option<MemberStatus> {
        self.g
            .members()
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.status)
    }
}

fn config(i: usize, key: Option<&str>) -> GossipConfig {
    let mut cfg = GossipConfig::lan(format!("node-{i}"), "127.0.0.1:0".parse().unwrap(), meta(i));
    cfg.keyring = key.map(|k| Keyring::new(k).unwrap());
    cfg
}

async fn start(cfg: GossipConfig) -> Node {
    let stop = CancellationToken::new();
    let (g, events) = Gossip::start(cfg, stop.clone())
        .await
        .expect("gossip starts");
    Node {
        g,
        events,
        stop,
        seen: Vec::new(),
    }
}

async fn cluster(n: usize, key: Option<&str>) -> (Vec<Node>, Duration) {
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(start(config(i, key)).await);
    }
    let seed = nodes[0].g.addr().to_string();
    let begin = Instant::now();
    let joins = nodes[1..]
        .iter()
        .map(|node| node.g.join(std::slice::from_ref(&seed)));
    for r in futures::future::join_all(joins).await {
        assert_eq!(r.expect("join"), 1);
    }
    let t = wait(Duration::from_secs(15), || {
        nodes.iter().all(|node| {
            let m = node.g.members();
            m.len() == n && m.iter().all(|m| m.status == MemberStatus::Alive)
        })
    })
    .await
    .unwrap_or_else(|| panic!("{n} members did not converge"));
    let _ = begin;
    (nodes, t)
}

/// Polls `f` every 5 ms until it holds; returns how long that took.
async fn wait(max: Duration, f: impl Fn() -> bool) -> Option<Duration> {
    let begin = Instant::now();
    while begin.elapsed() < max {
        if f() {
            return Some(begin.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f().then(|| begin.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_join_share_metadata_and_events_arrive_once() {
    init_logs();
    let (mut nodes, t) = cluster(3, Some(K1)).await;
    println!("real: 3 members converged in {t:?}");
    let m = nodes[2].g.members();
    let n0 = m.iter().find(|m| m.name == "node-0").unwrap();
    assert_eq!(n0.meta, meta(0));
    assert_eq!(n0.addr, nodes[0].g.addr());
    let tags = n0.tags();
    assert_eq!(tags["role"], "consul");
    assert_eq!(tags["dc"], "dc1");
    assert_eq!(tags["port"], "8300");
    assert_eq!(tags["expect"], "3");
    assert_eq!(tags["build"], "1.17.0:tribune-0.1.0");
    assert!(nodes[0].g.encrypted());

    let ev = UserEvent {
        id: "5a1b7f0e-0000-4000-8000-000000000001".into(),
        name: "deploy".into(),
        payload: b"v42".to_vec(),
        node_filter: "node-.*".into(),
        ..UserEvent::default()
    };
    nodes[1].g.fire_user_event(ev.clone()).await.unwrap();
    let begin = Instant::now();
    loop {
        let done = nodes
            .iter_mut()
            .all(|n| n.poll().iter().any(|e| matches!(e, GossipEvent::User(_))));
        if done {
            break;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(10),
            "user event not delivered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "real: user event delivered to 3 members in {:?}",
        begin.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in &mut nodes {
        let name = n.name();
        let users: Vec<&UserEvent> = n
            .poll()
            .iter()
            .filter_map(|e| match e {
                GossipEvent::User(u) => Some(u),
                _ => None,
            })
            .collect();
        assert_eq!(users.len(), 1, "{name} got {users:?}");
        assert_eq!(users[0].payload, b"v42");
        assert_eq!(users[0].node_filter, "node-.*");
    }
    let too_big = UserEvent {
        payload: vec![0; 600],
        ..ev
    };
    assert!(matches!(
        nodes[0].g.fire_user_event(too_big).await,
        Err(GossipError::EventTooLarge)
    ));

    // Metadata update reaches the others as Updated.
    let mut m = meta(0);
    m.version = "1.18.0:tribune-0.2.0".into();
    nodes[0].g.update_meta(m.clone()).unwrap();
    let t = wait(Duration::from_secs(10), || {
        nodes[1..].iter().all(|n| {
            n.g.members()
                .iter()
                .any(|x| x.name == "node-0" && x.meta == m)
        })
    })
    .await
    .expect("meta update spreads");
    println!("real: metadata update spread in {t:?}");
    for n in nodes {
        n.stop.cancel();
    }
}

/// 16 members (the bench's size), encrypted: join convergence, then an idle window with
/// the bytes each member sends, counted as the bench counts them (IP + UDP headers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_members_idle_traffic() {
    init_logs();
    let (nodes, t) = cluster(16, Some(K1)).await;
    println!("real: 16 members converged in {t:?} after the joins returned");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<GossipStats> = nodes.iter().map(|n| n.g.stats()).collect();
    let window = Duration::from_secs(4);
    tokio::time::sleep(window).await;
    let mut per_node = 0.0;
    for (n, b) in nodes.iter().zip(&before) {
        let a = n.g.stats();
        let pkts = a.udp_sent - b.udp_sent;
        let bytes = (a.udp_sent_bytes - b.udp_sent_bytes)
            + 28 * pkts
            + (a.tcp_sent_bytes - b.tcp_sent_bytes);
        per_node += bytes as f64 / window.as_secs_f64() / nodes.len() as f64;
    }
    println!("real: idle traffic {per_node:.0} B/s sent per member (16 members, encrypted, incl. IP/UDP headers)");
    assert!(per_node < 1_000.0, "{per_node}");
    for n in nodes {
        n.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_members_converge() {
    init_logs();
    let (nodes, t) = cluster(10, Some(K1)).await;
    println!("real: 10 members converged in {t:?} after the joins returned");
    assert!(nodes.iter().all(|n| n.g.members().len() == 10));
    for n in nodes {
        n.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_is_failed_by_all_then_reaped() {
    init_logs();
    let mut nodes = Vec::new();
    for i in 0..4 {
        let mut cfg = config(i, Some(K1));
        cfg.reconnect_timeout = Duration::from_secs(2);
        nodes.push(start(cfg).await);
    }
    let seed = nodes[0].g.addr().to_string();
    for n in &nodes[1..] {
        n.g.join(std::slice::from_ref(&seed)).await.unwrap();
    }
    wait(Duration::from_secs(10), || {
        nodes.iter().all(|n| n.g.members().len() == 4)
    })
    .await
    .expect("converged");
    // Simulated kill: the task stops, the sockets close, no leave is sent.
    let victim = nodes.pop().unwrap();
    victim.stop.cancel();
    victim.g.stopped().await;
    let t = wait(Duration::from_secs(15), || {
        nodes
            .iter()
            .all(|n| n.status_of("node-3") == Some(MemberStatus::Failed))
    })
    .await
    .expect("killed member seen failed by all");
    println!("real: killed member seen failed by all 3 survivors in {t:?}");
    let t2 = wait(Duration::from_secs(10), || {
        nodes.iter().all(|n| n.status_of("node-3").is_none())
    })
    .await
    .expect("failed member reaped");
    println!("real: failed member reaped {t2:?} later (reconnect_timeout 2 s)");
    for n in &mut nodes {
        let evs = n.poll().to_vec();
        assert!(evs
            .iter()
            .any(|e| matches!(e, GossipEvent::Failed(m) if m.name == "node-3")));
        assert!(evs
            .iter()
            .any(|e| matches!(e, GossipEvent::Reaped(m) if m.name == "node-3")));
    }
    for n in nodes {
        n.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_left_and_force_leave_turns_failed_into_left() {
    init_logs();
    let (mut nodes, _) = cluster(4, Some(K1)).await;
    let leaver = nodes.remove(3);
    let begin = Instant::now();
    leaver.g.leave(Duration::from_secs(5)).await.unwrap();
    println!("real: leave() returned in {:?}", begin.elapsed());
    assert_eq!(leaver.g.local().status, MemberStatus::Left);
    let t = wait(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| n.status_of("node-3") == Some(MemberStatus::Left))
    })
    .await
    .expect("left everywhere");
    println!("real: graceful leave seen by all in {t:?}");
    // Leaving twice is fine.
    leaver.g.leave(Duration::from_secs(1)).await.unwrap();

    // Kill node-2, then force it out.
    let victim = nodes.remove(2);
    victim.stop.cancel();
    wait(Duration::from_secs(15), || {
        nodes
            .iter()
            .all(|n| n.status_of("node-2") == Some(MemberStatus::Failed))
    })
    .await
    .expect("failed");
    nodes[0].g.force_leave("node-2").await.unwrap();
    wait(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| n.status_of("node-2") == Some(MemberStatus::Left))
    })
    .await
    .expect("force-left everywhere");
    assert!(matches!(
        nodes[0].g.force_leave("nobody").await,
        Err(GossipError::NoSuchMember(n)) if n == "nobody"
    ));
    // Force-leave of an alive member changes nothing.
    nodes[0].g.force_leave("node-1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(nodes[1].status_of("node-1"), Some(MemberStatus::Alive));
    assert_eq!(nodes[0].status_of("node-1"), Some(MemberStatus::Alive));
    for n in &mut nodes {
        let evs = n.poll().to_vec();
        assert!(
            !evs.iter()
                .any(|e| matches!(e, GossipEvent::Failed(m) if m.name == "node-3")),
            "graceful leave must not look like a failure"
        );
        assert!(evs
            .iter()
            .any(|e| matches!(e, GossipEvent::Left(m) if m.name == "node-3")));
        assert!(evs
            .iter()
            .any(|e| matches!(e, GossipEvent::Left(m) if m.name == "node-2")));
    }
    for n in nodes {
        n.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_second_pause_does_not_fail_the_member() {
    init_logs();
    let (mut nodes, _) = cluster(4, Some(K1)).await;
    nodes[1].g.pause(Duration::from_secs(2));
    tokio::time::sleep(Duration::from_secs(8)).await;
    for n in &mut nodes {
        assert!(
            !n.poll().iter().any(|e| matches!(e, GossipEvent::Failed(_))),
            "{} saw a failure",
            n.name()
        );
        assert_eq!(n.status_of("node-1"), Some(MemberStatus::Alive));
    }
    for n in nodes {
        n.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_key_cannot_join_and_the_right_key_can() {
    init_logs();
    let a = start(config(0, Some(K1))).await;
    let seed = vec![a.g.addr().to_string()];
    let wrong = start(config(1, Some(K2))).await;
    let e = wrong.g.join(&seed).await.unwrap_err().to_string();
    println!("real: wrong key join error: {e}");
    assert!(
        e.starts_with(&format!("Error joining address '{}'", seed[0])),
        "{e}"
    );
    assert!(e.contains("key"), "{e}");
    assert!(!e.contains(K1) && !e.contains(K2));
    let none = start(config(2, None)).await;
    let e = none.g.join(&seed).await.unwrap_err().to_string();
    println!("real: missing key join error: {e}");
    assert!(!none.g.encrypted());
    let right = start(config(3, Some(K1))).await;
    assert_eq!(right.g.join(&seed).await.unwrap(), 1);
    wait(Duration::from_secs(10), || {
        a.g.members().len() == 2 && right.g.members().len() == 2
    })
    .await
    .expect("right key joins");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a
        .g
        .members()
        .iter()
        .all(|m| m.name == "node-0" || m.name == "node-3"));
    assert_eq!(wrong.g.members().len(), 1);
    assert_eq!(none.g.members().len(), 1);
    for n in [a, wrong, none, right] {
        n.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_rotation_across_the_pool_is_persisted() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let mut cfg = config(i, Some(K1));
        cfg.keyring_file = Some(dir.path().join(format!("n{i}/serf/local.keyring")));
        nodes.push(start(cfg).await);
    }
    let seed = vec![nodes[0].g.addr().to_string()];
    for n in &nodes[1..] {
        n.g.join(&seed).await.unwrap();
    }
    wait(Duration::from_secs(10), || {
        nodes.iter().all(|n| n.g.members().len() == 3)
    })
    .await
    .expect("converged");
    let count = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    let g = &nodes[1].g;
    let s = g.keyring_list().await.unwrap();
    assert_eq!((s.num_nodes, s.num_resp, s.num_err), (3, 3, 0));
    assert_eq!(s.keys, count(&[(K1, 3)]));
    assert_eq!(s.primary_keys, count(&[(K1, 3)]));
    let s = g.keyring_install(K2).await.unwrap();
    assert_eq!(s.keys, count(&[(K1, 3), (K2, 3)]));
    let s = g.keyring_use(K2).await.unwrap();
    assert_eq!(s.primary_keys, count(&[(K2, 3)]));
    let s = g.keyring_remove(K1).await.unwrap();
    assert_eq!(s.keys, count(&[(K2, 3)]));
    assert!(matches!(
        g.keyring_remove(K2).await,
        Err(GossipError::Key(KeyError::RemovePrimary))
    ));
    assert!(
        matches!(g.keyring_use(K3).await, Err(GossipError::Keyring { message, summary })
        if message == "3/3 nodes reported failure"
        && summary.messages.values().all(|m| m == "Requested key is not in the keyring"))
    );
    assert!(matches!(
        g.keyring_install("c2hvcnQ=").await,
        Err(GossipError::Key(KeyError::Size))
    ));
    let file = std::fs::read_to_string(dir.path().join("n2/serf/local.keyring")).unwrap();
    assert_eq!(file, format!("[\"{K2}\"]"));

    // The pool still works under the new key: a newcomer with K2 joins; one with K1 cannot.
    let old = start(config(5, Some(K1))).await;
    assert!(old.g.join(&seed).await.is_err());
    // Precedence: config says K1, the existing keyring file says K2 → the file wins.
    let mut cfg = config(4, Some(K1));
    let path = dir.path().join("n4/serf/local.keyring");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("[\"{K2}\"]")).unwrap();
    cfg.keyring_file = Some(path);
    let newcomer = start(cfg).await;
    assert_eq!(newcomer.g.join(&seed).await.unwrap(), 1);
    wait(Duration::from_secs(10), || nodes[0].g.members().len() == 4)
        .await
        .expect("newcomer joins under the rotated key");
    for n in nodes.into_iter().chain([old, newcomer]) {
        n.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_members_state_arrives_by_tcp_push_pull() {
    init_logs();
    let (nodes, t) = cluster(49, Some(K1)).await;
    println!("real: 49 members converged in {t:?} after the joins returned");
    let late = start(config(49, Some(K1))).await;
    let begin = Instant::now();
    assert_eq!(
        late.g.join(&[nodes[0].g.addr().to_string()]).await.unwrap(),
        1
    );
    // The whole roster, metadata included, came in the push-pull reply (≈ 9 KB, over TCP).
    let m = late.g.members();
    println!(
        "real: the 50th member knew {} members {:?} after join() began",
        m.len(),
        begin.elapsed()
    );
    assert_eq!(m.len(), 50);
    assert!(m
        .iter()
        .all(|x| x.status == MemberStatus::Alive && !x.meta.node_id.is_empty()));
    let t = wait(Duration::from_secs(10), || {
        nodes.iter().all(|n| n.g.members().len() == 50)
    })
    .await
    .expect("everyone learns of the 50th");
    println!("real: all 49 learned of the 50th member in {t:?}");
    for n in nodes.into_iter().chain([late]) {
        n.stop.cancel();
    }
}
