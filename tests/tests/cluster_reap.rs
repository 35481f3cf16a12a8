//! Members that go away, with real processes: a `tribune leave` node is `left` everywhere
//! and its node leaves the catalog at once; a killed client and a killed server are marked
//! `failed` (their `serfHealth` critical) and, after `reconnect_timeout`, reaped: gone from
//! every member list, their nodes deregistered, the server out of the Raft voters.
//!
//! `reconnect_timeout` cannot go below Consul's 8 minutes in a config file (checked here
//! too); this suite shortens it through the test-only environment variable
//! `TRIBUNE_TEST_RECONNECT_TIMEOUT`, which every agent it starts inherits. It is the only
//! test of this binary, so nothing else sees the variable.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::{json, Value};

use tribune_tests::{must, process, wait_until, Agent};

const SETTLE: Duration = Duration::from_secs(60);
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(8);

/// Name → status code (1 alive, 3 left, 4 failed) as `observer` lists its members.
async fn statuses(observer: &Agent) -> anyhow::Result<Vec<(String, u64)>> {
    let ms = observer.get_json("/v1/agent/members").await?;
    Ok(ms
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["Name"].as_str().unwrap_or("").to_string(),
                m["Status"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

async fn status_of(observer: &Agent, name: &str) -> anyhow::Result<Option<u64>> {
    Ok(statuses(observer)
        .await?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s))
}

async fn catalog_nodes(agent: &Agent) -> anyhow::Result<BTreeSet<String>> {
    let v = agent.get_json("/v1/catalog/nodes").await?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["Node"].as_str().map(String::from))
        .collect())
}

/// How many instances of `doomed-web` `agent` lists as passing.
async fn passing(agent: &Agent) -> anyhow::Result<usize> {
    let v = agent
        .get_json("/v1/health/service/doomed-web?passing")
        .await?;
    Ok(v.as_array().map_or(0, Vec::len))
}

async fn serf_health(agent: &Agent, node: &str) -> anyhow::Result<String> {
    let cs = agent.get_json(&format!("/v1/health/node/{node}")).await?;
    Ok(cs
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["CheckID"] == "serfHealth")
        .and_then(|c| c["Status"].as_str())
        .unwrap_or("")
        .to_string())
}

#[test]
fn a_config_file_cannot_go_below_eight_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("agent.json"),
        json!({"reconnect_timeout": "5s", "data_dir": dir.path().join("data")}).to_string(),
    )
    .expect("write config");
    let out = Command::new(must(process::tribune_bin()))
        .arg("validate")
        .arg(dir.path())
        .output()
        .expect("run tribune validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "5s accepted: {out:?}");
    assert!(
        err.contains("reconnect_timeout") && err.contains("8m0s"),
        "the error names the key and the minimum: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_member_is_deregistered_and_failed_members_are_reaped() {
    // Before any agent starts: they inherit it.
    std::env::set_var("TRIBUNE_TEST_RECONNECT_TIMEOUT", "8s");

    let ports: Vec<u16> = must(process::free_ports(3));
    let join: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut servers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let cfg = json!({
            "node_name": format!("reap-server{}", i + 1),
            "bootstrap_expect": 3,
            "retry_join": join,
            "ports": {"serf_lan": port},
        });
        servers.push(must(Agent::start_with_config_unready(cfg, &[]).await));
    }
    let mut clients = Vec::new();
    for name in ["leaver", "doomed", "terminated", "forced"] {
        let cfg = json!({
            "node_name": name,
            "server": false,
            "bootstrap_expect": null,
            "retry_join": [join[0]],
        });
        clients.push(must(Agent::start_with_config_unready(cfg, &[]).await));
    }
    let everyone: BTreeSet<String> = servers
        .iter()
        .chain(&clients)
        .map(|a| a.node().to_string())
        .collect();
    for s in &servers {
        must(s.wait_for_leader().await);
    }
    must(
        wait_until(SETTLE, "five nodes in the catalog", || async {
            let nodes = catalog_nodes(&servers[0]).await?;
            ensure!(nodes == everyone, "catalog nodes {nodes:?}");
            Ok(())
        })
        .await,
    );
    // A service on the client that will be killed, passing while its agent lives.
    must(
        clients[1]
            .put_json_ok(
                "/v1/agent/service/register",
                &json!({"ID": "doomed-web", "Name": "doomed-web", "Port": 8080}),
            )
            .await,
    );
    must(
        wait_until(SETTLE, "doomed-web to be passing", || async {
            let n = passing(&servers[0]).await?;
            ensure!(n == 1, "{n} passing instances");
            Ok(())
        })
        .await,
    );

    // `tribune leave`: left everywhere, deregistered at once.
    let out = Command::new(must(process::tribune_bin()))
        .args(["leave", &format!("-http-addr={}", clients[0].http_addr())])
        .output()
        .expect("run tribune leave");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Graceful leave complete\n",
        "{out:?}"
    );
    // The agent exits by itself after leaving.
    let deadline = Instant::now() + SETTLE;
    while clients[0].ensure_running().is_ok() {
        assert!(Instant::now() < deadline, "the leaver did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in &servers {
        must(
            wait_until(SETTLE, "the leaver to be `left`", || async {
                let st = status_of(s, "leaver").await?;
                ensure!(st == Some(3), "status {st:?}");
                Ok(())
            })
            .await,
        );
    }
    must(
        wait_until(SETTLE, "the leaver's node to be deregistered", || async {
            let nodes = catalog_nodes(&servers[1]).await?;
            ensure!(!nodes.contains("leaver"), "catalog nodes {nodes:?}");
            Ok(())
        })
        .await,
    );

    // SIGTERM on a client (`leave_on_terminate` defaults to true for clients) leaves too.
    let status = must(clients[2].terminate(SETTLE).await);
    assert!(status.success(), "terminated client exited with {status}");
    must(
        wait_until(
            SETTLE,
            "the SIGTERMed client to be `left` and deregistered",
            || async {
                let st = status_of(&servers[2], "terminated").await?;
                ensure!(st == Some(3), "status {st:?}");
                let nodes = catalog_nodes(&servers[0]).await?;
                ensure!(!nodes.contains("terminated"), "catalog nodes {nodes:?}");
                Ok(())
            },
        )
        .await,
    );

    // Two clients and a follower server get SIGKILL.
    let leader_addr = match must(servers[0].get_json("/v1/status/leader").await) {
        Value::String(s) => s,
        other => panic!("leader: {other}"),
    };
    let victim = servers
        .iter()
        .position(|s| !leader_addr.ends_with(&format!(":{}", s.ports().server)))
        .expect("a follower");
    let watcher = (0..3).find(|&i| i != victim).expect("a survivor");
    let victim_name = servers[victim].node().to_string();
    let victim_rpc = format!("127.0.0.1:{}", servers[victim].ports().server);
    must(clients[1].kill());
    must(clients[3].kill());
    must(servers[victim].kill());
    let killed = Instant::now();
    let gone = ["doomed".to_string(), victim_name.clone()];

    // Failed: status 4 and serfHealth critical, for at least a while.
    let w = &servers[watcher];
    must(
        wait_until(
            SETTLE,
            "both to be failed everywhere and critical",
            || async {
                for n in &gone {
                    // Marked failed by every surviving member.
                    for s in servers.iter().filter(|s| s.node() != victim_name) {
                        let st = status_of(s, n).await?;
                        ensure!(st == Some(4), "{n}: status {st:?} on {}", s.node());
                    }
                    let h = serf_health(w, n).await?;
                    ensure!(h == "critical", "{n}: serfHealth {h:?}");
                }
                Ok(())
            },
        )
        .await,
    );
    let failed_seen = Instant::now();
    // Its service left the `?passing` results.
    must(
        wait_until(SETTLE, "doomed-web to leave ?passing", || async {
            let n = passing(w).await?;
            ensure!(n == 0, "{n} passing instances");
            Ok(())
        })
        .await,
    );
    // `tribune force-leave`: the failed member is `left` and deregistered before any reap.
    must(
        wait_until(SETTLE, "forced to be failed", || async {
            let st = status_of(w, "forced").await?;
            ensure!(st == Some(4), "status {st:?}");
            Ok(())
        })
        .await,
    );
    let out = Command::new(must(process::tribune_bin()))
        .args([
            "force-leave",
            &format!("-http-addr={}", w.http_addr()),
            "forced",
        ])
        .output()
        .expect("run tribune force-leave");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "force-leave: {out:?}"
    );
    must(
        wait_until(
            SETTLE,
            "the force-left member to be `left` and deregistered",
            || async {
                let st = status_of(w, "forced").await?;
                ensure!(st == Some(3), "status {st:?}");
                let nodes = catalog_nodes(w).await?;
                ensure!(!nodes.contains("forced"), "catalog nodes {nodes:?}");
                Ok(())
            },
        )
        .await,
    );
    assert!(
        killed.elapsed() < RECONNECT_TIMEOUT,
        "force-leave took longer than reconnect_timeout; the check above proved nothing"
    );
    println!(
        "failed and critical {:.1?} after SIGKILL",
        failed_seen - killed
    );

    // Reaped: gone from every member list and from the catalog; the server is no voter.
    for s in servers.iter().filter(|s| s.node() != victim_name) {
        must(
            wait_until(SETTLE, "the failed members to be reaped", || async {
                let names: BTreeSet<String> =
                    statuses(s).await?.into_iter().map(|(n, _)| n).collect();
                for n in &gone {
                    ensure!(!names.contains(n), "{n} still listed by {}", s.node());
                }
                Ok(())
            })
            .await,
        );
    }
    let reaped = Instant::now();
    // A left member stays listed as `left` (until serf's 24 h tombstone timeout).
    assert_eq!(must(status_of(w, "forced").await), Some(3));
    assert_eq!(must(status_of(w, "leaver").await), Some(3));
    println!(
        "reaped {:.1?} after SIGKILL (reconnect_timeout {RECONNECT_TIMEOUT:?})",
        reaped - killed
    );
    assert!(
        reaped - failed_seen >= RECONNECT_TIMEOUT / 2,
        "reaped {:.1?} after being seen failed, before reconnect_timeout",
        reaped - failed_seen
    );
    must(
        wait_until(SETTLE, "the reaped nodes to leave the catalog", || async {
            let nodes = catalog_nodes(w).await?;
            for n in &gone {
                ensure!(!nodes.contains(n), "{n} still in the catalog: {nodes:?}");
            }
            Ok(())
        })
        .await,
    );
    must(
        wait_until(
            SETTLE,
            "the reaped server to leave the Raft voters",
            || async {
                let peers = w.get_json("/v1/status/peers").await?;
                let peers: BTreeSet<&str> = peers
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if peers.contains(victim_rpc.as_str()) || peers.len() != 2 {
                    bail!("peers {peers:?}");
                }
                Ok(())
            },
        )
        .await,
    );
    // The two remaining servers still commit writes.
    let r = must(w.http_put("/v1/kv/after-reap", "ok").await);
    assert_eq!((r.status.as_u16(), r.text().trim()), (200, "true"));
}
