//! Helpers for suites that run several real servers: a gossip key, three servers that find
//! each other, and who leads.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::{process, wait_until, Agent};

/// Long enough for debug builds electing a leader on a busy 2-core machine.
pub const SETTLE: Duration = Duration::from_secs(60);

/// A fresh gossip key from `tribune keygen`.
pub fn keygen() -> anyhow::Result<String> {
    let out = Command::new(process::tribune_bin()?)
        .arg("keygen")
        .output()
        .context("run tribune keygen")?;
    if !out.status.success() {
        bail!("tribune keygen failed: {out:?}");
    }
    Ok(String::from_utf8(out.stdout)
        .context("tribune keygen printed non-UTF-8")?
        .trim()
        .to_string())
}

/// The leader `agent` names (`host:port` of its server RPC), or "" if none.
pub async fn leader_of(agent: &Agent) -> String {
    match agent.get_json("/v1/status/leader").await {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Waits until the servers in `among` name one leader, itself among them; its index.
pub async fn agreed_leader(servers: &[Agent], among: &[usize]) -> anyhow::Result<usize> {
    wait_until(SETTLE, "the servers to agree on one leader", || async {
        let mut seen = BTreeSet::new();
        for &i in among {
            seen.insert(leader_of(&servers[i]).await);
        }
        let Some(l) = seen.iter().next().filter(|_| seen.len() == 1) else {
            bail!("leaders seen: {seen:?}");
        };
        match among
            .iter()
            .find(|&&i| l.ends_with(&format!(":{}", servers[i].ports().server)))
        {
            Some(&i) => Ok(i),
            None => bail!("leaders seen: {seen:?}"),
        }
    })
    .await
}

/// Three servers named `<prefix>1..3` (`bootstrap_expect: 3`, encrypted gossip,
/// `retry_join` listing all three) with the keys of `extra` added to each config; returns
/// once they agree on a leader.
pub async fn three_servers(prefix: &str, extra: Value) -> anyhow::Result<Vec<Agent>> {
    let key = keygen()?;
    let ports: Vec<u16> = process::free_ports(3)?;
    let join: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut servers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut cfg = json!({
            "datacenter": "dc1",
            "node_name": format!("{prefix}{}", i + 1),
            "server": true,
            "bootstrap_expect": 3,
            "encrypt": key,
            "retry_join": join,
            "ports": {"serf_lan": port},
        });
        if let (Value::Object(cfg), Value::Object(extra)) = (&mut cfg, &extra) {
            cfg.extend(extra.clone());
        }
        servers.push(Agent::start_with_config_unready(cfg, &[]).await?);
    }
    agreed_leader(&servers, &[0, 1, 2]).await?;
    Ok(servers)
}
