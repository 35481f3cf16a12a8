//! `/v1/kv`, `/v1/session` and `/v1/txn` against a real agent (compat §1, §2.1,
//! §8, §16.6, §16.7, §20 item 9): values and flags, `?raw`, `cas`, listings,
//! odd key characters, limits, locks with sessions and lock delays, session
//! lifecycle texts, and atomic transactions.
//!
//! Every test starts its own dev agent, so they run in parallel.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tribune_tests::{must, wait_until, Agent, Reply};

/// Consul's default `limits.kv_max_value_size`.
const KV_MAX: usize = 512 * 1024;

/// The GO api lock helper's `LockFlagValue` (above 2^53: must survive as u64).
const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

async fn dev(node: &str) -> Agent {
    must(Agent::start_dev(node).await)
}

async fn get(agent: &Agent, path: &str) -> Value {
    must(agent.get_json(path).await)
}

async fn send(agent: &Agent, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Reply {
    must(agent.http(method, path, body).await)
}

/// A KV write that must answer 200 with the JSON boolean `want`.
async fn kv_bool(agent: &Agent, method: Method, path: &str, body: &str, want: bool) {
    let reply = must(
        send(agent, method.clone(), path, body.to_owned())
            .await
            .ensure_ok(),
    );
    assert_eq!(
        must(reply.json()),
        json!(want),
        "{method} {path} should answer {want}"
    );
}

async fn put(agent: &Agent, key: &str, value: &str) {
    kv_bool(agent, Method::PUT, &format!("/v1/kv/{key}"), value, true).await;
}

/// The single entry of `GET /v1/kv/<key>`.
async fn entry(agent: &Agent, key: &str) -> Value {
    let v = get(agent, &format!("/v1/kv/{key}")).await;
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("KV GET is an array: {v}"));
    assert_eq!(a.len(), 1, "{v}");
    a[0].clone()
}

async fn status_text(agent: &Agent, method: Method, path: &str, body: &str) -> (u16, String) {
    let reply = send(agent, method, path, body.to_owned()).await;
    (reply.status.as_u16(), reply.text())
}

/// Asserts a 404 with an empty body and complete query-meta headers.
fn assert_missing(reply: &Reply) {
    assert_eq!(reply.status, 404, "{}: {}", reply.request, reply.text());
    assert!(
        reply.body.is_empty(),
        "{}: 404 body must be empty",
        reply.request
    );
    assert!(
        reply.index().is_some_and(|i| i >= 1),
        "{}: X-Consul-Index >= 1 on a 404: {:?}",
        reply.request,
        reply.headers
    );
    assert!(
        matches!(reply.header("x-consul-knownleader"), Some("true")),
        "{}: {:?}",
        reply.request,
        reply.headers
    );
    assert!(
        reply
            .header("x-consul-lastcontact")
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "{}: {:?}",
        reply.request,
        reply.headers
    );
}

fn keys_of(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|e| e["Key"].as_str().unwrap_or(""))
        .collect()
}

async fn create_session(agent: &Agent, body: Value) -> String {
    let v = must(
        must(agent.http_put_json("/v1/session/create", &body).await)
            .ensure_ok()
            .and_then(|r| r.json()),
    );
    let id = v["ID"].as_str().unwrap_or_default().to_owned();
    assert_eq!(id.len(), 36, "session ID is a UUID: {v}");
    id
}

#[tokio::test]
async fn kv_values_flags_raw_and_cas() {
    let agent = dev("kv-basic").await;
    put(&agent, "app/config?flags=42", "hello").await;
    let reply = must(must(agent.http_get("/v1/kv/app/config").await).ensure_ok());
    let index = reply.index();
    let v = must(reply.json());
    let e = &v[0];
    assert_eq!(e["Key"], "app/config", "{v}");
    assert_eq!(e["Value"], "aGVsbG8=", "base64 of hello: {v}");
    assert_eq!(e["Flags"], 42, "{v}");
    assert_eq!(e["LockIndex"], 0, "{v}");
    assert!(
        e.get("Session").is_none(),
        "Session omitted when unlocked: {v}"
    );
    let create = e["CreateIndex"].as_u64().unwrap_or(0);
    assert!(create > 0 && e["ModifyIndex"] == create, "{v}");
    assert_eq!(
        index,
        Some(create),
        "X-Consul-Index is the key's ModifyIndex"
    );

    put(&agent, &format!("app/lock?flags={LOCK_FLAG}"), "").await;
    let e = entry(&agent, "app/lock").await;
    assert_eq!(
        e["Flags"].as_u64(),
        Some(LOCK_FLAG),
        "flags kept exactly: {e}"
    );
    assert_eq!(e["Value"], Value::Null, "empty value is null: {e}");

    // ?raw: the bytes as stored, never sniffed.
    let binary: Vec<u8> = (0..=255u8).collect();
    let reply = must(
        send(&agent, Method::PUT, "/v1/kv/app/binary", binary.clone())
            .await
            .ensure_ok(),
    );
    assert_eq!(must(reply.json()), json!(true));
    let raw = must(must(agent.http_get("/v1/kv/app/binary?raw").await).ensure_ok());
    assert_eq!(raw.body, binary, "raw bytes round-trip");
    assert!(
        raw.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        raw.headers
    );
    assert_eq!(raw.header("x-content-type-options"), Some("nosniff"));
    assert!(raw.index().is_some());
    assert_missing(&must(agent.http_get("/v1/kv/app/nothing?raw").await));
    // A JSON value read raw from a -dev agent (which indents JSON answers) is untouched.
    put(&agent, "app/json", r#"{"a": [1,2]}"#).await;
    for q in ["raw", "raw&pretty"] {
        let raw = must(must(agent.http_get(&format!("/v1/kv/app/json?{q}")).await).ensure_ok());
        assert_eq!(raw.text(), r#"{"a": [1,2]}"#, "?{q}");
    }

    // cas=0: create only.
    kv_bool(
        &agent,
        Method::PUT,
        "/v1/kv/app/config?cas=0",
        "other",
        false,
    )
    .await;
    assert_eq!(entry(&agent, "app/config").await["Value"], "aGVsbG8=");
    kv_bool(&agent, Method::PUT, "/v1/kv/app/new?cas=0", "first", true).await;
    kv_bool(&agent, Method::PUT, "/v1/kv/app/new?cas=0", "second", false).await;
    let new = entry(&agent, "app/new").await;
    assert_eq!(new["Value"], "Zmlyc3Q=", "base64 of first: {new}");
    // cas=<index>: only at the current ModifyIndex.
    let modify = new["ModifyIndex"].as_u64().unwrap_or(0);
    kv_bool(
        &agent,
        Method::PUT,
        &format!("/v1/kv/app/new?cas={}", modify + 1000),
        "stale",
        false,
    )
    .await;
    kv_bool(
        &agent,
        Method::PUT,
        &format!("/v1/kv/app/new?cas={modify}&flags=3"),
        "third",
        true,
    )
    .await;
    let third = entry(&agent, "app/new").await;
    assert_eq!(third["Value"], "dGhpcmQ=", "{third}");
    assert_eq!(third["Flags"], 3, "{third}");
    assert_eq!(third["CreateIndex"], new["CreateIndex"], "{third}");
    assert!(
        third["ModifyIndex"].as_u64().unwrap_or(0) > modify,
        "{third}"
    );

    // DELETE with cas.
    kv_bool(
        &agent,
        Method::DELETE,
        &format!("/v1/kv/app/new?cas={modify}"),
        "",
        false,
    )
    .await;
    assert_eq!(entry(&agent, "app/new").await["Value"], "dGhpcmQ=");
    let current = third["ModifyIndex"].as_u64().unwrap_or(0);
    kv_bool(
        &agent,
        Method::DELETE,
        &format!("/v1/kv/app/new?cas={current}"),
        "",
        true,
    )
    .await;
    assert_missing(&must(agent.http_get("/v1/kv/app/new").await));
    kv_bool(&agent, Method::DELETE, "/v1/kv/app/config", "", true).await;
    assert_missing(&must(agent.http_get("/v1/kv/app/config").await));

    for (method, path) in [(Method::PUT, "/v1/kv/"), (Method::DELETE, "/v1/kv/")] {
        let (code, text) = status_text(&agent, method.clone(), path, "x").await;
        assert_eq!(
            (code, text.as_str()),
            (400, "Missing key name"),
            "{method} {path}"
        );
    }
    let (code, text) = status_text(&agent, Method::PUT, "/v1/kv/a?flags=x", "").await;
    assert_eq!(code, 400, "{text}");
}

#[tokio::test]
async fn kv_recurse_keys_separator_and_404s() {
    let agent = dev("kv-list").await;
    // An empty store: ?keys at the root is [], everything else is a 404 with headers.
    let root = must(must(agent.http_get("/v1/kv/?keys").await).ensure_ok());
    assert_eq!(must(root.json()), json!([]));
    assert!(root.index().is_some_and(|i| i >= 1), "{:?}", root.headers);
    for path in [
        "/v1/kv/missing",
        "/v1/kv/missing/?keys",
        "/v1/kv/missing/?recurse",
        "/v1/kv/?recurse",
    ] {
        assert_missing(&must(agent.http_get(path).await));
    }

    for key in ["z", "a/b/c/4", "a/2", "ab", "a/1", "a/b/3"] {
        put(&agent, key, key).await;
    }
    let all = get(&agent, "/v1/kv/?recurse").await;
    assert_eq!(
        keys_of(&all),
        ["a/1", "a/2", "a/b/3", "a/b/c/4", "ab", "z"],
        "sorted by key"
    );
    assert_eq!(
        keys_of(&get(&agent, "/v1/kv/a/?recurse").await),
        ["a/1", "a/2", "a/b/3", "a/b/c/4"]
    );
    assert_eq!(
        keys_of(&get(&agent, "/v1/kv/a?recurse").await),
        ["a/1", "a/2", "a/b/3", "a/b/c/4", "ab"],
        "a plain prefix, not a directory"
    );
    assert_eq!(
        get(&agent, "/v1/kv/a/?keys").await,
        json!(["a/1", "a/2", "a/b/3", "a/b/c/4"])
    );
    assert_eq!(
        get(&agent, "/v1/kv/a/?keys&separator=/").await,
        json!(["a/1", "a/2", "a/b/"])
    );
    assert_eq!(
        get(&agent, "/v1/kv/?keys&separator=/").await,
        json!(["a/", "ab", "z"])
    );
    assert_eq!(
        get(&agent, "/v1/kv/a/b/?keys&seperator=/").await,
        json!(["a/b/3", "a/b/c/"]),
        "the legacy misspelling works too"
    );

    kv_bool(&agent, Method::DELETE, "/v1/kv/a/b/?recurse", "", true).await;
    assert_eq!(
        keys_of(&get(&agent, "/v1/kv/a?recurse").await),
        ["a/1", "a/2", "ab"]
    );
    assert_missing(&must(agent.http_get("/v1/kv/a/b/?keys").await));
    kv_bool(&agent, Method::DELETE, "/v1/kv/?recurse", "", true).await;
    assert_eq!(get(&agent, "/v1/kv/?keys").await, json!([]));
    assert_missing(&must(agent.http_get("/v1/kv/z").await));
}

#[tokio::test]
async fn kv_keys_with_spaces_encoded_slashes_and_utf8() {
    let agent = dev("kv-keys").await;
    put(&agent, "traefik/liveness%20probe", "up").await;
    assert_eq!(
        entry(&agent, "traefik/liveness%20probe").await["Key"],
        "traefik/liveness probe"
    );
    // %2F is a slash once decoded, as in Consul (Go decodes the path).
    put(&agent, "dir%2Fsub", "enc").await;
    assert_eq!(entry(&agent, "dir/sub").await["Key"], "dir/sub");
    assert_eq!(entry(&agent, "dir%2Fsub").await["Value"], "ZW5j");
    put(&agent, "caf%C3%A9/%C3%A7", "").await;
    let reply = must(
        send(
            &agent,
            Method::PUT,
            "/v1/kv/caf%C3%A9/%C3%A7",
            "ünïcödé".as_bytes().to_vec(),
        )
        .await
        .ensure_ok(),
    );
    assert_eq!(must(reply.json()), json!(true));
    assert_eq!(entry(&agent, "caf%C3%A9/%C3%A7").await["Key"], "café/ç");
    let raw = must(must(agent.http_get("/v1/kv/caf%C3%A9/%C3%A7?raw").await).ensure_ok());
    assert_eq!(raw.text(), "ünïcödé");
    assert_eq!(
        get(&agent, "/v1/kv/?keys").await,
        json!(["café/ç", "dir/sub", "traefik/liveness probe"])
    );
    kv_bool(
        &agent,
        Method::DELETE,
        "/v1/kv/traefik/liveness%20probe",
        "",
        true,
    )
    .await;
    assert_missing(&must(
        agent.http_get("/v1/kv/traefik/liveness%20probe").await,
    ));

    let (code, text) = status_text(&agent, Method::PUT, "/v1/kv/trailing%20", "x").await;
    assert_eq!(code, 400, "a trailing space is refused: {text}");
}

#[tokio::test]
async fn kv_limits_and_conflicting_flags() {
    let agent = dev("kv-limits").await;
    let at_limit = vec![b'x'; KV_MAX];
    let reply = must(
        send(&agent, Method::PUT, "/v1/kv/big/ok", at_limit.clone())
            .await
            .ensure_ok(),
    );
    assert_eq!(must(reply.json()), json!(true));
    let raw = must(must(agent.http_get("/v1/kv/big/ok?raw").await).ensure_ok());
    assert_eq!(raw.body.len(), KV_MAX);
    let over = send(
        &agent,
        Method::PUT,
        "/v1/kv/big/over",
        vec![b'x'; KV_MAX + 1],
    )
    .await;
    assert_eq!(over.status, 413, "{}", over.text());
    assert_missing(&must(agent.http_get("/v1/kv/big/over").await));

    for (query, parts) in [
        ("cas=1&acquire=abc", &["cas=1", "acquire=abc"][..]),
        (
            "acquire=abc&release=abc",
            &["acquire=abc", "release=abc"][..],
        ),
    ] {
        let (code, text) =
            status_text(&agent, Method::PUT, &format!("/v1/kv/k?{query}"), "v").await;
        assert_eq!(code, 400, "{query}: {text}");
        assert!(text.starts_with("Conflicting flags: "), "{text}");
        for p in parts {
            assert!(text.contains(p), "{query}: the message names {p}: {text}");
        }
    }
    let (code, text) = status_text(&agent, Method::DELETE, "/v1/kv/k?recurse&cas=1", "").await;
    assert_eq!(code, 400, "{text}");
    assert_missing(&must(agent.http_get("/v1/kv/k").await));
}

#[tokio::test]
async fn sessions_lifecycle_and_error_texts() {
    let agent = dev("sess-life").await;
    let node = agent.node().to_owned();
    let s1 = create_session(
        &agent,
        json!({"Name": "s1", "TTL": "15s", "LockDelay": "2s", "Behavior": "release"}),
    )
    .await;
    let s2 = create_session(&agent, json!({"name": "s2", "lockdelay": 5})).await;
    let s3 = create_session(
        &agent,
        json!({"Name": "s3", "LockDelay": 20_000_000_000u64}),
    )
    .await;

    let info = get(&agent, &format!("/v1/session/info/{s1}")).await;
    let s = &info[0];
    assert_eq!(info.as_array().map(Vec::len), Some(1), "{info}");
    assert_eq!(s["ID"], s1.as_str(), "{s}");
    assert_eq!(s["Name"], "s1", "{s}");
    assert_eq!(
        s["Node"],
        node.as_str(),
        "defaults to this agent's node: {s}"
    );
    assert_eq!(s["LockDelay"], 2_000_000_000u64, "nanoseconds: {s}");
    assert_eq!(s["Behavior"], "release", "{s}");
    assert_eq!(s["TTL"], "15s", "{s}");
    assert_eq!(s["NodeChecks"], json!(["serfHealth"]), "{s}");
    assert!(s["CreateIndex"].as_u64().is_some_and(|i| i > 0), "{s}");
    let s2v = get(&agent, &format!("/v1/session/info/{s2}")).await;
    assert_eq!(
        s2v[0]["LockDelay"], 5_000_000_000u64,
        "numbers < 1000 are seconds: {s2v}"
    );
    assert_eq!(s2v[0]["Behavior"], "release", "default behavior: {s2v}");
    assert_eq!(s2v[0]["Name"], "s2", "{s2v}");
    let s3v = get(&agent, &format!("/v1/session/info/{s3}")).await;
    assert_eq!(
        s3v[0]["LockDelay"], 20_000_000_000u64,
        "larger numbers are ns: {s3v}"
    );

    let ids = |v: &Value| {
        let mut ids: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["ID"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    };
    let mut want = vec![s1.clone(), s2.clone(), s3.clone()];
    want.sort();
    assert_eq!(ids(&get(&agent, "/v1/session/list").await), want);
    assert_eq!(
        ids(&get(&agent, &format!("/v1/session/node/{node}")).await),
        want
    );
    assert_eq!(
        get(&agent, "/v1/session/node/somebody-else").await,
        json!([])
    );

    let renewed = must(
        must(
            send(&agent, Method::PUT, &format!("/v1/session/renew/{s1}"), "")
                .await
                .ensure_ok(),
        )
        .json(),
    );
    assert_eq!(renewed[0]["ID"], s1.as_str(), "{renewed}");
    assert_eq!(renewed[0]["TTL"], "15s", "{renewed}");
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        &format!("/v1/session/renew/{unknown}"),
        "",
    )
    .await;
    assert_eq!(
        (code, text),
        (404, format!("Session id '{unknown}' not found"))
    );

    for ttl in ["5s", "86401s"] {
        let (code, text) = status_text(
            &agent,
            Method::PUT,
            "/v1/session/create",
            &json!({"TTL": ttl}).to_string(),
        )
        .await;
        assert_eq!(
            (code, text),
            (
                400,
                format!("Invalid Session TTL '{ttl}', must be between [10s=24h0m0s]")
            )
        );
    }
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/session/create",
        r#"{"Behavior": "explode"}"#,
    )
    .await;
    assert_eq!(code, 400, "{text}");
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/session/create",
        r#"{"Node": "no-such-node"}"#,
    )
    .await;
    assert_ne!(code, 200, "a session needs a registered node: {text}");
    assert_eq!(
        ids(&get(&agent, "/v1/session/list").await),
        want,
        "nothing created"
    );

    let reply = must(
        send(
            &agent,
            Method::PUT,
            &format!("/v1/session/destroy/{s1}"),
            "",
        )
        .await
        .ensure_ok(),
    );
    assert_eq!(must(reply.json()), json!(true));
    assert_eq!(
        get(&agent, &format!("/v1/session/info/{s1}")).await,
        json!([])
    );
    let mut left = vec![s2, s3];
    left.sort();
    assert_eq!(ids(&get(&agent, "/v1/session/list").await), left);
}

#[tokio::test]
async fn locks_with_sessions_lock_delay_and_behaviors() {
    let agent = dev("kv-locks").await;
    let s1 = create_session(&agent, json!({"Name": "s1", "LockDelay": "0s"})).await;
    let s2 = create_session(&agent, json!({"Name": "s2", "LockDelay": "1s"})).await;
    let path = |q: &str| format!("/v1/kv/service/leader?{q}");

    kv_bool(
        &agent,
        Method::PUT,
        &path(&format!("acquire={s1}")),
        "n1",
        true,
    )
    .await;
    let e = entry(&agent, "service/leader").await;
    assert_eq!(e["Session"], s1.as_str(), "{e}");
    assert_eq!(e["LockIndex"], 1, "{e}");
    assert_eq!(e["Value"], "bjE=", "{e}");
    kv_bool(
        &agent,
        Method::PUT,
        &path(&format!("acquire={s2}")),
        "n2",
        false,
    )
    .await;
    assert_eq!(
        entry(&agent, "service/leader").await["Session"],
        s1.as_str()
    );
    kv_bool(
        &agent,
        Method::PUT,
        &path(&format!("acquire={s1}")),
        "n1b",
        true,
    )
    .await;
    let e = entry(&agent, "service/leader").await;
    assert_eq!(
        e["LockIndex"], 1,
        "re-acquiring by the holder keeps LockIndex: {e}"
    );
    kv_bool(
        &agent,
        Method::PUT,
        &path(&format!("release={s2}")),
        "",
        false,
    )
    .await;
    kv_bool(
        &agent,
        Method::PUT,
        &path(&format!("release={s1}")),
        "n1",
        true,
    )
    .await;
    let e = entry(&agent, "service/leader").await;
    assert!(e.get("Session").is_none(), "released: {e}");
    assert_eq!(e["LockIndex"], 1, "release keeps LockIndex: {e}");

    kv_bool(
        &agent,
        Method::PUT,
        &path(&format!("acquire={s2}")),
        "n2",
        true,
    )
    .await;
    let e = entry(&agent, "service/leader").await;
    assert_eq!(
        (&e["Session"], &e["LockIndex"]),
        (&json!(s2), &json!(2)),
        "{e}"
    );

    // Destroying the holder releases the key and starts its lock delay.
    must(
        send(
            &agent,
            Method::PUT,
            &format!("/v1/session/destroy/{s2}"),
            "",
        )
        .await
        .ensure_ok(),
    );
    let destroyed = Instant::now();
    let e = entry(&agent, "service/leader").await;
    assert!(e.get("Session").is_none(), "{e}");
    assert_eq!(e["LockIndex"], 2, "{e}");
    assert_eq!(e["Value"], "bjI=", "release behavior keeps the value: {e}");
    kv_bool(
        &agent,
        Method::PUT,
        &path(&format!("acquire={s1}")),
        "n1",
        false,
    )
    .await;
    // The delay binds a transaction's lock too.
    let txn =
        json!([{"KV": {"Verb": "lock", "Key": "service/leader", "Value": "bjE=", "Session": s1}}]);
    let reply = must(agent.http_put_json("/v1/txn", &txn).await);
    assert_eq!(
        reply.status,
        409,
        "txn lock inside the lock delay: {}",
        reply.text()
    );
    let v = must(reply.json());
    assert_eq!(
        v["Errors"][0]["What"], "failed to lock key \"service/leader\" due to lock delay",
        "{v}"
    );
    must(
        wait_until(Duration::from_secs(5), "the lock delay to pass", || async {
            let r = agent
                .http_put(&path(&format!("acquire={s1}")), "n1")
                .await?
                .ensure_ok()?
                .json()?;
            if r == json!(true) {
                Ok(())
            } else {
                anyhow::bail!("acquire answered {r}")
            }
        })
        .await,
    );
    let waited = destroyed.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "a 1s lock delay ended after {waited:?}"
    );
    assert_eq!(entry(&agent, "service/leader").await["LockIndex"], 3);

    // Behavior delete removes the held keys.
    let s3 = create_session(
        &agent,
        json!({"Name": "s3", "Behavior": "delete", "LockDelay": "0s"}),
    )
    .await;
    kv_bool(
        &agent,
        Method::PUT,
        &format!("/v1/kv/ephemeral?acquire={s3}"),
        "x",
        true,
    )
    .await;
    must(
        send(
            &agent,
            Method::PUT,
            &format!("/v1/session/destroy/{s3}"),
            "",
        )
        .await
        .ensure_ok(),
    );
    assert_missing(&must(agent.http_get("/v1/kv/ephemeral").await));

    // An unknown session cannot lock, and creates nothing.
    let bogus = "00000000-0000-4000-8000-000000000001";
    let reply = send(
        &agent,
        Method::PUT,
        &format!("/v1/kv/nolock?acquire={bogus}"),
        "x",
    )
    .await;
    assert!(
        reply.status != 200 || must(reply.json()) == json!(false),
        "acquire with an unknown session must fail"
    );
    assert_missing(&must(agent.http_get("/v1/kv/nolock").await));
}

#[tokio::test]
async fn sessions_die_with_their_checks_and_leave_a_lock_delay() {
    let agent = dev("sess-check").await;
    for name in ["guard", "guard2"] {
        must(
            agent
                .put_json_ok(
                    "/v1/agent/check/register",
                    &json!({"Name": name, "TTL": "60s", "Status": "passing"}),
                )
                .await,
        );
    }
    must(
        wait_until(
            Duration::from_secs(10),
            "the guards in the catalog",
            || async {
                let v = agent
                    .get_json(&format!("/v1/health/node/{}", agent.node()))
                    .await?;
                let passing = |id: &str| {
                    v.as_array().is_some_and(|a| {
                        a.iter()
                            .any(|c| c["CheckID"] == id && c["Status"] == "passing")
                    })
                };
                if passing("guard") && passing("guard2") {
                    Ok(())
                } else {
                    anyhow::bail!("node checks: {v}")
                }
            },
        )
        .await,
    );
    // Long lock delays: the test only needs them to be in force right after invalidation.
    let a = create_session(
        &agent,
        json!({"Name": "a", "NodeChecks": ["serfHealth", "guard"], "LockDelay": "30s"}),
    )
    .await;
    let b = create_session(
        &agent,
        json!({"Name": "b", "Checks": ["serfHealth", "guard2"], "LockDelay": "30s"}),
    )
    .await;
    let free = create_session(&agent, json!({"Name": "free", "LockDelay": "0s"})).await;
    let info = get(&agent, &format!("/v1/session/info/{a}")).await;
    assert_eq!(
        info[0]["NodeChecks"],
        json!(["serfHealth", "guard"]),
        "{info}"
    );
    let info = get(&agent, &format!("/v1/session/info/{b}")).await;
    assert_eq!(
        info[0]["NodeChecks"],
        json!(["serfHealth", "guard2"]),
        "legacy Checks means NodeChecks: {info}"
    );
    for (key, s) in [("guarded", &a), ("guarded2", &b)] {
        kv_bool(
            &agent,
            Method::PUT,
            &format!("/v1/kv/{key}?acquire={s}"),
            "x",
            true,
        )
        .await;
    }

    // A check turning critical invalidates the session bound to it.
    must(
        send(&agent, Method::PUT, "/v1/agent/check/fail/guard", "")
            .await
            .ensure_ok(),
    );
    // Deregistering a check does too.
    must(
        send(&agent, Method::PUT, "/v1/agent/check/deregister/guard2", "")
            .await
            .ensure_ok(),
    );
    for s in [&a, &b] {
        must(
            wait_until(
                Duration::from_secs(10),
                &format!("session {s} to be invalidated"),
                || async {
                    let v = agent.get_json(&format!("/v1/session/info/{s}")).await?;
                    if v == json!([]) {
                        Ok(())
                    } else {
                        anyhow::bail!("session info: {v}")
                    }
                },
            )
            .await,
        );
    }
    for key in ["guarded", "guarded2"] {
        let e = entry(&agent, key).await;
        assert!(e.get("Session").is_none(), "the lock is released: {e}");
        kv_bool(
            &agent,
            Method::PUT,
            &format!("/v1/kv/{key}?acquire={free}"),
            "y",
            false,
        )
        .await;
    }
    kv_bool(
        &agent,
        Method::PUT,
        &format!("/v1/kv/elsewhere?acquire={free}"),
        "y",
        true,
    )
    .await;
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/session/create",
        r#"{"NodeChecks": ["serfHealth", "guard"]}"#,
    )
    .await;
    assert_ne!(code, 200, "no session on a critical check: {text}");
}

#[tokio::test]
async fn txn_is_ordered_atomic_and_bounded() {
    let agent = dev("txn").await;
    put(&agent, "k0", "zero").await;
    let ops = json!([
        {"KV": {"Verb": "set", "Key": "t/1", "Value": "MQ=="}},
        {"KV": {"Verb": "set", "Key": "t/2", "Value": "Mg==", "Flags": 7}},
        {"KV": {"Verb": "get", "Key": "k0"}},
        {"KV": {"Verb": "check-not-exists", "Key": "t/3"}},
        {"kv": {"verb": "get-tree", "key": "t/"}}
    ]);
    let reply = must(must(agent.http_put_json("/v1/txn", &ops).await).ensure_ok());
    assert!(reply.index().is_some(), "{:?}", reply.headers);
    let v = must(reply.json());
    assert_eq!(v["Errors"], Value::Null, "{v}");
    let results = v["Results"]
        .as_array()
        .unwrap_or_else(|| panic!("Results: {v}"));
    let keys: Vec<&str> = results
        .iter()
        .map(|r| r["KV"]["Key"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        ["t/1", "t/2", "k0", "t/1", "t/2"],
        "results in op order: {v}"
    );
    assert_eq!(
        results[0]["KV"]["Value"],
        Value::Null,
        "writes echo no value: {v}"
    );
    assert_eq!(results[1]["KV"]["Flags"], 7, "{v}");
    assert_eq!(results[2]["KV"]["Value"], "emVybw==", "{v}");
    assert_eq!(results[3]["KV"]["Value"], "MQ==", "{v}");
    assert_eq!(entry(&agent, "t/2").await["Value"], "Mg==");

    // A transaction of one operation answers its result too.
    let one = json!([{"KV": {"Verb": "get", "Key": "k0"}}]);
    let v = must(
        must(agent.http_put_json("/v1/txn", &one).await)
            .ensure_ok()
            .and_then(|r| r.json()),
    );
    assert_eq!(v["Results"][0]["KV"]["Value"], "emVybw==", "{v}");
    let k0 = entry(&agent, "k0").await;
    let check = json!([
        {"KV": {"Verb": "check-index", "Key": "k0", "Index": k0["ModifyIndex"]}}
    ]);
    let v = must(
        must(agent.http_put_json("/v1/txn", &check).await)
            .ensure_ok()
            .and_then(|r| r.json()),
    );
    assert_eq!(v["Results"][0]["KV"]["Key"], "k0", "{v}");
    assert_eq!(v["Results"][0]["KV"]["Value"], Value::Null, "{v}");
    let lone_set = json!([{"KV": {"Verb": "set", "Key": "t/lone", "Value": "bA=="}}]);
    let v = must(
        must(agent.http_put_json("/v1/txn", &lone_set).await)
            .ensure_ok()
            .and_then(|r| r.json()),
    );
    assert_eq!(v["Results"][0]["KV"]["Key"], "t/lone", "{v}");

    // Any failure: 409, the failing op's index, nothing applied.
    let stale = json!([
        {"KV": {"Verb": "set", "Key": "t/new", "Value": "bmV3"}},
        {"KV": {"Verb": "delete", "Key": "k0"}},
        {"KV": {"Verb": "cas", "Key": "t/1", "Value": "eA==", "Index": 1}}
    ]);
    let reply = must(agent.http_put_json("/v1/txn", &stale).await);
    assert_eq!(reply.status, 409, "{}", reply.text());
    let v = must(reply.json());
    assert_eq!(v["Results"], Value::Null, "{v}");
    let errors = v["Errors"]
        .as_array()
        .unwrap_or_else(|| panic!("Errors: {v}"));
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["OpIndex"], 2, "{v}");
    assert!(
        errors[0]["What"].as_str().is_some_and(|w| !w.is_empty()),
        "{v}"
    );
    assert_missing(&must(agent.http_get("/v1/kv/t/new").await));
    assert_eq!(
        entry(&agent, "k0").await["Value"],
        "emVybw==",
        "delete rolled back"
    );
    assert_eq!(entry(&agent, "t/1").await["Value"], "MQ==");

    let too_many: Vec<Value> = (0..129)
        .map(|i| json!({"KV": {"Verb": "set", "Key": format!("m/{i}")}}))
        .collect();
    let reply = must(
        agent
            .http_put_json("/v1/txn", &Value::Array(too_many))
            .await,
    );
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (
            413,
            "Transaction contains too many operations (129 > 128)".to_owned()
        )
    );
    assert_missing(&must(agent.http_get("/v1/kv/m/0").await));
    let max: Vec<Value> = (0..128)
        .map(|i| json!({"KV": {"Verb": "set", "Key": format!("m/{i}"), "Value": "eA=="}}))
        .collect();
    let reply = must(must(agent.http_put_json("/v1/txn", &Value::Array(max)).await).ensure_ok());
    assert_eq!(
        must(reply.json())["Results"].as_array().map(Vec::len),
        Some(128)
    );
    assert_eq!(
        get(&agent, "/v1/kv/m/?keys").await.as_array().map(Vec::len),
        Some(128)
    );
}

#[tokio::test]
async fn session_ttl_expires_unless_renewed() {
    let agent = must(
        Agent::start_with_config(json!({"node_name": "sess-ttl", "session_ttl_min": "1s"})).await,
    );
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/session/create",
        r#"{"TTL": "500ms"}"#,
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (
            400,
            "Invalid Session TTL '500ms', must be between [1s=24h0m0s]"
        ),
        "session_ttl_min sets the lower bound"
    );
    let s = create_session(
        &agent,
        json!({"Name": "short", "TTL": "1s", "LockDelay": "0s"}),
    )
    .await;
    kv_bool(
        &agent,
        Method::PUT,
        &format!("/v1/kv/leader?acquire={s}"),
        "me",
        true,
    )
    .await;
    // Renewed every 400ms for well past 2×TTL: it stays.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        must(
            send(&agent, Method::PUT, &format!("/v1/session/renew/{s}"), "")
                .await
                .ensure_ok(),
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let info = get(&agent, &format!("/v1/session/info/{s}")).await;
    assert_eq!(
        info[0]["ID"],
        s.as_str(),
        "a renewed session lives on: {info}"
    );
    // Left alone, it is destroyed (Consul allows up to 2×TTL) and its lock released.
    let left = Instant::now();
    must(
        wait_until(Duration::from_secs(10), "the session to expire", || async {
            let v = agent.get_json(&format!("/v1/session/info/{s}")).await?;
            if v == json!([]) {
                Ok(())
            } else {
                anyhow::bail!("session info: {v}")
            }
        })
        .await,
    );
    let took = left.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "expired after only {took:?}"
    );
    let e = entry(&agent, "leader").await;
    assert!(e.get("Session").is_none(), "the lock is released: {e}");
}
