//! Figures 5–7: three Tribune servers against a three-member etcd 3.4, both on
//! loopback with their data on the real disk and fsync on every commit.
//!
//! - 5: the shared `run_matrix.sh` matrix with the shared Lua scripts: KV puts
//!   (8-byte keys, 256-byte values) at 1, 16, 64 and 256 clients, then
//!   `consistent` (etcd: linearizable) and `stale` (etcd: serializable) reads
//!   of one key at 64 clients. `wrk` hits each cluster's leader; the two
//!   clusters run at the same time and their runs alternate (etcd, tribune,
//!   etcd, ...), each behind `wait_quiet.py`.
//! - 6: leader failover: writers load the followers, the leader gets SIGKILL,
//!   and the time runs to the first write sent after the kill that is
//!   acknowledged; the killed server restarts on its data and the cluster
//!   settles before the next kill.
//! - 7: three servers started together → the first committed write (the same
//!   for etcd), idle RSS of a client agent and of a server, and the servers'
//!   and etcd members' RSS after the matrix.
//!
//! Neither side is pinned (like `run_matrix.sh`): servers, etcd members and
//! `wrk` share every CPU, and so Tribune's runtimes get one worker per CPU.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};
use tribune_tests::process::{self, Spawned};

use super::{num, say, sys, wait_quiet, Opts, Row, Stat, WrkResult};

/// What etcd 3.4 reached on this machine (shared bench README, quiet machine).
const ETCD_README: &str = "etcd README: put 1/16/64/256 = 892/3,733/5,862/7,447 ops/s";

/// One load of the matrix.
#[derive(Clone, Copy)]
struct Load {
    name: &'static str,
    threads: usize,
    conns: usize,
    read: Option<&'static str>,
    /// Goal: (min ops/s, max p50 ms, max p99 ms), each optional.
    goal: (Option<f64>, Option<f64>, Option<f64>),
    goal_text: &'static str,
}

const LOADS: [Load; 6] = [
    Load {
        name: "put c=1",
        threads: 1,
        conns: 1,
        read: None,
        goal: (None, Some(0.45), Some(2.0)),
        goal_text: "p50 ≤ 0.45 ms, p99 ≤ 2 ms (etcd 1.01/6.0)",
    },
    Load {
        name: "put c=16",
        threads: 2,
        conns: 16,
        read: None,
        goal: (None, None, None),
        goal_text: "- (etcd 3,733 ops/s)",
    },
    Load {
        name: "put c=64",
        threads: 2,
        conns: 64,
        read: None,
        goal: (Some(18_000.0), None, Some(10.0)),
        goal_text: "≥ 18,000 ops/s, p99 ≤ 10 ms (etcd 5,862)",
    },
    Load {
        name: "put c=256",
        threads: 2,
        conns: 256,
        read: None,
        goal: (Some(30_000.0), None, None),
        goal_text: "≥ 30,000 ops/s (etcd 7,447)",
    },
    Load {
        name: "consistent read c=64",
        threads: 2,
        conns: 64,
        read: Some("0"),
        goal: (Some(45_000.0), None, None),
        goal_text: "≥ 45,000/s (etcd linearizable 8,706)",
    },
    Load {
        name: "stale read c=64",
        threads: 2,
        conns: 64,
        read: Some("1"),
        goal: (Some(80_000.0), None, None),
        goal_text: "≥ 80,000/s (etcd serializable 9,558)",
    },
];

const FAILOVER_P50_S: f64 = 1.5;
const FAILOVER_P99_S: f64 = 3.0;
const FIRST_WRITE_MS: f64 = 300.0;
const CLIENT_RSS_BYTES: f64 = 12e6;
const SERVER_RSS_BYTES: f64 = 40e6;

/// Clears the CPU affinity this process inherited (it is pinned to the client
/// core) so a child may run on every CPU, like the shared scripts' processes.
fn unpinned(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    sys::pin_child_to_all(&mut cmd);
    cmd
}

// ---------------------------------------------------------------- tribune

struct Server {
    name: String,
    dir: PathBuf,
    ports: Vec<u16>,
    process: Option<Spawned>,
}

/// Three servers with `bootstrap_expect: 3` and `retry_join` listing all three.
pub struct TribuneCluster {
    servers: Vec<Server>,
    tribune: PathBuf,
    client: reqwest::Client,
}

fn server_config(name: &str, data: &Path, ports: &[u16], join: &[String]) -> Value {
    json!({
        "node_name": name,
        "datacenter": "dc1",
        "data_dir": data,
        "bind_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "server": true,
        "bootstrap_expect": 3,
        "retry_join": join,
        "log_level": "warn",
        "ports": {
            "http": ports[0],
            "dns": ports[1],
            "serf_lan": ports[2],
            "serf_wan": ports[3],
            "server": ports[4],
            "grpc": -1,
        },
        "limits": { "http_max_conns_per_client": 65535 },
    })
}

impl TribuneCluster {
    /// Writes the configs and spawns the three servers at once; returns when
    /// they are spawned (not when they lead).
    pub fn spawn(opts: &Opts, dir: &Path) -> anyhow::Result<TribuneCluster> {
        let ports = process::free_ports(15)?;
        let join: Vec<String> = (0..3)
            .map(|i| format!("127.0.0.1:{}", ports[i * 5 + 2]))
            .collect();
        let mut servers = Vec::new();
        for i in 0..3 {
            let name = format!("s{}", i + 1);
            let sdir = dir.join(&name);
            std::fs::create_dir_all(&sdir)?;
            let p = ports[i * 5..i * 5 + 5].to_vec();
            super::write_config(&sdir, &server_config(&name, &sdir.join("data"), &p, &join))?;
            servers.push(Server {
                name,
                dir: sdir,
                ports: p,
                process: None,
            });
        }
        let mut c = TribuneCluster {
            servers,
            tribune: opts.tribune.clone(),
            client: tribune_tests::http::client(),
        };
        for i in 0..3 {
            c.start(i)?;
        }
        Ok(c)
    }

    fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &mut self.servers[i];
        let mut cmd = unpinned(&self.tribune);
        cmd.arg("agent")
            .arg(format!("-config-dir={}", s.dir.join("config").display()))
            .current_dir(&s.dir);
        s.process = Some(Spawned::spawn(&s.name, cmd, &s.dir)?);
        Ok(())
    }

    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut p) = self.servers[i].process.take() {
            p.kill()?;
        }
        Ok(())
    }

    pub fn http_port(&self, i: usize) -> u16 {
        self.servers[i].ports[0]
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port(i))
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.servers[i].process.as_ref().map(Spawned::pid)
    }

    pub fn serf_port(&self, i: usize) -> u16 {
        self.servers[i].ports[2]
    }

    /// The leader as server `i` sees it (an index into the servers).
    async fn leader_seen_by(&self, i: usize) -> Option<usize> {
        let r = self
            .client
            .get(self.url(i, "/v1/status/leader"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        let addr = v.as_str()?;
        let port: u16 = addr.rsplit(':').next()?.parse().ok()?;
        self.servers.iter().position(|s| s.ports[4] == port)
    }

    /// Waits until every running server names the same leader, and returns it.
    pub async fn agreed_leader(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for i in 0..3 {
                if let Some(p) = self.servers[i].process.as_mut() {
                    p.ensure_running()?;
                    seen.push(self.leader_seen_by(i).await);
                }
            }
            if let Some(Some(l)) = seen.first() {
                if seen.iter().all(|s| *s == Some(*l)) && self.servers[*l].process.is_some() {
                    return Ok(*l);
                }
            }
            if Instant::now() > deadline {
                bail!("the servers did not agree on a leader within {timeout:?}: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `PUT /v1/kv/<key>` on server `i`; true on 200.
    async fn put(&self, i: usize, key: &str, timeout: Duration) -> bool {
        matches!(
            self.client
                .put(self.url(i, &format!("/v1/kv/{key}")))
                .body(vec![b'v'; 256])
                .timeout(timeout)
                .send()
                .await,
            Ok(r) if r.status() == 200
        )
    }
}

// ---------------------------------------------------------------- etcd

/// Client and peer ports of `etcd-cluster.sh`.
const ETCD_PORTS: [(u16, u16); 3] = [(2379, 2380), (22379, 22380), (32379, 32380)];

/// A three-member etcd started with `etcd-cluster.sh`'s flags (directly, so
/// that its start can be timed and its members' RSS read).
pub struct Etcd {
    members: Vec<Spawned>,
    client: reqwest::Client,
}

impl Etcd {
    pub fn spawn(dir: &Path) -> anyhow::Result<Etcd> {
        let etcd = process::find_program(
            "ETCD_BIN",
            &["etcd", "/usr/bin/etcd"],
            "etcd 3.4 (apt-get install etcd-server; scripts/bench-cluster.sh does it)",
        )?;
        for (c, p) in ETCD_PORTS {
            for port in [c, p] {
                if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                    bail!("port {port} is taken: another etcd runs? (etcd-cluster.sh stop)");
                }
            }
        }
        let cl = ETCD_PORTS
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{}=http://127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, (c, p)) in ETCD_PORTS.iter().enumerate() {
            let name = format!("m{}", i + 1);
            let mdir = dir.join(&name);
            std::fs::create_dir_all(&mdir)?;
            let mut cmd = unpinned(&etcd);
            cmd.args(["--name", &name])
                .arg("--data-dir")
                .arg(mdir.join("data"))
                .arg("--listen-client-urls")
                .arg(format!("http://127.0.0.1:{c}"))
                .arg("--advertise-client-urls")
                .arg(format!("http://127.0.0.1:{c}"))
                .arg("--listen-peer-urls")
                .arg(format!("http://127.0.0.1:{p}"))
                .arg("--initial-advertise-peer-urls")
                .arg(format!("http://127.0.0.1:{p}"))
                .args(["--initial-cluster", &cl])
                .args(["--initial-cluster-token", "bench"])
                .args(["--initial-cluster-state", "new"])
                .args(["--log-level", "warn"]);
            members.push(Spawned::spawn(&name, cmd, &mdir)?);
        }
        Ok(Etcd {
            members,
            client: tribune_tests::http::client(),
        })
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", ETCD_PORTS[i].0)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().map(Spawned::pid).collect()
    }

    async fn put(&self, i: usize, key: &str, timeout: Duration) -> bool {
        matches!(
            self.client
                .post(format!("{}/v3/kv/put", self.url(i)))
                .json(&json!({"key": b64(key.as_bytes()), "value": b64(&[b'v'; 256])}))
                .timeout(timeout)
                .send()
                .await,
            Ok(r) if r.status() == 200
        )
    }

    /// The member that leads, from `/v3/maintenance/status`.
    pub async fn leader(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for m in &mut self.members {
                m.ensure_running()?;
            }
            for i in 0..3 {
                let r = self
                    .client
                    .post(format!("{}/v3/maintenance/status", self.url(i)))
                    .json(&json!({}))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if let Ok(v) = r.json::<Value>().await {
                        let me = &v["header"]["member_id"];
                        if !me.is_null() && *me == v["leader"] {
                            return Ok(i);
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("etcd elected no leader within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------- figures

/// Runs `f` until it answers true (every ~1 ms), and returns the milliseconds
/// from `t0`.
async fn first_ok<F, Fut>(t0: Instant, limit: Duration, mut f: F) -> anyhow::Result<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut n = 0usize;
    loop {
        if f(n).await {
            return Ok(t0.elapsed().as_secs_f64() * 1e3);
        }
        n += 1;
        if t0.elapsed() > limit {
            bail!("no write committed within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Figure 7a: three members started together → first committed write, for
/// both; also server and client agent idle RSS.
async fn startup(opts: &Opts, dir: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    say("\n== 7. Three servers started together → first committed write; idle memory");
    let mut t_ms = Vec::new();
    let mut e_ms = Vec::new();
    let mut server_rss = Vec::new();
    let mut client_rss = Vec::new();
    let starts = opts.starts.clamp(1, 5);
    for i in 1..=starts {
        let quiet = wait_quiet(opts);
        let d = dir.join(format!("start-etcd-{i}"));
        let t0 = Instant::now();
        let etcd = Etcd::spawn(&d)?;
        let e = first_ok(t0, Duration::from_secs(30), |n| {
            let etcd = &etcd;
            async move { etcd.put(n % 3, "first", Duration::from_millis(500)).await }
        })
        .await?;
        drop(etcd);
        let quiet2 = wait_quiet(opts);
        let d = dir.join(format!("start-tribune-{i}"));
        let t0 = Instant::now();
        let mut c = TribuneCluster::spawn(opts, &d)?;
        let t = first_ok(t0, Duration::from_secs(30), |n| {
            let c = &c;
            async move { c.put(n % 3, "first", Duration::from_millis(500)).await }
        })
        .await?;
        // Idle memory: the servers, and a client agent joined to them.
        let cdir = d.join("client");
        std::fs::create_dir_all(&cdir)?;
        let cports = process::free_ports(5)?;
        let mut ccfg = server_config("c1", &cdir.join("data"), &cports, &[]);
        ccfg["server"] = json!(false);
        ccfg["bootstrap_expect"] = Value::Null;
        ccfg["retry_join"] = json!([format!("127.0.0.1:{}", c.serf_port(0))]);
        super::write_config(&cdir, &ccfg)?;
        let mut cmd = unpinned(&opts.tribune);
        cmd.arg("agent")
            .arg(format!("-config-dir={}", cdir.join("config").display()))
            .current_dir(&cdir);
        let mut client = Spawned::spawn("client", cmd, &cdir)?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        client.ensure_running()?;
        let ck = super::rss_kib(client.pid())? as f64 * 1024.0;
        let sk: Vec<f64> = (0..3)
            .filter_map(|i| c.pid(i))
            .filter_map(|p| super::rss_kib(p).ok())
            .map(|k| k as f64 * 1024.0)
            .collect();
        let smax = sk.iter().copied().fold(0.0, f64::max);
        say(format!(
            "   start {i}: etcd {e:>7.1} ms [{quiet}]; tribune {t:>7.1} ms [{quiet2}]; \
             idle RSS: server max {} MB, client agent {} MB",
            num(smax / 1e6, 1),
            num(ck / 1e6, 1)
        ));
        drop(client);
        for s in 0..3 {
            c.kill(s)?;
        }
        t_ms.push(t);
        e_ms.push(e);
        server_rss.push(smax);
        client_rss.push(ck);
    }
    let (t, e) = (Stat::of(&t_ms), Stat::of(&e_ms));
    let (sr, cr) = (Stat::of(&server_rss), Stat::of(&client_rss));
    say(format!(
        "   first committed write: tribune {} | etcd {}",
        t.show(1, "ms"),
        e.show(1, "ms")
    ));
    rows.push(Row::new(
        "7. 3 servers started → first write",
        format!("{} (etcd {} ms)", t.show(1, "ms"), num(e.median, 0)),
        "≤ 300 ms (etcd 2,060)",
        Some(t.median <= FIRST_WRITE_MS),
    ));
    rows.push(Row::new(
        "7. client agent idle RSS",
        format!(
            "{} MB ({}–{})",
            num(cr.median / 1e6, 1),
            num(cr.min / 1e6, 1),
            num(cr.max / 1e6, 1)
        ),
        "≤ 12 MB (serf 14.8)",
        Some(cr.median <= CLIENT_RSS_BYTES),
    ));
    rows.push(Row::new(
        "7. server idle RSS (largest of 3)",
        format!("{} MB", num(sr.median / 1e6, 1)),
        "≤ 40 MB plus data",
        Some(sr.median <= SERVER_RSS_BYTES),
    ));
    Ok(())
}

/// `wrk` for one load against `url` (the leader), with the flavour's script.
fn run_load(opts: &Opts, load: &Load, url: &str, etcd: bool) -> anyhow::Result<WrkResult> {
    let script = match (etcd, load.read.is_some()) {
        (true, false) => "put.lua",
        (true, true) => "range.lua",
        (false, false) => "consul_put.lua",
        (false, true) => "consul_get.lua",
    };
    let env: Vec<(&str, &str)> = load.read.map(|s| vec![("SERIAL", s)]).unwrap_or_default();
    super::wrk_unpinned(
        opts,
        load.threads,
        load.conns,
        opts.duration,
        script,
        url,
        &env,
    )
}

/// Figure 5: the matrix, interleaved.
async fn matrix(opts: &Opts, dir: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let fs = super::ensure_real_disk(dir)?;
    say(format!(
        "\n== 5. Replicated KV on 3 servers vs a 3-member etcd 3.4 ({}), fsync on, data in {} ({fs}); \
         wrk on each leader; runs alternate etcd/tribune; nothing pinned",
        super::shell_line("etcd --version | head -1"),
        dir.display()
    ));
    let mut etcd = Etcd::spawn(&dir.join("etcd"))?;
    let mut c = TribuneCluster::spawn(opts, &dir.join("tribune"))?;
    let el = etcd.leader(Duration::from_secs(30)).await?;
    let tl = c.agreed_leader(Duration::from_secs(30)).await?;
    let (eurl, turl) = (etcd.url(el), c.url(tl, ""));
    say(format!("   leaders: etcd {eurl}, tribune {turl}"));
    // The key the reads ask for, on both.
    if !etcd.put(el, "00000001", Duration::from_secs(5)).await
        || !c.put(tl, "00000001", Duration::from_secs(5)).await
    {
        bail!("could not write the key the reads ask for");
    }
    // Warm-up, not counted.
    let short = Opts {
        duration: Duration::from_secs(2),
        ..opts.clone()
    };
    run_load(&short, &LOADS[2], &eurl, true)?;
    run_load(&short, &LOADS[2], &turl, false)?;
    let mut results: Vec<[Vec<WrkResult>; 2]> = vec![[Vec::new(), Vec::new()]; LOADS.len()];
    let mut failed_runs = [0usize; 2];
    for (li, load) in LOADS.iter().enumerate() {
        for run in 1..=opts.runs {
            for (si, who) in ["etcd", "tribune"].iter().enumerate() {
                let quiet = wait_quiet(opts);
                let url = if si == 0 { &eurl } else { &turl };
                let r = match run_load(opts, load, url, si == 0) {
                    Ok(r) => r,
                    Err(e) => {
                        // Counted as a run with errors; the matrix goes on.
                        say(format!(
                            "   {:<21} run {run} {who:<7} FAILED: {e:#}",
                            load.name
                        ));
                        failed_runs[si] += 1;
                        continue;
                    }
                };
                say(format!(
                    "   {:<21} run {run} {who:<7} {:>8} ops/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}  [{quiet}]",
                    load.name,
                    num(r.rps, 0),
                    r.p50_us / 1e3,
                    r.p99_us / 1e3,
                    r.errors
                ));
                results[li][si].push(r);
            }
        }
    }
    let rss = |pids: Vec<u32>| -> String {
        pids.iter()
            .filter_map(|p| super::rss_kib(*p).ok())
            .map(|k| num(k as f64 / 1024.0, 0))
            .collect::<Vec<_>>()
            .join("/")
    };
    let t_rss = rss((0..3).filter_map(|i| c.pid(i)).collect());
    let e_rss = rss(etcd.pids());
    say(format!(
        "\n   {:<21} | {:>26} {:>9} {:>9} | {:>26} {:>9} {:>9} | goal",
        "load",
        "tribune ops/s (range)",
        "p50 ms",
        "p99 ms",
        "etcd ops/s (range)",
        "p50 ms",
        "p99 ms"
    ));
    for (li, load) in LOADS.iter().enumerate() {
        let st = |si: usize, f: fn(&WrkResult) -> f64| {
            Stat::of(&results[li][si].iter().map(f).collect::<Vec<_>>())
        };
        let (tops, tp50, tp99) = (
            st(1, |r| r.rps),
            st(1, |r| r.p50_us / 1e3),
            st(1, |r| r.p99_us / 1e3),
        );
        let (eops, ep50, ep99) = (
            st(0, |r| r.rps),
            st(0, |r| r.p50_us / 1e3),
            st(0, |r| r.p99_us / 1e3),
        );
        let terr: u64 = results[li][1].iter().map(|r| r.errors).sum::<u64>()
            + (results[li][1].len() < opts.runs) as u64;
        let range =
            |s: &Stat| format!("{} ({}–{})", num(s.median, 0), num(s.min, 0), num(s.max, 0));
        say(format!(
            "   {:<21} | {:>26} {:>9.3} {:>9.3} | {:>26} {:>9.3} {:>9.3} | {}",
            load.name,
            range(&tops),
            tp50.median,
            tp99.median,
            range(&eops),
            ep50.median,
            ep99.median,
            load.goal_text
        ));
        let (gops, gp50, gp99) = load.goal;
        let pass = terr == 0
            && gops.is_none_or(|g| tops.median >= g)
            && gp50.is_none_or(|g| tp50.median <= g)
            && gp99.is_none_or(|g| tp99.median <= g);
        let has_goal = gops.is_some() || gp50.is_some() || gp99.is_some();
        rows.push(Row::new(
            &format!("5. {}", load.name),
            format!(
                "{} ops/s, p50 {} ms, p99 {} ms; etcd {} ops/s, {} / {} ms; ×{:.1}",
                range(&tops),
                num(tp50.median, 3),
                num(tp99.median, 2),
                num(eops.median, 0),
                num(ep50.median, 2),
                num(ep99.median, 1),
                tops.median / eops.median
            ),
            load.goal_text,
            if has_goal {
                Some(pass)
            } else if terr > 0 {
                Some(false)
            } else {
                None
            },
        ));
    }
    say(format!(
        "   RSS after the matrix (MiB): tribune servers {t_rss}; etcd members {e_rss}   ({ETCD_README})"
    ));
    if failed_runs != [0, 0] {
        say(format!(
            "   runs that could not be measured: etcd {}, tribune {}",
            failed_runs[0], failed_runs[1]
        ));
    }
    rows.push(Row::new(
        "5. RSS after the matrix (MiB)",
        format!("tribune {t_rss}; etcd {e_rss}"),
        "-",
        None,
    ));
    drop(etcd);
    for i in 0..3 {
        c.kill(i)?;
    }
    Ok(())
}

/// Figure 6: leader failover under write load.
async fn failover(opts: &Opts, dir: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let kills = opts.kills.max(1);
    say(format!(
        "\n== 6. Leader failover: {kills} × SIGKILL of the leader under write load (8 writers on the \
         followers) → first acknowledged write sent after the kill"
    ));
    let mut c = TribuneCluster::spawn(opts, &dir.join("failover"))?;
    let mut times = Vec::new();
    let mut failures = 0;
    for k in 1..=kills {
        let leader = c.agreed_leader(Duration::from_secs(60)).await?;
        // Every member must be caught up and have heard the leader for a while:
        // a write through each, then a pause longer than the leader lease.
        for i in 0..3 {
            if !c
                .put(i, &format!("settle{k}"), Duration::from_secs(10))
                .await
            {
                bail!("server s{} did not take a write before kill {k}", i + 1);
            }
        }
        let quiet = wait_quiet(opts);
        let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let kill_at: std::sync::Arc<std::sync::Mutex<Option<Instant>>> = Default::default();
        let first_after: std::sync::Arc<std::sync::Mutex<Option<Instant>>> = Default::default();
        let mut writers = Vec::new();
        for w in 0..8 {
            let url = c.url(followers[w % 2], "");
            let client = c.client.clone();
            let (stop, kill_at, first_after) = (stop.clone(), kill_at.clone(), first_after.clone());
            writers.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let sent = Instant::now();
                    let ok = matches!(
                        client
                            .put(format!("{url}/v1/kv/fo{k}-{w}-{n}"))
                            .body(vec![b'v'; 256])
                            .timeout(Duration::from_secs(5))
                            .send()
                            .await,
                        Ok(r) if r.status() == 200
                    );
                    if ok {
                        let at = *kill_at.lock().unwrap_or_else(|e| e.into_inner());
                        if at.is_some_and(|t| sent > t) {
                            let mut f = first_after.lock().unwrap_or_else(|e| e.into_inner());
                            if f.is_none() {
                                *f = Some(Instant::now());
                            }
                        }
                    } else {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = Instant::now();
        *kill_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(t0);
        c.kill(leader)?;
        let limit = Duration::from_secs(30);
        let elapsed = loop {
            if let Some(t) = *first_after.lock().unwrap_or_else(|e| e.into_inner()) {
                break Some(t - t0);
            }
            if t0.elapsed() > limit {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in writers {
            let _ = w.await;
        }
        let new_leader = c.agreed_leader(Duration::from_secs(30)).await.ok();
        match elapsed {
            Some(d) => {
                times.push(d.as_secs_f64());
                say(format!(
                    "   kill {k:>2}: s{} killed → first ack after {:>6.0} ms, new leader s{} [{quiet}]",
                    leader + 1,
                    d.as_secs_f64() * 1e3,
                    new_leader.map_or("?".into(), |l| (l + 1).to_string())
                ));
            }
            None => {
                failures += 1;
                say(format!(
                    "   kill {k:>2}: s{} killed → no acknowledged write within {limit:?} [{quiet}]",
                    leader + 1
                ));
            }
        }
        c.start(leader)?;
    }
    let idle = idle_watch(opts, &mut c).await;
    for i in 0..3 {
        c.kill(i)?;
    }
    let idle_row = match idle {
        Ok((changes, disagreed, samples)) => {
            say(format!(
                "   idle for {} s after the kills: {changes} leader changes; {disagreed} of {samples} \
                 samples without one agreed leader; load average now {}",
                opts.idle_secs,
                super::shell_line("cut -d' ' -f1-3 /proc/loadavg")
            ));
            Row::new(
                "6. idle cluster: leader changes",
                format!("{changes} in {} s", opts.idle_secs),
                "0",
                Some(changes == 0),
            )
        }
        Err(e) => Row::new(
            "6. idle cluster: leader changes",
            format!("not measured: {e:#}"),
            "0",
            Some(false),
        ),
    };
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if times.is_empty() {
            return f64::NAN;
        }
        let idx = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
        times[idx]
    };
    let (p50, p99) = (pct(0.50), pct(0.99));
    say(format!(
        "   failover over {} kills: p50 {:.2} s, p99 {:.2} s, min {:.2} s, max {:.2} s, failures {failures}",
        times.len(),
        p50,
        p99,
        times.first().copied().unwrap_or(f64::NAN),
        times.last().copied().unwrap_or(f64::NAN)
    ));
    rows.push(Row::new(
        "6. leader failover (kill -9 → first ack)",
        format!(
            "p50 {:.2} s, p99 {:.2} s over {} kills ({failures} failed)",
            p50,
            p99,
            times.len()
        ),
        "p50 ≤ 1.5 s, p99 ≤ 3 s",
        Some(failures == 0 && p50 <= FAILOVER_P50_S && p99 <= FAILOVER_P99_S),
    ));
    rows.push(idle_row);
    Ok(())
}

/// Polls every server's leader every 100 ms for `opts.idle_secs` (no load from here; the
/// machine may be busy with anything else) and counts changes of the agreed leader.
async fn idle_watch(opts: &Opts, c: &mut TribuneCluster) -> anyhow::Result<(usize, usize, usize)> {
    let mut prev = c.agreed_leader(Duration::from_secs(60)).await?;
    let (mut changes, mut disagreed, mut samples) = (0, 0, 0);
    let end = Instant::now() + Duration::from_secs(opts.idle_secs as u64);
    while Instant::now() < end {
        let mut seen = Vec::with_capacity(3);
        for i in 0..3 {
            seen.push(c.leader_seen_by(i).await);
        }
        samples += 1;
        match seen[0] {
            Some(l) if seen.iter().all(|s| *s == Some(l)) => {
                if l != prev {
                    changes += 1;
                    say(format!(
                        "   idle: leader changed from s{} to s{}",
                        prev + 1,
                        l + 1
                    ));
                    prev = l;
                }
            }
            _ => disagreed += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((changes, disagreed, samples))
}

/// Runs the cluster figures that `opts.figures` asks for (5, 6, 7).
pub async fn run(opts: &Opts, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for fig in [5u8, 6, 7] {
        if !opts.figures.contains(&fig) {
            continue;
        }
        let d = dir.join(format!("fig{fig}"));
        std::fs::create_dir_all(&d)?;
        let r = match fig {
            5 => matrix(opts, &d, &mut rows).await,
            6 => failover(opts, &d, &mut rows).await,
            _ => startup(opts, &d, &mut rows).await,
        };
        if let Err(e) = r {
            say(format!("   figure {fig} FAILED: {e:#}"));
            failed.push(fig);
        }
    }
    if !failed.is_empty() && rows.is_empty() {
        bail!("figures {failed:?} failed");
    }
    Ok(rows)
}

/// Standard base64 with padding (etcd's JSON gateway wants bytes that way).
fn b64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_rfc() {
        assert_eq!(super::b64(b"f"), "Zg==");
        assert_eq!(super::b64(b"fo"), "Zm8=");
        assert_eq!(super::b64(b"foo"), "Zm9v");
        assert_eq!(super::b64(b"foobar"), "Zm9vYmFy");
    }
}
