//! Tribune's benchmark (`scripts/bench.sh`, documented in `tests/BENCH.md`).
//!
//! One run prints four figures with their goals, each measured under the
//! rules of the shared bench README: every measurement behind `wait_quiet.py`,
//! medians of at least five runs with their range, runs of the compared
//! servers interleaved, data on the real disk with fsync on.
//!
//! - [`catalog`]: catalog/health read throughput with `wrk`, against a bare
//!   hyper server ([`bare`]) serving a body of the same size;
//! - [`fanout`]: 10,000 parked blocking queries woken by one write, with 1,000
//!   watchers of another service that must stay asleep;
//! - [`kv`]: single-node KV PUT latency and throughput with fsync;
//! - [`startup`]: exec to the first 200 from `/v1/agent/self`, idle RSS;
//! - [`cluster`]: three servers against a three-member etcd 3.4: replicated
//!   KV writes and reads, leader failover, cluster start and memory.
//!
//! This module holds what they share: options, the neutral tools (`wrk`
//! scripts, `wait_quiet.py`), statistics, `/proc` readings and the agent
//! launcher.

pub mod bare;
pub mod catalog;
pub mod cluster;
pub mod fanout;
pub mod kv;
pub mod startup;
pub mod sys;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tribune_tests::process::{self, Spawned};
use tribune_tests::Reply;

/// What to run and how long; set from the command line.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Runs per measured configuration (the median is taken over these).
    pub runs: usize,
    /// `wrk` duration per run.
    pub duration: Duration,
    /// Figures to run, 1..=7.
    pub figures: Vec<u8>,
    /// Parked long-polls on `web` (figure 2).
    pub polls: usize,
    /// Parked watchers of `db` that must not wake (figure 2).
    pub watchers: usize,
    /// Agent starts for figure 4 (and cluster starts for figure 7, at most 5).
    pub starts: usize,
    /// Leader kills for figure 6.
    pub kills: usize,
    /// Seconds figure 6 then watches the idle cluster for leader changes.
    pub idle_secs: usize,
    /// The core servers run on, and the core `wrk` and the clients run on.
    pub server_cpu: usize,
    pub client_cpu: usize,
    /// Where agents keep their data (must not be tmpfs).
    pub base_dir: PathBuf,
    /// The neutral tools: `done.lua`, `consul_put.lua`, `wait_quiet.py`.
    pub tools: PathBuf,
    /// The `tribune` binary.
    pub tribune: PathBuf,
    /// This binary (it is also the bare server).
    pub me: PathBuf,
}

/// The shared tools, copied verbatim from the bench directory, used when that
/// directory is not on this machine.
const DONE_LUA: &str = r#"function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d errors=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"#;

const CONSUL_PUT_LUA: &str = r#"-- Consul-style KV PUT: /v1/kv/<8-byte unique key> with a raw 256-byte body (same sizes as put.lua)
local tcount = 0
local VAL = string.rep("v", 256)
function setup(thread) thread:set("tid", tcount); tcount = tcount + 1 end
local n = 0
function init(args) wrk.method = "PUT" end
function request()
  n = n + 1
  return wrk.format(nil, string.format("/v1/kv/%d%07d", tid, n % 10000000), nil, VAL)
end
function response(status, headers, body) if status ~= 200 then print("ERR", status, body) end end
dofile("done.lua")
"#;

const WAIT_QUIET_PY: &str = r#"#!/usr/bin/env python3
# Block until the machine's CPU busy fraction over a 2 s window is below a threshold (default 15%),
# or until max_wait seconds pass. Prints the busy% seen. Used to avoid measuring during other sessions' builds.
import sys, time
thr = float(sys.argv[1]) if len(sys.argv) > 1 else 15.0
max_wait = float(sys.argv[2]) if len(sys.argv) > 2 else 180.0
def snap():
    f = open("/proc/stat").readline().split()[1:]
    v = list(map(int, f)); idle = v[3] + v[4]; return sum(v), idle
t0 = time.time()
while True:
    a = snap(); time.sleep(2); b = snap()
    busy = 100.0 * (1 - (b[1] - a[1]) / max(1, b[0] - a[0]))
    if busy < thr or time.time() - t0 > max_wait:
        print("quiet_check busy=%.0f%% waited=%.0fs" % (busy, time.time() - t0)); break
    time.sleep(3)
"#;

const CONSUL_GET_LUA: &str = r#"-- Consul-style KV GET of one key: SERIAL=1 -> ?stale (any server), otherwise ?consistent (quorum-checked)
local q = os.getenv("SERIAL") == "1" and "?stale" or "?consistent"
function init(args) wrk.method = "GET"; wrk.path = "/v1/kv/00000001" .. q end
function response(status, headers, body) if status ~= 200 then print("ERR", status, body) end end
dofile("done.lua")
"#;

const PUT_LUA: &str = r#"-- etcd v3 gateway PUT: 8-byte unique keys, 256-byte value (matches etcd's published benchmark)
dofile("b64.lua")
local tcount = 0
local VAL = b64(string.rep("v", 256))
function setup(thread) thread:set("tid", tcount); tcount = tcount + 1 end
local n = 0
function init(args) wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json" end
function request()
  n = n + 1
  local key = string.format("%d%07d", tid, n % 10000000)
  return wrk.format(nil, "/v3/kv/put", nil, '{"key":"'..b64(key)..'","value":"'..VAL..'"}')
end
function response(status, headers, body) if status ~= 200 then print("ERR", status, body) end end
dofile("done.lua")
"#;

const RANGE_LUA: &str = r#"-- etcd v3 gateway range on one key; SERIAL env selects serializable
dofile("b64.lua")
local ser = os.getenv("SERIAL") == "1" and ',"serializable":true' or ''
local body = '{"key":"'..b64("00000001")..'"'..ser..'}'
function init(args) wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json"; wrk.body = body; wrk.path = "/v3/kv/range" end
function response(status, headers, body) if status ~= 200 then print("ERR", status, body) end end
dofile("done.lua")
"#;

const B64_LUA: &str = r#"local b='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
function b64(data)
  return ((data:gsub('.', function(x)
    local r,bb='',x:byte()
    for i=8,1,-1 do r=r..(bb%2^i-bb%2^(i-1)>0 and '1' or '0') end
    return r;
  end)..'0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if (#x < 6) then return '' end
    local c=0
    for i=1,6 do c=c+(x:sub(i,i)=='1' and 2^(6-i) or 0) end
    return b:sub(c+1,c+1)
  end)..({ '', '==', '=' })[#data%3+1])
end
"#;

/// The shared bench directory of this machine.
pub const SHARED_TOOLS: &str = "/work/shared/bench";

/// `TRIBUNE_BENCH_TOOLS`, else the shared bench directory if it has the
/// tools, else the embedded copies written under `scratch`.
pub fn resolve_tools(scratch: &Path) -> anyhow::Result<PathBuf> {
    let wanted = [
        "done.lua",
        "consul_put.lua",
        "consul_get.lua",
        "put.lua",
        "range.lua",
        "b64.lua",
        "wait_quiet.py",
    ];
    let has_all = |dir: &Path| wanted.iter().all(|f| dir.join(f).is_file());
    if let Some(dir) = std::env::var_os("TRIBUNE_BENCH_TOOLS").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !has_all(&dir) {
            bail!(
                "TRIBUNE_BENCH_TOOLS={} lacks one of {wanted:?}",
                dir.display()
            );
        }
        return Ok(dir);
    }
    if has_all(Path::new(SHARED_TOOLS)) {
        return Ok(PathBuf::from(SHARED_TOOLS));
    }
    let dir = scratch.join("tools");
    std::fs::create_dir_all(&dir)?;
    for (name, text) in [
        ("done.lua", DONE_LUA),
        ("consul_put.lua", CONSUL_PUT_LUA),
        ("wait_quiet.py", WAIT_QUIET_PY),
        ("consul_get.lua", CONSUL_GET_LUA),
        ("put.lua", PUT_LUA),
        ("range.lua", RANGE_LUA),
        ("b64.lua", B64_LUA),
    ] {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(dir)
}

/// Runs `wait_quiet.py 20 120` (the threshold and patience of the shared
/// `run_matrix.sh`) and returns what it printed, e.g. `busy=3% waited=2s`.
pub fn wait_quiet(opts: &Opts) -> String {
    let out = Command::new("python3")
        .arg(opts.tools.join("wait_quiet.py"))
        .args(["20", "120"])
        .stderr(Stdio::inherit())
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .trim()
            .trim_start_matches("quiet_check ")
            .to_string(),
        Err(e) => format!("wait_quiet.py failed: {e}"),
    }
}

/// Median, minimum and maximum of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stat {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// `median (min–max)` with `decimals` digits and a unit.
    pub fn show(&self, decimals: usize, unit: &str) -> String {
        format!(
            "{} {unit} ({}–{})",
            num(self.median, decimals),
            num(self.min, decimals),
            num(self.max, decimals)
        )
    }
}

/// A number with `decimals` digits and thousands separators.
pub fn num(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_string(), format!(".{f}")),
        None => (s.clone(), String::new()),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}{frac}", if x < 0.0 { "-" } else { "" })
}

/// One line of the final summary.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub goal: String,
    /// `None`: informational, no goal.
    pub pass: Option<bool>,
}

impl Row {
    pub fn new(figure: &str, value: String, goal: &str, pass: Option<bool>) -> Row {
        Row {
            figure: figure.into(),
            value,
            goal: goal.into(),
            pass,
        }
    }
}

/// The summary table.
pub fn table(rows: &[Row]) -> String {
    let head = ["figure", "value: median (range)", "goal", "result"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.value.clone(),
                r.goal.clone(),
                match r.pass {
                    Some(true) => "pass".into(),
                    Some(false) => "MISS".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut w = head.map(|h| h.chars().count());
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let line = |c: &[String; 4]| {
        let mut s = String::from("|");
        for (i, x) in c.iter().enumerate() {
            let pad = w[i] - x.chars().count();
            let _ = write!(s, " {x}{} |", " ".repeat(pad));
        }
        s
    };
    let mut out = line(&head.map(String::from));
    out.push('\n');
    let mut sep = String::from("|");
    for wi in w {
        let _ = write!(sep, "{}|", "-".repeat(wi + 2));
    }
    out.push_str(&sep);
    for c in &cells {
        out.push('\n');
        out.push_str(&line(c));
    }
    out
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// User plus system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces; fields resume after its ')'.
    let rest = stat
        .rsplit_once(')')
        .context("malformed /proc/<pid>/stat")?
        .1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The filesystem type of `dir` as `stat -f` names it; fails on tmpfs or
/// ramfs, which would make fsync free.
pub fn ensure_real_disk(dir: &Path) -> anyhow::Result<String> {
    let out = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .context("run stat -f")?;
    let fs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || fs.is_empty() {
        bail!("stat -f {} failed", dir.display());
    }
    if fs == "tmpfs" || fs == "ramfs" {
        bail!(
            "{} is on {fs}: the data must be on the real disk (set TRIBUNE_BENCH_DIR)",
            dir.display()
        );
    }
    Ok(fs)
}

/// `taskset -c CPU program args...`.
pub fn pinned(cpu: usize, program: &Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(cpu.to_string()).arg(program);
    cmd
}

/// The agent config every figure uses: a single server (`server: true`,
/// `bootstrap_expect: 1`) on loopback ports that were free, data in `data`.
/// `limits.http_max_conns_per_client` is raised because every connection of
/// the benchmark comes from 127.0.0.1 (Consul's default is 200).
pub fn agent_config(data: &Path, ports: &[u16]) -> Value {
    json!({
        "node_name": "bench",
        "datacenter": "dc1",
        "data_dir": data,
        "bind_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "server": true,
        "bootstrap_expect": 1,
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

/// Writes `config` as `<dir>/config/tribune.json` and returns the config dir.
pub fn write_config(dir: &Path, config: &Value) -> anyhow::Result<PathBuf> {
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(
        config_dir.join("tribune.json"),
        serde_json::to_vec_pretty(config)?,
    )?;
    Ok(config_dir)
}

/// A running `tribune agent` for figures 1–3, pinned with `taskset`.
pub struct BenchAgent {
    pub http: u16,
    pub client: reqwest::Client,
    pub process: Spawned,
}

impl BenchAgent {
    /// Starts `taskset -c <server_cpu> tribune agent -config-dir <dir>/config`
    /// with data in `<dir>/data`, and waits until it answers and leads.
    pub async fn start(opts: &Opts, dir: &Path) -> anyhow::Result<BenchAgent> {
        std::fs::create_dir_all(dir)?;
        let ports = process::free_ports(5)?;
        let config_dir = write_config(dir, &agent_config(&dir.join("data"), &ports))?;
        let mut cmd = pinned(opts.server_cpu, &opts.tribune);
        cmd.arg("agent")
            .arg(format!("-config-dir={}", config_dir.display()))
            .current_dir(dir);
        let process = Spawned::spawn("agent", cmd, dir)?;
        let mut agent = BenchAgent {
            http: ports[0],
            client: tribune_tests::http::client(),
            process,
        };
        let started = std::time::Instant::now();
        loop {
            agent.process.ensure_running()?;
            if let Ok(r) = agent.get("/v1/status/leader").await {
                if r.status == 200
                    && r.json()
                        .ok()
                        .and_then(|v| v.as_str().map(|s| !s.is_empty()))
                        == Some(true)
                {
                    return Ok(agent);
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the agent did not elect itself within 30 s\n{}",
                    agent.process.output_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        Reply::send(self.client.get(self.url(path))).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        Reply::send(
            self.client
                .put(self.url(path))
                .body(serde_json::to_vec(body)?),
        )
        .await
    }

    /// Registers `name` instance `i` the way the seed registers node_exporter
    /// (ID, Name, Address, Port, Tags, EnableTagOverride) over the agent API.
    pub async fn register(&self, name: &str, i: usize) -> anyhow::Result<()> {
        self.put_json("/v1/agent/service/register", &service_def(name, i))
            .await?
            .ensure_ok()?;
        Ok(())
    }
}

/// The registration body of instance `i` of service `name`.
pub fn service_def(name: &str, i: usize) -> Value {
    json!({
        "ID": format!("{name}-{i:02}"),
        "Name": name,
        "Address": "127.0.0.1",
        "Port": 9100 + i,
        "Tags": ["prod"],
        "EnableTagOverride": false,
    })
}

/// One `wrk` result line (`done.lua`'s `RESULT`).
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: u64,
}

/// Runs `taskset -c <client_cpu> wrk -t<threads> -c<conns> -d<duration>
/// -s <script> <url>` in the tools directory (the scripts `dofile` their
/// neighbours) and parses its `RESULT` line.
pub fn wrk(
    opts: &Opts,
    threads: usize,
    conns: usize,
    duration: Duration,
    script: &str,
    url: &str,
) -> anyhow::Result<WrkResult> {
    let out = Command::new("taskset")
        .arg("-c")
        .arg(opts.client_cpu.to_string())
        .arg("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .current_dir(&opts.tools)
        .output()
        .context("run wrk (scripts/bench.sh installs it)")?;
    parse_wrk(out, url)
}

fn parse_wrk(out: std::process::Output, url: &str) -> anyhow::Result<WrkResult> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .with_context(|| {
            format!(
                "wrk printed no RESULT line for {url}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let field = |name: &str| -> anyhow::Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name} in {line}"))?
            .parse::<f64>()
            .with_context(|| format!("bad {name} in {line}"))
    };
    Ok(WrkResult {
        rps: field("rps")?,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        // Non-2xx answers, connect, read, write errors and timeouts.
        errors: field("errors")? as u64,
    })
}

/// Like [`wrk`], but `wrk` runs on every CPU (as in the shared
/// `run_matrix.sh`) and with `env` set (`SERIAL` for the read scripts).
pub fn wrk_unpinned(
    opts: &Opts,
    threads: usize,
    conns: usize,
    duration: Duration,
    script: &str,
    url: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<WrkResult> {
    let mut cmd = Command::new("wrk");
    sys::pin_child_to_all(&mut cmd);
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .envs(env.iter().copied())
        .current_dir(&opts.tools);
    parse_wrk(cmd.output().context("run wrk")?, url)
}

/// The first line of `sh -c script`'s output, trimmed.
pub fn shell_line(script: &str) -> String {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Writes a line to stdout at once (the run is long; show progress).
pub fn say(line: impl AsRef<str>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}
