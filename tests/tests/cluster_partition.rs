//! The seed's three servers, each in its own network namespace with the seed's addresses
//! and ports (127.0.0.2/3/4 standing in for 192.168.1.153/154/155; 8300, 8301, 8302, 8500,
//! 8600, gRPC 8400) and the seed's `config.json` otherwise unchanged. The namespaces are
//! joined by a bridge (see `tribune_tests::netns`), so a server can really be cut off.
//!
//! - `tribune members` prints Consul's columns with three `alive server` rows.
//! - A minority partition (one server's bridge-side veth down) cannot elect a leader of its
//!   own nor acknowledge a write, while the majority keeps (or elects) a leader and accepts
//!   writes. Healed, the cut-off server catches up, there is exactly one leader, and every
//!   acknowledged write is readable with `?consistent`. Done twice: cutting off a follower,
//!   then the leader.
//! - Every write to the cut-off server is answered with an error within 10 s (no hang). A
//!   cut-off leader (check-quorum) names no leader within 5 s of the cut, and a write sent
//!   to it at the cut fails and is gone after the heal.
//!
//! Needs root and iproute2 (`ip netns`); it fails, not skips, without them.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use reqwest::Method;
use serde_json::{json, Value};

use tribune_tests::cluster::keygen;
use tribune_tests::netns::Lab;
use tribune_tests::process::{self, Spawned, Workdir};
use tribune_tests::{http, wait_until, Reply};

/// Generous: a debug build on a busy 2-core machine.
const SETTLE: Duration = Duration::from_secs(60);
/// How long the cut-off side is watched for a leader or an acknowledged write.
const WATCH: Duration = Duration::from_secs(8);
/// How soon a write to the cut-off server must be answered (with an error): the server
/// holds a write at most 7 s (Consul's `rpc_hold_timeout`), a forwarded one 8 s. The
/// client's own timeout is 20 s, so a hang shows as a failure here.
const REFUSE_WITHIN: Duration = Duration::from_secs(10);
/// How soon a cut-off leader must stop naming itself leader (check-quorum fires after the
/// longest election timeout plus four heartbeats, 1.6 s).
const LEADER_GONE_WITHIN: Duration = Duration::from_secs(5);
const TOKEN: &str = "b1gs33cr3t-seed-management-token";
const NODE_IDS: [&str; 3] = [
    "09d82408-bc4f-49e0-1111-61ef1d4842f7",
    "613ccd6e-68d1-3bbd-2222-3cbc450f019d",
    "8e9ba4d5-1bc6-4b6d-3333-a9c0e1b2c3d4",
];

/// One server of the lab: its process, its directory, its management address.
struct Node {
    name: String,
    /// `127.0.2.<n>:8500`, reachable from the hub even when the node is cut off.
    http: String,
    /// `127.0.0.<n>:8300`, what `/v1/status/leader` names.
    rpc: String,
    process: Spawned,
    _dir: Workdir,
}

struct Cluster {
    nodes: Vec<Node>,
    client: reqwest::Client,
}

impl Cluster {
    fn start(lab: &Lab, key: &str) -> anyhow::Result<Cluster> {
        let bin = process::tribune_bin()?;
        let join: Vec<String> = (0..3).map(|i| format!("{}:8301", lab.addr(i))).collect();
        let mut nodes = Vec::new();
        for (i, node_id) in NODE_IDS.iter().enumerate() {
            let dir = Workdir::new("netns-server")?;
            let config_dir = dir.path().join("config");
            std::fs::create_dir_all(&config_dir)?;
            let name = format!("server{}", i + 1);
            // The seed's config.json, addresses and data_dir changed.
            let cfg = json!({
                "datacenter": "prometheus",
                "bind_addr": lab.addr(i).to_string(),
                "log_level": "INFO",
                "node_id": node_id,
                "node_name": name,
                "data_dir": dir.path().join("data"),
                "server": true,
                "bootstrap_expect": 3,
                "encrypt": key,
                "ui": true,
                "client_addr": "0.0.0.0",
                "retry_join": join,
                "ports": {"http": 8500, "dns": 8600, "serf_lan": 8301, "serf_wan": 8302,
                          "server": 8300, "grpc": 8400},
                "acl": {"enabled": true, "default_policy": "deny", "down_policy": "extend-cache",
                        "tokens": {"master": TOKEN, "agent": TOKEN}},
            });
            std::fs::write(
                config_dir.join("config.json"),
                serde_json::to_vec_pretty(&cfg)?,
            )?;
            let mut cmd = lab.command(i, &bin);
            cmd.arg("agent")
                .arg(format!("-config-dir={}", config_dir.display()))
                .current_dir(dir.path());
            let process = Spawned::spawn("agent", cmd, dir.path())?;
            nodes.push(Node {
                name,
                http: format!("{}:8500", lab.mgmt_addr(i)),
                rpc: format!("{}:8300", lab.addr(i)),
                process,
                _dir: dir,
            });
        }
        Ok(Cluster {
            nodes,
            client: http::client(),
        })
    }

    async fn send(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: &str,
    ) -> anyhow::Result<Reply> {
        let url = format!("http://{}{path}", self.nodes[i].http);
        Reply::send(
            self.client
                .request(method, url)
                .header("X-Consul-Token", TOKEN)
                .timeout(Duration::from_secs(20))
                .body(body.to_string()),
        )
        .await
    }

    async fn get_json(&self, i: usize, path: &str) -> anyhow::Result<Value> {
        self.send(i, Method::GET, path, "")
            .await?
            .ensure_ok()?
            .json()
    }

    /// What node `i` says the leader is (`""` when none, or on error).
    async fn leader(&self, i: usize) -> String {
        match self.get_json(i, "/v1/status/leader").await {
            Ok(Value::String(s)) => s,
            _ => String::new(),
        }
    }

    /// A KV write through the cut-off node `i`: it must be answered, with an error, within
    /// [`REFUSE_WITHIN`]. Returns what it answered (status and body) and how long it took.
    async fn refused_write(&self, i: usize, key: &str) -> anyhow::Result<(String, Duration)> {
        let t = Instant::now();
        let r = self
            .send(i, Method::PUT, &format!("/v1/kv/{key}"), "lost")
            .await;
        let took = t.elapsed();
        let r = r.with_context(|| {
            format!(
                "write {key} to the cut-off {} got no answer in {took:.1?}",
                self.nodes[i].name
            )
        })?;
        ensure!(
            !(r.status == 200 && r.text().trim() == "true"),
            "the cut-off {} acknowledged write {key}",
            self.nodes[i].name
        );
        ensure!(
            took <= REFUSE_WITHIN,
            "write {key} to the cut-off {} took {took:.1?} to fail (more than {REFUSE_WITHIN:?}): {} {}",
            self.nodes[i].name,
            r.status,
            r.text().trim()
        );
        Ok((format!("{} {}", r.status, r.text().trim()), took))
    }

    /// Index of the node whose RPC address is `rpc`.
    fn index_of(&self, rpc: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.rpc == rpc)
    }

    /// Waits until every node in `among` names the same leader, itself one of `among`.
    async fn agreed_leader(&self, among: &[usize], what: &str) -> anyhow::Result<usize> {
        wait_until(SETTLE, what, || async {
            let mut seen = BTreeSet::new();
            for &i in among {
                seen.insert(self.leader(i).await);
            }
            let Some(l) = seen.iter().next().filter(|_| seen.len() == 1) else {
                bail!("leaders seen: {seen:?}");
            };
            match self.index_of(l) {
                Some(i) if among.contains(&i) => Ok(i),
                _ => bail!("leaders seen: {seen:?}"),
            }
        })
        .await
    }

    /// A KV write through node `i`: `Ok(true)` only when acknowledged (200 and `true`).
    async fn write(&self, i: usize, key: &str, value: &str) -> bool {
        match self
            .send(i, Method::PUT, &format!("/v1/kv/{key}"), value)
            .await
        {
            Ok(r) => r.status == 200 && r.text().trim() == "true",
            Err(_) => false,
        }
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        for n in &mut self.nodes {
            n.process.ensure_running()?;
        }
        Ok(())
    }
}

/// `tribune members -status=<status>` through node `via`: the names of the rows.
fn members_with_status(c: &Cluster, via: usize, status: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new(process::tribune_bin()?)
        .args([
            "members",
            &format!("--token={TOKEN}"),
            &format!("-status={status}"),
            &format!("-http-addr={}", c.nodes[via].http),
        ])
        .output()
        .context("run tribune members")?;
    // Exit code 2 with no output when nothing matches, as Consul's.
    match out.status.code() {
        Some(2) if out.stdout.is_empty() => return Ok(Vec::new()),
        Some(0) => {}
        _ => bail!("tribune members failed: {out:?}"),
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect())
}

/// `tribune members` against node 0: Consul's header and one row per server, each
/// `serverN  127.0.0.<n>:8301  alive  server  <version>  2  prometheus  <all>`.
fn check_members_table(c: &Cluster) -> anyhow::Result<String> {
    let out = Command::new(process::tribune_bin()?)
        .args([
            "members",
            &format!("--token={TOKEN}"),
            &format!("-http-addr={}", c.nodes[0].http),
        ])
        .output()
        .context("run tribune members")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(out.status.success(), "tribune members failed: {out:?}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(
        rows.first().map(Vec::as_slice)
            == Some(
                &["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Segment"][..]
            ),
        "Consul's header first:\n{text}"
    );
    ensure!(rows.len() == 4, "a header and three rows:\n{text}");
    for (i, row) in rows[1..].iter().enumerate() {
        let want_addr = format!("127.0.0.{}:8301", i + 2);
        let want_name = format!("server{}", i + 1);
        ensure!(
            row.len() == 8
                && row[0] == want_name
                && row[1] == want_addr
                && row[2] == "alive"
                && row[3] == "server"
                && !row[4].is_empty()
                && !row[4].contains(':')
                && row[5] == "2"
                && row[6] == "prometheus"
                && row[7] == "<all>",
            "row {} should be `{want_name}  {want_addr}  alive  server  <build>  2  prometheus  <all>`:\n{text}",
            i + 1
        );
    }
    // Columns are aligned: every row starts its Address at the same offset.
    let col = |l: &str| l.find("127.0.0.").unwrap_or(0);
    let offsets: BTreeSet<usize> = text.lines().skip(1).map(col).collect();
    ensure!(
        offsets.len() == 1
            && text.lines().next().and_then(|h| h.find("Address")) == offsets.first().copied(),
        "columns aligned:\n{text}"
    );
    Ok(text)
}

/// Cuts off node `cut`, checks both sides, heals, checks the cluster is whole again.
/// `acked` collects every acknowledged write (key → value).
async fn partition_round(
    lab: &Lab,
    c: &mut Cluster,
    cut: usize,
    round: &str,
    acked: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let majority: Vec<usize> = (0..3).filter(|&i| i != cut).collect();
    let old_leader = c
        .agreed_leader(&[0, 1, 2], "one leader before the cut")
        .await?;
    println!(
        "{round}: cutting off {} ({}; the leader is {})",
        c.nodes[cut].name,
        if cut == old_leader {
            "the leader"
        } else {
            "a follower"
        },
        c.nodes[old_leader].name
    );
    lab.isolate(cut)?;
    let cut_at = Instant::now();
    // Writes the cut-off server refused: none may be readable after the heal when it was
    // the leader.
    let mut refused: Vec<(String, String)> = Vec::new();
    if cut == old_leader {
        // Check-quorum: the cut-off leader stops naming itself leader within seconds, and
        // a write sent to it at the cut (appended, never committed) fails instead of
        // hanging.
        let key = format!("{round}/minority/at-cut");
        let (write, gone) = tokio::join!(
            c.refused_write(cut, &key),
            wait_until(
                LEADER_GONE_WITHIN,
                "the cut-off leader to answer \"\" to /v1/status/leader",
                || async {
                    match c.get_json(cut, "/v1/status/leader").await? {
                        Value::String(s) if s.is_empty() => Ok(cut_at.elapsed()),
                        other => bail!("it says {other}"),
                    }
                },
            )
        );
        let gone = gone?;
        let (answer, took) = write?;
        println!(
            "{round}: the cut-off leader names no leader {gone:.1?} after the cut; a write sent at the cut failed after {took:.1?}: {answer}"
        );
        refused.push((key, answer));
    }
    // The majority has a leader among itself and accepts writes.
    let leader = c
        .agreed_leader(&majority, "the majority to agree on a leader of its own")
        .await?;
    println!(
        "{round}: the majority's leader is {} ({:.1?} after the cut)",
        c.nodes[leader].name,
        cut_at.elapsed()
    );
    // Gossip on the majority side marks it failed (`tribune members -status=failed`).
    let cut_name = c.nodes[cut].name.clone();
    wait_until(
        SETTLE,
        "the majority to list the cut-off server as failed",
        || async {
            for &i in &majority {
                let failed = members_with_status(c, i, "failed")?;
                ensure!(
                    failed == [cut_name.clone()],
                    "failed rows via {}: {failed:?}",
                    c.nodes[i].name
                );
            }
            Ok(())
        },
    )
    .await?;
    println!(
        "{round}: the majority lists {cut_name} as failed {:.1?} after the cut",
        cut_at.elapsed()
    );

    for n in 0..10 {
        let (key, value) = (format!("{round}/majority/{n:02}"), format!("m{n}"));
        let i = majority[n % 2];
        let ok = wait_until(SETTLE, "a write through the majority", || async {
            if c.write(i, &key, &value).await {
                Ok(())
            } else {
                bail!("not acknowledged")
            }
        })
        .await;
        ok?;
        acked.push((key, value));
    }

    // The cut-off server never names itself leader and acknowledges no write.
    let cut_rpc = c.nodes[cut].rpc.clone();
    let start = Instant::now();
    let mut attempts = 0;
    let mut slowest = Duration::ZERO;
    let first = refused.len();
    while start.elapsed() < WATCH || attempts < 2 {
        attempts += 1;
        let key = format!("{round}/minority/{attempts}");
        let (answer, took) = c
            .refused_write(cut, &key)
            .await
            .with_context(|| round.to_string())?;
        slowest = slowest.max(took);
        refused.push((key, answer));
        // Refusals are immediate once check-quorum fired: pace them (every refused key is
        // read back through each server after the heal).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let said = c.leader(cut).await;
        let self_elected = said == cut_rpc && cut != old_leader;
        ensure!(
            !self_elected,
            "{round}: the cut-off {} elected itself leader",
            c.nodes[cut].name
        );
    }
    if cut == old_leader {
        // Still no leader on its side, and it says so (not an error).
        ensure!(
            matches!(c.get_json(cut, "/v1/status/leader").await?, Value::String(s) if s.is_empty()),
            "{round}: the cut-off leader names a leader again"
        );
    }
    println!(
        "{round}: {} writes to the cut-off server, none acknowledged, the slowest refused in {slowest:.1?}; first answer: {}",
        refused.len() - first,
        refused[first].1
    );
    // The majority still has the same leader and keeps accepting writes.
    let (key, value) = (format!("{round}/majority/after"), "after".to_string());
    ensure!(
        c.write(majority[0], &key, &value).await || c.write(majority[1], &key, &value).await,
        "{round}: the majority stopped accepting writes"
    );
    acked.push((key, value));

    // Heal.
    lab.heal(cut)?;
    let healed_at = Instant::now();
    wait_until(
        SETTLE,
        "every server to list three alive members again",
        || async {
            for i in 0..3 {
                let alive = members_with_status(c, i, "alive")?;
                ensure!(
                    alive.len() == 3,
                    "alive rows via {}: {alive:?}",
                    c.nodes[i].name
                );
            }
            Ok(())
        },
    )
    .await?;
    let leader = c
        .agreed_leader(&[0, 1, 2], "exactly one leader after healing")
        .await?;
    let want: BTreeSet<String> = acked.iter().map(|(k, _)| k.clone()).collect();
    wait_until(SETTLE, "the healed server to catch up", || async {
        let v = c.get_json(cut, "/v1/kv/?keys&stale").await?;
        let have: BTreeSet<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(String::from))
            .collect();
        let missing: Vec<&String> = want.difference(&have).collect();
        ensure!(
            missing.is_empty(),
            "missing {} keys, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        Ok(())
    })
    .await?;
    println!(
        "{round}: healed; {} leads, the cut-off server caught up {:.1?} after the heal",
        c.nodes[leader].name,
        healed_at.elapsed()
    );
    // Every acknowledged write, read linearizably through each server; the writes the
    // cut-off server refused were never committed.
    for i in 0..3 {
        for (key, value) in acked.iter() {
            let got = wait_until(SETTLE, "a consistent read", || async {
                c.send(i, Method::GET, &format!("/v1/kv/{key}?consistent&raw"), "")
                    .await?
                    .ensure_ok()
            })
            .await?
            .text();
            ensure!(
                got == *value,
                "{key} via {}: {got:?}, want {value:?}",
                c.nodes[i].name
            );
        }
        // A write the cut-off *leader* appended could never commit: the majority's new
        // leader overwrote it, so it must be gone. (A cut-off follower forwards writes to
        // the leader; when the forward times out the outcome is unknown, as with any
        // timed-out request, and the write may still land after the heal.)
        if cut == old_leader {
            for (key, _) in &refused {
                let r = c
                    .send(i, Method::GET, &format!("/v1/kv/{key}?consistent"), "")
                    .await?;
                ensure!(
                    r.status == 404,
                    "{round}: write {key} refused by the cut-off leader is readable via {}: {}",
                    c.nodes[i].name,
                    r.text()
                );
            }
        }
    }
    c.ensure_running()
}

#[test]
fn seed_cluster_in_namespaces_lists_members_and_survives_a_minority_partition() {
    let lab = Lab::create(3).unwrap_or_else(|e| panic!("cannot build the network lab: {e:#}"));
    let lab = &lab;
    let result = lab.run_in_hub(|| async move {
        let key = keygen()?;
        let mut c = Cluster::start(lab, &key)?;
        let leader = c
            .agreed_leader(&[0, 1, 2], "the three servers to elect one leader")
            .await?;
        println!("elected: {}", c.nodes[leader].name);
        let table = check_members_table(&c)?;
        print!("{table}");
        // A follower hands `remove-peer` to the leader's HTTP API; with `client_addr`
        // 0.0.0.0 (the seed's) the leader must be advertised at its own address.
        let follower = (leader + 1) % 3;
        let r = c
            .send(
                follower,
                Method::DELETE,
                "/v1/operator/raft/peer?address=127.0.0.9:8300",
                "",
            )
            .await?;
        ensure!(
            r.status == 500
                && r.text() == "address \"127.0.0.9:8300\" was not found in the Raft configuration",
            "remove-peer through a follower: {} {}",
            r.status,
            r.text()
        );

        let mut acked = Vec::new();
        for n in 0..5 {
            let (k, v) = (format!("before/{n}"), format!("b{n}"));
            ensure!(
                c.write(n % 3, &k, &v).await,
                "write {k} before the partition"
            );
            acked.push((k, v));
        }
        let follower = (leader + 1) % 3;
        partition_round(lab, &mut c, follower, "follower-cut", &mut acked).await?;
        let leader = c.agreed_leader(&[0, 1, 2], "one leader").await?;
        partition_round(lab, &mut c, leader, "leader-cut", &mut acked).await?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e:#}");
    }
}
