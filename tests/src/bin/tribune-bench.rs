//! `tribune-bench`: Tribune's benchmark. Run it through `scripts/bench.sh`,
//! which builds it and `tribune` in release mode and installs `wrk`; what each
//! figure means is in `tests/BENCH.md`.
//!
//! ```text
//! tribune-bench [--runs N] [--duration SECS] [--only 1,2,...,7] [--polls N]
//!               [--watchers N] [--starts N] [--kills N] [--idle-secs N]
//!               [--server-cpu C] [--client-cpu C]
//! tribune-bench bare PORT BODY_FILE [THREADS]      # the bare hyper server
//! ```
//!
//! Environment: `TRIBUNE_BIN` (the agent binary; default: `tribune` next to
//! this one), `TRIBUNE_BENCH_DIR` (parent of the data directories, default
//! `/var/tmp`; never tmpfs), `TRIBUNE_BENCH_TOOLS` (the neutral tools;
//! default `/work/shared/bench`, else built-in copies), `TRIBUNE_BENCH_KEEP`
//! (keep the data directories and logs).

#[path = "../bench/mod.rs"]
mod bench;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context};
use bench::{say, Opts, Row};

const USAGE: &str = "usage: tribune-bench [--runs N] [--duration SECS] [--only 1,2,...,7] [--polls N] \
[--watchers N] [--starts N] [--kills N] [--idle-secs N] [--server-cpu C] [--client-cpu C]\n       tribune-bench bare PORT BODY_FILE [THREADS]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("bare") {
        bare(&args[1..])
    } else {
        bench_main(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tribune-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bare(args: &[String]) -> anyhow::Result<()> {
    let [port, body, rest @ ..] = args else {
        bail!("{USAGE}");
    };
    let port: u16 = port.parse().context("PORT")?;
    let body = std::fs::read(body).with_context(|| format!("read {body}"))?;
    // Like hello.rs: a worker count argument; by default one per CPU this
    // process may run on (1 under `taskset -c N`, as tokio sizes tribune's).
    let threads = match rest.first() {
        Some(t) => t.parse().context("THREADS")?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    bench::bare::serve(port, body, threads)
}

fn parse_opts(args: &[String]) -> anyhow::Result<Opts> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let base_dir = std::env::var_os("TRIBUNE_BENCH_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let mut opts = Opts {
        runs: 5,
        duration: Duration::from_secs(10),
        figures: vec![1, 2, 3, 4],
        polls: 10_000,
        watchers: 1_000,
        starts: 10,
        kills: 20,
        idle_secs: 60,
        server_cpu: 0,
        client_cpu: if cpus > 1 { 1 } else { 0 },
        base_dir,
        tools: PathBuf::new(),
        // Absolute: agents are started from their own directories.
        tribune: std::path::absolute(tribune_tests::process::tribune_bin()?)?,
        me: std::env::current_exe()?,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let n = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--runs" => opts.runs = n()?.max(1),
            "--duration" => opts.duration = Duration::from_secs(n()?.max(1) as u64),
            "--only" => {
                opts.figures = value
                    .split(',')
                    .map(|f| f.trim().parse::<u8>().ok().filter(|f| (1..=7).contains(f)))
                    .collect::<Option<Vec<_>>>()
                    .with_context(|| format!("--only {value}: figures are 1 to 7"))?
            }
            "--polls" => opts.polls = n()?,
            "--watchers" => opts.watchers = n()?,
            "--starts" => opts.starts = n()?.max(1),
            "--kills" => opts.kills = n()?.max(1),
            "--idle-secs" => opts.idle_secs = n()?,
            "--server-cpu" => opts.server_cpu = n()?,
            "--client-cpu" => opts.client_cpu = n()?,
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    Ok(opts)
}

fn bench_main(args: &[String]) -> anyhow::Result<()> {
    let mut opts = parse_opts(args)?;
    for (tool, hint) in [
        ("wrk", "apt-get install wrk (scripts/bench.sh does it)"),
        ("taskset", "apt-get install util-linux"),
        ("python3", "apt-get install python3 (runs wait_quiet.py)"),
    ] {
        if !on_path(tool) {
            bail!("{tool} is not installed: {hint}");
        }
    }
    // Every parked query is a socket here and in the agent, which inherits
    // this limit.
    let want = (opts.polls + opts.watchers + 4096) as u64;
    let (soft, hard) = bench::sys::raise_nofile(want)?;
    if soft < want {
        bail!("RLIMIT_NOFILE is {soft} (hard {hard}); figure 2 needs {want}: raise the hard limit");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // This process (the clients, wrk's parent) lives on the client core; the
    // servers are pinned to the other one.
    bench::sys::pin_current_thread(opts.client_cpu).context("pin to the client cpu")?;

    std::fs::create_dir_all(&opts.base_dir)?;
    let fs = bench::ensure_real_disk(&opts.base_dir)?;
    let scratch = tempfile::Builder::new()
        .prefix("tribune-bench-")
        .tempdir_in(&opts.base_dir)
        .context("create the bench directory")?;
    opts.tools = bench::resolve_tools(scratch.path())?;

    say("Tribune benchmark");
    say(format!(
        "   date      {}",
        shell("date -u '+%Y-%m-%d %H:%M UTC'")
    ));
    say(format!(
        "   machine   {}, {cpus} CPUs, kernel {}",
        shell("lscpu | sed -n 's/^Model name: *//p' | head -1"),
        shell("uname -r")
    ));
    say(format!(
        "   tribune   {} ({})",
        opts.tribune.display(),
        shell(&format!("'{}' version | head -1", opts.tribune.display()))
    ));
    say(format!(
        "   source    {}",
        shell("git describe --always --dirty 2>/dev/null || echo unknown")
    ));
    say(format!(
        "   data      {} ({fs}), tools {}",
        scratch.path().display(),
        opts.tools.display()
    ));
    say(format!(
        "   rules     wait_quiet.py 20 120 before every measurement; {} runs per figure, median (min–max); \
         servers on cpu {}, wrk and clients on cpu {}; RLIMIT_NOFILE {soft}",
        opts.runs, opts.server_cpu, opts.client_cpu
    ));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows: Vec<Row> = Vec::new();
    let mut failures = Vec::new();
    let cluster_figures = opts.figures.iter().any(|f| (5..=7).contains(f));
    for fig in opts.figures.clone() {
        if (5..=7).contains(&fig) {
            continue;
        }
        let dir = scratch.path().join(format!("fig{fig}"));
        std::fs::create_dir_all(&dir)?;
        let result = match fig {
            1 => rt.block_on(bench::catalog::run(&opts, &dir)),
            2 => rt.block_on(bench::fanout::run(&opts, &dir)),
            3 => rt.block_on(bench::kv::run(&opts, &dir)),
            _ => bench::startup::run(&opts, &dir),
        };
        match result {
            Ok(r) => rows.extend(r),
            Err(e) => {
                say(format!("   figure {fig} FAILED: {e:#}"));
                failures.push(fig);
            }
        }
    }

    if cluster_figures {
        let dir = scratch.path().join("cluster");
        std::fs::create_dir_all(&dir)?;
        match rt.block_on(bench::cluster::run(&opts, &dir)) {
            Ok(r) => rows.extend(r),
            Err(e) => {
                say(format!("   figures 5–7 FAILED: {e:#}"));
                failures.extend(opts.figures.iter().copied().filter(|f| *f >= 5));
            }
        }
    }

    say("\n== Summary");
    say(bench::table(&rows));
    let missed = rows.iter().filter(|r| r.pass == Some(false)).count();
    let passed = rows.iter().filter(|r| r.pass == Some(true)).count();
    say(format!(
        "{passed} goals met, {missed} missed{}",
        if failures.is_empty() {
            String::new()
        } else {
            format!("; figures {failures:?} could not be measured")
        }
    ));
    if std::env::var_os("TRIBUNE_BENCH_KEEP").is_some() {
        say(format!("kept {}", scratch.keep().display()));
    }
    if !failures.is_empty() {
        bail!("figures {failures:?} failed");
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// The trimmed stdout of `sh -c script`, for the header.
fn shell(script: &str) -> String {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
