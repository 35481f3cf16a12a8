//! The seed's cluster on one machine, with real processes (issue: cluster): three servers
//! with `bootstrap_expect: 3`, `retry_join` listing all three and an `encrypt` key from
//! `tribune keygen`, plus a client agent. They must elect one leader over gossip, agree on
//! it, serve and forward requests from any agent, lose no acknowledged write when the
//! leader is killed with SIGKILL, mark the dead node's `serfHealth` critical, and let the
//! killed server rejoin and catch up. An agent with another key cannot join.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use std::future::Future;

use tribune_tests::cluster::leader_of;
use tribune_tests::{must, process, wait_until, Agent};

fn keygen() -> String {
    must(tribune_tests::cluster::keygen())
}

const SETTLE: Duration = Duration::from_secs(20);

/// Waits up to [`SETTLE`] for `probe` to answer true.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    must(
        wait_until(SETTLE, what, || {
            let check = probe();
            async move {
                if check.await {
                    Ok(())
                } else {
                    anyhow::bail!("not yet")
                }
            }
        })
        .await,
    );
}

/// Starts three servers that know each other's gossip ports and a client joining them.
async fn seed_cluster(key: &str) -> (Vec<Agent>, Agent) {
    let ports: Vec<u16> = must(process::free_ports(3));
    let join: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut servers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let cfg = json!({
            "datacenter": "prometheus",
            "node_name": format!("server{}", i + 1),
            "server": true,
            "bootstrap_expect": 3,
            "encrypt": key,
            "ui": true,
            "retry_join": join,
            "ports": {"serf_lan": port},
        });
        servers.push(must(Agent::start_with_config_unready(cfg, &[]).await));
    }
    let client = must(
        Agent::start_with_config_unready(
            json!({
                "datacenter": "prometheus",
                "node_name": "client1",
                "server": false,
                "bootstrap_expect": null,
                "encrypt": key,
                "retry_join": [join[0]],
            }),
            &[],
        )
        .await,
    );
    (servers, client)
}

async fn alive_members(agent: &Agent) -> BTreeSet<(String, String)> {
    let Ok(Value::Array(ms)) = agent.get_json("/v1/agent/members").await else {
        return BTreeSet::new();
    };
    ms.iter()
        .filter(|m| m["Status"] == 1)
        .map(|m| {
            (
                m["Name"].as_str().unwrap_or("").to_string(),
                m["Tags"]["role"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_cluster_elects_one_leader_and_survives_a_killed_leader() {
    let key = keygen();
    assert_eq!(key.len(), 44, "keygen prints base64 of 32 bytes");
    let (mut servers, client) = seed_cluster(&key).await;

    // Everyone sees the four members alive, with Consul's roles.
    let want: BTreeSet<(String, String)> = [
        ("client1", "node"),
        ("server1", "consul"),
        ("server2", "consul"),
        ("server3", "consul"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for a in servers.iter().chain(std::iter::once(&client)) {
        eventually("all four members alive", || async {
            alive_members(a).await == want
        })
        .await;
    }
    // One leader, the same for every server, and three voters.
    eventually("the three servers agree on one leader", || async {
        let mut ls = BTreeSet::new();
        for s in &servers {
            ls.insert(leader_of(s).await);
        }
        ls.len() == 1 && !ls.contains("")
    })
    .await;
    let peers = must(servers[1].get_json("/v1/status/peers").await);
    assert_eq!(
        peers.as_array().map(Vec::len),
        Some(3),
        "three Raft voters: {peers}"
    );

    // `tribune members` prints Consul's columns with three alive servers.
    let out = Command::new(must(process::tribune_bin()))
        .args([
            "members",
            &format!("-http-addr=127.0.0.1:{}", servers[0].ports().http),
        ])
        .output()
        .expect("run tribune members");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Node"), "header first: {text}");
    for col in [
        "Address", "Status", "Type", "Build", "Protocol", "DC", "Segment",
    ] {
        assert!(
            text.lines().next().unwrap_or("").contains(col),
            "missing column {col}: {text}"
        );
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("alive") && l.contains(" server "))
            .count(),
        3,
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("client1") && l.contains("client") && l.contains("<default>")),
        "{text}"
    );

    // A service registered on the client reaches the catalog through the servers.
    must(
        client
            .put_json_ok(
                "/v1/agent/service/register",
                &json!({"ID": "node_exporter01", "Name": "node_exporter", "Address": "127.0.0.1", "Port": 9100, "Tags": ["prod"]}),
            )
            .await,
    );
    eventually(
        "the client's service is in the servers' catalog",
        || async {
            matches!(servers[2].get_json("/v1/catalog/service/node_exporter").await,
                Ok(Value::Array(a)) if a.len() == 1 && a[0]["Node"] == "client1")
        },
    )
    .await;

    // Writes through every agent, each acknowledged.
    let writers: Vec<&Agent> = servers.iter().chain(std::iter::once(&client)).collect();
    let mut acked = Vec::new();
    for i in 0..40 {
        let key = format!("ack/{i:03}");
        let reply = must(
            writers[i % writers.len()]
                .http_put(&format!("/v1/kv/{key}"), format!("v{i}"))
                .await,
        );
        assert_eq!(reply.status, 200, "write {key}: {}", reply.text());
        assert_eq!(reply.text().trim(), "true");
        acked.push(key);
    }

    // Kill the leader with SIGKILL.
    let leader_addr = leader_of(&servers[0]).await;
    let li = {
        let mut found = None;
        for (i, s) in servers.iter().enumerate() {
            if leader_addr.ends_with(&format!(":{}", s.ports().server)) {
                found = Some(i);
            }
        }
        found.expect("the leader is one of the three servers")
    };
    must(servers[li].kill());
    let survivor = (li + 1) % 3;
    let killed_name = servers[li].node().to_string();
    eventually("a new leader among the survivors", || async {
        let l = leader_of(&servers[survivor]).await;
        !l.is_empty() && l != leader_addr
    })
    .await;
    // Every acknowledged write is there, read linearizably, from a server and the client.
    for key in &acked {
        for reader in [&servers[survivor], &client] {
            let r = must(reader.http_get(&format!("/v1/kv/{key}?consistent")).await);
            assert_eq!(
                r.status,
                200,
                "acknowledged key {key} lost (read via {}): {}",
                reader.node(),
                r.text()
            );
        }
    }
    // The dead server's node turns critical in the catalog.
    eventually("the killed server's serfHealth is critical", || async {
        match servers[survivor]
            .get_json(&format!("/v1/health/node/{killed_name}"))
            .await
        {
            Ok(Value::Array(cs)) => cs
                .iter()
                .any(|c| c["CheckID"] == "serfHealth" && c["Status"] == "critical"),
            _ => false,
        }
    })
    .await;

    // It comes back, rejoins, and catches up.
    must(servers[li].restart().await);
    eventually("the restarted server has every write", || async {
        match servers[li].http_get("/v1/kv/ack/?recurse&stale").await {
            Ok(r) if r.status == 200 => {
                r.json().ok().and_then(|v| v.as_array().map(Vec::len)) == Some(acked.len())
            }
            _ => false,
        }
    })
    .await;
    eventually(
        "the restarted server's serfHealth is passing again",
        || async {
            match servers[survivor]
                .get_json(&format!("/v1/health/node/{killed_name}"))
                .await
            {
                Ok(Value::Array(cs)) => cs
                    .iter()
                    .any(|c| c["CheckID"] == "serfHealth" && c["Status"] == "passing"),
                _ => false,
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_another_key_cannot_join() {
    let key = keygen();
    let other = keygen();
    let server =
        must(Agent::start_with_config(json!({"node_name": "keyed", "encrypt": key})).await);
    let stranger = must(
        Agent::start_with_config(json!({
            "node_name": "stranger",
            "encrypt": other,
            "retry_join": [format!("127.0.0.1:{}", server.ports().serf_lan)],
            "retry_interval": "1s",
        }))
        .await,
    );
    // Give the join several tries; membership must stay apart.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let names = |v: Value| -> BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Name"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(
        names(must(server.get_json("/v1/agent/members").await)),
        BTreeSet::from(["keyed".to_string()])
    );
    assert_eq!(
        names(must(stranger.get_json("/v1/agent/members").await)),
        BTreeSet::from(["stranger".to_string()])
    );
    let log = stranger.output_tail();
    assert!(
        !log.contains(&other) && !log.contains(&key),
        "a gossip key appeared in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_rotation_reaches_every_member() {
    let (old, new) = (keygen(), keygen());
    let server =
        must(Agent::start_with_config(json!({"node_name": "ring-server", "encrypt": old})).await);
    let client = must(
        Agent::start_with_config_unready(
            json!({
                "node_name": "ring-client",
                "server": false,
                "bootstrap_expect": null,
                "encrypt": old,
                "retry_join": [format!("127.0.0.1:{}", server.ports().serf_lan)],
            }),
            &[],
        )
        .await,
    );
    eventually("the client joined", || async {
        alive_members(&server).await.len() == 2
    })
    .await;

    let lan_keys = |v: &Value| -> Value {
        v.as_array()
            .and_then(|pools| pools.iter().find(|p| p["WAN"] == false))
            .map(|p| p["Keys"].clone())
            .unwrap_or(Value::Null)
    };
    for (method, key) in [("POST", &new), ("PUT", &new), ("DELETE", &old)] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = must(
            server
                .http(m, "/v1/operator/keyring", json!({"Key": key}).to_string())
                .await,
        );
        assert_eq!(r.status, 200, "{method} keyring: {}", r.text());
    }
    let listed = must(client.get_json("/v1/operator/keyring").await);
    assert_eq!(
        lan_keys(&listed),
        json!({ new.clone(): 2 }),
        "only the new key, on both members: {listed}"
    );

    let out = Command::new(must(process::tribune_bin()))
        .args([
            "keyring",
            "-list",
            &format!("-http-addr=127.0.0.1:{}", server.ports().http),
        ])
        .output()
        .expect("run tribune keyring");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("==> Gathering installed encryption keys..."),
        "{text}"
    );
    assert!(text.contains(&format!("  {new} [2/2]")), "{text}");
    assert!(!text.contains(&old), "the removed key is gone: {text}");
    // Still one pool after the rotation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alive_members(&client).await.len(), 2);
}
