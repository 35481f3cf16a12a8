//! A server that was down while the others moved on catches up by snapshot: three real
//! servers with a small `raft_snapshot_threshold` and `raft_trailing_logs`, so the leader
//! has purged the entries the stopped follower lacks; restarted, the follower can only
//! catch up by installing the leader's snapshot, and then serves every write (`?stale`
//! reads are answered from its own store).

use std::time::Duration;

use anyhow::ensure;
use serde_json::{json, Value};

use tribune_tests::cluster::{agreed_leader, three_servers, SETTLE};
use tribune_tests::{must, wait_until, Agent};

const WRITES: usize = 300;

/// Everything the agent wrote to stdout and stderr, over all its runs.
fn all_output(agent: &Agent) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(agent.dir()).expect("read the agent's directory") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("agent-") && (name.ends_with(".stderr") || name.ends_with(".stdout")) {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    out
}

/// The keys under `snap/` that `agent` serves from its own store.
async fn local_keys(agent: &Agent) -> usize {
    match agent.get_json("/v1/kv/snap/?keys&stale").await {
        Ok(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_catches_up_by_snapshot() {
    let mut servers = must(
        three_servers(
            "snap",
            json!({"raft_snapshot_threshold": 32, "raft_trailing_logs": 4}),
        )
        .await,
    );
    let leader = must(agreed_leader(&servers, &[0, 1, 2]).await);
    let behind = (leader + 1) % 3;
    must(servers[behind].kill());

    // One writer, one key per write: each write is its own Raft entry, so the leader takes
    // several snapshots and purges everything but the last few entries behind them.
    for i in 0..WRITES {
        let reply = must(
            servers[leader]
                .http_put(&format!("/v1/kv/snap/k{i:04}"), format!("v{i}"))
                .await,
        );
        assert!(
            reply.status.is_success(),
            "write {i} to the leader: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    assert!(
        !all_output(&servers[behind]).contains("Installed a snapshot from the leader"),
        "the follower installed a snapshot before it was restarted"
    );

    must(servers[behind].restart().await);
    let caught_up = wait_until(
        SETTLE,
        "the restarted follower to hold every write",
        || async {
            let n = local_keys(&servers[behind]).await;
            ensure!(n == WRITES, "{n} of {WRITES} keys");
            Ok(())
        },
    )
    .await;
    if let Err(e) = caught_up {
        panic!("{e:#}\n{}", servers[behind].output_tail());
    }
    // The log is written by a background thread: give the line a moment to reach the file.
    let installed = wait_until(
        Duration::from_secs(10),
        "the follower to log the snapshot it installed",
        || async {
            ensure!(
                all_output(&servers[behind]).contains("Installed a snapshot from the leader"),
                "no such line"
            );
            Ok(())
        },
    )
    .await;
    if let Err(e) = installed {
        panic!(
            "{e:#}: the follower caught up without a snapshot, so the leader kept its whole \
             log\n{}",
            servers[behind].output_tail()
        );
    }
    // The values came across too, not just the keys.
    let last = must(
        servers[behind]
            .http_get(&format!("/v1/kv/snap/k{:04}?raw&stale", WRITES - 1))
            .await,
    );
    assert_eq!(
        String::from_utf8_lossy(&last.body),
        format!("v{}", WRITES - 1),
        "the last write's value on the follower"
    );
    // And the follower is a full member again: one leader among all three.
    must(agreed_leader(&servers, &[0, 1, 2]).await);
}
