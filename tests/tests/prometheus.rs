//! The seed's "Prometheus integrates Consul" section against Tribune, with a
//! real scraper and a real node_exporter.
//!
//! The scraper is Debian's VictoriaMetrics (Debian's Prometheus has no Consul
//! discovery); `PROMETHEUS_BIN=/path/to/prometheus` runs the same checks with
//! a Prometheus that has it. A missing program fails the test with the
//! command that installs it: nothing is skipped.
//!
//! What a pass proves, step by step:
//! 1. the seed's registration body, sent as the seed's curl sends it, is accepted;
//! 2. the scraper, given the seed's job, discovers node_exporter through
//!    `/v1/agent/self`, `/v1/catalog/services` and `/v1/health/service/...`,
//!    relabels it with `env="prod"` and scrapes it;
//! 3. while nothing changes, the agent holds the scraper's blocking queries
//!    instead of answering them at once;
//! 4. a deregistration (and a new registration) reaches the target list
//!    within seconds, although the scraper's blocking queries wait two minutes:
//!    the agent answered them as soon as the catalog changed;
//! 5. the scraped samples (`up`, `node_exporter_build_info`) are stored under
//!    the seed's job with `env="prod"`.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use reqwest::Method;
use serde_json::json;
use tribune_tests::scrape::{scraper_from_env, Target};
use tribune_tests::{wait_until, Agent, NodeExporter, Reply, Scraper};

/// The seed's sample management token (`consul acl bootstrap` output).
const TOKEN: &str = "08ad8862-f702-eb26-0276-d8255b11267e";
const JOB: &str = "ec2_exporter";
const SERVICE: &str = "node_exporter";
const SERVICE_ID: &str = "node_exporter01";

/// From scraper start to the first successful scrape of the discovered target.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// A quiet period in which a blocking scraper sends (almost) nothing.
const IDLE_WINDOW: Duration = Duration::from_secs(3);
/// Requests tolerated in [`IDLE_WINDOW`]; one poller that ignores blocking
/// would send about a dozen.
const IDLE_REQUESTS_MAX: u64 = 2;

/// Panics with the whole error chain. Used instead of `?` so the panic happens
/// while the agent, exporter and scraper are alive: their drop then prints
/// the tail of each one's output under the failure.
fn must<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|err| panic!("{err:#}"))
}

/// The seed's scrape job, verbatim but for the addresses (the seed's
/// `172.26.42.229:8500` is the agent's HTTP address, `:8300` its server port)
/// and the token. `tuning` is the scraper's extra discovery line, if any; the
/// global section makes scrapes frequent enough for a test.
fn seed_scrape_config(agent: &Agent, token: &str, tuning: &str) -> String {
    let http = agent.http_addr();
    let server = format!("127.0.0.1:{}", agent.ports().server);
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
- job_name: 'ec2_exporter'
  consul_sd_configs:
  - server: {http}
    token: '{token}'
    services: ['node_exporter']
{tuning}  relabel_configs:
  - source_labels: [__address__]
    regex: {server}
    action: drop
  - source_labels: [__meta_consul_tags]
    regex: ".*,prod,.*"
    replacement: prod
    action: replace
    target_label: env
"#
    )
}

/// The seed's registration, sent like its `curl -X PUT -d '...'`: lower-case
/// `x-consul-token` and curl's form content type.
async fn register(agent: &Agent, token: &str, port: u16) -> anyhow::Result<()> {
    let body = format!(
        r#"{{"ID": "{SERVICE_ID}", "Name": "{SERVICE}", "Address": "127.0.0.1", "Port": {port}, "Tags": ["prod"], "EnableTagOverride": false}}"#
    );
    Reply::send(
        agent
            .anonymous(Method::PUT, "/v1/agent/service/register")
            .header("x-consul-token", token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await?
    .ensure_ok()?;
    Ok(())
}

/// The seed's deregistration.
async fn deregister(agent: &Agent, token: &str) -> anyhow::Result<()> {
    Reply::send(
        agent
            .anonymous(
                Method::PUT,
                &format!("/v1/agent/service/deregister/{SERVICE_ID}"),
            )
            .header("x-consul-token", token),
    )
    .await?
    .ensure_ok()?;
    Ok(())
}

/// The agent's own view, checked before any scraper is involved, so that a
/// failure here reads as an agent bug and not as a scraper mystery.
async fn agent_lists_service(agent: &Agent, token: &str, port: u16) -> anyhow::Result<()> {
    let reply = Reply::send(
        agent
            .anonymous(Method::GET, &format!("/v1/health/service/{SERVICE}"))
            .header("X-Consul-Token", token),
    )
    .await?
    .ensure_ok()?;
    ensure!(
        reply.index().is_some_and(|i| i > 0),
        "GET /v1/health/service/{SERVICE} has no X-Consul-Index >= 1 (headers {:?})",
        reply.headers
    );
    let doc = reply.json()?;
    let entries = doc.as_array().context("health/service must be an array")?;
    let Some(entry) = entries.iter().find(|e| e["Service"]["ID"] == SERVICE_ID) else {
        bail!("GET /v1/health/service/{SERVICE} does not list {SERVICE_ID} yet: {doc}");
    };
    ensure!(
        entry["Service"]["Port"] == port && entry["Service"]["Tags"] == json!(["prod"]),
        "unexpected entry for {SERVICE_ID}: {entry}"
    );
    Ok(())
}

/// The agent's datacenter, as the scraper learns it from `/v1/agent/self`.
async fn datacenter(agent: &Agent, token: &str) -> anyhow::Result<String> {
    let reply = Reply::send(
        agent
            .anonymous(Method::GET, "/v1/agent/self")
            .header("X-Consul-Token", token),
    )
    .await?
    .ensure_ok()?;
    let doc = reply.json()?;
    doc["Config"]["Datacenter"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("/v1/agent/self has no Config.Datacenter string: {doc}"))
}

/// The job's only active target, or why not.
async fn the_target(scraper: &Scraper) -> anyhow::Result<Target> {
    let targets = scraper.active_targets(JOB).await?;
    match targets.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no active target in job {JOB}"),
        many => bail!("{} active targets in job {JOB}: {many:?}", many.len()),
    }
}

fn check_labels(target: &Target, agent: &Agent, dc: &str, port: u16) -> anyhow::Result<()> {
    let instance = format!("127.0.0.1:{port}");
    let port = port.to_string();
    let want_labels = [("job", JOB), ("instance", &instance), ("env", "prod")];
    let want_discovered = [
        ("__address__", instance.as_str()),
        ("__meta_consul_service", SERVICE),
        ("__meta_consul_service_id", SERVICE_ID),
        ("__meta_consul_tags", ",prod,"),
        ("__meta_consul_service_address", "127.0.0.1"),
        ("__meta_consul_service_port", &port),
        ("__meta_consul_address", "127.0.0.1"),
        ("__meta_consul_node", agent.node()),
        ("__meta_consul_dc", dc),
        ("__meta_consul_health", "passing"),
    ];
    for (key, want) in want_labels {
        let got = target.labels.get(key).map(String::as_str);
        ensure!(
            got == Some(want),
            "target label {key} is {got:?}, want {want:?}; target: {target:?}"
        );
    }
    for (key, want) in want_discovered {
        let got = target.discovered.get(key).map(String::as_str);
        ensure!(
            got == Some(want),
            "discovered label {key} is {got:?}, want {want:?}; target: {target:?}"
        );
    }
    Ok(())
}

/// One value of an instant query that must return exactly one series.
async fn single_value(scraper: &Scraper, promql: &str) -> anyhow::Result<String> {
    let samples = scraper.query(promql).await?;
    match samples.as_slice() {
        [one] => Ok(one.value.clone()),
        [] => bail!("{promql} returns no series yet"),
        many => bail!("{promql} returns {} series: {many:?}", many.len()),
    }
}

/// The whole seed flow against `agent`; `token` is what the seed puts in the
/// scrape job and in its curl calls.
async fn seed_job(agent: &Agent, token: &str) {
    let kind = must(scraper_from_env());
    let budget = kind.propagation_budget();
    let exporter = must(NodeExporter::start().await);
    let port = exporter.port();

    // 1. Register as the seed does; the agent must list it right away.
    must(register(agent, token, port).await);
    must(
        wait_until(
            Duration::from_secs(10),
            "the agent to list the registered service",
            || agent_lists_service(agent, token, port),
        )
        .await,
    );
    let dc = must(datacenter(agent, token).await);

    // 2. Discovery, relabelling and scraping with the seed's job.
    let config = seed_scrape_config(agent, token, &kind.consul_sd_tuning("    "));
    let name = kind.name();
    let scraper = must(Scraper::start(kind, &config).await);
    let target = must(
        wait_until(
            DISCOVERY_TIMEOUT,
            "node_exporter to be discovered and scraped",
            || async {
                let target = the_target(&scraper).await?;
                ensure!(target.health == "up", "target not up yet: {target:?}");
                Ok(target)
            },
        )
        .await,
    );
    must(check_labels(&target, agent, &dc, port));

    // 3. Nothing changes: the agent must hold the blocking queries.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = must(scraper.consul_requests().await);
    tokio::time::sleep(IDLE_WINDOW).await;
    let after = must(scraper.consul_requests().await);
    assert!(
        after.saturating_sub(before) <= IDLE_REQUESTS_MAX,
        "{name} sent {} requests to the agent in {IDLE_WINDOW:?} while nothing changed: the \
         agent answers blocking queries (?index=N&wait=...) at once instead of holding them \
         until the index moves past N",
        after.saturating_sub(before)
    );

    // 4. Deregistration reaches the scraper long before the 120 s blocking wait.
    must(deregister(agent, token).await);
    must(
        wait_until(
            budget,
            "the deregistered target to disappear (the agent must answer the scraper's \
             pending blocking query as soon as the service is deregistered)",
            || async {
                let targets = scraper.active_targets(JOB).await?;
                ensure!(targets.is_empty(), "still active: {targets:?}");
                Ok(())
            },
        )
        .await,
    );
    // ... and so does a new registration.
    must(register(agent, token, port).await);
    must(
        wait_until(budget, "the re-registered target to come back", || async {
            let target = the_target(&scraper).await?;
            ensure!(
                target.labels.get("env").map(String::as_str) == Some("prod"),
                "target without env=prod: {target:?}"
            );
            Ok(())
        })
        .await,
    );

    // 5. What was scraped is stored under the relabelled job (new series
    // become queryable in VictoriaMetrics some 10 s after its start, so this
    // comes last, when that time has mostly passed anyway).
    must(
        wait_until(
            DISCOVERY_TIMEOUT,
            "scraped samples to be queryable",
            || async {
                let up = single_value(&scraper, r#"up{job="ec2_exporter",env="prod"}"#).await?;
                ensure!(up == "1", "up is {up}");
                single_value(&scraper, r#"node_exporter_build_info{job="ec2_exporter"}"#).await
            },
        )
        .await,
    );
    drop(scraper);
    drop(exporter);
}

/// The seed flow on a dev agent (no ACLs: the job's token is sent and ignored).
#[tokio::test]
async fn seed_prometheus_job_discovers_and_follows_node_exporter() {
    let agent = must(Agent::start_dev("prom-node").await);
    seed_job(&agent, TOKEN).await;
}

/// The seed flow on the seed's kind of server: datacenter `prometheus`, ACLs
/// on with `default_policy: deny`, the token from `acl.tokens.master`.
#[tokio::test]
#[ignore = "needs ACL support in the agent; run with `cargo test -p tribune-tests -- --ignored`"]
async fn seed_prometheus_job_with_acl_default_deny() {
    let agent = must(
        Agent::start_with_config(json!({
            "node_name": "server1",
            "datacenter": "prometheus",
            "ui": true,
            "acl": {
                "enabled": true,
                "default_policy": "deny",
                "down_policy": "extend-cache",
                "tokens": { "master": TOKEN, "agent": TOKEN },
            },
        }))
        .await,
    );
    seed_job(&agent, TOKEN).await;
}

/// Control experiment without Tribune: the scraper scrapes node_exporter from
/// a static config. When this fails, the machine is the problem, not the agent.
#[tokio::test]
async fn scraper_scrapes_node_exporter_without_consul() {
    let kind = must(scraper_from_env());
    let exporter = must(NodeExporter::start().await);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
         - job_name: 'static'\n  static_configs:\n  - targets: ['{}']\n",
        exporter.addr()
    );
    let scraper = must(Scraper::start(kind, &config).await);
    must(
        wait_until(
            DISCOVERY_TIMEOUT,
            "node_exporter_build_info from a static target",
            || async {
                let samples = scraper
                    .query(r#"node_exporter_build_info{job="static"}"#)
                    .await?;
                ensure!(samples.len() == 1, "samples: {samples:?}");
                Ok(())
            },
        )
        .await,
    );
}
