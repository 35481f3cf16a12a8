//! WASM plugins in a real agent: one example per SDK language run as checks, the
//! first-party plugins against real (loopback) servers, tag rewriters on registration
//! from the API and config files, event hooks through their queue, `GET
//! /v1/agent/plugins`, `tribune plugin`, reload and quarantine.
//!
//! The components come from `scripts/build-plugins.sh` (run by `scripts/test.sh`), in
//! `$TRIBUNE_PLUGIN_DIR`. Every test starts its own agent, so they run in parallel.

#[path = "support/plugins.rs"]
mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use tribune_tests::{must, wait_until, Agent};

#[tokio::test]
async fn one_example_per_sdk_language_runs_as_a_check() {
    let langs = ["rust", "c", "python", "js"];
    let plugins = langs
        .iter()
        .map(|l| {
            plugin(
                &format!("ex-{l}"),
                &format!("example-{l}"),
                json!({"kind": "health-check"}),
            )
        })
        .collect();
    let services = langs
        .iter()
        .map(|l| {
            service_with_check(
                &format!("svc-{l}"),
                &format!("ex-{l}"),
                json!({"status": "warning"}),
                "5s",
            )
        })
        .collect();
    let agent = agent_with(plugins, services).await;
    let greeting = |l: &str| match l {
        "rust" => "hello from Rust",
        "c" => "hello from C",
        "python" => "hello from Python",
        _ => "hello from JavaScript",
    };
    for l in langs {
        wait_check(&agent, &format!("svc-{l}-check"), "warning", greeting(l)).await;
        let p = must(plugin_status(&agent, &format!("ex-{l}")).await);
        assert_eq!(p["State"], "ready", "{p}");
        let sdk = p["SDK"].as_str().unwrap_or_default();
        assert!(
            sdk.starts_with(match l {
                "js" => "js ",
                other => other,
            }),
            "{l}: SDK {sdk}"
        );
        assert_eq!(p["WIT"], "0.1.0");
    }
}

#[tokio::test]
async fn http_json_checks_a_path_against_values_and_thresholds() {
    let server = JsonServer::start(200, r#"{"status": "ok", "db": {"latency_ms": 40}}"#).await;
    let host = server.addr.to_string();
    let plugins = vec![plugin(
        "http-json",
        "http-json",
        json!({"grants": {"http": [host]}}),
    )];
    let services = vec![
        service_with_check(
            "api",
            "http-json",
            json!({"url": server.url("/health"), "path": "status", "expect": "ok"}),
            "2s",
        ),
        service_with_check(
            "db",
            "http-json",
            json!({"url": server.url("/health"), "path": "db.latency_ms", "warning": 100, "critical": 500}),
            "2s",
        ),
    ];
    let agent = agent_with(plugins, services).await;
    wait_check(&agent, "api-check", "passing", "status = \"ok\"").await;
    wait_check(&agent, "db-check", "passing", "db.latency_ms = 40").await;

    server.set(200, r#"{"status": "degraded", "db": {"latency_ms": 250}}"#);
    wait_check(&agent, "api-check", "critical", "expected \"ok\"").await;
    wait_check(
        &agent,
        "db-check",
        "warning",
        "250 >= warning threshold 100",
    )
    .await;

    server.set(503, r#"{"status": "down"}"#);
    wait_check(&agent, "api-check", "critical", "HTTP 503, expected 2xx").await;
}

#[tokio::test]
async fn tcp_banner_speaks_redis_and_reads_the_mysql_handshake() {
    let redis = banner_server(b"PING\r\n", b"+PONG\r\n".to_vec()).await;
    let mut hs = vec![0x4a, 0, 0, 0, 0x0a];
    hs.extend_from_slice(b"8.0.36-tribune\0\x01\x02\x03");
    let mysql = banner_server(b"", hs).await;
    let refused = tribune_tests::process::free_port().unwrap();
    let plugins = vec![plugin(
        "tcp-banner",
        "tcp-banner",
        json!({"grants": {"tcp": [redis.to_string(), mysql.to_string(), format!("127.0.0.1:{refused}")]}}),
    )];
    let services = vec![
        service_with_check(
            "redis",
            "tcp-banner",
            json!({"address": redis.to_string(), "protocol": "redis"}),
            "2s",
        ),
        service_with_check(
            "mysql",
            "tcp-banner",
            json!({"address": mysql.to_string(), "protocol": "mysql"}),
            "2s",
        ),
        service_with_check(
            "gone",
            "tcp-banner",
            json!({"address": format!("127.0.0.1:{refused}"), "protocol": "redis"}),
            "2s",
        ),
    ];
    let agent = agent_with(plugins, services).await;
    wait_check(&agent, "redis-check", "passing", "PONG").await;
    wait_check(&agent, "mysql-check", "passing", "server 8.0.36-tribune").await;
    wait_check(&agent, "gone-check", "critical", "connection refused").await;
}

#[tokio::test]
async fn tag_rewriters_relabel_config_and_api_services_in_order() {
    // The seed's relabel (tag prod -> env=prod tag and env meta), then a second rewriter
    // that sees the first one's result.
    let plugins = vec![
        plugin("relabel", "tag-rewrite", json!({})),
        plugin(
            "team",
            "tag-rewrite",
            json!({"config": {"rules": [
                {"match": "^env=(\\w+)$", "meta": {"stage": "$1"}},
                {"match": "^legacy-(.+)$", "rename": "$1"}
            ]}}),
        ),
    ];
    let services =
        vec![json!({"name": "node_exporter", "port": 9100, "tags": ["prod", "legacy-metrics"]})];
    let agent = agent_with(plugins, services).await;
    let registered = json!({"Name": "redis_exporter", "Port": 9121, "Tags": ["staging"]});
    must(
        must(
            agent
                .http_put_json("/v1/agent/service/register", &registered)
                .await,
        )
        .ensure_ok(),
    );

    for (name, env, tags) in [
        ("node_exporter", "prod", vec!["prod", "metrics", "env=prod"]),
        ("redis_exporter", "staging", vec!["staging", "env=staging"]),
    ] {
        let svc = must(
            wait_until(SETTLE, &format!("{name} in the catalog"), || async {
                let v = agent
                    .get_json(&format!("/v1/catalog/service/{name}"))
                    .await?;
                v.get(0)
                    .cloned()
                    .filter(|s| !s.is_null())
                    .ok_or_else(|| anyhow::anyhow!("not yet: {v}"))
            })
            .await,
        );
        assert_eq!(svc["ServiceTags"], json!(tags), "{svc}");
        assert_eq!(svc["ServiceMeta"]["env"], env, "{svc}");
        assert_eq!(
            svc["ServiceMeta"]["stage"], env,
            "the second rewriter saw the first's tags: {svc}"
        );
        let local = must(agent.get_json(&format!("/v1/agent/service/{name}")).await);
        assert_eq!(local["Tags"], json!(tags));
    }
    let p = must(plugin_status(&agent, "relabel").await);
    assert!(p["Counters"]["Calls"].as_u64().unwrap() >= 2, "{p}");
}

#[tokio::test]
async fn the_webhook_posts_events_and_retries() {
    let hook = JsonServer::start(200, "{}").await;
    hook.fail_next(2);
    let plugins = vec![plugin(
        "webhook",
        "webhook",
        json!({
            "config": {"url": hook.url("/events"), "retries": 3, "backoff_ms": 50},
            "grants": {"http": [hook.addr.to_string()]},
            "events": ["service-registered", "service-deregistered", "check-status-changed"],
        }),
    )];
    let agent = agent_with(plugins, vec![]).await;
    let body = json!({"Name": "web", "Port": 80, "Tags": ["prod"], "Check": {"TTL": "30s", "Status": "passing"}});
    must(
        must(
            agent
                .http_put_json("/v1/agent/service/register", &body)
                .await,
        )
        .ensure_ok(),
    );
    must(must(agent.http_put("/v1/agent/check/fail/service:web", "").await).ensure_ok());
    must(must(agent.http_put("/v1/agent/service/deregister/web", "").await).ensure_ok());

    let bodies = must(
        wait_until(SETTLE, "three webhook deliveries", || async {
            let b = hook.bodies();
            if b.len() >= 3 {
                Ok(b)
            } else {
                anyhow::bail!("{} so far: {b:?}", b.len())
            }
        })
        .await,
    );
    let kinds: Vec<&str> = bodies
        .iter()
        .map(|b| b["Kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "service-registered",
            "check-status-changed",
            "service-deregistered"
        ],
        "{bodies:?}"
    );
    assert_eq!(bodies[0]["Service"]["Name"], "web");
    assert_eq!(bodies[0]["Node"], "tribune-test");
    assert_eq!(bodies[1]["Check"]["Status"], "critical");
    assert_eq!(bodies[1]["Check"]["Previous"], "passing");
    // Two 503s were retried: five requests for three events.
    assert!(*hook.requests.lock().unwrap() >= 5);
    let p = must(plugin_status(&agent, "webhook").await);
    assert_eq!(p["Counters"]["Errors"], 0, "{p}");
    assert_eq!(p["Subscriptions"].as_array().unwrap().len(), 3, "{p}");
}

#[tokio::test]
async fn a_full_hook_queue_drops_events_and_counts_them() {
    let plugins = vec![plugin(
        "slow",
        "fixture-slow-hook",
        json!({"limits": {"queue_size": 2, "timeout": "200ms"}, "events": ["service-registered"]}),
    )];
    let agent = agent_with(plugins, vec![]).await;
    let started = std::time::Instant::now();
    for i in 0..20 {
        let body = json!({"Name": format!("s{i}"), "Port": 80});
        must(
            must(
                agent
                    .http_put_json("/v1/agent/service/register", &body)
                    .await,
            )
            .ensure_ok(),
        );
    }
    // Registration never waited for the hook.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let p = must(plugin_status(&agent, "slow").await);
    let dropped = p["Counters"]["Dropped"].as_u64().unwrap();
    assert!(
        dropped >= 15,
        "a queue of 2 behind a 200 ms hook must overflow: {p}"
    );
    let page = must(agent.http_get("/v1/agent/self").await);
    assert_eq!(page.status, 200);
    // And the loss is logged (at the 1st, 10th, 100th... drop), naming the plugin. The
    // console sink writes from its own thread: poll.
    let log = agent.dir().join("agent.stderr");
    must(
        wait_until(SETTLE, "the overflow in the agent's log", || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().any(|l| {
                l.contains("Event hook queue full; events dropped") && l.contains("plugin=slow")
            }) {
                Ok(())
            } else {
                anyhow::bail!("not yet")
            }
        })
        .await,
    );
}

#[tokio::test]
async fn event_hooks_hear_members_leaders_and_user_events() {
    let hook = JsonServer::start(200, "{}").await;
    let plugins = vec![plugin(
        "webhook",
        "webhook",
        json!({
            "config": {"url": hook.url("/events"), "retries": 3, "backoff_ms": 50},
            "grants": {"http": [hook.addr.to_string()]},
            "events": ["member-joined", "member-left", "member-failed", "leader-changed", "user-event"],
        }),
    )];
    let server = must(
        Agent::start_with_config(json!({"node_name": "hook-server", "plugins": plugins})).await,
    );
    let client = must(
        Agent::start_with_config_unready(
            json!({
                "node_name": "hook-client",
                "server": false,
                "bootstrap_expect": null,
                "retry_join": [format!("127.0.0.1:{}", server.ports().serf_lan)],
                "retry_interval": "1s",
            }),
            &[],
        )
        .await,
    );
    let saw = |kind: &'static str, key: &'static str, field: &'static str, want: &'static str| {
        let hook = &hook;
        async move {
            must(
                wait_until(SETTLE, &format!("a {kind} event with {want}"), || async {
                    let bodies = hook.bodies();
                    bodies
                        .iter()
                        .find(|b| b["Kind"] == kind && b[key][field].as_str() == Some(want))
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("not yet: {bodies:?}"))
                })
                .await,
            )
        }
    };
    let joined = saw("member-joined", "Member", "Name", "hook-client").await;
    assert_eq!(joined["Member"]["Role"], "client", "{joined}");
    assert_eq!(joined["Node"], "hook-server");

    // The leader the server elected at startup.
    let leader = must(server.get_json("/v1/status/leader").await);
    let bodies = hook.bodies();
    assert!(
        bodies
            .iter()
            .any(|b| b["Kind"] == "leader-changed" && b["Leader"] == leader),
        "no leader-changed event naming {leader}: {bodies:?}"
    );

    // A user event fired on the client reaches the server's hook over gossip.
    must(must(client.http_put("/v1/event/fire/deploy", "v42").await).ensure_ok());
    let user = saw("user-event", "User", "Name", "deploy").await;
    assert_eq!(user["User"]["Payload"], "v42", "{user}");

    // The client goes: a graceful leave is `member-left`, and should the leave message
    // not get out before it stops, the server's failure detector reports
    // `member-failed`. Either way the hook hears of it.
    must(must(client.http_put("/v1/agent/leave", "").await).ensure_ok());
    let gone = must(
        wait_until(SETTLE, "a member-left or member-failed event", || async {
            let bodies = hook.bodies();
            bodies
                .iter()
                .find(|b| {
                    (b["Kind"] == "member-left" || b["Kind"] == "member-failed")
                        && b["Member"]["Name"] == "hook-client"
                })
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("not yet: {bodies:?}"))
        })
        .await,
    );
    assert_eq!(gone["Member"]["Role"], "client", "{gone}");
    let p = must(plugin_status(&server, "webhook").await);
    assert_eq!(p["Counters"]["Errors"], 0, "{p}");
}

#[tokio::test]
async fn checks_register_over_the_http_api() {
    let plugins = vec![plugin("hello", "fixture-hello", json!({}))];
    let agent = agent_with(plugins, vec![]).await;
    let def = json!({
        "Name": "api-wasm",
        "Interval": "1s",
        "Timeout": "2s",
        "Wasm": {"Plugin": "hello", "Config": {"status": "critical"}},
    });
    must(must(agent.http_put_json("/v1/agent/check/register", &def).await).ensure_ok());
    let c = wait_check(&agent, "api-wasm", "critical", "hello api-wasm").await;
    assert_eq!(c["Type"], "wasm", "{c}");
    // A check naming an unknown plugin registers, and says why it fails.
    let def = json!({"Name": "nope", "Interval": "1s", "Wasm": {"Plugin": "nope"}});
    must(must(agent.http_put_json("/v1/agent/check/register", &def).await).ensure_ok());
    wait_check(&agent, "nope", "critical", "no WASM plugin named \"nope\"").await;
}

#[tokio::test]
async fn the_api_and_cli_list_plugins_with_state_and_counters() {
    let plugins = vec![
        plugin("hello", "fixture-hello", json!({})),
        plugin("future", "fixture-wrong-version", json!({})),
    ];
    let agent = agent_with(
        plugins,
        vec![service_with_check("web", "hello", json!({}), "2s")],
    )
    .await;
    wait_check(&agent, "web-check", "passing", "hello").await;
    let all = must(agent.get_json("/v1/agent/plugins").await);
    let hello = &all[0];
    assert_eq!(hello["Name"], "hello");
    assert_eq!(hello["Kind"], "health-check");
    assert_eq!(hello["State"], "ready");
    assert_eq!(hello["Declared"], json!(["log"]));
    assert!(hello["Counters"]["Calls"].as_u64().unwrap() >= 1);
    assert_eq!(hello["SHA256"].as_str().unwrap().len(), 64);
    let future = &all[1];
    assert_eq!(future["State"], "failed");
    let err = future["Error"].as_str().unwrap();
    assert!(
        err.contains("built against tribune:plugin@0.2.0")
            && err.contains("speaks tribune:plugin@0.1.0"),
        "{err}"
    );

    let addr = format!("-http-addr={}", agent.http_addr());
    let (code, out, err) = tribune(&["plugin", "list", &addr]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Name") && lines[0].contains("State"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("hello") && lines[1].contains("ready"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("future") && lines[2].contains("failed"),
        "{out}"
    );
    assert!(err.contains("future: "), "the failure is explained: {err}");
}

#[tokio::test]
async fn plugin_inspect_shows_kind_contract_sdk_and_capabilities() {
    let path = component("http-json");
    let (code, out, err) = tribune(&["plugin", "inspect", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "Kind:",
        "health-check",
        "Contract:",
        "tribune:plugin@0.1.0",
        "SDK:",
        "rust 0.1.0",
        "Capabilities:",
        "log, http(*)",
        "Status:",
        "loadable",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let path = component("fixture-forbidden");
    let (code, out, err) = tribune(&["plugin", "inspect", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused"), "{out}");
    assert!(err.contains("imports tribune:plugin/exec@0.1.0"), "{err}");
}

#[tokio::test]
async fn plugin_run_prints_status_and_output_with_nagios_exit_codes() {
    let path = component("example-rust");
    let p = path.to_str().unwrap();
    let (code, out, _) = tribune(&["plugin", "run", p, "--config", r#"{"status": "warning"}"#]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Status: warning"), "{out}");
    assert!(out.contains("Output: hello from Rust"), "{out}");
    let (code, out, _) = tribune(&["plugin", "run", p]);
    assert_eq!(code, 0, "{out}");
    // A capability needs a grant, even from the command line.
    let fetch = component("fixture-fetch");
    let server = JsonServer::start(200, "{}").await;
    let url = json!({"url": server.url("/")}).to_string();
    let f = fetch.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || tribune(&["plugin", "run", &f, "-config", &url]))
        .await
        .unwrap();
    assert_eq!(out.0, 2, "{}", out.1);
    assert!(out.1.contains("not granted"), "{}", out.1);
    let (f, url, grant) = (
        fetch.to_str().unwrap().to_string(),
        json!({"url": server.url("/")}).to_string(),
        format!("http={}", server.addr),
    );
    let out = tokio::task::spawn_blocking(move || {
        tribune(&["plugin", "run", &f, "-config", &url, "-grant", &grant])
    })
    .await
    .unwrap();
    assert_eq!(out.0, 0, "{}", out.1);
    assert!(out.1.contains("HTTP 200"), "{}", out.1);
    // A tag rewriter takes a service.
    let rw = component("tag-rewrite");
    let (code, out, err) = tribune(&[
        "plugin",
        "run",
        rw.to_str().unwrap(),
        "-service",
        r#"{"Name": "web", "Tags": ["prod"]}"#,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Tags"], json!(["prod", "env=prod"]));
    assert_eq!(v["Meta"]["env"], "prod");
}

#[tokio::test]
async fn reload_adds_removes_and_changes_plugins_and_lifts_quarantine() {
    let plugins = vec![
        plugin("hello", "fixture-hello", json!({})),
        plugin("trap", "fixture-trap", json!({})),
    ];
    let services = vec![
        service_with_check("web", "hello", json!({}), "2s"),
        service_with_check("bad", "trap", json!({}), "2s"),
    ];
    let agent = agent_with(plugins, services.clone()).await;
    // Five failures in a row: quarantined.
    wait_check(&agent, "bad-check", "critical", "is quarantined").await;
    let p = must(plugin_status(&agent, "trap").await);
    assert_eq!(p["State"], "quarantined", "{p}");
    assert_eq!(p["Counters"]["ConsecutiveFailures"], 5, "{p}");
    let hello_sha = must(plugin_status(&agent, "hello").await)["SHA256"].clone();

    // Reload with `trap` gone, `hello` now the Rust example (changed content) and a new
    // `c` plugin; the quarantine of the removed plugin goes with it.
    let config_dir = agent.config_dir();
    let cfg_path = config_dir.join("tribune.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["plugins"] = json!([
        plugin("hello", "example-rust", json!({})),
        plugin("c", "example-c", json!({})),
    ]);
    cfg["services"] = json!([
        service_with_check("web", "hello", json!({}), "2s"),
        service_with_check("cee", "c", json!({}), "2s"),
    ]);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    must(must(agent.http_put("/v1/agent/reload", "").await).ensure_ok());
    let all = must(agent.get_json("/v1/agent/plugins").await);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "c"], "{all}");
    assert_ne!(
        all[0]["SHA256"], hello_sha,
        "hello was reloaded from the new file"
    );
    wait_check(&agent, "web-check", "passing", "hello from Rust").await;
    wait_check(&agent, "cee-check", "passing", "hello from C").await;
}

#[tokio::test]
async fn reload_lifts_a_quarantine_of_an_unchanged_plugin() {
    let plugins = vec![plugin("trap", "fixture-trap", json!({}))];
    let agent = agent_with(
        plugins,
        vec![service_with_check("bad", "trap", json!({}), "2s")],
    )
    .await;
    wait_check(&agent, "bad-check", "critical", "is quarantined").await;
    must(must(agent.http_put("/v1/agent/reload", "").await).ensure_ok());
    let p = must(plugin_status(&agent, "trap").await);
    assert_eq!(p["State"], "ready", "{p}");
    // It runs (and fails) again.
    wait_check(&agent, "bad-check", "critical", "trapped").await;
}
