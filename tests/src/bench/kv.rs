//! Figure 3: single-node KV PUT with fsync.
//!
//! A fresh agent (data on the real disk, every commit fsynced before the PUT
//! is answered) pinned to the server core; the shared `consul_put.lua`
//! (8-byte keys, 256-byte values) under `wrk` on the other core, at 1 client
//! (`-t1 -c1`) and at 64 clients (`-t2 -c64`), the two alternating run by run,
//! each behind `wait_quiet.py`.

use std::path::Path;
use std::time::Duration;

use super::{num, say, wait_quiet, wrk, BenchAgent, Opts, Row, Stat, WrkResult};

/// etcd 3.4 (3 members, fsync on) on this machine, from the shared README.
const ETCD: [(usize, f64, f64); 2] = [(1, 892.0, 1.01), (64, 5_862.0, 9.9)];

const GOAL_P50_MS_1: f64 = 0.45;

pub async fn run(opts: &Opts, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let fs = super::ensure_real_disk(dir)?;
    say(format!(
        "\n== 3. KV PUT with fsync: consul_put.lua (8 B keys, 256 B values), data in {} ({fs}), \
         agent on cpu {}, wrk on cpu {}",
        dir.display(),
        opts.server_cpu,
        opts.client_cpu
    ));
    let agent = BenchAgent::start(opts, &dir.join("agent")).await?;
    let url = agent.url("");
    // Warm-up, not counted.
    wrk(opts, 1, 1, Duration::from_secs(2), "consul_put.lua", &url)?;
    wrk(opts, 2, 64, Duration::from_secs(2), "consul_put.lua", &url)?;

    let configs = [(1usize, 1usize), (2, 64)];
    let mut results: Vec<Vec<WrkResult>> = vec![Vec::new(); configs.len()];
    for run in 1..=opts.runs {
        for (i, &(threads, conns)) in configs.iter().enumerate() {
            let quiet = wait_quiet(opts);
            let r = wrk(opts, threads, conns, opts.duration, "consul_put.lua", &url)?;
            say(format!(
                "   run {run} c={conns:<3} {:>8} ops/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}  [{quiet}]",
                num(r.rps, 0),
                r.p50_us / 1e3,
                r.p99_us / 1e3,
                r.errors
            ));
            results[i].push(r);
        }
    }
    let rss = super::rss_kib(agent.pid()).unwrap_or(0);
    drop(agent);

    let mut rows = Vec::new();
    for (i, &(_, conns)) in configs.iter().enumerate() {
        let rs = &results[i];
        let ops = Stat::of(&rs.iter().map(|r| r.rps).collect::<Vec<_>>());
        let p50 = Stat::of(&rs.iter().map(|r| r.p50_us / 1e3).collect::<Vec<_>>());
        let p99 = Stat::of(&rs.iter().map(|r| r.p99_us / 1e3).collect::<Vec<_>>());
        let errors: u64 = rs.iter().map(|r| r.errors).sum();
        let (_, etcd_ops, etcd_p50) = ETCD[i];
        say(format!(
            "   c={conns}: {} | p50 {} | p99 {} | errors {errors}   (etcd 3.4: {} ops/s, p50 {etcd_p50} ms)",
            ops.show(0, "ops/s"),
            p50.show(3, "ms"),
            p99.show(3, "ms"),
            num(etcd_ops, 0)
        ));
        let value = format!(
            "p50 {}, p99 {} ms, {} ops/s",
            p50.show(3, "ms"),
            num(p99.median, 2),
            num(ops.median, 0)
        );
        if conns == 1 {
            rows.push(Row::new(
                "3. KV PUT fsync, 1 client: p50",
                value,
                "≤ 0.45 ms (etcd 1.01)",
                Some(p50.median <= GOAL_P50_MS_1 && errors == 0),
            ));
        } else {
            rows.push(Row::new(
                &format!("3. KV PUT fsync, {conns} clients"),
                format!(
                    "{} ops/s ({}–{}), p50 {} ms, p99 {} ms",
                    num(ops.median, 0),
                    num(ops.min, 0),
                    num(ops.max, 0),
                    num(p50.median, 2),
                    num(p99.median, 2)
                ),
                "- (etcd 5,862 ops/s, 9.9 ms)",
                if errors == 0 { None } else { Some(false) },
            ));
        }
    }
    say(format!(
        "   agent RSS after the KV runs: {} MiB",
        num(rss as f64 / 1024.0, 1)
    ));
    Ok(rows)
}
