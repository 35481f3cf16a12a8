//! `tribune-logbench`: the logging figures of issue 5, printed, not asserted (CI
//! runs the logging suite instead). Run it through `scripts/bench-logging.sh`
//! (or `scripts/bench.sh`), which builds it and `tribune` in release mode.
//!
//! ```text
//! tribune-logbench [--runs N] [--only calls,file,syslog,reconnect,http]
//! ```
//!
//! Figures (goals from the issue in brackets):
//! - `calls`: the cost of one log call on the calling thread, p50/p99, paced
//!   and in a burst [p99 ≤ 1 µs, never blocking];
//! - `file`: lines per second to a rotated JSON file from two threads, the
//!   lines dropped, and the time the writer spends in one rotation
//!   [≥ 1 M lines/s; a rotation stalls writers ≤ 1 ms at p99];
//! - `syslog`: messages per second to the real rsyslogd over TCP and UDP and
//!   the count lost [TCP ≥ 200,000/s with 0 loss; UDP paced ≤ 50,000/s];
//! - `reconnect`: from rsyslogd's restart to the first line delivered on the
//!   new connection, with lines logged meanwhile held [≤ 1 s];
//! - `http`: the agent's HTTP p50/p99 with logging off, at debug (file +
//!   syslog), and with the syslog sink stalled [within 10 %].
//!
//! Every measurement waits for a quiet CPU first (the shared bench tools'
//! `wait_quiet.py`, when present). Each scenario runs in a child process
//! (`tribune-logbench calls|file|syslog ...`), because the logging system is
//! global to a process. Environment: `TRIBUNE_BIN` (the agent for `http`),
//! `TRIBUNE_BENCH_NO_WAIT` (do not wait for a quiet CPU: a quick, noisy run).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tribune_agent::config::{RuntimeConfig, SyslogAddress};
use tribune_agent::logging;
use tribune_tests::process::{free_ports, Spawned, Workdir};
use tribune_tests::Agent;

const USAGE: &str = "usage: tribune-logbench [--runs N] [--only calls,file,syslog,reconnect,http]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("calls") => child_calls(),
        Some("file") => child_file(&args[1..]),
        Some("appender") => child_appender(&args[1..]),
        Some("syslog") => child_syslog(&args[1..]),
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => orchestrate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tribune-logbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---- children: one logging system each -------------------------------------------

/// The agent's logging configuration with only the sinks a scenario wants.
fn base_config() -> RuntimeConfig {
    let mut cfg = tribune_agent::config::dev_config("node-17");
    cfg.log_level = "info".into();
    cfg.log_stdout = false;
    cfg.log_json = true;
    cfg
}

/// The event every scenario logs: a check result with three fields, like the
/// shared `logbench` floor.
#[inline(never)]
fn log_one(seq: u64, run: &str) {
    tracing::info!(target: "checks", check_id = "service:web", node = "node-17", seq, run, "Check is now passing.");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The cost of `Instant::now()` twice, to subtract from timed calls.
fn timer_overhead() -> Duration {
    let mut v: Vec<Duration> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed()
        })
        .collect();
    v.sort();
    percentile(&v, 0.5)
}

/// Waits until `t`: sleeps while it is far (a paced producer must leave the CPU to the
/// sinks, as request handlers do), spins the last stretch (to time calls precisely).
fn spin_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        if t - now > Duration::from_micros(300) {
            std::thread::sleep(t - now - Duration::from_micros(200));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Sleeps until `t` (no spinning).
fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// `calls`: one thread, JSON to a rotated file; every call timed.
fn child_calls() -> anyhow::Result<()> {
    let dir = Workdir::new("logbench-calls")?;
    let mut cfg = base_config();
    cfg.log_file = Some(dir.path().join("consul.log"));
    cfg.log_rotate_bytes = 64 << 20;
    cfg.log_rotate_max_files = 2;
    let handle = logging::init(&cfg)?;
    let overhead = timer_overhead();
    for i in 0..20_000 {
        log_one(i, "warmup");
    }
    handle.flush(Duration::from_secs(30));
    // Paced: 100,000 calls, one every 10 µs (100k lines/s): the worker keeps up.
    let n = 100_000u64;
    let mut paced = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        spin_until(start + Duration::from_micros(10 * i));
        let t = Instant::now();
        log_one(i, "paced");
        paced.push(t.elapsed().saturating_sub(overhead));
    }
    handle.flush(Duration::from_secs(30));
    // Burst: 200,000 calls back to back.
    let n = 200_000u64;
    let mut burst = Vec::with_capacity(n as usize);
    for i in 0..n {
        let t = Instant::now();
        log_one(i, "burst");
        burst.push(t.elapsed().saturating_sub(overhead));
    }
    handle.flush(Duration::from_secs(30));
    // A disabled call (debug while the level is info).
    let mut off = Vec::with_capacity(100_000);
    for i in 0..100_000u64 {
        let t = Instant::now();
        tracing::debug!(target: "checks", seq = i, "Not logged.");
        off.push(t.elapsed().saturating_sub(overhead));
    }
    paced.sort();
    burst.sort();
    off.sort();
    let dropped: u64 = handle.stats().iter().map(|s| s.dropped).sum();
    println!(
        "RESULT paced_p50_ns={} paced_p99_ns={} paced_p999_ns={} paced_max_ns={} burst_p50_ns={} burst_p99_ns={} burst_max_ns={} off_p50_ns={} off_p99_ns={} dropped={dropped} timer_ns={}",
        percentile(&paced, 0.5).as_nanos(),
        percentile(&paced, 0.99).as_nanos(),
        percentile(&paced, 0.999).as_nanos(),
        paced.last().copied().unwrap_or_default().as_nanos(),
        percentile(&burst, 0.5).as_nanos(),
        percentile(&burst, 0.99).as_nanos(),
        burst.last().copied().unwrap_or_default().as_nanos(),
        percentile(&off, 0.5).as_nanos(),
        percentile(&off, 0.99).as_nanos(),
        overhead.as_nanos(),
    );
    Ok(())
}

/// `file N THREADS RATE`: N lines from THREADS threads, RATE lines/s in all (0: as fast
/// as they can), into a JSON file rotating every 16 MiB; every 16th call timed.
fn child_file(args: &[String]) -> anyhow::Result<()> {
    let n: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let threads: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let rate: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let dir = Workdir::new("logbench-file")?;
    let mut cfg = base_config();
    cfg.log_file = Some(dir.path().join("consul.log"));
    cfg.log_rotate_bytes = 16 << 20;
    cfg.log_rotate_max_files = 3;
    let handle = logging::init(&cfg)?;
    let overhead = timer_overhead();
    let start = Instant::now();
    let samples: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut v = Vec::with_capacity((n / threads / 16 + 1) as usize);
                    let step =
                        (rate > 0).then(|| Duration::from_secs_f64(threads as f64 / rate as f64));
                    for i in 0..n / threads {
                        // Paced in batches of 1024 with a sleep between them: the
                        // producers leave the CPU to the writer, as request handlers
                        // do (spinning would starve the nice-10 writer on 2 cores).
                        if let Some(step) = step {
                            if i.is_multiple_of(1024) {
                                sleep_until(start + step * i as u32);
                            }
                        }
                        if i.is_multiple_of(16) {
                            let t = Instant::now();
                            log_one(i, "file");
                            v.push(t.elapsed().saturating_sub(overhead));
                        } else {
                            log_one(i, "file");
                        }
                    }
                    v
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let produced = start.elapsed();
    let flushed = handle.flush(Duration::from_secs(120));
    let total = start.elapsed();
    let file = handle
        .stats()
        .into_iter()
        .find(|s| s.sink == "file")
        .context("no file sink")?;
    let mut calls = samples;
    calls.sort();
    let mut stalls = file.rotation_times.clone();
    stalls.sort();
    println!(
        "RESULT n={n} threads={threads} rate={rate} producer_rate={:.0} end_to_end_rate={:.0} written={} dropped={} flushed={flushed} rotations={} rotation_p50_us={} rotation_p99_us={} rotation_max_us={} call_p50_ns={} call_p99_ns={}",
        n as f64 / produced.as_secs_f64(),
        file.written as f64 / total.as_secs_f64(),
        file.written,
        file.dropped,
        file.rotations,
        percentile(&stalls, 0.5).as_micros(),
        percentile(&stalls, 0.99).as_micros(),
        stalls.last().copied().unwrap_or_default().as_micros(),
        percentile(&calls, 0.5).as_nanos(),
        percentile(&calls, 0.99).as_nanos(),
    );
    Ok(())
}

/// `appender N THREADS`: the peer. The same N lines from THREADS threads through
/// tracing-subscriber's JSON formatter (on the calling thread, as it works) into
/// tracing-appender's non-blocking writer (lossy, 65,536 lines of buffer, as Tribune's
/// queue) over a file that does not rotate (tracing-appender rotates only by time).
fn child_appender(args: &[String]) -> anyhow::Result<()> {
    let n: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let threads: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let dir = Workdir::new("logbench-appender")?;
    let file = tracing_appender::rolling::never(dir.path(), "consul.log");
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(65_536)
        .finish(file);
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::set_global_default(subscriber)?;
    let overhead = timer_overhead();
    let start = Instant::now();
    let samples: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut v = Vec::with_capacity((n / threads / 16 + 1) as usize);
                    for i in 0..n / threads {
                        if i.is_multiple_of(16) {
                            let t = Instant::now();
                            log_one(i, "appender");
                            v.push(t.elapsed().saturating_sub(overhead));
                        } else {
                            log_one(i, "appender");
                        }
                    }
                    v
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let produced = start.elapsed();
    // Dropping the guard waits for the worker to write what it holds.
    drop(guard);
    let total = start.elapsed();
    let text = std::fs::read(dir.path().join("consul.log"))?;
    let written = text.iter().filter(|&&b| b == b'\n').count() as u64;
    let mut calls = samples;
    calls.sort();
    println!(
        "RESULT n={n} threads={threads} producer_rate={:.0} end_to_end_rate={:.0} written={written} dropped={} call_p50_ns={} call_p99_ns={}",
        n as f64 / produced.as_secs_f64(),
        written as f64 / total.as_secs_f64(),
        (n / threads * threads).saturating_sub(written),
        percentile(&calls, 0.5).as_nanos(),
        percentile(&calls, 0.99).as_nanos(),
    );
    Ok(())
}

/// `syslog ADDRESS RATE SECONDS MARKER [UDP_RATE]`: lines at RATE per second (0:
/// as fast as possible, SECONDS then means 1,000,000 lines) to ADDRESS.
fn child_syslog(args: &[String]) -> anyhow::Result<()> {
    let [address, rate, seconds, marker, ..] = args else {
        bail!("syslog ADDRESS RATE SECONDS MARKER [UDP_RATE]");
    };
    let rate: u64 = rate.parse()?;
    let seconds: f64 = seconds.parse()?;
    let mut cfg = base_config();
    cfg.enable_syslog = true;
    cfg.syslog_address = Some(SyslogAddress::parse(address).map_err(anyhow::Error::msg)?);
    if let Some(r) = args.get(4) {
        cfg.syslog_udp_rate = r.parse()?;
    }
    let handle = logging::init(&cfg)?;
    // Let the sink connect before the clock starts.
    log_one(0, "connect");
    handle.flush(Duration::from_secs(10));
    let start = Instant::now();
    let mut sent = 0u64;
    if rate == 0 {
        for i in 0..1_000_000 {
            log_one(i, marker);
        }
        sent = 1_000_000;
    } else {
        let n = (rate as f64 * seconds) as u64;
        let step = Duration::from_secs_f64(1.0 / rate as f64);
        for i in 0..n {
            // Paced in batches of 64 so the clock is read 1/64 as often.
            if i.is_multiple_of(64) {
                spin_until(start + step * i as u32);
            }
            log_one(i, marker);
            sent += 1;
        }
    }
    let produced = start.elapsed();
    let flushed = handle.flush(Duration::from_secs(60));
    let total = start.elapsed();
    let s = handle
        .stats()
        .into_iter()
        .find(|s| s.sink == "syslog")
        .context("no syslog sink")?;
    println!(
        "RESULT sent={sent} written={} dropped={} flushed={flushed} produce_s={:.3} total_s={:.3}",
        s.written.saturating_sub(1),
        s.dropped,
        produced.as_secs_f64(),
        total.as_secs_f64()
    );
    Ok(())
}

// ---- the orchestrator ---------------------------------------------------------------

struct Opts {
    runs: usize,
    only: Vec<String>,
}

fn parse_opts(args: &[String]) -> anyhow::Result<Opts> {
    let mut o = Opts {
        runs: 5,
        only: ["calls", "file", "syslog", "reconnect", "http"]
            .map(String::from)
            .to_vec(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => o.runs = it.next().context(USAGE)?.parse()?,
            "--only" => {
                o.only = it
                    .next()
                    .context(USAGE)?
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(o)
}

fn wait_quiet() {
    if std::env::var_os("TRIBUNE_BENCH_NO_WAIT").is_some() {
        return;
    }
    let script = Path::new("/work/shared/bench/wait_quiet.py");
    if script.exists() {
        let _ = Command::new("python3")
            .arg(script)
            .args(["25", "120"])
            .stdout(Stdio::null())
            .status();
    }
}

/// Runs this binary in a child mode and returns its `RESULT` fields.
fn child(args: &[&str]) -> anyhow::Result<Vec<(String, f64)>> {
    child_with(args, None)
}

/// [`child`] with a library preloaded (another allocator, for comparison).
fn child_with(args: &[&str], preload: Option<&Path>) -> anyhow::Result<Vec<(String, f64)>> {
    wait_quiet();
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(&exe);
    cmd.args(args).stderr(Stdio::inherit());
    if let Some(lib) = preload {
        cmd.env("LD_PRELOAD", lib);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            exe.display(),
            args.join(" "),
            out.status
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("no RESULT from {}: {text}", args.join(" ")))?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.parse::<f64>()
                    .unwrap_or(if v == "true" { 1.0 } else { 0.0 }),
            )
        })
        .collect())
}

fn get(r: &[(String, f64)], k: &str) -> f64 {
    r.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| *v)
        .unwrap_or(f64::NAN)
}

/// Median and range of one field over runs.
fn med(runs: &[Vec<(String, f64)>], k: &str) -> (f64, f64, f64) {
    let mut v: Vec<f64> = runs.iter().map(|r| get(r, k)).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn fmt_range((m, lo, hi): (f64, f64, f64), unit: &str) -> String {
    format!("{m:.0}{unit} ({lo:.0}–{hi:.0})")
}

fn orchestrate(args: &[String]) -> anyhow::Result<()> {
    let opts = parse_opts(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut summary: Summary = Vec::new();
    let want = |s: &str| opts.only.iter().any(|o| o == s);
    if want("calls") {
        let runs: Vec<_> = (0..opts.runs)
            .map(|_| child(&["calls"]))
            .collect::<anyhow::Result<_>>()?;
        for (i, r) in runs.iter().enumerate() {
            println!(
                "calls run {}: paced p50 {} ns p99 {} ns p99.9 {} ns max {} ns; burst p50 {} ns p99 {} ns max {} ns; disabled p50 {} ns; dropped {}",
                i + 1,
                get(r, "paced_p50_ns"),
                get(r, "paced_p99_ns"),
                get(r, "paced_p999_ns"),
                get(r, "paced_max_ns"),
                get(r, "burst_p50_ns"),
                get(r, "burst_p99_ns"),
                get(r, "burst_max_ns"),
                get(r, "off_p50_ns"),
                get(r, "dropped")
            );
        }
        summary.push((
            "log call, paced 100k/s: p50 / p99".into(),
            format!(
                "{} / {}",
                fmt_range(med(&runs, "paced_p50_ns"), " ns"),
                fmt_range(med(&runs, "paced_p99_ns"), " ns")
            ),
            "p99 ≤ 1 µs".into(),
        ));
        summary.push((
            "log call, burst: p50 / p99".into(),
            format!(
                "{} / {}",
                fmt_range(med(&runs, "burst_p50_ns"), " ns"),
                fmt_range(med(&runs, "burst_p99_ns"), " ns")
            ),
            "p99 ≤ 1 µs, never blocks".into(),
        ));
        summary.push((
            "disabled (debug at info) call p50".into(),
            fmt_range(med(&runs, "off_p50_ns"), " ns"),
            "-".into(),
        ));
        calls_with_jemalloc(&opts, &mut summary)?;
    }
    if want("file") {
        file_figures(&opts, &mut summary)?;
    }
    if want("syslog") {
        rt.block_on(syslog_figures(&opts, &mut summary))?;
    }
    if want("reconnect") {
        rt.block_on(reconnect_figure(&mut summary))?;
    }
    if want("http") {
        rt.block_on(http_figures(&opts, &mut summary))?;
    }
    println!();
    println!(
        "{:<58} {:<44} goal",
        "figure (median of runs, range)", "measured"
    );
    for (a, b, c) in summary {
        println!("{a:<58} {b:<44} {c}");
    }
    Ok(())
}

type Summary = Vec<(String, String, String)>;

/// The agent runs on glibc's allocator; jemalloc (Debian's libjemalloc2, preloaded)
/// shows what the allocator adds to the tail of a log call.
fn calls_with_jemalloc(opts: &Opts, summary: &mut Summary) -> anyhow::Result<()> {
    let lib = Path::new("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2");
    if !lib.exists() {
        println!("(libjemalloc2 is not installed: no allocator comparison)");
        return Ok(());
    }
    let runs: Vec<_> = (0..opts.runs)
        .map(|_| child_with(&["calls"], Some(lib)))
        .collect::<anyhow::Result<_>>()?;
    for (i, r) in runs.iter().enumerate() {
        println!(
            "calls with jemalloc run {}: paced p50 {} ns p99 {} ns p99.9 {} ns; burst p50 {} ns p99 {} ns",
            i + 1,
            get(r, "paced_p50_ns"),
            get(r, "paced_p99_ns"),
            get(r, "paced_p999_ns"),
            get(r, "burst_p50_ns"),
            get(r, "burst_p99_ns"),
        );
    }
    summary.push((
        "  same with jemalloc preloaded: paced p99; burst p99".into(),
        format!(
            "{}; {}",
            fmt_range(med(&runs, "paced_p99_ns"), " ns"),
            fmt_range(med(&runs, "burst_p99_ns"), " ns")
        ),
        "-".into(),
    ));
    Ok(())
}

/// `file`: a burst as fast as two threads can log, then 1,000,000 lines/s paced; then
/// the peer (tracing-appender) with the same burst.
fn file_figures(opts: &Opts, summary: &mut Summary) -> anyhow::Result<()> {
    let mut burst_rate = f64::NAN;
    for (label, rate) in [
        ("as fast as 2 threads log", "0"),
        ("paced at 1,000,000/s", "1000000"),
    ] {
        let runs: Vec<_> = (0..opts.runs)
            .map(|_| child(&["file", "1000000", "2", rate]))
            .collect::<anyhow::Result<_>>()?;
        for (i, r) in runs.iter().enumerate() {
            println!(
                "file, {label}, run {}: producer {:.0}/s end-to-end {:.0}/s written {} dropped {} rotations {} rotation p50 {} µs p99 {} µs max {} µs; call p50 {} ns p99 {} ns",
                i + 1,
                get(r, "producer_rate"),
                get(r, "end_to_end_rate"),
                get(r, "written"),
                get(r, "dropped"),
                get(r, "rotations"),
                get(r, "rotation_p50_us"),
                get(r, "rotation_p99_us"),
                get(r, "rotation_max_us"),
                get(r, "call_p50_ns"),
                get(r, "call_p99_ns")
            );
        }
        if rate == "0" {
            burst_rate = med(&runs, "end_to_end_rate").0;
        }
        summary.push((
            format!("JSON file, 1M lines {label}: written/s; dropped"),
            format!(
                "{}; {}",
                fmt_range(med(&runs, "end_to_end_rate"), "/s"),
                fmt_range(med(&runs, "dropped"), "")
            ),
            "≥ 1,000,000/s".into(),
        ));
        summary.push((
            format!("  {label}: log call p50 / p99 (rotating)"),
            format!(
                "{} / {}",
                fmt_range(med(&runs, "call_p50_ns"), " ns"),
                fmt_range(med(&runs, "call_p99_ns"), " ns")
            ),
            "p99 ≤ 1 µs".into(),
        ));
        summary.push((
            format!("  {label}: rotation, rename+open off the writer p99 / max"),
            format!(
                "{} / {}",
                fmt_range(med(&runs, "rotation_p99_us"), " µs"),
                fmt_range(med(&runs, "rotation_max_us"), " µs")
            ),
            "writers stall ≤ 1 ms".into(),
        ));
    }
    let peer: Vec<_> = (0..opts.runs)
        .map(|_| child(&["appender", "1000000", "2"]))
        .collect::<anyhow::Result<_>>()?;
    for (i, r) in peer.iter().enumerate() {
        println!(
            "tracing-appender (peer), as fast as 2 threads log, run {}: producer {:.0}/s end-to-end {:.0}/s written {} dropped {}; call p50 {} ns p99 {} ns",
            i + 1,
            get(r, "producer_rate"),
            get(r, "end_to_end_rate"),
            get(r, "written"),
            get(r, "dropped"),
            get(r, "call_p50_ns"),
            get(r, "call_p99_ns")
        );
    }
    let peer_rate = med(&peer, "end_to_end_rate").0;
    summary.push((
        "  peer: tracing-appender, same burst: written/s; dropped".into(),
        format!(
            "{}; {}",
            fmt_range(med(&peer, "end_to_end_rate"), "/s"),
            fmt_range(med(&peer, "dropped"), "")
        ),
        "(1.3 M/s per issue 5)".into(),
    ));
    summary.push((
        "  peer: log call p50 / p99".into(),
        format!(
            "{} / {}",
            fmt_range(med(&peer, "call_p50_ns"), " ns"),
            fmt_range(med(&peer, "call_p99_ns"), " ns")
        ),
        "-".into(),
    ));
    summary.push((
        "  Tribune burst written/s ÷ tracing-appender's".into(),
        format!("{:.2}×", burst_rate / peer_rate),
        "≥ 1,000,000/s either way".into(),
    ));
    Ok(())
}

/// A private rsyslogd with one output: every local0 message as received.
struct Collector {
    dir: Workdir,
    tcp: u16,
    udp: u16,
    process: Option<Spawned>,
}

impl Collector {
    async fn start() -> anyhow::Result<Collector> {
        let dir = Workdir::new("logbench-rsyslog")?;
        let p = free_ports(2)?;
        std::fs::create_dir_all(dir.path().join("work"))?;
        std::fs::write(
            dir.path().join("rsyslog.conf"),
            format!(
                r#"global(workDirectory="{d}/work" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="Raw" type="string" string="%rawmsg%\n")
local0.* action(type="omfile" file="{d}/raw.log" template="Raw")
"#,
                d = dir.path().display(),
                tcp = p[0],
                udp = p[1]
            ),
        )?;
        let mut c = Collector {
            dir,
            tcp: p[0],
            udp: p[1],
            process: None,
        };
        c.spawn().await?;
        Ok(c)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let program = tribune_tests::process::find_program(
            "RSYSLOGD_BIN",
            &["rsyslogd", "/usr/sbin/rsyslogd"],
            "rsyslogd",
        )?;
        let mut cmd = Command::new(program);
        cmd.arg("-n")
            .arg("-f")
            .arg(self.dir.path().join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.path().join("pid"));
        let mut p = Spawned::spawn("rsyslogd", cmd, self.dir.path())?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.tcp)).is_err() {
            p.ensure_running()?;
            if Instant::now() > deadline {
                bail!("rsyslogd does not listen\n{}", p.output_tail());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // imudp starts with imtcp; give it a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.process = Some(p);
        Ok(())
    }

    fn raw(&self) -> PathBuf {
        self.dir.path().join("raw.log")
    }

    /// Lines of the run `marker` filed so far, once the count stops growing.
    async fn count_settled(&self, marker: &str) -> usize {
        let mut last = usize::MAX;
        loop {
            let n = self.count(marker);
            if n == last {
                return n;
            }
            last = n;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }

    fn count(&self, marker: &str) -> usize {
        let needle = format!("run=\"{marker}\"");
        std::fs::read_to_string(self.raw())
            .map(|t| t.lines().filter(|l| l.contains(&needle)).count())
            .unwrap_or(0)
    }
}

async fn syslog_figures(opts: &Opts, summary: &mut Summary) -> anyhow::Result<()> {
    let collector = Collector::start().await?;
    let tcp = format!("tcp://127.0.0.1:{}", collector.tcp);
    let udp = format!("udp://127.0.0.1:{}", collector.udp);
    struct Case {
        name: &'static str,
        address: String,
        rate: &'static str,
        seconds: &'static str,
        udp_rate: &'static str,
        goal: &'static str,
    }
    let cases = [
        Case {
            name: "TCP, 200,000 lines/s for 3 s",
            address: tcp.clone(),
            rate: "200000",
            seconds: "3",
            udp_rate: "50000",
            goal: "≥ 200,000/s, 0 lost",
        },
        Case {
            name: "TCP, 1,000,000 lines at once",
            address: tcp.clone(),
            rate: "0",
            seconds: "0",
            udp_rate: "50000",
            goal: "- (dropped at the agent, counted)",
        },
        Case {
            name: "UDP (paced 50k/s), 50,000 lines/s for 3 s",
            address: udp.clone(),
            rate: "50000",
            seconds: "3",
            udp_rate: "50000",
            goal: "0 lost",
        },
        Case {
            name: "UDP (paced 50k/s), 100,000 lines/s for 3 s",
            address: udp.clone(),
            rate: "100000",
            seconds: "3",
            udp_rate: "50000",
            goal: "sent ≤ 50,000/s",
        },
        Case {
            name: "UDP unpaced, 100,000 lines/s for 3 s",
            address: udp.clone(),
            rate: "100000",
            seconds: "3",
            udp_rate: "0",
            goal: "- (rsyslog drops above ≈ 75k/s)",
        },
    ];
    for (index, case) in cases.into_iter().enumerate() {
        let mut runs = Vec::new();
        for run in 0..opts.runs {
            let marker = format!("case{index}-run{run}-{}", std::process::id());
            let mut r = child(&[
                "syslog",
                &case.address,
                case.rate,
                case.seconds,
                &marker,
                case.udp_rate,
            ])?;
            let received = collector.count_settled(&marker).await as f64;
            let sent = get(&r, "sent");
            let written = get(&r, "written");
            r.push(("received".into(), received));
            r.push(("lost_total".into(), sent - received));
            r.push(("lost_wire".into(), written - received));
            r.push(("delivered_rate".into(), received / get(&r, "total_s")));
            r.push(("sink_rate".into(), written / get(&r, "total_s")));
            println!(
                "syslog {} run {}: sent {} written {} (agent dropped {}) received {} lost on the wire {} — {:.0} delivered/s, sink {:.0}/s, flushed {}",
                case.name,
                run + 1,
                sent,
                written,
                get(&r, "dropped"),
                received,
                written - received,
                received / get(&r, "total_s"),
                written / get(&r, "total_s"),
                get(&r, "flushed") == 1.0
            );
            runs.push(r);
        }
        summary.push((
            format!("syslog {}: delivered/s; lost", case.name),
            format!(
                "{}; {}",
                fmt_range(med(&runs, "delivered_rate"), "/s"),
                fmt_range(med(&runs, "lost_total"), "")
            ),
            case.goal.into(),
        ));
    }
    Ok(())
}

async fn reconnect_figure(summary: &mut Summary) -> anyhow::Result<()> {
    let mut collector = Collector::start().await?;
    let tcp = format!("tcp://127.0.0.1:{}", collector.tcp);
    let marker = format!("reconnect-{}", std::process::id());
    wait_quiet();
    // 2,000 lines/s for 8 s; rsyslogd killed after 2 s, restarted after 4 s.
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new(exe)
        .args(["syslog", &tcp, "2000", "8", &marker])
        .stdout(Stdio::piped())
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(mut p) = collector.process.take() {
        p.kill()?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = collector.count(&marker);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let restarting = Instant::now();
    collector.spawn().await?;
    let listening = restarting.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    let reconnect = loop {
        if collector.count(&marker) > before {
            break restarting.elapsed();
        }
        if Instant::now() > deadline {
            bail!("no line after the restart within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let out = child.wait_with_output().await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sent: f64 = text
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("sent="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let received = collector.count_settled(&marker).await as f64;
    println!(
        "reconnect: rsyslogd listening {listening:?} after the restart began; first held line filed {reconnect:?} after; sent {sent} received {received} lost {}",
        sent - received
    );
    summary.push((
        "syslog TCP: restart → first held line filed; lost".into(),
        format!(
            "{} ms (rsyslogd up in {} ms); {}",
            reconnect.as_millis(),
            listening.as_millis(),
            sent - received
        ),
        "≤ 1 s, held meanwhile".into(),
    ));
    Ok(())
}

/// Requests per second, p50, p99.
type Load = (f64, Duration, Duration);

/// `concurrency` clients sending TTL updates (each logs 2–3 lines) for `dur`.
async fn http_load(agent: &Agent, concurrency: usize, dur: Duration) -> anyhow::Result<Load> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..concurrency {
        let req = agent.request(
            reqwest::Method::PUT,
            &format!("/v1/agent/check/update/ttl-{c}"),
        );
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let status = if i.is_multiple_of(2) {
                    "warning"
                } else {
                    "passing"
                };
                let body = json!({"Status": status, "Output": format!("run {i}: disk 91% full")})
                    .to_string();
                let t = Instant::now();
                let ok = req.try_clone().map(|r| r.body(body));
                if let Some(r) = ok {
                    if let Ok(resp) = r.send().await {
                        let _ = resp.bytes().await;
                    }
                }
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let elapsed = start.elapsed();
    all.sort();
    Ok((
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    ))
}

async fn http_figures(opts: &Opts, summary: &mut Summary) -> anyhow::Result<()> {
    let mut collector = Collector::start().await?;
    let logs = Workdir::new("logbench-http")?;
    let tcp = format!("tcp://127.0.0.1:{}", collector.tcp);
    let off = json!({"log_level": "error", "log_stdout": false});
    let debug = json!({
        "log_level": "debug", "log_json": true,
        "log_file": format!("{}/", logs.path().display()),
        "log_rotate_bytes": 64 << 20, "log_rotate_max_files": 2,
        "enable_syslog": true, "syslog_address": tcp,
    });
    let configs = [("off", off), ("debug", debug.clone()), ("stalled", debug)];
    let mut agents = Vec::new();
    for (name, cfg) in &configs {
        let agent = Agent::start_with_config(cfg.clone()).await?;
        for c in 0..4 {
            agent
                .put_json_ok(
                    "/v1/agent/check/register",
                    &json!({"Name": format!("ttl-{c}"), "CheckID": format!("ttl-{c}"), "TTL": "600s"}),
                )
                .await?;
        }
        agents.push((*name, agent));
    }
    let mut results: Vec<(&str, Vec<Load>)> =
        configs.iter().map(|(n, _)| (*n, Vec::new())).collect();
    let dur = Duration::from_secs(5);
    // Interleaved: off, debug, stalled, off, debug, stalled, ...
    for _ in 0..opts.runs.max(1) {
        for (i, (name, agent)) in agents.iter().enumerate() {
            wait_quiet();
            if *name == "stalled" {
                collector
                    .process
                    .as_mut()
                    .context("rsyslogd")?
                    .signal(libc::SIGSTOP)?;
            }
            let r = http_load(agent, 4, dur).await;
            if *name == "stalled" {
                collector
                    .process
                    .as_mut()
                    .context("rsyslogd")?
                    .signal(libc::SIGCONT)?;
            }
            let r = r?;
            println!(
                "http {name}: {:.0} req/s, p50 {:?}, p99 {:?}",
                r.0, r.1, r.2
            );
            results[i].1.push(r);
        }
    }
    let stalled_dropped = std::fs::read_to_string(agents[2].1.dir().join("agent.stderr"))
        .map(|t| t.contains("Log lines dropped"))
        .unwrap_or(false);
    let median = |v: &[Load], f: fn(&Load) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        x[x.len() / 2]
    };
    let base99 = median(&results[0].1, |r| r.2.as_secs_f64() * 1e3);
    for (name, v) in &results {
        let p50 = median(v, |r| r.1.as_secs_f64() * 1e3);
        let p99 = median(v, |r| r.2.as_secs_f64() * 1e3);
        let rps = median(v, |r| r.0);
        summary.push((
            format!("HTTP TTL updates, 4 clients, logging {name}: req/s; p50 / p99"),
            format!(
                "{rps:.0}; {p50:.2} / {p99:.2} ms ({:+.0} % p99)",
                (p99 / base99 - 1.0) * 100.0
            ),
            if *name == "off" {
                "-".into()
            } else {
                "p99 within 10 % of off".into()
            },
        ));
    }
    println!("the stalled agent reported dropped lines: {stalled_dropped}");
    Ok(())
}
