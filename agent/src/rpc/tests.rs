use super::*;
use crate::raft::{self, RaftOptions};
use crate::structs::{KvOp, KvVerb};
use openraft::BasicNode;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct TestServer {
    server: Arc<Server>,
    stop: CancellationToken,
}

async fn cluster(n: usize) -> Vec<TestServer> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let members: BTreeMap<u64, BasicNode> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (i as u64 + 1, BasicNode { addr: a.clone() }))
        .collect();
    let mut out = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let store = Arc::new(Store::new());
        let pool = Arc::new(Pool::new());
        let opts = RaftOptions {
            node_id: i as u64 + 1,
            rpc_addr: addrs[i].clone(),
            data_dir: None,
            bootstrap: false,
            raft_multiplier: 1,
            ..RaftOptions::default()
        };
        let r = raft::start(&opts, store.clone(), pool.clone())
            .await
            .unwrap();
        let server = Arc::new(Server::new(Some(r), store, i as u64 + 1, pool));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, server.clone(), stop.clone()));
        out.push(TestServer { server, stop });
    }
    out[0]
        .server
        .raft()
        .unwrap()
        .initialize(members)
        .await
        .unwrap();
    out
}

async fn leader_of(servers: &[TestServer]) -> usize {
    // Generous: the machine is shared with compilers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(i) = servers
            .iter()
            .position(|s| !s.stop.is_cancelled() && s.server.leader_status().is_leader)
        {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader elected within 30s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn put(key: &str, value: &str) -> Command {
    Command::Kv(KvOp {
        verb: KvVerb::Set,
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        index: 0,
        session: String::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_replicate_forward_and_fail_over() {
    let servers = cluster(3).await;
    let l = leader_of(&servers).await;
    let f = (l + 1) % 3;
    // A write on the leader, then one through a follower (forwarded).
    servers[l].server.apply(put("a", "1")).await.unwrap();
    let r = servers[f].server.apply(put("b", "2")).await.unwrap();
    assert!(r.ok);
    // A linearizable read on the follower sees both.
    servers[f]
        .server
        .read_barrier(Consistency::Consistent)
        .await
        .unwrap();
    servers[f].server.store().read(|t| {
        assert_eq!(t.kv_get("a").map(|e| e.value.clone()), Some(b"1".to_vec()));
        assert_eq!(t.kv_get("b").map(|e| e.value.clone()), Some(b"2".to_vec()));
    });
    // Kill the leader's network and Raft; the others elect a new one and keep the data.
    servers[l].stop.cancel();
    servers[l].server.raft().unwrap().shutdown().await.unwrap();
    let l2 = leader_of(&servers).await;
    assert_ne!(l2, l);
    let other = (0..3).find(|i| *i != l && *i != l2).unwrap();
    servers[other].server.apply(put("c", "3")).await.unwrap();
    servers[l2]
        .server
        .read_barrier(Consistency::Default)
        .await
        .unwrap();
    servers[l2].server.store().read(|t| {
        assert!(t.kv_get("a").is_some() && t.kv_get("b").is_some() && t.kv_get("c").is_some());
    });
    assert_eq!(servers[l2].server.peers().len(), 3);
}

/// Check-quorum and the write deadline: a leader cut off from both followers stops leading
/// and fails writes fast instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_leader_cut_off_from_its_quorum_refuses_to_lead_and_fails_writes_fast() {
    let servers = cluster(3).await;
    let l = leader_of(&servers).await;
    let leader = servers[l].server.clone();
    leader.apply(put("before", "v")).await.unwrap();
    assert!(leader.leader_addr().is_some());
    // A healthy leader stays leader: no false check-quorum over two seconds.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            leader.leader_status().is_leader,
            "a healthy leader lost its quorum"
        );
    }

    // Cut the leader off: both followers stop serving and stop their Raft.
    for (i, s) in servers.iter().enumerate() {
        if i != l {
            s.stop.cancel();
            s.server.raft().unwrap().shutdown().await.unwrap();
        }
    }
    let cut = Instant::now();
    // A write sent right away waits at most until check-quorum fires: an error, no ack.
    let r = tokio::time::timeout(Duration::from_secs(10), leader.apply(put("during", "v")))
        .await
        .expect("a write to a cut-off leader hung");
    assert!(r.is_err(), "a cut-off leader acknowledged a write: {r:?}");
    // It no longer names itself leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    while leader.leader_addr().is_some() || leader.leader_status().is_leader {
        assert!(Instant::now() < deadline, "still leader 10s after the cut");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_after = cut.elapsed();
    assert!(!leader.leader_status().known_leader);
    // Openraft still thinks it leads; the server refuses at once.
    let t = Instant::now();
    assert!(matches!(
        leader.apply(put("after", "v")).await,
        Err(RpcError::NoLeader)
    ));
    assert!(matches!(
        leader.read_barrier(Consistency::Consistent).await,
        Err(RpcError::NoLeader)
    ));
    assert!(matches!(
        leader.read_barrier(Consistency::Default).await,
        Err(RpcError::NoLeader)
    ));
    assert!(t.elapsed() < Duration::from_secs(1), "refusals were slow");
    assert!(leader.read_barrier(Consistency::Stale).await.is_ok());
    println!("the cut-off leader stopped leading {refused_after:?} after the cut");
}
