//! The seed's log shipping (`-syslog` to facility local0, rsyslog's rule
//! `local0.* /var/log/consul/consul.log`, logrotate) against Tribune, with
//! Debian's real rsyslogd started privately for each test.
//!
//! What a pass proves:
//! 1. the seed's rule files the agent's lines received through a local socket
//!    (syslog(3)'s format), through UDP and through TCP (RFC 5424 with the
//!    event's fields as structured data, RFC 6587 framing), with Consul's level
//!    → severity mapping, and a 150 KB line or one with a newline stays one line;
//! 2. tokens, the gossip key and `token=` query parameters never reach stderr,
//!    the log file, syslog or a monitor;
//! 3. a frozen (SIGSTOP) or killed rsyslogd does not move the agent's HTTP
//!    latency; lines are held while it is away, dropped and counted beyond the
//!    bound (with a warning), and the connection comes back after a restart;
//! 4. `log_file` rotates by size and by time keeping exactly
//!    `log_rotate_max_files` archives, the active file keeping its name, and
//!    compresses archives when asked;
//! 5. `tribune monitor` streams the live log at its own level, text or JSON,
//!    and ends when the agent stops.
//!
//! rsyslogd missing makes the tests fail with the install command; nothing is
//! skipped.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use reqwest::Method;
use serde_json::{json, Value};
use tribune_tests::process::{tribune_bin, Spawned, Workdir};
use tribune_tests::rsyslog::Rsyslog;
use tribune_tests::{must, wait_until, Agent};

/// How long a line may take from the agent to rsyslog's file.
const DELIVERY: Duration = Duration::from_secs(10);
const CHECK: &str = "web-ttl";

async fn register_web(agent: &Agent) -> anyhow::Result<()> {
    agent
        .put_json_ok(
            "/v1/agent/service/register",
            &json!({"Name": "web", "ID": "web", "Check": {"CheckID": CHECK, "TTL": "600s"}}),
        )
        .await?;
    Ok(())
}

/// A TTL update: each one that changes the status logs a line (`Check is now
/// warning` carries the output).
async fn ttl(agent: &Agent, status: &str, output: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    agent
        .put_json_ok(
            &format!("/v1/agent/check/update/{CHECK}"),
            &json!({"Status": status, "Output": output}),
        )
        .await?;
    Ok(started.elapsed())
}

/// Waits for a line of `text()` containing `needle` and returns it.
async fn line_with(what: &str, text: impl Fn() -> String, needle: &str) -> anyhow::Result<String> {
    wait_until(DELIVERY, what, || {
        let t = text();
        async move {
            match t.lines().find(|l| l.contains(needle)) {
                Some(l) => Ok(l.to_string()),
                None => bail!(
                    "no line contains {needle:?} yet ({} lines)",
                    t.lines().count()
                ),
            }
        }
    })
    .await
}

fn stderr_of(agent: &Agent) -> String {
    std::fs::read_to_string(agent.dir().join("agent.stderr")).unwrap_or_default()
}

/// A logging figure of `GET /v1/agent/metrics` (Consul's JSON shape) for one sink.
async fn log_metric(agent: &Agent, name: &str, sink: &str) -> anyhow::Result<u64> {
    let reply = agent.http_get("/v1/agent/metrics").await?;
    ensure!(reply.status == 200, "{}: {}", reply.status, reply.text());
    let v = reply.json()?;
    v["Gauges"]
        .as_array()
        .context("no Gauges")?
        .iter()
        .find(|g| g["Name"] == name && g["Labels"]["sink"] == sink)
        .and_then(|g| g["Value"].as_u64())
        .with_context(|| format!("no {name} for sink {sink}: {v}"))
}

fn syslog_config(address: &str) -> Value {
    json!({"enable_syslog": true, "syslog_address": address, "log_level": "info"})
}

#[tokio::test]
async fn seed_rule_receives_lines_through_the_local_socket() {
    let rs = must(Rsyslog::start().await);
    let address = format!("unix://{}", rs.socket().display());
    let agent = must(Agent::start_with_config(syslog_config(&address)).await);
    must(register_web(&agent).await);
    must(ttl(&agent, "warning", "disk 91% full\nsecond line").await);

    let warn = must(
        line_with(
            "the warning in the seed's file",
            || rs.read_seed_log(),
            "Check is now warning",
        )
        .await,
    );
    assert!(
        warn.contains(" tribune[")
            && warn.contains(&format!(
                "]: [WARN]  checks: Check is now warning: check_id={CHECK} output=\"disk 91% full\\nsecond line\""
            )),
        "{warn}"
    );
    let synced = must(
        line_with(
            "the sync in the seed's file",
            || rs.read_seed_log(),
            "Synced service",
        )
        .await,
    );
    assert!(
        synced.contains("[INFO]  agent: Synced service: service=web"),
        "{synced}"
    );
    // Facility local0 (16) and compat §14.5's severities: WARN → warning (4), INFO → notice (5).
    let full = rs.read_rfc5424_log();
    let pri = |needle: &str| -> String {
        let l = full
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {full}"));
        l[..l.find('>').unwrap() + 1].to_string()
    };
    assert_eq!(pri("Check is now warning"), "<132>");
    assert_eq!(pri("Synced service"), "<133>");
}

#[tokio::test]
async fn udp_and_tcp_carry_rfc5424_with_structured_data() {
    let rs = must(Rsyslog::start().await);
    let mut warnings_filed = 0;
    for (proto, address, long) in [
        ("udp", rs.udp_address(), 30_000usize),
        ("tcp", rs.tcp_address(), 150_000),
    ] {
        let mut config = syslog_config(&address);
        config["check_output_max_size"] = json!(200_000);
        let agent = must(Agent::start_with_config(config).await);
        must(register_web(&agent).await);
        let output = format!("{proto} says \"hi\" ] \\ then\nbreaks");
        must(ttl(&agent, "warning", &output).await);

        let line = must(
            line_with(
                &format!("the {proto} warning in RFC 5424 form"),
                || rs.read_rfc5424_log(),
                &format!("{proto} says"),
            )
            .await,
        );
        assert!(
            line.starts_with("<132>1 ") && line.contains(" tribune "),
            "{line}"
        );
        let sd = format!(
            " checks [tribune@32473 level=\"warn\" check_id=\"{CHECK}\" \
             output=\"{proto} says \\\"hi\\\" \\] \\\\ then\\nbreaks\"] Check is now warning."
        );
        assert!(line.contains(&sd), "expected {sd}\n in {line}");
        // The seed's rule files the message (its traditional format has no structured data).
        let seen = warnings_filed;
        must(
            wait_until(DELIVERY, "the warning in the seed's file", || {
                let t = rs.read_seed_log();
                async move {
                    let n = t
                        .lines()
                        .filter(|l| l.contains(" tribune[") && l.contains("Check is now warning."))
                        .count();
                    ensure!(n > seen, "{n} warnings filed");
                    Ok(())
                }
            })
            .await,
        );
        warnings_filed += 2;

        // A long line is one message: framed by length on TCP, one datagram on UDP.
        must(ttl(&agent, "passing", "").await);
        let marker = format!("END-{proto}");
        let body = format!("{}{marker}", "x".repeat(long));
        must(ttl(&agent, "warning", &body).await);
        let long_line = must(
            line_with(
                &format!("the long {proto} line"),
                || rs.read_raw_log(),
                &marker,
            )
            .await,
        );
        assert!(
            long_line.starts_with("<132>1 "),
            "the long line was split: {}",
            &long_line[..200.min(long_line.len())]
        );
        assert!(
            long_line.contains(&format!("output=\"{body}\"] Check is now warning.")),
            "the long {proto} line lost bytes ({} bytes)",
            long_line.len()
        );
        drop(agent);
    }
}

#[tokio::test]
async fn secrets_are_hidden_in_every_sink() {
    const TOKEN: &str = "08ad8862-f702-eb26-0276-d8255b11267e";
    const KEY: &str = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
    let rs = must(Rsyslog::start().await);
    let logs = Workdir::new("logs").unwrap();
    let agent = must(
        Agent::start_with_config(json!({
            "log_level": "debug",
            "log_json": true,
            "log_file": format!("{}/", logs.path().display()),
            "enable_syslog": true,
            "syslog_address": rs.tcp_address(),
            "encrypt": KEY,
            "acl": {"enabled": true, "default_policy": "deny", "tokens": {"master": TOKEN}},
        }))
        .await,
    );
    must(register_web(&agent).await);
    // A monitor whose URL carries the token (its "opened" line logs the URL).
    let mut monitor = must(
        agent
            .request(
                Method::GET,
                &format!("/v1/agent/monitor?loglevel=debug&token={TOKEN}"),
            )
            .send()
            .await
            .context("open the monitor"),
    );
    assert_eq!(monitor.status(), 200);
    let output = format!(
        "leaked {TOKEN} and {KEY}; GET /v1/kv/x?token=QUERYSECRET&dc=dc1; X-Consul-Token: HEADERSECRET"
    );
    must(ttl(&agent, "warning", &output).await);

    let mut streamed = String::new();
    let deadline = Instant::now() + DELIVERY;
    while !streamed.contains("leaked") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), monitor.chunk()).await {
            Ok(Ok(Some(chunk))) => streamed.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("monitor stream failed: {e}"),
            Err(_) => {}
        }
    }
    let file_text = || std::fs::read_to_string(logs.path().join("consul.log")).unwrap_or_default();
    must(line_with("the file", file_text, "leaked").await);
    must(line_with("syslog", || rs.read_rfc5424_log(), "leaked").await);
    must(line_with("stderr", || stderr_of(&agent), "leaked").await);
    for (sink, text) in [
        ("monitor", streamed),
        ("log file", file_text()),
        ("syslog (RFC 5424)", rs.read_rfc5424_log()),
        ("syslog (seed file)", rs.read_seed_log()),
        ("stderr", stderr_of(&agent)),
    ] {
        for secret in [TOKEN, KEY, "QUERYSECRET", "HEADERSECRET"] {
            assert!(!text.contains(secret), "{sink} shows {secret}:\n{text}");
        }
        // The seed's traditional format shows the message only (fields are structured data).
        if sink != "syslog (seed file)" {
            assert!(text.contains("<hidden>"), "{sink} hid nothing:\n{text}");
        }
    }
    // The monitor's own line logged its URL with the token hidden.
    assert!(
        file_text().contains("/v1/agent/monitor?loglevel=debug&token=<hidden>"),
        "{}",
        file_text()
    );
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

/// `n` TTL updates alternating warning/passing, each warning logging `size` bytes.
async fn timed_updates(
    agent: &Agent,
    n: usize,
    size: usize,
    tag: &str,
) -> anyhow::Result<Vec<Duration>> {
    timed_updates_from(agent, 0, n, size, tag).await
}

/// [`timed_updates`] on `agent` and `control` in turn: the same requests, logging
/// the same lines, timed side by side, so that the machine's own load (other
/// tests, builds) weighs on both samples alike.
async fn paired_updates(
    agent: &Agent,
    control: &Agent,
    n: usize,
    size: usize,
    tag: &str,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut a, mut c) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in (0..n).step_by(2) {
        a.extend(timed_updates_from(agent, i, 2, size, tag).await?);
        c.extend(timed_updates_from(control, i, 2, size, tag).await?);
    }
    Ok((a, c))
}

/// Updates `first..first + n` of [`timed_updates`].
async fn timed_updates_from(
    agent: &Agent,
    first: usize,
    n: usize,
    size: usize,
    tag: &str,
) -> anyhow::Result<Vec<Duration>> {
    let filler = "y".repeat(size);
    let mut out = Vec::with_capacity(n);
    for i in first..first + n {
        let (status, output) = if i.is_multiple_of(2) {
            ("warning", format!("{tag}-{i} {filler}"))
        } else {
            ("passing", String::new())
        };
        out.push(ttl(agent, status, &output).await?);
    }
    Ok(out)
}

fn summary(samples: &[Duration]) -> (Duration, Duration, Duration) {
    let mut s = samples.to_vec();
    (
        percentile(&mut s, 0.5),
        percentile(&mut s, 0.99),
        *s.last().unwrap(),
    )
}

/// Latency while the sink is away stays in line with the control agent's, measured
/// at the same time: no request waits for syslog.
fn assert_not_stalled(phase: &str, base: &[Duration], now: &[Duration]) {
    let (b50, b99, _) = summary(base);
    let (n50, n99, nmax) = summary(now);
    let slow: Vec<(usize, Duration)> = now
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, d)| *d > b99 * 3)
        .collect();
    eprintln!("{phase}: p50 {n50:?} p99 {n99:?} max {nmax:?} (control p50 {b50:?} p99 {b99:?}); slow: {slow:?}");
    assert!(
        n50 <= b50 * 3 + Duration::from_millis(5),
        "{phase}: p50 {n50:?} vs control {b50:?}"
    );
    assert!(
        n99 <= b99 * 3 + Duration::from_millis(50),
        "{phase}: p99 {n99:?} vs control {b99:?}"
    );
    // A blocked log write would cost every request 200 ms or more (the sink's write
    // timeout), which the percentiles catch; a few slow requests are the machine's,
    // and the control agent has its share of them.
    let over = |v: &[Duration]| {
        v.iter()
            .filter(|d| **d >= Duration::from_millis(200))
            .count()
    };
    let (over_now, over_base) = (over(now), over(base));
    assert!(
        over_now <= over_base * 3 + now.len() / 100,
        "{phase}: {over_now} of {} requests took 200 ms or more (control: {over_base})",
        now.len()
    );
}

#[tokio::test]
async fn a_stalled_or_stopped_rsyslog_does_not_stall_the_agent() {
    const SIZE: usize = 64 * 1024;
    let mut rs = must(Rsyslog::start().await);
    let mut config = syslog_config(&rs.tcp_address());
    config["log_level"] = json!("debug");
    config["check_output_max_size"] = json!(SIZE + 1024);
    let agent = must(Agent::start_with_config(config).await);
    must(register_web(&agent).await);
    // The same agent without syslog: its latency, taken in turn with the other's, is
    // what "does not move" is measured against.
    let control = must(
        Agent::start_with_config(json!({
            "log_level": "debug",
            "check_output_max_size": SIZE + 1024,
        }))
        .await,
    );
    must(register_web(&control).await);

    must(timed_updates(&agent, 200, SIZE, "base").await);
    must(
        line_with(
            "the baseline's last line",
            || rs.read_rfc5424_log(),
            "base-198 ",
        )
        .await,
    );

    // Frozen: connected, but reading nothing; the socket buffers fill.
    must(rs.pause());
    let (frozen, base) = must(paired_updates(&agent, &control, 400, SIZE, "frozen").await);
    assert_not_stalled("rsyslogd frozen", &base, &frozen);
    must(rs.resume());
    must(ttl(&agent, "passing", "").await);
    must(ttl(&agent, "warning", "after-thaw").await);
    must(
        line_with(
            "a line after the thaw",
            || rs.read_rfc5424_log(),
            "after-thaw",
        )
        .await,
    );

    // Killed: the connection is gone; lines are held, then dropped beyond the bound.
    must(rs.kill());
    tokio::time::sleep(Duration::from_millis(500)).await;
    must(ttl(&agent, "passing", "").await);
    must(ttl(&agent, "warning", "held-while-down").await);
    let (gone, base) = must(paired_updates(&agent, &control, 600, SIZE, "gone").await);
    assert_not_stalled("rsyslogd killed", &base, &gone);
    let warning = must(
        line_with(
            "the drop warning on stderr",
            || stderr_of(&agent),
            "Log lines dropped",
        )
        .await,
    );
    assert!(
        warning.contains("sink=syslog") && warning.contains("total_dropped="),
        "{warning}"
    );
    // The loss is a metric too, in Consul's JSON and in Prometheus' text.
    let dropped = must(log_metric(&agent, "consul.log.lines_dropped", "syslog").await);
    assert!(dropped > 0, "no syslog drops counted");
    let prom = must(agent.http_get("/v1/agent/metrics?format=prometheus").await);
    assert_eq!(prom.status, 200);
    assert!(
        prom.text().lines().any(|l| l
            .strip_prefix("consul_log_lines_dropped{sink=\"syslog\"} ")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= dropped)),
        "{}",
        prom.text()
    );

    let restarted = Instant::now();
    must(rs.restart().await);
    must(
        line_with(
            "the line held while rsyslogd was down",
            || rs.read_rfc5424_log(),
            "held-while-down",
        )
        .await,
    );
    eprintln!(
        "held line delivered {:?} after the restart began",
        restarted.elapsed()
    );
    // The held backlog drains first; a line logged while the queue is still full is
    // dropped by design, so keep logging until one gets through.
    let mut n = 0u32;
    must(
        wait_until(
            Duration::from_secs(30),
            "a line logged after the restart",
            || {
                n += 1;
                let attempt = n;
                let agent = &agent;
                let text = rs.read_rfc5424_log();
                async move {
                    if text.contains("after-restart-") {
                        return Ok(());
                    }
                    ttl(agent, "passing", "").await?;
                    ttl(agent, "warning", &format!("after-restart-{attempt}")).await?;
                    bail!("not delivered yet")
                }
            },
        )
        .await,
    );
    assert!(
        stderr_of(&agent).contains("Reconnected to syslog"),
        "{}",
        stderr_of(&agent)
    );
}

fn archives(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.strip_prefix("consul-")
                        .and_then(|r| r.strip_suffix(suffix))
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn rotation_by_size_keeps_exactly_max_files() {
    let logs = Workdir::new("logs").unwrap();
    let agent = must(
        Agent::start_with_config(json!({
            "log_level": "debug",
            "log_file": format!("{}/", logs.path().display()),
            "log_rotate_bytes": 4096,
            "log_rotate_max_files": 3,
        }))
        .await,
    );
    must(register_web(&agent).await);
    must(timed_updates(&agent, 80, 1000, "size").await);
    let dir = logs.path();
    must(
        wait_until(DELIVERY, "exactly 3 archives", || async {
            let a = archives(dir, ".log");
            ensure!(a.len() == 3, "archives: {a:?}");
            Ok(())
        })
        .await,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = archives(dir, ".log");
    assert_eq!(a.len(), 3, "{a:?}");
    for name in &a {
        let size = std::fs::metadata(dir.join(name)).unwrap().len();
        assert!(size <= 4096 && size > 1000, "{name}: {size} bytes");
    }
    let active = std::fs::read_to_string(dir.join("consul.log")).unwrap();
    assert!(active.lines().all(|l| l.contains(" [")), "{active}");
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        4,
        "only the active file and 3 archives: {names:?}"
    );
    // The newest archive's last line comes right before the active file's first.
    let newest = std::fs::read_to_string(dir.join(&a[2])).unwrap();
    assert!(newest.ends_with('\n'), "an archive ends with a whole line");
}

#[tokio::test]
async fn rotation_by_time_compresses_and_keeps_exactly_max_files() {
    let logs = Workdir::new("logs").unwrap();
    let agent = must(
        Agent::start_with_config(json!({
            "log_level": "info",
            "log_json": true,
            "log_file": logs.path().join("consul.log"),
            "log_rotate_duration": "1s",
            "log_rotate_max_files": 2,
            "log_rotate_compress": true,
        }))
        .await,
    );
    must(register_web(&agent).await);
    let started = Instant::now();
    let mut i = 0u32;
    while started.elapsed() < Duration::from_secs(5) {
        let status = if i.is_multiple_of(2) {
            "warning"
        } else {
            "passing"
        };
        must(ttl(&agent, status, &format!("tick-{i}")).await);
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = logs.path();
    must(
        wait_until(DELIVERY, "exactly 2 compressed archives", || async {
            let gz = archives(dir, ".log.gz");
            let plain = archives(dir, ".log");
            ensure!(
                gz.len() == 2 && plain.is_empty(),
                "compressed {gz:?}, plain {plain:?}"
            );
            Ok(())
        })
        .await,
    );
    for name in archives(dir, ".log.gz") {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(dir.join(&name))
            .output()
            .expect("run gzip -dc");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.is_empty(), "{name} is empty");
        for line in text.lines() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            for key in ["@level", "@message", "@module", "@timestamp"] {
                assert!(v.get(key).is_some(), "{name}: no {key}: {line}");
            }
            let module = v["@module"].as_str().unwrap();
            assert!(
                ["agent", "raft", "gossip", "http", "checks", "plugins", "acl", "dns", "rpc"]
                    .contains(&module),
                "{line}"
            );
        }
    }
    assert!(
        dir.join("consul.log").exists(),
        "the active file keeps its exact name"
    );
}

#[tokio::test]
async fn monitor_streams_the_live_log_at_its_own_level() {
    let agent = must(Agent::start_with_config(json!({"log_level": "info"})).await);
    // A warning before anyone watches: monitors start with the recent warnings.
    must(register_web(&agent).await);
    must(ttl(&agent, "warning", "before-the-monitors").await);
    let work = Workdir::new("monitor").unwrap();
    let spawn = |name: &str, extra: &[&str]| {
        let mut cmd = std::process::Command::new(must(tribune_bin()));
        cmd.arg("monitor")
            .arg(format!("-http-addr={}", agent.http_addr()))
            .args(extra);
        must(Spawned::spawn(name, cmd, work.path()))
    };
    let mut text = spawn("monitor-text", &["-log-level=debug"]);
    let mut json_mon = spawn("monitor-json", &["-log-level=info", "-log-json"]);
    let read = |name: &str| {
        std::fs::read_to_string(work.path().join(format!("{name}.stdout"))).unwrap_or_default()
    };
    // Both are connected once their opening line (debug) or the replayed warning shows.
    must(
        line_with(
            "the text monitor to connect",
            || read("monitor-text"),
            "Monitor stream opened",
        )
        .await,
    );
    must(
        line_with(
            "the json monitor to replay the warning",
            || read("monitor-json"),
            "before-the-monitors",
        )
        .await,
    );
    must(ttl(&agent, "passing", "").await);

    must(
        line_with(
            "the check in the text monitor",
            || read("monitor-text"),
            &format!("[INFO]  checks: Check is now passing: check_id={CHECK}"),
        )
        .await,
    );
    let j = must(
        line_with(
            "the check in the json monitor",
            || read("monitor-json"),
            "Check is now passing.",
        )
        .await,
    );
    let v: Value = serde_json::from_str(&j).unwrap_or_else(|e| panic!("{e}: {j}"));
    assert_eq!(v["@module"], "checks");
    assert_eq!(v["@level"], "info");
    assert_eq!(v["check_id"], CHECK);
    assert!(
        read("monitor-json")
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{}",
        read("monitor-json")
    );
    assert!(
        !read("monitor-json").contains("\"debug\""),
        "the info monitor got debug lines"
    );
    // The debug lines went to the debug monitor only, not to the agent's own log.
    assert!(
        read("monitor-text").contains("[DEBUG] "),
        "{}",
        read("monitor-text")
    );
    assert!(
        !stderr_of(&agent).contains("[DEBUG]"),
        "{}",
        stderr_of(&agent)
    );

    let bad = must(agent.http_get("/v1/agent/monitor?loglevel=loud").await);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.text(), "Unknown log level: loud");

    let mut agent = agent;
    must(agent.terminate(Duration::from_secs(15)).await);
    let status = must(text.wait_exit(Duration::from_secs(10)).await);
    assert_eq!(status.code(), Some(1), "{}", text.output_tail());
    assert!(
        read("monitor-text").contains("Remote side ended the monitor!"),
        "{}",
        read("monitor-text")
    );
    must(json_mon.wait_exit(Duration::from_secs(10)).await);
}

/// The default `syslog_address` is the local socket `/dev/log`. Tested only when
/// `/dev/log` is free: then a private rsyslogd takes it for the test and removes it.
#[tokio::test]
async fn default_address_is_dev_log_when_free() {
    let dev_log = Path::new("/dev/log");
    if dev_log.symlink_metadata().is_ok() {
        eprintln!("/dev/log belongs to this machine's syslog daemon; not replacing it");
        let agent = must(Agent::start_with_config(json!({"enable_syslog": true})).await);
        must(register_web(&agent).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !stderr_of(&agent).contains("Cannot reach syslog"),
            "{}",
            stderr_of(&agent)
        );
        return;
    }
    let probe = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open("/dev/.tribune-probe");
    if probe.is_err() {
        panic!("/dev/log is absent and /dev is not writable: run the suite as root (as CI does) to test the default syslog address");
    }
    let _ = std::fs::remove_file("/dev/.tribune-probe");
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_file("/dev/log");
        }
    }
    let _cleanup = Cleanup;
    let rs = must(Rsyslog::start_at(Some(dev_log)).await);
    let agent = must(Agent::start_with_config(json!({"enable_syslog": true})).await);
    must(register_web(&agent).await);
    let line = must(
        line_with(
            "a line through /dev/log",
            || rs.read_seed_log(),
            "Synced service",
        )
        .await,
    );
    assert!(
        line.contains(" tribune[") && line.contains("service=web"),
        "{line}"
    );
    drop(agent);
    drop(rs);
}

/// A full disk (the log file is `/dev/full`, where every write fails with ENOSPC):
/// the agent keeps serving, says once that it cannot write, holds a bounded backlog,
/// drops and counts the rest, and writes again as soon as the file is writable.
#[tokio::test]
async fn a_full_disk_loses_lines_counted_and_recovers() {
    const SIZE: usize = 64 * 1024;
    let logs = Workdir::new("logs").unwrap();
    let active = logs.path().join("consul.log");
    std::os::unix::fs::symlink("/dev/full", &active).unwrap();
    let agent = must(
        Agent::start_with_config(json!({
            "log_level": "debug",
            "log_file": format!("{}/", logs.path().display()),
            "check_output_max_size": SIZE + 1024,
        }))
        .await,
    );
    must(register_web(&agent).await);
    // 200 warnings of 64 KiB: far beyond the 4 MiB the file sink holds back.
    let times = must(timed_updates(&agent, 400, SIZE, "full").await);
    let (p50, p99, max) = summary(&times);
    eprintln!("updates while the disk is full: p50 {p50:?} p99 {p99:?} max {max:?}");
    must(
        line_with(
            "the write error on stderr",
            || stderr_of(&agent),
            "Cannot write the log file",
        )
        .await,
    );
    let warning = must(
        line_with(
            "the drop warning on stderr",
            || stderr_of(&agent),
            "Log lines dropped",
        )
        .await,
    );
    assert!(warning.contains("sink=file"), "{warning}");
    let dropped = must(log_metric(&agent, "consul.log.lines_dropped", "file").await);
    assert!(dropped > 0, "no file drops counted");

    // Space again: the path now names a writable file; the sink notices within a
    // second, reopens it and writes what it still holds, then new lines.
    let fresh = logs.path().join("fresh.log");
    std::fs::write(&fresh, b"").unwrap();
    std::fs::rename(&fresh, &active).unwrap();
    let file_text = || std::fs::read_to_string(&active).unwrap_or_default();
    let mut n = 0u32;
    must(
        wait_until(DELIVERY, "a line in the file after space came back", || {
            n += 1;
            let attempt = n;
            let text = file_text();
            let agent = &agent;
            async move {
                if text.contains("after-space-") {
                    return Ok(());
                }
                ttl(agent, "passing", "").await?;
                ttl(agent, "warning", &format!("after-space-{attempt}")).await?;
                bail!("not written yet ({} bytes)", text.len())
            }
        })
        .await,
    );
    must(
        line_with(
            "the recovery notice",
            || stderr_of(&agent),
            "Writing the log file again",
        )
        .await,
    );
    // Whole lines only: the backlog was kept line by line.
    let text = file_text();
    for line in text.lines() {
        assert!(
            line.len() > 25 && line.as_bytes()[24] == b' ' && line.contains(" ["),
            "a broken line: {}",
            &line[..line.len().min(120)]
        );
    }
}

/// `log_level` is reloadable: `tribune reload` after the config file changes makes
/// the file sink more and then less verbose, without a restart.
#[tokio::test]
async fn log_level_follows_a_reload() {
    let logs = Workdir::new("logs").unwrap();
    let agent = must(
        Agent::start_with_config(json!({
            "log_level": "info",
            "log_file": format!("{}/", logs.path().display()),
        }))
        .await,
    );
    let file_text = || std::fs::read_to_string(logs.path().join("consul.log")).unwrap_or_default();
    let reload = |level: &str| {
        std::fs::write(
            agent.config_dir().join("zz-log-level.json"),
            json!({ "log_level": level }).to_string(),
        )
        .unwrap();
        let out = std::process::Command::new(must(tribune_bin()))
            .arg("reload")
            .arg(format!("-http-addr={}", agent.http_addr()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tribune reload: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    must(register_web(&agent).await);
    // A changed output under the same status logs "Check output changed." at debug.
    must(ttl(&agent, "warning", "info-1").await);
    must(ttl(&agent, "warning", "info-2").await);
    must(ttl(&agent, "passing", "").await);
    must(line_with("the info lines", file_text, "Check is now passing").await);
    assert!(!file_text().contains("[DEBUG]"), "{}", file_text());

    reload("debug");
    must(ttl(&agent, "warning", "debug-1").await);
    must(ttl(&agent, "warning", "debug-2").await);
    let debug = must(
        line_with(
            "a debug line after the reload to debug",
            file_text,
            "Check output changed",
        )
        .await,
    );
    assert!(debug.contains("[DEBUG] checks: "), "{debug}");

    reload("warn");
    // Lines logged before the reload may still be on their way to the file: a warning
    // marks where the new level starts (the file sink keeps the order of lines).
    must(ttl(&agent, "passing", "").await);
    must(ttl(&agent, "warning", "warn-0").await);
    must(
        line_with(
            "the first warning after the reload to warn",
            file_text,
            "warn-0",
        )
        .await,
    );
    let text = file_text();
    let before = text.find("warn-0").unwrap();
    let before = before + text[before..].find('\n').unwrap();
    must(ttl(&agent, "passing", "").await);
    must(ttl(&agent, "warning", "warn-1").await);
    let tail = || file_text()[before..].to_string();
    must(line_with("the warning after the reload to warn", tail, "warn-1").await);
    assert!(
        !tail().contains("[INFO]") && !tail().contains("[DEBUG]"),
        "{}",
        tail()
    );
}
