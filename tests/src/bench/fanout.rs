//! Figure 2: blocking-query fan-out.
//!
//! Each round starts a fresh agent (pinned to the server core) with `web` as
//! 10 instances and `db` as one, then from this process (pinned to the client
//! core, one thread, one socket per query):
//! 1. parks 1,000 watchers of `db` (`/v1/health/service/db?index=N&wait=60s`)
//!    and waits until the agent's CPU is idle: RSS *before*;
//! 2. parks 10,000 long-polls of `/v1/health/service/web?index=N&wait=60s`
//!    and waits again: RSS *parked*; ΔRSS / 10,000 is the memory per poll;
//! 3. registers an 11th `web` instance over a connection opened beforehand,
//!    and times every answer against the write's acknowledgement;
//! 4. two seconds after the write, counts the `db` watchers that returned.
//!
//! Times come from the kernel: every socket has `SO_TIMESTAMPNS`, so a
//! response's time is when the agent's `write` queued it on loopback, not
//! when this single-threaded client got round to reading it (those client
//! times are printed too). "first"/"last" are the earliest/latest response
//! time minus the acknowledgement's; a negative value means the long-poll was
//! answered before the writer was.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{num, say, sys, wait_quiet, BenchAgent, Opts, Row, Stat};

const GOAL_FIRST_MS: f64 = 1.0;
const GOAL_LAST_MS: f64 = 60.0;
const GOAL_BYTES_PER_POLL: f64 = 4096.0;

/// Connections being opened at once (the agent's accept backlog is 1024).
const CONNECT_PERMITS: usize = 256;
/// How long after the write the `db` watchers are checked.
const OTHERS_WINDOW: Duration = Duration::from_secs(2);

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
struct Answer {
    status: u16,
    index: u64,
    body_len: usize,
    /// Kernel receive time of the first bytes (ns since the epoch).
    kernel_ns: Option<i128>,
    /// When this client read the first bytes.
    seen: Instant,
}

/// Counters shared by a fleet of long-poll tasks.
#[derive(Default)]
struct Fleet {
    sent: AtomicUsize,
    answered: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
    sample_body: OnceLock<Vec<u8>>,
}

type Poll = JoinHandle<Option<(Answer, TcpStream)>>;

#[derive(Debug, Default, Clone)]
struct Round {
    first_ms: f64,
    last_ms: f64,
    p50_ms: f64,
    first_from_write_ms: f64,
    last_from_write_ms: f64,
    ack_from_write_ms: f64,
    client_first_ms: f64,
    client_last_ms: f64,
    bytes_per_poll: f64,
    rss_before_kib: u64,
    rss_parked_kib: u64,
    rss_after_kib: u64,
    premature: usize,
    ok: usize,
    others_woken: usize,
    entries: usize,
}

pub async fn run(opts: &Opts, dir: &Path) -> anyhow::Result<Vec<Row>> {
    say(format!(
        "\n== 2. Blocking-query fan-out: {} long-polls of web + {} watchers of db, agent on cpu {}, \
         client on cpu {} (one thread)",
        num(opts.polls as f64, 0),
        num(opts.watchers as f64, 0),
        opts.server_cpu,
        opts.client_cpu
    ));
    let mut rounds = Vec::new();
    for round in 1..=opts.runs {
        let quiet = wait_quiet(opts);
        let r = one_round(opts, &dir.join(format!("round{round}"))).await?;
        say(format!(
            "   round {round}: first {:+.3} ms, last {:+.3} ms, p50 {:+.3} ms after the ack \
             (from the write: ack {:.3}, first {:.3}, last {:.3} ms; client saw first {:+.3}, last {:+.3} ms); \
             {}/{} answered 200 with {} entries; ΔRSS {} B/poll (RSS {} → {} → {} MiB); \
             db woken {}; early returns {}  [{quiet}]",
            r.first_ms,
            r.last_ms,
            r.p50_ms,
            r.ack_from_write_ms,
            r.first_from_write_ms,
            r.last_from_write_ms,
            r.client_first_ms,
            r.client_last_ms,
            r.ok,
            opts.polls,
            r.entries,
            num(r.bytes_per_poll, 0),
            num(r.rss_before_kib as f64 / 1024.0, 1),
            num(r.rss_parked_kib as f64 / 1024.0, 1),
            num(r.rss_after_kib as f64 / 1024.0, 1),
            r.others_woken,
            r.premature
        ));
        rounds.push(r);
    }

    let stat = |f: fn(&Round) -> f64| Stat::of(&rounds.iter().map(f).collect::<Vec<_>>());
    let first = stat(|r| r.first_ms);
    let last = stat(|r| r.last_ms);
    let p50 = stat(|r| r.p50_ms);
    let from_write_last = stat(|r| r.last_from_write_ms);
    let from_write_first = stat(|r| r.first_from_write_ms);
    let ack = stat(|r| r.ack_from_write_ms);
    let per_poll = stat(|r| r.bytes_per_poll);
    let woken_max = rounds.iter().map(|r| r.others_woken).max().unwrap_or(0);
    let woken = stat(|r| r.others_woken as f64);
    let all_ok = rounds.iter().all(|r| {
        r.ok == opts.polls && r.premature == 0 && r.entries == super::catalog::INSTANCES + 1
    });
    say(format!(
        "   after the ack: first {}, p50 {}, last {}; ack {} after the write, last answer {} after the write",
        first.show(3, "ms"),
        p50.show(3, "ms"),
        last.show(3, "ms"),
        ack.show(3, "ms"),
        from_write_last.show(3, "ms")
    ));
    say(format!(
        "   memory per parked long-poll: {}; db watchers woken: {}",
        per_poll.show(0, "B"),
        woken.show(0, "")
    ));
    Ok(vec![
        Row::new(
            "2. fan-out: first answer after the write's ack",
            format!(
                "{} (from the write: {})",
                first.show(3, "ms"),
                from_write_first.show(1, "ms")
            ),
            "≤ 1 ms",
            Some(first.median <= GOAL_FIRST_MS && all_ok),
        ),
        Row::new(
            &format!(
                "2. fan-out: last of {} answers after the ack",
                num(opts.polls as f64, 0)
            ),
            format!(
                "{} (from the write: {})",
                last.show(1, "ms"),
                from_write_last.show(1, "ms")
            ),
            "≤ 60 ms",
            Some(last.median <= GOAL_LAST_MS && all_ok),
        ),
        Row::new(
            "2. fan-out: agent ΔRSS per parked long-poll",
            format!(
                "{} ({} KiB)",
                per_poll.show(0, "B"),
                num(per_poll.median / 1024.0, 2)
            ),
            "≤ 4 KiB",
            Some(per_poll.median <= GOAL_BYTES_PER_POLL),
        ),
        Row::new(
            &format!(
                "2. fan-out: {} db watchers woken",
                num(opts.watchers as f64, 0)
            ),
            format!("{} (max {woken_max})", num(woken.median, 0)),
            "0",
            Some(woken_max == 0),
        ),
    ])
}

async fn one_round(opts: &Opts, dir: &Path) -> anyhow::Result<Round> {
    let agent = BenchAgent::start(opts, dir).await?;
    let pid = agent.pid();
    for i in 1..=super::catalog::INSTANCES {
        agent.register("web", i).await?;
    }
    agent.register("db", 1).await?;
    let (web_index, db_index) = steady_indexes(&agent).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], agent.http));
    let permits = Arc::new(Semaphore::new(CONNECT_PERMITS));

    // 1. The watchers that must not wake.
    let others = Arc::new(Fleet::default());
    let db_path = format!("/v1/health/service/db?index={db_index}&wait=60s");
    let other_polls = launch(opts.watchers, addr, &db_path, &others, &permits);
    wait_sent(&others, opts.watchers).await?;
    settle(pid).await?;
    let rss_before_kib = super::rss_kib(pid)?;

    // 2. The long-polls.
    let web = Arc::new(Fleet::default());
    let web_path = format!("/v1/health/service/web?index={web_index}&wait=60s");
    let polls = launch(opts.polls, addr, &web_path, &web, &permits);
    wait_sent(&web, opts.polls).await?;
    settle(pid).await?;
    let rss_parked_kib = super::rss_kib(pid)?;
    let premature = web.answered.load(Ordering::SeqCst) + others.answered.load(Ordering::SeqCst);
    let fds = super::fd_count(pid);
    if fds < opts.polls + opts.watchers {
        bail!(
            "the agent holds {fds} file descriptors with {} queries parked",
            opts.polls + opts.watchers
        );
    }

    // 3. The write, over a connection opened beforehand.
    let mut writer = TcpStream::connect(addr).await?;
    writer.set_nodelay(true)?;
    sys::enable_rx_timestamps(writer.as_raw_fd())?;
    let body = serde_json::to_string(&super::service_def("web", super::catalog::INSTANCES + 1))?;
    let request = format!(
        "PUT /v1/agent/service/register HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Optional profile of the wake-up (TRIBUNE_BENCH_PERF=<dir>, see BENCH.md).
    let perf = start_perf(dir, pid).await;
    let write_ns = sys::realtime_ns();
    let write_at = Instant::now();
    writer.write_all(request.as_bytes()).await?;
    let (ack, _) = read_answer(&writer).await?;
    if ack.status != 200 {
        bail!("the registration was answered {}", ack.status);
    }
    let ack_ns = ack.kernel_ns.context("no kernel timestamp on the ack")?;

    // Wait for the long-polls, then for the rest of the window.
    let deadline = write_at + Duration::from_secs(10);
    while web.answered.load(Ordering::SeqCst) + web.failed.load(Ordering::SeqCst) < opts.polls
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep_until((write_at + OTHERS_WINDOW).into()).await;
    let others_woken = others.answered.load(Ordering::SeqCst);
    if let Some((mut perf, out)) = perf {
        let _ = sys::kill(perf.id(), libc::SIGINT);
        let _ = perf.wait();
        say(format!("   perf profile of the wake-up: {}", out.display()));
    }
    let rss_after_kib = super::rss_kib(pid)?;

    // Stop the agent first: it closes, so this side leaves no TIME_WAIT.
    drop(agent);
    for p in &other_polls {
        p.abort();
    }
    let mut stamps = Vec::with_capacity(opts.polls);
    let mut seen = Vec::with_capacity(opts.polls);
    let mut ok = 0;
    let mut lens = std::collections::BTreeSet::new();
    for p in polls {
        if !p.is_finished() {
            p.abort();
            continue;
        }
        if let Ok(Some((a, _stream))) = p.await {
            if a.status == 200 && a.index > web_index {
                ok += 1;
                lens.insert(a.body_len);
            }
            if let Some(ns) = a.kernel_ns {
                stamps.push(ns);
            }
            seen.push(signed_ms(a.seen, ack.seen));
        }
    }
    if let Some(e) = web.first_error.lock().ok().and_then(|e| e.clone()) {
        say(format!("   long-poll error: {e}"));
    }
    if lens.len() > 1 {
        say(format!(
            "   warning: long-poll bodies of different sizes: {lens:?}"
        ));
    }
    let entries = web
        .sample_body
        .get()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
    stamps.sort_unstable();
    seen.sort_by(f64::total_cmp);
    let ms = |ns: i128, from: i128| (ns - from) as f64 / 1e6;
    let (first, last, mid) = match (stamps.first(), stamps.last()) {
        (Some(&f), Some(&l)) => (f, l, stamps[stamps.len() / 2]),
        _ => bail!("no long-poll was answered within 10 s of the write"),
    };
    Ok(Round {
        first_ms: ms(first, ack_ns),
        last_ms: ms(last, ack_ns),
        p50_ms: ms(mid, ack_ns),
        first_from_write_ms: ms(first, write_ns),
        last_from_write_ms: ms(last, write_ns),
        ack_from_write_ms: ms(ack_ns, write_ns),
        client_first_ms: seen.first().copied().unwrap_or(f64::NAN),
        client_last_ms: seen.last().copied().unwrap_or(f64::NAN),
        bytes_per_poll: (rss_parked_kib as f64 - rss_before_kib as f64) * 1024.0
            / opts.polls as f64,
        rss_before_kib,
        rss_parked_kib,
        rss_after_kib,
        premature,
        ok,
        others_woken,
        entries,
    })
}

/// The `X-Consul-Index` of `web` and `db` once neither has moved for 2 s.
///
/// A fresh agent writes its own node record shortly after it leads (the
/// leader registering itself, anti-entropy retrying its first sync), and a
/// node write moves the index of every service on the node. Queries parked
/// at an index from before that would return at once; the figure is about a
/// steady agent, so it waits those writes out.
async fn steady_indexes(agent: &BenchAgent) -> anyhow::Result<(u64, u64)> {
    let read = || async {
        let mut out = [0u64; 2];
        for (i, name) in ["web", "db"].iter().enumerate() {
            out[i] = agent
                .get(&format!("/v1/health/service/{name}"))
                .await?
                .ensure_ok()?
                .index()
                .context("no X-Consul-Index")?;
        }
        anyhow::Ok(out)
    };
    let mut last = read().await?;
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while since.elapsed() < Duration::from_secs(2) {
        if Instant::now() > deadline {
            bail!("the indexes of web and db kept moving for 60 s (last {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = read().await?;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    Ok((last[0], last[1]))
}

/// With `TRIBUNE_BENCH_PERF=<dir>`, starts `perf record` (DWARF call graphs)
/// on the agent and returns it once it is recording.
async fn start_perf(dir: &Path, pid: u32) -> Option<(std::process::Child, std::path::PathBuf)> {
    let out_dir = std::path::PathBuf::from(std::env::var_os("TRIBUNE_BENCH_PERF")?);
    let round = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = out_dir.join(format!("fanout-{round}.perf.data"));
    let child = std::process::Command::new("perf")
        .args([
            "record",
            "-q",
            "-F",
            "2999",
            "--call-graph",
            "dwarf,32768",
            "-p",
        ])
        .arg(pid.to_string())
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| say(format!("   perf record failed to start: {e}")))
        .ok()?;
    // perf attaches in well under a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Some((child, out))
}

/// `a - b` in milliseconds, negative when `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1e3
    } else {
        -((b - a).as_secs_f64() * 1e3)
    }
}

/// Starts `n` tasks, each on its own connection: connect, send `GET path`,
/// wait for the answer.
fn launch(
    n: usize,
    addr: SocketAddr,
    path: &str,
    fleet: &Arc<Fleet>,
    permits: &Arc<Semaphore>,
) -> Vec<Poll> {
    let request: Arc<str> = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into();
    (0..n)
        .map(|_| {
            let (fleet, permits, request) = (fleet.clone(), permits.clone(), request.clone());
            tokio::spawn(async move {
                match long_poll(addr, &request, &fleet, &permits).await {
                    Ok(done) => Some(done),
                    Err(e) => {
                        fleet.failed.fetch_add(1, Ordering::SeqCst);
                        if let Ok(mut first) = fleet.first_error.lock() {
                            first.get_or_insert_with(|| format!("{e:#}"));
                        }
                        None
                    }
                }
            })
        })
        .collect()
}

async fn long_poll(
    addr: SocketAddr,
    request: &str,
    fleet: &Fleet,
    permits: &Semaphore,
) -> anyhow::Result<(Answer, TcpStream)> {
    let stream = {
        let _permit = permits.acquire().await?;
        let mut stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        sys::enable_rx_timestamps(stream.as_raw_fd())?;
        stream.write_all(request.as_bytes()).await?;
        stream
    };
    fleet.sent.fetch_add(1, Ordering::SeqCst);
    let answer = read_answer(&stream).await;
    fleet.answered.fetch_add(1, Ordering::SeqCst);
    let (answer, body) = answer?;
    let _ = fleet.sample_body.set(body);
    Ok((answer, stream))
}

/// Reads one HTTP/1.1 response (`Content-Length` or chunked), noting when its
/// first bytes arrived. The buffer is only allocated once data is there, so
/// 10,000 parked queries cost this process next to nothing.
async fn read_answer(stream: &TcpStream) -> anyhow::Result<(Answer, Vec<u8>)> {
    stream.readable().await?;
    let fd = stream.as_raw_fd();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut buf: Vec<u8> = Vec::new();
    let mut first: Option<(Option<i128>, Instant)> = None;
    loop {
        let (n, stamp) = stream
            .async_io(Interest::READABLE, || sys::recv_timestamped(fd, &mut chunk))
            .await?;
        if first.is_none() {
            first = Some((stamp, Instant::now()));
        }
        if n == 0 {
            bail!("connection closed after {} bytes", buf.len());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((status, index, body)) = parse(&buf)? {
            let (kernel_ns, seen) = first.unwrap_or((None, Instant::now()));
            let answer = Answer {
                status,
                index,
                body_len: body.len(),
                kernel_ns,
                seen,
            };
            return Ok((answer, body));
        }
    }
}

/// A complete response in `buf`: status, `X-Consul-Index` and body.
fn parse(buf: &[u8]) -> anyhow::Result<Option<(u16, u64, Vec<u8>)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let (mut length, mut chunked, mut index) = (None, false, 0u64);
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "x-consul-index" => index = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    let rest = &buf[end + 4..];
    if chunked {
        if !rest.ends_with(b"0\r\n\r\n") {
            return Ok(None);
        }
        let mut body = Vec::new();
        let mut r = rest;
        while let Some(eol) = r.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&r[..eol])?.trim(), 16)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&r[eol + 2..eol + 2 + size]);
            r = &r[eol + 2 + size + 2..];
        }
        return Ok(Some((status, index, body)));
    }
    let length = length.unwrap_or(0);
    if rest.len() < length {
        return Ok(None);
    }
    Ok(Some((status, index, rest[..length].to_vec())))
}

/// Waits until every task of `fleet` has sent its request (or failed).
async fn wait_sent(fleet: &Fleet, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (sent, failed) = (
            fleet.sent.load(Ordering::SeqCst),
            fleet.failed.load(Ordering::SeqCst),
        );
        if failed > 0 {
            let e = fleet
                .first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_default();
            bail!("{failed} of {n} long-polls failed; first error: {e}");
        }
        if sent >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {sent} of {n} long-polls were sent within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the agent has used at most one clock tick of CPU in each of
/// two consecutive 250 ms windows: every request read and every query parked.
async fn settle(pid: u32) -> anyhow::Result<()> {
    let mut prev = super::cpu_ticks(pid)?;
    let mut calm = 0;
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = super::cpu_ticks(pid)?;
        calm = if now.saturating_sub(prev) <= 1 {
            calm + 1
        } else {
            0
        };
        if calm >= 2 {
            return Ok(());
        }
        prev = now;
    }
    bail!("the agent (pid {pid}) kept using CPU for 60 s with the queries parked")
}
