//! The WASM plugin benchmark (issue #4, point 7). Not part of CI; one command builds
//! everything in release mode and runs it:
//!
//! ```text
//! scripts/bench-plugins.sh
//! ```
//!
//! It prints, per language, the cost of one check call (a fresh store from the pooled
//! instance-pre, ~200 bytes in and out) as p50/p99 with and without the limits, the
//! compile and cached-load time, and RSS per loaded plugin and per idle pooled slot (all
//! from `tribune plugin bench`); the cost of a tag rewrite and of an event-hook call on
//! a kept instance; a process spawn for comparison (what a Consul script check costs at
//! least); and, in a real agent, the CPU it spends on 1,000 WASM checks per second, the
//! RSS of each loaded plugin, and its own HTTP p99 with and without 100 WASM checks
//! running at 1 s intervals.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tribune_tests::{must, Agent};

fn components() -> PathBuf {
    match std::env::var_os("TRIBUNE_PLUGIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/tribune-plugins/components"),
    }
}

fn component(name: &str) -> anyhow::Result<PathBuf> {
    let p = components().join(format!("{name}.wasm"));
    if !p.is_file() {
        bail!("{} is missing: run scripts/build-plugins.sh", p.display());
    }
    Ok(p)
}

/// `tribune plugin bench FILE [args]` → its JSON report.
fn plugin_bench(file: &str, extra: &[&str]) -> anyhow::Result<Value> {
    let bin = tribune_tests::process::tribune_bin()?;
    let path = component(file)?;
    let out = std::process::Command::new(bin)
        .args(["plugin", "bench"])
        .args(extra)
        .arg(&path)
        .output()
        .context("run tribune plugin bench")?;
    if !out.status.success() {
        bail!(
            "plugin bench {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Cost of spawning a process (a Consul script check spawns at least one).
fn spawn_cost() -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..300)
        .map(|_| {
            let t = Instant::now();
            let _ = std::process::Command::new("/bin/true").status();
            t.elapsed()
        })
        .collect();
    samples.sort();
    (pct(&samples, 0.5), pct(&samples, 0.99))
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): utime is 14, stime 15.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn agent_pid(agent: &Agent) -> anyhow::Result<u32> {
    let port = agent.http_addr().port();
    let out = std::process::Command::new("ss")
        .args(["-ltnpH", &format!("sport = :{port}")])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("pid=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no pid for port {port}"))
}

/// The agent's CPU use over `window`, percent of one core.
async fn cpu_percent(pid: u32, window: Duration) -> f64 {
    let hz = 100.0; // USER_HZ on Linux
    let before = cpu_ticks(pid);
    tokio::time::sleep(window).await;
    let used = (cpu_ticks(pid) - before) as f64 / hz;
    used / window.as_secs_f64() * 100.0
}

async fn http_samples(agent: &Agent, n: usize) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = must(agent.http_get("/v1/agent/services").await);
        assert_eq!(r.status, 200);
        v.push(t.elapsed());
    }
    v
}

fn check_defs(n: usize, plugin: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"Name": format!("wasm-{i}"), "Interval": "1s", "Timeout": "2s",
                   "Wasm": {"Plugin": plugin, "Config": {"n": i}}})
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("== per call (tribune plugin bench; fresh store from the pooled InstancePre)");
    println!(
        "{:<8} {:>9} {:>9} {:>12} {:>9} {:>10} {:>11} {:>10} {:>10}",
        "lang",
        "p50 µs",
        "p99 µs",
        "p50 nolimit",
        "limits %",
        "compile ms",
        "cached ms",
        "RSS KiB",
        "slot KiB"
    );
    for lang in ["rust", "c", "python", "js"] {
        let r = plugin_bench(&format!("example-{lang}"), &[])?;
        println!(
            "{:<8} {:>9.1} {:>9.1} {:>12.1} {:>9.1} {:>10} {:>11} {:>10} {:>10}",
            lang,
            r["call_us"]["p50"].as_f64().unwrap_or(0.0),
            r["call_us"]["p99"].as_f64().unwrap_or(0.0),
            r["call_us_without_limits"]["p50"].as_f64().unwrap_or(0.0),
            r["limits_overhead_pct"].as_f64().unwrap_or(0.0),
            r["compile_ms"],
            r["cached_load_ms"],
            r["rss_kib"]["loaded_plugin"],
            r["rss_kib"]["per_idle_slot"],
        );
    }
    for (what, file) in [
        ("tag rewrite", "tag-rewrite"),
        ("event hook", "fixture-quiet-hook"),
    ] {
        let r = plugin_bench(file, &[])?;
        println!(
            "{what} on a kept instance: p50 {:.2} µs, p99 {:.2} µs (without limits p50 {:.2} µs)",
            r["call_us"]["p50"].as_f64().unwrap_or(0.0),
            r["call_us"]["p99"].as_f64().unwrap_or(0.0),
            r["call_us_without_limits"]["p50"].as_f64().unwrap_or(0.0),
        );
    }
    let r = plugin_bench("example-rust", &[])?;
    println!(
        "rust checks per second on one thread: {:.0}",
        r["calls_per_second_one_thread"].as_f64().unwrap_or(0.0)
    );
    let (spawn50, spawn99) = spawn_cost();
    println!(
        "process spawn (the floor of a Consul script check): p50 {spawn50:?}, p99 {spawn99:?}"
    );

    println!("\n== in a real agent");
    let hello = component("fixture-hello")?;
    // RSS per loaded plugin: 20 copies of a Rust check vs none.
    let bare = must(Agent::start_with_config(json!({})).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bare_rss = rss_kib(agent_pid(&bare)?);
    drop(bare);
    let plugins: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("hello{i}"), "path": hello}))
        .collect();
    let loaded = must(Agent::start_with_config(json!({"plugins": plugins})).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded_rss = rss_kib(agent_pid(&loaded)?);
    println!(
        "RSS: agent {bare_rss} KiB; with 20 Rust plugins {loaded_rss} KiB: {} KiB per loaded plugin",
        loaded_rss.saturating_sub(bare_rss) / 20
    );
    drop(loaded);

    let agent = must(
        Agent::start_with_config(json!({"plugins": [{"name": "hello", "path": hello}]})).await,
    );
    let pid = agent_pid(&agent)?;
    let idle_cpu = cpu_percent(pid, Duration::from_secs(10)).await;
    // HTTP latency without and with 100 WASM checks at 1 s, in alternating rounds so that
    // what the rest of a shared machine does weighs on both sides alike.
    let (mut base, mut with) = (Vec::new(), Vec::new());
    for round in 0..3 {
        base.extend(http_samples(&agent, 700).await);
        for def in check_defs(100, "hello") {
            must(must(agent.http_put_json("/v1/agent/check/register", &def).await).ensure_ok());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        with.extend(http_samples(&agent, 700).await);
        if round < 2 {
            for i in 0..100 {
                must(
                    must(
                        agent
                            .http_put(&format!("/v1/agent/check/deregister/wasm-{i}"), "")
                            .await,
                    )
                    .ensure_ok(),
                );
            }
        }
    }
    base.sort();
    with.sort();
    let (base50, base99, with50, with99) = (
        pct(&base, 0.5),
        pct(&base, 0.99),
        pct(&with, 0.5),
        pct(&with, 0.99),
    );
    println!(
        "agent HTTP GET /v1/agent/services ({} samples each, 3 alternating rounds): \
         p50 {base50:?} p99 {base99:?} without checks; \
         p50 {with50:?} p99 {with99:?} with 100 WASM checks at 1 s ({:+.1} % p99)",
        base.len(),
        (with99.as_secs_f64() / base99.as_secs_f64() - 1.0) * 100.0
    );
    let cpu100 = cpu_percent(pid, Duration::from_secs(10)).await;
    for def in check_defs(1000, "hello").into_iter().skip(100) {
        must(must(agent.http_put_json("/v1/agent/check/register", &def).await).ensure_ok());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu1000 = cpu_percent(pid, Duration::from_secs(20)).await;
    let calls = must(agent.get_json("/v1/agent/plugins").await)[0]["Counters"]["Calls"].clone();
    println!(
        "agent CPU: idle {idle_cpu:.1} %, 100 checks/s {cpu100:.1} %, 1000 checks/s {cpu1000:.1} % of one core \
         ({:.1} % for the checks); {calls} calls so far",
        cpu1000 - idle_cpu
    );
    Ok(())
}
