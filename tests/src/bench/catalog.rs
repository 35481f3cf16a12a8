//! Figure 1: catalog read throughput against a bare hyper server.
//!
//! One agent with service `web` as 10 instances (10 IDs through
//! `PUT /v1/agent/service/register`), pinned to the server core; `wrk` with 64
//! connections on the other core against `GET /v1/catalog/service/web` and
//! `GET /v1/health/service/web`. For each endpoint a bare hyper server
//! ([`super::bare`]) pinned to the same core serves tribune's very body (so
//! the same size) and takes the same `wrk` load. Runs alternate
//! tribune, bare, tribune, bare..., each behind `wait_quiet.py`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use tribune_tests::process::{self, Spawned};

use super::{say, wait_quiet, wrk, BenchAgent, Opts, Row, Stat, WrkResult};

/// Instances of `web`.
pub const INSTANCES: usize = 10;
/// `wrk` connections and threads.
const CONNS: usize = 64;
const THREADS: usize = 2;

const GOAL_RPS: f64 = 60_000.0;
const GOAL_RATIO: f64 = 0.3;

struct Endpoint {
    label: &'static str,
    path: &'static str,
    body_len: usize,
    bare_port: u16,
    tribune: Vec<WrkResult>,
    bare: Vec<WrkResult>,
}

pub async fn run(opts: &Opts, dir: &Path) -> anyhow::Result<Vec<Row>> {
    say(format!(
        "\n== 1. Catalog read throughput: wrk -t{THREADS} -c{CONNS} -d{}s, server on cpu {}, wrk on cpu {}",
        opts.duration.as_secs(),
        opts.server_cpu,
        opts.client_cpu
    ));
    let agent = BenchAgent::start(opts, &dir.join("agent")).await?;
    for i in 1..=INSTANCES {
        agent.register("web", i).await?;
    }
    let mut endpoints = Vec::new();
    let mut bare_servers: Vec<Spawned> = Vec::new();
    for (label, path) in [
        ("catalog", "/v1/catalog/service/web"),
        ("health", "/v1/health/service/web"),
    ] {
        let reply = agent.get(path).await?.ensure_ok()?;
        let n = reply.json()?.as_array().map(Vec::len).unwrap_or(0);
        if n != INSTANCES {
            bail!("GET {path} returned {n} entries, expected {INSTANCES}");
        }
        let body_file = dir.join(format!("{label}.body"));
        std::fs::write(&body_file, &reply.body)?;
        let port = process::free_port()?;
        let mut cmd = super::pinned(opts.server_cpu, &opts.me);
        cmd.arg("bare")
            .arg(port.to_string())
            .arg(&body_file)
            .arg("1")
            .current_dir(dir);
        bare_servers.push(Spawned::spawn(&format!("bare-{label}"), cmd, dir)?);
        wait_for_bare(port, reply.body.len(), bare_servers.last_mut()).await?;
        say(format!(
            "   {path}: {n} entries, body {} bytes; bare server on :{port} serves the same bytes",
            reply.body.len()
        ));
        endpoints.push(Endpoint {
            label,
            path,
            body_len: reply.body.len(),
            bare_port: port,
            tribune: Vec::new(),
            bare: Vec::new(),
        });
    }

    // Warm-up, not counted: connections, caches, CPU frequency.
    for ep in &endpoints {
        wrk(
            opts,
            THREADS,
            CONNS,
            Duration::from_secs(2),
            "done.lua",
            &agent.url(ep.path),
        )?;
        wrk(
            opts,
            THREADS,
            CONNS,
            Duration::from_secs(2),
            "done.lua",
            &bare_url(ep),
        )?;
    }

    for run in 1..=opts.runs {
        for ep in endpoints.iter_mut() {
            for target in ["tribune", "bare"] {
                let quiet = wait_quiet(opts);
                let url = if target == "tribune" {
                    agent.url(ep.path)
                } else {
                    bare_url(ep)
                };
                let r = wrk(opts, THREADS, CONNS, opts.duration, "done.lua", &url)?;
                say(format!(
                    "   run {run} {:<7} {:<7} {:>9} req/s  p50 {:>6.0} µs  p99 {:>6.0} µs  errors {}  [{quiet}]",
                    ep.label, target, super::num(r.rps, 0), r.p50_us, r.p99_us, r.errors
                ));
                if target == "tribune" {
                    ep.tribune.push(r);
                } else {
                    ep.bare.push(r);
                }
            }
        }
    }
    drop(bare_servers);
    drop(agent);

    let mut rows = Vec::new();
    for ep in &endpoints {
        let t = Stat::of(&ep.tribune.iter().map(|r| r.rps).collect::<Vec<_>>());
        let b = Stat::of(&ep.bare.iter().map(|r| r.rps).collect::<Vec<_>>());
        let ratios: Vec<f64> = ep
            .tribune
            .iter()
            .zip(&ep.bare)
            .map(|(t, b)| t.rps / b.rps)
            .collect();
        let ratio = Stat::of(&ratios);
        let errors: u64 = ep.tribune.iter().chain(&ep.bare).map(|r| r.errors).sum();
        let p = |v: &[WrkResult], f: fn(&WrkResult) -> f64| {
            Stat::of(&v.iter().map(f).collect::<Vec<_>>())
        };
        let (tp50, tp99) = (
            p(&ep.tribune, |r| r.p50_us / 1e3),
            p(&ep.tribune, |r| r.p99_us / 1e3),
        );
        let (bp50, bp99) = (
            p(&ep.bare, |r| r.p50_us / 1e3),
            p(&ep.bare, |r| r.p99_us / 1e3),
        );
        say(format!("   {} ({} B body)", ep.path, ep.body_len));
        for (who, rps, p50, p99) in [("tribune", &t, &tp50, &tp99), ("bare", &b, &bp50, &bp99)] {
            say(format!(
                "     {who:<7} {} | p50 {} | p99 {}",
                rps.show(0, "req/s"),
                p50.show(2, "ms"),
                p99.show(2, "ms")
            ));
        }
        say(format!(
            "     ratio tribune/bare {:.2} (per pair {:.2}–{:.2}); wrk errors {errors}",
            t.median / b.median,
            ratio.min,
            ratio.max
        ));
        let name = format!("1. GET {} (64 conns)", ep.path);
        rows.push(Row::new(
            &name,
            format!(
                "{}; p50 {} ms, p99 {} ms",
                t.show(0, "req/s"),
                super::num(tp50.median, 2),
                super::num(tp99.median, 2)
            ),
            "≥ 60,000 req/s",
            Some(t.median >= GOAL_RPS && errors == 0),
        ));
        rows.push(Row::new(
            &format!("1. {} tribune/bare ({} B body)", ep.label, ep.body_len),
            format!(
                "{:.2} ({:.2}–{:.2}); bare {}",
                t.median / b.median,
                ratio.min,
                ratio.max,
                b.show(0, "req/s")
            ),
            "≥ 0.3",
            Some(t.median / b.median >= GOAL_RATIO),
        ));
    }
    Ok(rows)
}

fn bare_url(ep: &Endpoint) -> String {
    format!("http://127.0.0.1:{}{}", ep.bare_port, ep.path)
}

/// Waits until the bare server answers with `len` bytes.
async fn wait_for_bare(port: u16, len: usize, server: Option<&mut Spawned>) -> anyhow::Result<()> {
    let client = tribune_tests::http::client();
    let url = format!("http://127.0.0.1:{port}/");
    let server = server.context("no bare server")?;
    for _ in 0..500 {
        server.ensure_running()?;
        if let Ok(r) = client.get(&url).send().await {
            let got = r.bytes().await?.len();
            if got != len {
                bail!("the bare server answered {got} bytes, expected {len}");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the bare server on :{port} did not answer within 5 s")
}
