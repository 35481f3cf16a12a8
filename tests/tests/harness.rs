//! Smoke tests of the harness against the real `tribune` binary: an agent
//! starts in both ways the suites use, and a blocking query returns on a
//! change rather than at its timeout. If these fail, every other suite will.

use std::time::{Duration, Instant};

use serde_json::json;
use tribune_tests::Agent;

fn must<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|err| panic!("{err:#}"))
}

#[tokio::test]
async fn dev_agent_answers_agent_self_with_its_node_name() {
    let agent = must(Agent::start_dev("harness-dev").await);
    let reply = must(must(agent.http_get("/v1/agent/self").await).ensure_ok());
    let doc = must(reply.json());
    assert_eq!(doc["Config"]["NodeName"], "harness-dev", "{doc}");
}

#[tokio::test]
async fn config_dir_agent_starts_and_elects_itself() {
    let agent = must(Agent::start_with_config(json!({ "node_name": "harness-cfg" })).await);
    let reply = must(must(agent.http_get("/v1/agent/self").await).ensure_ok());
    let doc = must(reply.json());
    assert_eq!(doc["Config"]["NodeName"], "harness-cfg", "{doc}");
}

#[tokio::test]
async fn blocking_query_returns_when_a_service_registers() {
    let agent = must(Agent::start_dev("harness-block").await);
    let first = must(must(agent.http_get("/v1/catalog/services").await).ensure_ok());
    let index = first
        .index()
        .unwrap_or_else(|| panic!("no X-Consul-Index on {first:?}"));
    assert!(index >= 1, "X-Consul-Index must never be 0");

    let started = Instant::now();
    let (reply, ()) = tokio::join!(
        agent.blocking_get("/v1/catalog/services", index, Duration::from_secs(60)),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let body = json!({ "Name": "harness-web", "Port": 80 });
            must(
                must(
                    agent
                        .http_put_json("/v1/agent/service/register", &body)
                        .await,
                )
                .ensure_ok(),
            );
        }
    );
    let reply = must(must(reply).ensure_ok());
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "the blocking query returned after {elapsed:?}, not on the registration"
    );
    assert!(
        reply.index().is_some_and(|i| i > index),
        "index did not move past {index}: {:?}",
        reply.index()
    );
    let doc = must(reply.json());
    assert!(doc.get("harness-web").is_some(), "{doc}");
}
