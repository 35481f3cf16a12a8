//! Failure handling of three real servers (`bootstrap_expect: 3`, `retry_join`, encrypted
//! gossip) on 127.0.0.1:
//!
//! - `tribune operator raft remove-peer` and `DELETE /v1/operator/raft/peer` take a dead
//!   server out of the Raft configuration, with Consul's texts for every error; the server,
//!   restarted, is added back by the leader (Consul's reconcile).
//! - No acknowledged write is lost when all three servers get SIGKILL at a random moment
//!   under write load: restarted, they elect a leader and every acknowledged write is
//!   readable with `?consistent`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::{json, Value};

use tribune_tests::cluster::agreed_leader;
use tribune_tests::{must, process, wait_until, Agent};

async fn three_servers(prefix: &str) -> Vec<Agent> {
    must(tribune_tests::cluster::three_servers(prefix, json!({})).await)
}

/// Generous: debug builds on a busy 2-core machine.
const SETTLE: Duration = Duration::from_secs(60);

async fn peers(agent: &Agent) -> BTreeSet<String> {
    match agent.get_json("/v1/status/peers").await {
        Ok(Value::Array(a)) => a
            .iter()
            .filter_map(|p| p.as_str().map(String::from))
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn rpc_addr(agent: &Agent) -> String {
    format!("127.0.0.1:{}", agent.ports().server)
}

/// Runs `tribune <args> -http-addr=<agent>`; (exit code, stdout, stderr).
fn cli(agent: &Agent, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(must(process::tribune_bin()))
        .args(args)
        .arg(format!("-http-addr={}", agent.http_addr()))
        .output()
        .expect("run tribune");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_peer_takes_a_dead_server_out_of_raft() {
    let mut servers = three_servers("rp").await;
    let leader = must(agreed_leader(&servers, &[0, 1, 2]).await);
    let dead = (leader + 1) % 3;
    let follower = (leader + 2) % 3;
    let survivors = [leader, follower];
    let dead_name = servers[dead].node().to_string();
    let dead_rpc = rpc_addr(&servers[dead]);
    assert_eq!(peers(&servers[leader]).await.len(), 3);

    // list-peers names every server with its node name and node id (from gossip).
    let (code, out, err) = cli(&servers[follower], &["operator", "raft", "list-peers"]);
    assert_eq!(code, 0, "{err}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"],
        "{out}"
    );
    let dead_row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with(&dead_name))
        .unwrap_or_else(|| panic!("no row for {dead_name}:\n{out}"))
        .split_whitespace()
        .collect();
    let dead_id = dead_row[1].to_string();
    assert_eq!(dead_id.len(), 36, "the node UUID: {out}");
    assert_eq!(
        dead_row[2..],
        [dead_rpc.as_str(), "follower", "true", "3"],
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains(" leader ")).count(),
        1,
        "{out}"
    );

    must(servers[dead].kill());
    eventually_failed(&servers[leader], &dead_name).await;

    // Consul's answers to malformed requests.
    let r = must(
        servers[follower]
            .http_delete("/v1/operator/raft/peer")
            .await,
    );
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (
            400,
            "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove"
        )
    );
    let r = must(
        servers[follower]
            .http_delete("/v1/operator/raft/peer?id=a&address=b")
            .await,
    );
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (400, "Must specify only one of ?id or ?address")
    );
    let r = must(
        servers[leader]
            .http_delete("/v1/operator/raft/peer?id=no-such-id")
            .await,
    );
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (
            500,
            "id \"no-such-id\" was not found in the Raft configuration"
        )
    );

    // Removed by id through a follower (which hands it to the leader).
    let (code, out, err) = cli(
        &servers[follower],
        &["operator", "raft", "remove-peer", &format!("-id={dead_id}")],
    );
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            0,
            format!("Removed peer with id {dead_id:?}\n").as_str(),
            ""
        )
    );
    for &i in &survivors {
        let want: BTreeSet<String> = survivors.iter().map(|&s| rpc_addr(&servers[s])).collect();
        must(
            wait_until(SETTLE, "two Raft peers left", || async {
                let p = peers(&servers[i]).await;
                ensure!(p == want, "peers {p:?}");
                Ok(())
            })
            .await,
        );
    }
    // Gone, so a second removal (by address this time) is an error.
    let (code, out, err) = cli(
        &servers[leader],
        &[
            "operator",
            "raft",
            "remove-peer",
            &format!("-address={dead_rpc}"),
        ],
    );
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "",
            format!(
                "Error removing peer: Unexpected response code: 500 (address {dead_rpc:?} was not found in the Raft configuration)\n"
            )
            .as_str()
        )
    );
    // Two voters of two: writes still commit.
    for i in 0..5 {
        let r = must(
            servers[survivors[i % 2]]
                .http_put(&format!("/v1/kv/after-removal/{i}"), "v")
                .await,
        );
        assert_eq!((r.status.as_u16(), r.text().trim()), (200, "true"));
    }

    // Restarted, the server is alive in gossip again and the leader makes it a voter again.
    must(servers[dead].restart().await);
    must(
        wait_until(SETTLE, "three Raft peers again", || async {
            let p = peers(&servers[leader]).await;
            ensure!(p.len() == 3 && p.contains(&dead_rpc), "peers {p:?}");
            Ok(())
        })
        .await,
    );
    must(
        wait_until(SETTLE, "the re-added server to catch up", || async {
            let r = servers[dead]
                .http_get("/v1/kv/after-removal/?keys&stale")
                .await?
                .ensure_ok()?
                .json()?;
            ensure!(r.as_array().map(Vec::len) == Some(5), "{r}");
            Ok(())
        })
        .await,
    );
}

/// Waits until `observer` lists `name` as failed (status 4).
async fn eventually_failed(observer: &Agent, name: &str) {
    must(
        wait_until(SETTLE, "the killed server to be marked failed", || async {
            let ms = observer.get_json("/v1/agent/members").await?;
            let status = ms
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["Name"] == name)
                .map(|m| m["Status"].clone());
            ensure!(status == Some(json!(4)), "status of {name}: {status:?}");
            Ok(())
        })
        .await,
    );
}

/// Each server's catalog node → its `CreateIndex`, once every server and its serfHealth
/// check (passing) is in the catalog.
async fn node_create_indexes(servers: &[Agent]) -> BTreeMap<String, u64> {
    must(
        wait_until(SETTLE, "every server in the catalog, passing", || async {
            let mut out = BTreeMap::new();
            for s in servers {
                let v = servers[0]
                    .get_json(&format!("/v1/health/node/{}?consistent", s.node()))
                    .await?;
                let passing = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["CheckID"] == "serfHealth" && c["Status"] == "passing");
                ensure!(passing, "{}: {v}", s.node());
                let n = servers[0]
                    .get_json(&format!("/v1/catalog/node/{}?consistent", s.node()))
                    .await?;
                let idx = n["Node"]["CreateIndex"].as_u64();
                let Some(idx) = idx else {
                    bail!("{}: {n}", s.node())
                };
                out.insert(s.node().to_string(), idx);
            }
            Ok(out)
        })
        .await,
    )
}

/// KV write load: writers each PUT their own sequence of keys under a prefix,
/// round-robin over the servers' HTTP ports, and record only the writes answered 200
/// `true`, with the time of each acknowledgement.
struct Load {
    acked: Arc<Mutex<BTreeMap<String, (String, Instant)>>>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &reqwest::Client, ports: &[u16], prefix: &str) -> Load {
        let acked: Arc<Mutex<BTreeMap<String, (String, Instant)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..8 {
            let (acked, stop, client, ports) =
                (acked.clone(), stop.clone(), client.clone(), ports.to_vec());
            let prefix = prefix.to_string();
            writers.push(tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let key = format!("{prefix}/w{w}/{seq:06}");
                    let value = format!("{prefix}-{w}-{seq}");
                    let port = ports[(w + seq as usize) % ports.len()];
                    let r = client
                        .put(format!("http://127.0.0.1:{port}/v1/kv/{key}"))
                        .body(value.clone())
                        .send()
                        .await;
                    let ok = match r {
                        Ok(r) if r.status() == 200 => {
                            r.text().await.map(|t| t.trim() == "true").unwrap_or(false)
                        }
                        _ => false,
                    };
                    if ok {
                        let at = Instant::now();
                        acked.lock().expect("lock").insert(key, (value, at));
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        Load {
            acked,
            stop,
            writers,
        }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().expect("lock").len()
    }

    /// The first acknowledgement after `t`, if any yet.
    fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        let acked = self.acked.lock().expect("lock");
        acked.values().map(|(_, at)| *at).filter(|at| *at > t).min()
    }

    /// Stops the writers; every acknowledged write, key → value.
    async fn stop(self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.writers {
            w.await.expect("writer task");
        }
        let acked = std::mem::take(&mut *self.acked.lock().expect("lock"));
        acked.into_iter().map(|(k, (v, _))| (k, v)).collect()
    }
}

/// Every key of `acked` is listed under `prefix` by `s` (`?consistent`) with its value.
async fn check_acked(s: &Agent, prefix: &str, acked: &BTreeMap<String, String>, values: bool) {
    let listed = must(
        wait_until(SETTLE, "a consistent listing", || async {
            s.http_get(&format!("/v1/kv/{prefix}/?keys&consistent"))
                .await?
                .ensure_ok()?
                .json()
        })
        .await,
    );
    let have: BTreeSet<&str> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let missing: Vec<&String> = acked
        .keys()
        .filter(|k| !have.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes missing via {} (e.g. {:?})",
        missing.len(),
        s.node(),
        missing.first()
    );
    if !values {
        return;
    }
    for (key, value) in acked {
        // A leader change answers 500 for a moment: retried. A 404 or another value is a
        // lost write: fails at once.
        let path = format!("/v1/kv/{key}?consistent&raw");
        let r = must(
            wait_until(SETTLE, "a consistent read", || async {
                let r = s.http_get(&path).await?;
                ensure!(r.status == 200 || r.status == 404, "{}", r.text());
                Ok(r)
            })
            .await,
        );
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, value.clone()),
            "{key} via {}",
            s.node()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_under_load_loses_no_acknowledged_write() {
    let mut servers = three_servers("failover").await;
    let ports: Vec<u16> = servers.iter().map(|s| s.ports().http).collect();
    let client = tribune_tests::http::client();
    let load = Load::start(&client, &ports, "failover");
    tokio::time::sleep(Duration::from_millis(1500 + random_u64() % 2000)).await;
    let leader = must(agreed_leader(&servers, &[0, 1, 2]).await);
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let before = load.acked_count();
    must(servers[leader].kill());
    let killed = Instant::now();
    let new_leader = must(agreed_leader(&servers, &survivors).await);
    let elected = killed.elapsed();
    // The load goes on through the survivors; wait for the first write acknowledged after
    // the kill, then a little more load.
    let first = must(
        wait_until(SETTLE, "a write acknowledged after the kill", || async {
            load.first_ack_after(killed)
                .ok_or_else(|| anyhow::anyhow!("none yet"))
        })
        .await,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = load.stop().await;
    println!(
        "leader {} SIGKILLed after {before} acknowledged writes; {} leads {elected:.1?} later, \
         first write acknowledged {:.1?} after the kill; {} acknowledged in all",
        servers[leader].node(),
        servers[new_leader].node(),
        first - killed,
        acked.len()
    );
    assert!(before >= 10, "only {before} writes before the kill");
    for &i in &survivors {
        check_acked(&servers[i], "failover", &acked, i == new_leader).await;
    }
    // The killed leader comes back and catches up.
    must(servers[leader].restart().await);
    must(
        wait_until(SETTLE, "the restarted server to catch up", || async {
            let v = servers[leader]
                .http_get("/v1/kv/failover/?keys&stale")
                .await?
                .ensure_ok()?
                .json()?;
            let n = v.as_array().map_or(0, Vec::len);
            ensure!(n >= acked.len(), "{n} of {} keys", acked.len());
            Ok(())
        })
        .await,
    );
    check_acked(&servers[leader], "failover", &acked, false).await;
}

/// A pseudo-random number from the OS-seeded hasher (the tests crate has no `rand`).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_all_three_servers_under_load_loses_no_acknowledged_write() {
    let mut servers = three_servers("crash").await;
    let ports: Vec<u16> = servers.iter().map(|s| s.ports().http).collect();
    let client = tribune_tests::http::client();
    let mut acked_total = 0;
    // The servers' catalog nodes must survive the restarts untouched: a new leader whose
    // gossip has not found the others yet must not take them for reaped.
    let created = node_create_indexes(&servers).await;
    for round in 1..=2 {
        let load = Load::start(&client, &ports, &format!("load/r{round}"));
        // Load for a random 1.5–6 s, then SIGKILL all three, back to back.
        let delay = Duration::from_millis(1500 + random_u64() % 4500);
        tokio::time::sleep(delay).await;
        let before_kill = load.acked_count();
        for s in servers.iter_mut() {
            must(s.kill());
        }
        let acked = load.stop().await;
        println!(
            "round {round}: SIGKILL after {delay:?} of load; {} writes acknowledged \
             ({before_kill} before the kill signal was sent)",
            acked.len()
        );
        assert!(
            acked.len() >= 10,
            "round {round}: only {} writes were acknowledged; the load did not run",
            acked.len()
        );

        // All three back at once (each waits for a leader, which needs a quorum).
        let restarted = Instant::now();
        let results = futures::future::join_all(servers.iter_mut().map(|s| s.restart())).await;
        for r in results {
            must(r);
        }
        let leader = must(agreed_leader(&servers, &[0, 1, 2]).await);
        println!(
            "round {round}: restarted; {} leads ({:.1?} after the restart)",
            servers[leader].node(),
            restarted.elapsed()
        );
        // Every acknowledged write, read linearizably, through every server; values on one.
        for (i, s) in servers.iter().enumerate() {
            check_acked(s, &format!("load/r{round}"), &acked, i == leader).await;
        }
        acked_total += acked.len();
        assert_eq!(
            node_create_indexes(&servers).await,
            created,
            "round {round}: a server's catalog node was deregistered and registered again"
        );
    }
    println!("{acked_total} acknowledged writes over two crashes, none lost");
}
