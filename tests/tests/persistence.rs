//! What survives a restart, against a real agent with a `data_dir` (compat
//! §5.2, §7.4, §14.2, §14.4, §20 item 3): KV, catalog registrations, sessions
//! and API-registered services and checks after a SIGKILL right after the
//! writes were acknowledged and after a graceful SIGTERM; services from
//! config-dir files follow edits on `PUT /v1/agent/reload`, `tribune reload`
//! and SIGHUP, and go away with their file.
//!
//! Every test starts its own agent, so they run in parallel.

use std::time::Duration;

use serde_json::{json, Value};
use tribune_tests::{must, wait_until, Agent, StatusServer};

/// How long a sync or a check result may take to show.
const SETTLE: Duration = Duration::from_secs(10);

/// A graceful shutdown must finish within this.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

async fn server(node: &str) -> Agent {
    must(Agent::start_with_config(json!({ "node_name": node })).await)
}

async fn get(agent: &Agent, path: &str) -> Value {
    must(agent.get_json(path).await)
}

async fn put_ok(agent: &Agent, path: &str, body: &str) {
    must(must(agent.http_put(path, body.to_owned()).await).ensure_ok());
}

async fn register(agent: &Agent, body: Value) {
    must(agent.put_json_ok("/v1/agent/service/register", &body).await);
}

/// The single KV entry at `key`.
async fn kv_entry(agent: &Agent, key: &str) -> Value {
    let v = get(agent, &format!("/v1/kv/{key}")).await;
    v.as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| panic!("KV {key}: {v}"))
}

/// Everything the kill and terminate tests write, acknowledged before returning.
async fn write_everything(agent: &Agent) -> Writes {
    put_ok(agent, "/v1/kv/cfg/a?flags=5", "alpha").await;
    put_ok(agent, "/v1/kv/cfg/b%20c", "spaced").await;
    must(
        agent
            .put_json_ok(
                "/v1/txn",
                &json!([{"KV": {"Verb": "set", "Key": "cfg/txn", "Value": "dHhu"}}]),
            )
            .await,
    );
    must(
        agent
            .put_json_ok(
                "/v1/catalog/register",
                &json!({"Node": "ext", "Address": "192.0.2.20", "NodeMeta": {"rack": "r7"},
                        "Service": {"Service": "ext-db", "Port": 5432, "Tags": ["primary"]},
                        "Check": {"CheckID": "ext-db-ok", "Name": "ok", "Status": "passing",
                                  "ServiceID": "ext-db"}}),
            )
            .await,
    );
    register(
        agent,
        json!({"ID": "web-1", "Name": "web", "Port": 8080, "Tags": ["v1"], "Meta": {"team": "a"},
               "Check": {"CheckID": "web-ttl", "TTL": "10m", "Status": "passing"}}),
    )
    .await;
    must(
        agent
            .put_json_ok(
                "/v1/agent/check/register",
                &json!({"Name": "solo", "TTL": "10m"}),
            )
            .await,
    );
    put_ok(agent, "/v1/agent/check/warn/solo?note=degraded", "").await;
    put_ok(
        agent,
        "/v1/agent/maintenance?enable=true&reason=upgrade",
        "",
    )
    .await;
    let session = must(
        must(
            agent
                .http_put_json(
                    "/v1/session/create",
                    &json!({"Name": "keeper", "LockDelay": "0s"}),
                )
                .await,
        )
        .ensure_ok()
        .and_then(|r| r.json()),
    )["ID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    put_ok(agent, &format!("/v1/kv/cfg/lock?acquire={session}"), "held").await;
    // Many registrations at once: each is acknowledged only once persisted.
    let bodies: Vec<Value> = (0..16)
        .map(|i| json!({"ID": format!("burst-{i}"), "Name": "burst", "Port": 9000 + i}))
        .collect();
    let replies = futures::future::join_all(
        bodies
            .iter()
            .map(|b| agent.http_put_json("/v1/agent/service/register", b)),
    )
    .await;
    for r in replies {
        must(must(r).ensure_ok());
    }
    let index = must(agent.http_get("/v1/kv/cfg/a").await)
        .index()
        .unwrap_or(0);
    Writes { session, index }
}

struct Writes {
    session: String,
    index: u64,
}

/// Everything [`write_everything`] wrote is there again.
async fn assert_everything(agent: &Agent, w: &Writes) {
    let a = kv_entry(agent, "cfg/a").await;
    assert_eq!(
        (&a["Value"], &a["Flags"]),
        (&json!("YWxwaGE="), &json!(5)),
        "{a}"
    );
    assert!(
        a["ModifyIndex"].as_u64().is_some_and(|i| i <= w.index),
        "indexes survive: {a}, was {}",
        w.index
    );
    assert_eq!(kv_entry(agent, "cfg/b%20c").await["Key"], "cfg/b c");
    assert_eq!(kv_entry(agent, "cfg/txn").await["Value"], "dHhu");
    let lock = kv_entry(agent, "cfg/lock").await;
    assert_eq!(lock["Session"], w.session.as_str(), "{lock}");
    let session = get(agent, &format!("/v1/session/info/{}", w.session)).await;
    assert_eq!(session[0]["Name"], "keeper", "{session}");
    let index = must(agent.http_get("/v1/catalog/services").await)
        .index()
        .unwrap_or(0);
    assert!(
        index >= w.index,
        "X-Consul-Index went back: {index} < {}",
        w.index
    );

    let ext = get(agent, "/v1/catalog/service/ext-db").await;
    assert_eq!(ext[0]["Node"], "ext", "{ext}");
    assert_eq!(ext[0]["NodeMeta"], json!({"rack": "r7"}), "{ext}");
    assert_eq!(ext[0]["ServiceTags"], json!(["primary"]), "{ext}");
    let ext_checks = get(agent, "/v1/health/checks/ext-db").await;
    assert_eq!(ext_checks[0]["CheckID"], "ext-db-ok", "{ext_checks}");

    let services = get(agent, "/v1/agent/services").await;
    let web = &services["web-1"];
    assert_eq!(web["Service"], "web", "{services}");
    assert_eq!(web["Port"], 8080, "{web}");
    assert_eq!(web["Meta"], json!({"team": "a"}), "{web}");
    for i in 0..16 {
        assert_eq!(
            services[format!("burst-{i}")]["Port"],
            9000 + i,
            "burst-{i} lost: {services}"
        );
    }
    let checks = get(agent, "/v1/agent/checks").await;
    assert_eq!(
        checks["web-ttl"]["Status"], "passing",
        "TTL state kept: {checks}"
    );
    assert_eq!(checks["web-ttl"]["ServiceID"], "web-1", "{checks}");
    assert_eq!(
        (&checks["solo"]["Status"], &checks["solo"]["Output"]),
        (&json!("warning"), &json!("degraded")),
        "{checks}"
    );
    let maint = &checks["_node_maintenance"];
    assert_eq!(
        (&maint["Status"], &maint["Notes"]),
        (&json!("critical"), &json!("upgrade")),
        "maintenance mode survives a restart: {checks}"
    );
    let catalog = get(agent, "/v1/catalog/service/web").await;
    assert_eq!(catalog[0]["ServiceID"], "web-1", "{catalog}");
    let burst = get(agent, "/v1/catalog/service/burst").await;
    assert_eq!(burst.as_array().map(Vec::len), Some(16), "{burst}");
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let mut agent = server("persist-kill").await;
    let w = write_everything(&agent).await;
    must(agent.kill());
    must(agent.restart().await);
    assert_everything(&agent, &w).await;

    // The restarted agent keeps working and keeps its TTL clocks.
    put_ok(&agent, "/v1/agent/check/pass/solo?note=back", "").await;
    put_ok(&agent, "/v1/kv/cfg/after", "1").await;
    let after = kv_entry(&agent, "cfg/after").await;
    assert!(
        after["ModifyIndex"].as_u64().is_some_and(|i| i > w.index),
        "new writes get higher indexes: {after}"
    );
    must(
        wait_until(SETTLE, "solo passing in the catalog", || async {
            let v = agent
                .get_json(&format!("/v1/health/node/{}", agent.node()))
                .await?;
            let ok = v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|c| c["CheckID"] == "solo" && c["Status"] == "passing")
            });
            if ok {
                Ok(())
            } else {
                anyhow::bail!("node checks: {v}")
            }
        })
        .await,
    );
}

#[tokio::test]
async fn state_survives_a_graceful_sigterm_restart() {
    let mut agent = server("persist-term").await;
    let w = write_everything(&agent).await;
    // A deregistration before the restart stays a deregistration.
    register(&agent, json!({"ID": "doomed", "Name": "doomed"})).await;
    put_ok(&agent, "/v1/agent/service/deregister/doomed", "").await;
    let status = must(agent.terminate(SHUTDOWN_TIMEOUT).await);
    assert!(
        status.success(),
        "SIGTERM exit status: {status}\n{}",
        agent.output_tail()
    );
    must(agent.restart().await);
    assert_everything(&agent, &w).await;
    let services = get(&agent, "/v1/agent/services").await;
    assert!(services.get("doomed").is_none(), "{services}");
    assert_eq!(get(&agent, "/v1/catalog/service/doomed").await, json!([]));

    // Turning maintenance off is persisted too.
    put_ok(&agent, "/v1/agent/maintenance?enable=false", "").await;
    must(agent.kill());
    must(agent.restart().await);
    let checks = get(&agent, "/v1/agent/checks").await;
    assert!(checks.get("_node_maintenance").is_none(), "{checks}");
}

fn service_file(port: u16, tags: &[&str], check_url: &str) -> String {
    json!({"service": {"name": "cfgweb", "id": "cfgweb", "port": port, "tags": tags,
                       "check": {"http": check_url, "interval": "1s"}}})
    .to_string()
}

/// Waits until `/v1/agent/services` and the catalog show `cfgweb` on `port`.
async fn wait_cfgweb_port(agent: &Agent, port: u16) {
    must(
        wait_until(SETTLE, &format!("cfgweb on port {port}"), || async {
            let local = agent.get_json("/v1/agent/services").await?;
            let catalog = agent.get_json("/v1/catalog/service/cfgweb").await?;
            if local["cfgweb"]["Port"] == port && catalog[0]["ServicePort"] == port {
                Ok(())
            } else {
                anyhow::bail!("agent: {}, catalog: {catalog}", local["cfgweb"])
            }
        })
        .await,
    );
}

#[tokio::test]
async fn config_dir_services_follow_reloads() {
    let stub = must(StatusServer::start(200).await);
    let url = stub.url("/health");
    let mut agent = must(
        Agent::start_with_config_files(
            json!({"node_name": "persist-reload"}),
            &[("web.json", &service_file(80, &["v1"], &url))],
        )
        .await,
    );
    let web_file = agent.config_dir().join("web.json");
    wait_cfgweb_port(&agent, 80).await;
    let services = get(&agent, "/v1/agent/services").await;
    assert_eq!(services["cfgweb"]["Tags"], json!(["v1"]), "{services}");
    must(
        wait_until(SETTLE, "the file's HTTP check to pass", || async {
            let checks = agent.get_json("/v1/agent/checks").await?;
            let c = &checks["service:cfgweb"];
            if c["Status"] == "passing" && c["Type"] == "http" {
                Ok(())
            } else {
                anyhow::bail!("checks: {checks}")
            }
        })
        .await,
    );
    assert!(stub.requests() >= 1, "the check ran against the stub");
    // A service registered over the API is not touched by reloads.
    register(&agent, json!({"Name": "apisvc", "Port": 1})).await;

    // PUT /v1/agent/reload.
    must(std::fs::write(&web_file, service_file(81, &["v2"], &url)).map_err(anyhow::Error::from));
    let reply = must(must(agent.http_put("/v1/agent/reload", "").await).ensure_ok());
    assert!(
        reply.body.is_empty(),
        "reload answers an empty body: {}",
        reply.text()
    );
    wait_cfgweb_port(&agent, 81).await;
    assert_eq!(
        get(&agent, "/v1/agent/services").await["cfgweb"]["Tags"],
        json!(["v2"])
    );

    // `tribune reload`.
    must(std::fs::write(&web_file, service_file(82, &["v3"], &url)).map_err(anyhow::Error::from));
    let out = must(
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(must(tribune_tests::process::tribune_bin()))
                .arg("reload")
                .arg(format!("-http-addr={}", agent.http_addr()))
                .output(),
        )
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(anyhow::Error::from)),
    );
    assert!(
        out.status.success(),
        "tribune reload: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Configuration reload triggered"
    );
    wait_cfgweb_port(&agent, 82).await;

    // SIGHUP, with a second file holding a `services` list.
    must(
        std::fs::write(
            agent.config_dir().join("more.json"),
            json!({"services": [{"name": "m1", "port": 1}, {"name": "m2", "port": 2}]}).to_string(),
        )
        .map_err(anyhow::Error::from),
    );
    must(agent.signal(libc::SIGHUP));
    must(
        wait_until(SETTLE, "m1 and m2 after SIGHUP", || async {
            let s = agent.get_json("/v1/agent/services").await?;
            if s.get("m1").is_some() && s.get("m2").is_some() {
                Ok(())
            } else {
                anyhow::bail!("services: {s}")
            }
        })
        .await,
    );

    // A broken file: the reload fails loudly and changes nothing.
    let bad = agent.config_dir().join("bad.json");
    must(
        std::fs::write(&bad, r#"{"service": {"name": "x", "prot": 1}}"#)
            .map_err(anyhow::Error::from),
    );
    let reply = must(agent.http_put("/v1/agent/reload", "").await);
    assert_ne!(
        reply.status, 200,
        "a reload with a typo in a file must fail"
    );
    assert!(!reply.text().is_empty(), "the failure says why");
    let services = get(&agent, "/v1/agent/services").await;
    assert!(services.get("x").is_none(), "{services}");
    assert_eq!(services["cfgweb"]["Port"], 82, "{services}");
    must(std::fs::remove_file(&bad).map_err(anyhow::Error::from));

    // Removing the file removes the service, its check and its catalog entry.
    must(std::fs::remove_file(&web_file).map_err(anyhow::Error::from));
    put_ok(&agent, "/v1/agent/reload", "").await;
    let services = get(&agent, "/v1/agent/services").await;
    assert!(services.get("cfgweb").is_none(), "{services}");
    assert!(
        services.get("m1").is_some() && services.get("apisvc").is_some(),
        "{services}"
    );
    let checks = get(&agent, "/v1/agent/checks").await;
    assert!(checks.get("service:cfgweb").is_none(), "{checks}");
    must(
        wait_until(SETTLE, "cfgweb to leave the catalog", || async {
            let v = agent.get_json("/v1/catalog/service/cfgweb").await?;
            if v == json!([]) {
                Ok(())
            } else {
                anyhow::bail!("catalog: {v}")
            }
        })
        .await,
    );

    // Config services are re-read, not persisted: gone files stay gone after a restart,
    // API services come back.
    must(agent.kill());
    must(agent.restart().await);
    let services = get(&agent, "/v1/agent/services").await;
    assert!(services.get("cfgweb").is_none(), "{services}");
    assert!(
        services.get("m1").is_some() && services.get("apisvc").is_some(),
        "{services}"
    );
}
