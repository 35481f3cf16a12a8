//! Blocking queries against a real agent (compat §2.1, §17 row 1, §18 items 3
//! and 4, §20 item 4): `X-Consul-Index` semantics, `wait` and its jitter bound,
//! an index that is never 0, and Tribune's narrow wakeups: a watcher of one
//! service, node or KV prefix does not wake for writes elsewhere.
//!
//! Every test starts its own dev agent, so they run in parallel.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tribune_tests::{must, Agent, Reply};

/// How long a quiet watcher is left blocking to prove it did not wake.
const QUIET_WAIT: Duration = Duration::from_secs(3);

/// How soon a watcher must return after a relevant write.
const WAKE_BOUND: Duration = Duration::from_secs(3);

/// Slack for HTTP and scheduling on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(500);

/// When the writes of a test happen, after the watchers started.
const WRITE_DELAY: Duration = Duration::from_millis(300);

async fn dev(node: &str) -> Agent {
    must(Agent::start_dev(node).await)
}

/// `GET path`: 200 (or `expect` 404 for KV misses) and its index.
async fn index_of(agent: &Agent, path: &str) -> u64 {
    let reply = must(agent.http_get(path).await);
    assert!(
        reply.status == 200 || reply.status == 404,
        "{}: {} {}",
        reply.request,
        reply.status,
        reply.text()
    );
    reply
        .index()
        .unwrap_or_else(|| panic!("{}: no X-Consul-Index: {:?}", reply.request, reply.headers))
}

/// Runs a blocking GET and reports the reply with the time it took.
async fn timed(agent: &Agent, path: &str, index: u64, wait: Duration) -> (Reply, Duration) {
    let start = Instant::now();
    let reply = must(agent.blocking_get(path, index, wait).await);
    (reply, start.elapsed())
}

/// Runs `writes` after [`WRITE_DELAY`] while the caller's queries block.
async fn later<F: Future<Output = ()>>(writes: F) {
    tokio::time::sleep(WRITE_DELAY).await;
    writes.await;
}

async fn register(agent: &Agent, body: Value) {
    must(agent.put_json_ok("/v1/agent/service/register", &body).await);
}

async fn kv_put(agent: &Agent, key: &str, value: &str) {
    must(
        must(
            agent
                .http_put(&format!("/v1/kv/{key}"), value.to_owned())
                .await,
        )
        .ensure_ok(),
    );
}

/// Asserts a watcher timed out: it waited the full `wait` (within jitter and
/// slack) and reports the index it was given.
fn assert_quiet(what: &str, reply: &Reply, took: Duration, index: u64, wait: Duration) {
    assert!(
        took >= wait - Duration::from_millis(50),
        "{what}: returned after {took:?}, before its {wait:?} wait: a write elsewhere woke it \
         (index {:?}, body {})",
        reply.index(),
        reply.text()
    );
    assert!(
        took <= wait + wait / 16 + SLACK,
        "{what}: took {took:?} for a {wait:?} wait"
    );
    assert_eq!(
        reply.index(),
        Some(index),
        "{what}: a timed-out query reports the same index"
    );
}

/// Asserts a watcher woke soon after the write with a higher index.
fn assert_woke(what: &str, reply: &Reply, took: Duration, index: u64) {
    assert!(
        took < WRITE_DELAY + WAKE_BOUND,
        "{what}: returned after {took:?}, not on the write"
    );
    assert!(
        reply.index().is_some_and(|i| i > index),
        "{what}: index did not move past {index}: {:?}",
        reply.index()
    );
}

#[tokio::test]
async fn wait_times_out_with_the_same_index_and_body() {
    let agent = dev("block-wait").await;
    kv_put(&agent, "cfg/a", "1").await;
    let wait = Duration::from_secs(1);
    let paths = [
        "/v1/catalog/service/consul",
        "/v1/health/service/nothing",
        "/v1/kv/cfg/a",
        "/v1/kv/cfg/?recurse",
    ];
    let mut before = Vec::new();
    for p in paths {
        let r = must(must(agent.http_get(p).await).ensure_ok());
        before.push((r.index().unwrap_or(0), r.body.clone()));
    }
    let (a, b, c, d) = tokio::join!(
        timed(&agent, paths[0], before[0].0, wait),
        timed(&agent, paths[1], before[1].0, wait),
        timed(&agent, paths[2], before[2].0, wait),
        timed(&agent, paths[3], before[3].0, wait),
    );
    for (i, (reply, took)) in [a, b, c, d].into_iter().enumerate() {
        assert_eq!(reply.status, 200, "{}: {}", paths[i], reply.text());
        assert_quiet(paths[i], &reply, took, before[i].0, wait);
        assert_eq!(
            reply.body, before[i].1,
            "{}: same body after a timeout",
            paths[i]
        );
    }
}

#[tokio::test]
async fn writes_elsewhere_do_not_wake_a_service_watcher() {
    let agent = dev("block-narrow").await;
    register(
        &agent,
        json!({"ID": "web-1", "Name": "web", "Tags": ["v1"],
               "Check": {"CheckID": "web-ttl", "TTL": "60s", "Status": "passing"}}),
    )
    .await;
    let health = "/v1/health/service/web";
    let catalog = "/v1/catalog/service/web";
    let services = "/v1/catalog/services";
    let (hi, ci) = (
        index_of(&agent, health).await,
        index_of(&agent, catalog).await,
    );

    // Writes to another service (agent and catalog API), another node and KV.
    let ((h, ht), (c, ct), ()) = tokio::join!(
        timed(&agent, health, hi, QUIET_WAIT),
        timed(&agent, catalog, ci, QUIET_WAIT),
        later(async {
            register(&agent, json!({"Name": "db", "Port": 5432})).await;
            must(
                agent
                    .put_json_ok(
                        "/v1/catalog/register",
                        &json!({"Node": "other", "Address": "192.0.2.9",
                                "Service": {"Service": "api", "Port": 80}}),
                    )
                    .await,
            );
            kv_put(&agent, "unrelated", "x").await;
            // Registering web again unchanged is not a change either.
            register(
                &agent,
                json!({"ID": "web-1", "Name": "web", "Tags": ["v1"],
                       "Check": {"CheckID": "web-ttl", "TTL": "60s", "Status": "passing"}}),
            )
            .await;
        }),
    );
    assert_quiet(health, &h, ht, hi, QUIET_WAIT);
    assert_quiet(catalog, &c, ct, ci, QUIET_WAIT);
    let names = must(agent.get_json(services).await);
    assert!(
        names.get("db").is_some() && names.get("api").is_some(),
        "the writes happened: {names}"
    );

    // A change to web wakes both at once.
    let si = index_of(&agent, services).await;
    let ((h, ht), (c, ct), (s, st), ()) = tokio::join!(
        timed(&agent, health, hi, Duration::from_secs(30)),
        timed(&agent, catalog, ci, Duration::from_secs(30)),
        timed(&agent, services, si, Duration::from_secs(30)),
        later(register(
            &agent,
            json!({"ID": "web-1", "Name": "web", "Tags": ["v2"],
                   "Check": {"CheckID": "web-ttl", "TTL": "60s"}}),
        )),
    );
    assert_woke(health, &h, ht, hi);
    assert_woke(catalog, &c, ct, ci);
    assert_woke(services, &s, st, si);
    assert_eq!(must(c.json())[0]["ServiceTags"], json!(["v2"]));
    assert_eq!(must(s.json())["web"], json!(["v2"]));

    // A check status change wakes the health watcher.
    let hi = h.index().unwrap_or(0);
    let ((h, ht), ()) = tokio::join!(
        timed(&agent, health, hi, Duration::from_secs(30)),
        later(async {
            must(must(agent.http_put("/v1/agent/check/fail/web-ttl", "").await).ensure_ok());
        }),
    );
    assert_woke("health after a check failed", &h, ht, hi);
    let entry = must(h.json());
    let status = entry[0]["Checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["CheckID"] == "web-ttl"))
        .map(|c| c["Status"].clone());
    assert_eq!(status, Some(json!("critical")), "{entry}");
}

#[tokio::test]
async fn index_is_never_zero_and_bad_parameters_are_rejected() {
    let agent = dev("block-zero").await;
    let paths = [
        "/v1/catalog/services",
        "/v1/catalog/nodes",
        "/v1/catalog/service/missing",
        "/v1/catalog/node/missing",
        "/v1/health/service/missing",
        "/v1/health/checks/missing",
        "/v1/health/node/missing",
        "/v1/health/state/warning",
        "/v1/kv/missing",
        "/v1/kv/missing/?recurse",
        "/v1/kv/missing/?keys",
        "/v1/kv/?keys",
        "/v1/session/list",
        "/v1/session/node/missing",
        "/v1/session/info/00000000-0000-4000-8000-000000000000",
        "/v1/event/list",
    ];
    for p in paths {
        let reply = must(agent.http_get(p).await);
        assert!(
            reply.status == 200 || reply.status == 404,
            "{p}: {} {}",
            reply.status,
            reply.text()
        );
        let index = reply.index();
        assert!(
            index.is_some_and(|i| i >= 1),
            "{p}: X-Consul-Index must be present and never 0: {:?}",
            reply.headers
        );
        assert!(reply.header("x-consul-knownleader").is_some(), "{p}");
        assert!(
            reply
                .header("x-consul-lastcontact")
                .is_some_and(|v| v.parse::<u64>().is_ok()),
            "{p}: {:?}",
            reply.headers
        );
    }
    for (query, text) in [
        ("index=abc", "Invalid index"),
        ("index=1&wait=forever", "Invalid wait time"),
    ] {
        let reply = must(
            agent
                .http_get(&format!("/v1/catalog/services?{query}"))
                .await,
        );
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (400, text),
            "?{query}"
        );
    }
}

#[tokio::test]
async fn a_watch_on_a_missing_service_returns_when_it_appears() {
    let agent = dev("block-appear").await;
    let health = "/v1/health/service/later";
    let catalog = "/v1/catalog/service/later";
    let (hi, ci) = (
        index_of(&agent, health).await,
        index_of(&agent, catalog).await,
    );
    let ((h, ht), (c, ct), ()) = tokio::join!(
        timed(&agent, health, hi, Duration::from_secs(30)),
        timed(&agent, catalog, ci, Duration::from_secs(30)),
        later(register(&agent, json!({"Name": "later", "Port": 7}))),
    );
    for (what, reply, took) in [(health, &h, ht), (catalog, &c, ct)] {
        assert!(
            took >= WRITE_DELAY - Duration::from_millis(50),
            "{what}: returned after {took:?}, before the service existed: a missing service \
             must block, not return at once (index {:?})",
            reply.index()
        );
        assert_woke(what, reply, took, if what == health { hi } else { ci });
    }
    assert_eq!(must(h.json()).as_array().map(Vec::len), Some(1));
    assert_eq!(must(c.json())[0]["ServicePort"], 7);
}

#[tokio::test]
async fn kv_watches_wake_on_their_prefix_and_key_only() {
    let agent = dev("block-kv").await;
    kv_put(&agent, "app/a", "1").await;
    let recurse = "/v1/kv/app/?recurse";
    let keys = "/v1/kv/app/?keys";
    let key = "/v1/kv/app/a";
    let (ri, ki, ei) = (
        index_of(&agent, recurse).await,
        index_of(&agent, keys).await,
        index_of(&agent, key).await,
    );
    // Siblings: "apps/x" shares the letters but not the "app/" prefix.
    let ((r, rt), (k, kt), (e, et), ()) = tokio::join!(
        timed(&agent, recurse, ri, QUIET_WAIT),
        timed(&agent, keys, ki, QUIET_WAIT),
        timed(&agent, key, ei, QUIET_WAIT),
        later(async {
            kv_put(&agent, "apps/x", "no").await;
            kv_put(&agent, "other/app/a", "no").await;
            register(&agent, json!({"Name": "svc"})).await;
        }),
    );
    assert_quiet(recurse, &r, rt, ri, QUIET_WAIT);
    assert_quiet(keys, &k, kt, ki, QUIET_WAIT);
    assert_quiet(key, &e, et, ei, QUIET_WAIT);

    // A child write wakes the prefix watchers, not the watcher of app/a.
    let ((r, rt), (k, kt), (e, et), ()) = tokio::join!(
        timed(&agent, recurse, ri, Duration::from_secs(30)),
        timed(&agent, keys, ki, Duration::from_secs(30)),
        timed(&agent, key, ei, QUIET_WAIT),
        later(kv_put(&agent, "app/b/c", "2")),
    );
    assert_woke(recurse, &r, rt, ri);
    assert_woke(keys, &k, kt, ki);
    assert_quiet(key, &e, et, ei, QUIET_WAIT);
    assert_eq!(must(k.json()), json!(["app/a", "app/b/c"]));

    // Deleting the key wakes its watcher with a 404 and a higher index.
    let ((e, et), ()) = tokio::join!(
        timed(&agent, key, ei, Duration::from_secs(30)),
        later(async {
            must(must(agent.http_delete("/v1/kv/app/a").await).ensure_ok());
        }),
    );
    assert_eq!(e.status, 404, "{}", e.text());
    assert_woke("app/a after its deletion", &e, et, ei);
    let ri2 = index_of(&agent, recurse).await;
    assert!(
        ri2 >= e.index().unwrap_or(u64::MAX),
        "the prefix index does not go back after a delete: {ri2} < {:?}",
        e.index()
    );
}

#[tokio::test]
async fn jitter_stays_within_a_sixteenth_of_wait() {
    let agent = dev("block-jitter").await;
    let wait = Duration::from_secs(2);
    let bound = wait + wait / 16 + SLACK;
    let path = "/v1/catalog/nodes";
    let index = index_of(&agent, path).await;
    let (a, b, c) = tokio::join!(
        timed(&agent, path, index, wait),
        timed(
            &agent,
            "/v1/kv/none",
            index_of(&agent, "/v1/kv/none").await,
            wait
        ),
        timed(
            &agent,
            "/v1/health/state/critical",
            index_of(&agent, "/v1/health/state/critical").await,
            wait
        ),
    );
    for (reply, took) in [a, b, c] {
        assert!(
            took >= wait && took < bound,
            "{}: a {wait:?} wait took {took:?} (bound {bound:?})",
            reply.request
        );
    }
}

#[tokio::test]
async fn a_write_that_leaves_the_result_unchanged_does_not_end_the_wait() {
    let agent = dev("block-same").await;
    register(
        &agent,
        json!({"ID": "web-1", "Name": "web", "Tags": ["blue"],
               "Check": {"CheckID": "web-ttl", "TTL": "60s", "Status": "passing"}}),
    )
    .await;
    let passing = "/v1/health/service/web?passing";
    let tagged = "/v1/catalog/service/web?tag=blue";
    let all = "/v1/health/service/web";
    let (pi, ti, ai) = (
        index_of(&agent, passing).await,
        index_of(&agent, tagged).await,
        index_of(&agent, all).await,
    );
    let (p_before, t_before) = (
        must(agent.get_json(passing).await),
        must(agent.get_json(tagged).await),
    );
    // A second, critical and green, instance: invisible to both filtered watchers.
    let ((p, pt), (t, tt), (a, at), ()) = tokio::join!(
        timed(&agent, passing, pi, QUIET_WAIT),
        timed(&agent, tagged, ti, QUIET_WAIT),
        timed(&agent, all, ai, Duration::from_secs(30)),
        later(async {
            must(
                agent
                    .put_json_ok(
                        "/v1/catalog/register",
                        &json!({"Node": "ext", "Address": "192.0.2.3",
                                "Service": {"ID": "web-2", "Service": "web", "Tags": ["green"]},
                                "Check": {"CheckID": "ext-web", "Name": "x", "Status": "critical",
                                          "ServiceID": "web-2"}}),
                    )
                    .await,
            );
        }),
    );
    assert_woke(all, &a, at, ai);
    assert_eq!(must(a.json()).as_array().map(Vec::len), Some(2));
    for (what, reply, took, index, before) in [
        (passing, &p, pt, pi, &p_before),
        (tagged, &t, tt, ti, &t_before),
    ] {
        assert!(
            took >= QUIET_WAIT - Duration::from_millis(50),
            "{what}: returned after {took:?} although its result did not change: {}",
            reply.text()
        );
        assert!(
            took <= QUIET_WAIT + QUIET_WAIT / 16 + SLACK,
            "{what}: took {took:?}"
        );
        assert_eq!(&must(reply.json()), before, "{what}: same result");
        assert!(
            reply.index().is_some_and(|i| i > index),
            "{what}: the timeout answer carries the newest index, not {index}: {:?}",
            reply.index()
        );
    }
}
