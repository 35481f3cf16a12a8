//! Figure 4: startup time and idle memory.
//!
//! Each start execs `tribune agent -config-dir DIR` (a single server with
//! `bootstrap_expect: 1`, data on the real disk) pinned to the server core
//! from its first instruction, while this process, on the client core, tries
//! `GET /v1/agent/self` in a tight loop (connect, request, read the status
//! line; no sleep). The time is from just before the exec to the first `200`.
//! Every start is done twice, alternating: with a fresh `data_dir` (a first
//! boot: node ID, Raft bootstrap) and again on the same `data_dir` (a
//! restart). The fresh agent's RSS is read 5 s after its first 200.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{num, say, sys, wait_quiet, Opts, Row, Stat};

const GOAL_MS: f64 = 10.0;
const GOAL_IDLE_RSS_BYTES: f64 = 12e6;
const IDLE_AFTER: Duration = Duration::from_secs(5);

/// A started agent; killed on drop.
struct Started {
    child: Child,
    dir: std::path::PathBuf,
}

impl Started {
    /// SIGTERM, then up to 5 s for a clean exit, then SIGKILL.
    fn stop(mut self) {
        let _ = sys::kill(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The `startup_ms` the agent logs with "Agent started." (its own view:
    /// from logging set-up to ready), or `?`.
    fn reported_startup_ms(&self) -> String {
        let text =
            strip_ansi(&std::fs::read_to_string(self.dir.join("agent.stderr")).unwrap_or_default());
        text.lines()
            .filter(|l| l.contains("Agent started"))
            .find_map(|l| {
                let rest = &l[l.find("startup_ms")? + "startup_ms".len()..];
                let digits: String = rest
                    .chars()
                    .skip_while(|c| !c.is_ascii_digit())
                    .take_while(char::is_ascii_digit)
                    .collect();
                (!digits.is_empty()).then_some(digits)
            })
            .unwrap_or_else(|| "?".into())
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("agent.stderr")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub fn run(opts: &Opts, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let fs = super::ensure_real_disk(dir)?;
    say(format!(
        "\n== 4. Startup: exec → first 200 from /v1/agent/self, {} starts (fresh and existing data_dir \
         alternating), agent pinned to cpu {}, poller on cpu {}; data in {} ({fs})",
        opts.starts,
        opts.server_cpu,
        opts.client_cpu,
        dir.display()
    ));
    let (mut fresh, mut again, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=opts.starts {
        let d = dir.join(format!("start{i}"));
        let quiet = wait_quiet(opts);
        let (ms, agent) = start(opts, &d)?;
        std::thread::sleep(IDLE_AFTER);
        let inner = agent.reported_startup_ms();
        let kib = super::rss_kib(agent.child.id())?;
        agent.stop();
        let quiet2 = wait_quiet(opts);
        let (ms2, agent) = start(opts, &d)?;
        // The agent's own log line is written after the listener is bound.
        std::thread::sleep(Duration::from_millis(200));
        let inner2 = agent.reported_startup_ms();
        agent.stop();
        say(format!(
            "   start {i:>2}: fresh data_dir {ms:>6.2} ms (agent's startup_ms={inner}), idle RSS after 5 s {} MB \
             [{quiet}]; restart {ms2:>6.2} ms (startup_ms={inner2}) [{quiet2}]",
            num(kib as f64 * 1024.0 / 1e6, 1)
        ));
        fresh.push(ms);
        again.push(ms2);
        rss.push(kib as f64 * 1024.0);
    }
    let (fresh, again, rss) = (Stat::of(&fresh), Stat::of(&again), Stat::of(&rss));
    say(format!(
        "   fresh data_dir: {}; existing data_dir: {}; idle RSS: {} MB ({}–{})",
        fresh.show(2, "ms"),
        again.show(2, "ms"),
        num(rss.median / 1e6, 1),
        num(rss.min / 1e6, 1),
        num(rss.max / 1e6, 1)
    ));
    Ok(vec![
        Row::new(
            "4. startup, exec → 200 (fresh data_dir)",
            fresh.show(2, "ms"),
            "≤ 10 ms",
            Some(fresh.median <= GOAL_MS),
        ),
        Row::new(
            "4. startup, exec → 200 (existing data_dir)",
            again.show(2, "ms"),
            "≤ 10 ms",
            Some(again.median <= GOAL_MS),
        ),
        Row::new(
            "4. idle RSS 5 s after start",
            format!(
                "{} MB ({}–{}) = {} MiB",
                num(rss.median / 1e6, 1),
                num(rss.min / 1e6, 1),
                num(rss.max / 1e6, 1),
                num(rss.median / 1048576.0, 1)
            ),
            "≤ 12 MB",
            Some(rss.median <= GOAL_IDLE_RSS_BYTES),
        ),
    ])
}

/// Execs the agent with its config in `dir` and returns the milliseconds to
/// the first `200` from `/v1/agent/self`.
fn start(opts: &Opts, dir: &Path) -> anyhow::Result<(f64, Started)> {
    std::fs::create_dir_all(dir)?;
    let ports = tribune_tests::process::free_ports(5)?;
    let config_dir = super::write_config(dir, &super::agent_config(&dir.join("data"), &ports))?;
    let mut cmd = Command::new(&opts.tribune);
    cmd.arg("agent")
        .arg(format!("-config-dir={}", config_dir.display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("agent.stdout"))?)
        .stderr(std::fs::File::create(dir.join("agent.stderr"))?);
    sys::pin_child(&mut cmd, opts.server_cpu);
    sys::die_with_parent(&mut cmd);
    let addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let request = b"GET /v1/agent/self HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

    let t0 = Instant::now();
    let child = cmd.spawn().context("spawn tribune agent")?;
    let mut agent = Started {
        child,
        dir: dir.to_path_buf(),
    };
    loop {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_nodelay(true);
            let mut head = [0u8; 12];
            if s.write_all(request).is_ok()
                && s.read_exact(&mut head).is_ok()
                && &head[9..12] == b"200"
            {
                return Ok((t0.elapsed().as_secs_f64() * 1e3, agent));
            }
        }
        if let Ok(Some(status)) = agent.child.try_wait() {
            bail!("the agent exited with {status}:\n{}", agent.stderr_tail());
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!(
                "no 200 from /v1/agent/self within 30 s:\n{}",
                agent.stderr_tail()
            );
        }
    }
}

/// Drops terminal colour sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
