//! `/v1/agent/*` against a real agent (compat §1, §5, §7, §16, §20 items 2 and 10):
//! service registration with Consul's PascalCase and python-consul's lowercase
//! bodies read back through every view, Consul's exact error texts, TTL, HTTP
//! and TCP checks, maintenance mode, filters, `/v1/agent/self` and members.
//!
//! Every test starts its own dev agent, so they run in parallel.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tribune_tests::{must, wait_until, Agent, StatusServer};

/// How long a check result or an anti-entropy sync may take to show.
const SETTLE: Duration = Duration::from_secs(10);

const UNKNOWN_PATH_V1: &str = "Invalid URL path: not a recognized HTTP API endpoint";
const UNKNOWN_PATH: &str =
    "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'";
const SCRIPTS_DISABLED: &str = "Scripts are disabled on this agent from remote calls; to enable, \
     configure 'enable_script_checks' to true";

async fn dev(node: &str) -> Agent {
    must(Agent::start_dev(node).await)
}

async fn register(agent: &Agent, body: Value) {
    let reply = must(
        must(
            agent
                .http_put_json("/v1/agent/service/register", &body)
                .await,
        )
        .ensure_ok(),
    );
    assert!(
        reply.body.is_empty(),
        "register must answer an empty body (GO's requireOK): {}",
        reply.text()
    );
}

async fn get(agent: &Agent, path: &str) -> Value {
    must(agent.get_json(path).await)
}

async fn put_ok(agent: &Agent, path: &str) {
    must(must(agent.http_put(path, "").await).ensure_ok());
}

/// `(status, body)` of a request, for error-text assertions.
async fn status_text(agent: &Agent, method: Method, path: &str, body: &str) -> (u16, String) {
    let reply = must(agent.http(method, path, body.to_owned()).await);
    assert!(
        reply.header("x-consul-default-acl-policy").is_some(),
        "{}: X-Consul-Default-ACL-Policy missing on a {} answer",
        reply.request,
        reply.status
    );
    (reply.status.as_u16(), reply.text())
}

/// The keys of a JSON object, in order.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("expected an object, got {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The local check `id` from `/v1/agent/checks`, if present.
async fn agent_check(agent: &Agent, id: &str) -> Option<Value> {
    let checks = get(agent, "/v1/agent/checks").await;
    checks.get(id).cloned()
}

/// Waits until the local check `id` has `status`; returns the check.
async fn wait_agent_check(agent: &Agent, id: &str, status: &str) -> Value {
    must(
        wait_until(
            SETTLE,
            &format!("agent check {id} to be {status}"),
            || async {
                let checks = agent.get_json("/v1/agent/checks").await?;
                match checks.get(id) {
                    Some(c) if c["Status"] == status => Ok(c.clone()),
                    other => anyhow::bail!("check is {other:?}"),
                }
            },
        )
        .await,
    )
}

/// Waits until `/v1/health/service/<name>` (with `query`) has `n` entries.
async fn wait_health_entries(agent: &Agent, name: &str, query: &str, n: usize) -> Value {
    let path = format!("/v1/health/service/{name}{query}");
    must(
        wait_until(SETTLE, &format!("{path} to list {n} entries"), || async {
            let v = agent.get_json(&path).await?;
            match v.as_array() {
                Some(a) if a.len() == n => Ok(v.clone()),
                _ => anyhow::bail!("answered {v}"),
            }
        })
        .await,
    )
}

#[tokio::test]
async fn pascal_case_registration_reads_back_through_every_view() {
    let agent = dev("agent-pascal").await;
    register(
        &agent,
        json!({
            "ID": "web-1",
            "Name": "web",
            "Tags": ["prod", "v1", "prod"],
            "Address": "10.1.2.3",
            "TaggedAddresses": {
                "lan": {"Address": "10.1.2.3", "Port": 8080},
                "wan": {"Address": "198.51.100.7", "Port": 80}
            },
            "Meta": {"env": "prod", "Weird-Key": "x"},
            "Port": 8080,
            "Weights": {"Passing": 10, "Warning": 3},
            "EnableTagOverride": false,
            "Check": {"CheckID": "web-ttl", "TTL": "30s"},
            // What old clients send: accepted and ignored.
            "WriteRequest": {"Token": ""},
            "Bogus": {"nested": [1, 2]},
            "Checks": null
        }),
    )
    .await;

    // /v1/agent/services (§16.1).
    let services = get(&agent, "/v1/agent/services").await;
    let svc = &services["web-1"];
    assert_eq!(svc["ID"], "web-1", "{services}");
    assert_eq!(svc["Service"], "web", "{svc}");
    assert_eq!(
        svc["Tags"],
        json!(["prod", "v1", "prod"]),
        "order and duplicates kept"
    );
    assert_eq!(
        svc["Meta"],
        json!({"env": "prod", "Weird-Key": "x"}),
        "{svc}"
    );
    assert_eq!(svc["Port"], 8080, "{svc}");
    assert_eq!(svc["Address"], "10.1.2.3", "{svc}");
    assert_eq!(
        svc["TaggedAddresses"]["wan"],
        json!({"Address": "198.51.100.7", "Port": 80}),
        "{svc}"
    );
    assert_eq!(
        svc["Weights"],
        json!({"Passing": 10, "Warning": 3}),
        "{svc}"
    );
    assert_eq!(svc["EnableTagOverride"], false, "{svc}");
    assert_eq!(svc["Datacenter"], "dc1", "{svc}");
    assert!(
        svc.get("Kind").is_none(),
        "Kind is omitted when empty: {svc}"
    );
    assert!(svc.get("Bogus").is_none(), "{svc}");
    let order: Vec<&str> = keys(svc)
        .into_iter()
        .filter(|k| {
            [
                "ID",
                "Service",
                "Tags",
                "Meta",
                "Port",
                "Address",
                "Weights",
                "EnableTagOverride",
            ]
            .contains(k)
        })
        .collect();
    assert_eq!(
        order,
        [
            "ID",
            "Service",
            "Tags",
            "Meta",
            "Port",
            "Address",
            "Weights",
            "EnableTagOverride"
        ],
        "AgentService field order (§16.1)"
    );

    // /v1/agent/service/:id carries ContentHash in body and header.
    let one = must(must(agent.http_get("/v1/agent/service/web-1").await).ensure_ok());
    let header_hash = one
        .header("x-consul-contenthash")
        .unwrap_or_else(|| panic!("no X-Consul-ContentHash: {:?}", one.headers))
        .to_owned();
    let one = must(one.json());
    assert_eq!(one["ContentHash"], header_hash.as_str(), "{one}");
    assert_eq!(one["Service"], "web", "{one}");
    assert_eq!(one["Weights"]["Passing"], 10, "{one}");
    let missing = must(agent.http_get("/v1/agent/service/web").await);
    assert_eq!(
        missing.status,
        404,
        "a service *name* is not an ID: {}",
        missing.text()
    );

    // /v1/catalog/service/:name: every ServiceNode field of §6.3, in order.
    let catalog = get(&agent, "/v1/catalog/service/web").await;
    let entries = catalog.as_array().expect("catalog/service is an array");
    assert_eq!(entries.len(), 1, "{catalog}");
    let sn = &entries[0];
    assert_eq!(
        keys(sn),
        [
            "ID",
            "Node",
            "Address",
            "Datacenter",
            "TaggedAddresses",
            "NodeMeta",
            "ServiceKind",
            "ServiceID",
            "ServiceName",
            "ServiceTags",
            "ServiceAddress",
            "ServiceTaggedAddresses",
            "ServiceWeights",
            "ServiceMeta",
            "ServicePort",
            "ServiceEnableTagOverride",
            "ServiceProxy",
            "ServiceConnect",
            "CreateIndex",
            "ModifyIndex"
        ],
        "ServiceNode fields (§6.3): {sn}"
    );
    assert!(
        sn["ID"].as_str().is_some_and(|id| id.len() == 36),
        "node ID is a UUID: {sn}"
    );
    assert_eq!(sn["Node"], agent.node(), "{sn}");
    assert_eq!(sn["Address"], "127.0.0.1", "{sn}");
    assert_eq!(sn["Datacenter"], "dc1", "{sn}");
    assert_eq!(sn["TaggedAddresses"]["lan"], "127.0.0.1", "{sn}");
    assert_eq!(sn["TaggedAddresses"]["wan"], "127.0.0.1", "{sn}");
    assert!(
        sn["NodeMeta"].get("consul-network-segment").is_some(),
        "{sn}"
    );
    assert_eq!(sn["ServiceKind"], "", "{sn}");
    assert_eq!(sn["ServiceID"], "web-1", "{sn}");
    assert_eq!(sn["ServiceName"], "web", "{sn}");
    assert_eq!(sn["ServiceTags"], json!(["prod", "v1", "prod"]), "{sn}");
    assert_eq!(sn["ServiceAddress"], "10.1.2.3", "{sn}");
    assert_eq!(
        sn["ServiceTaggedAddresses"],
        json!({
            "lan": {"Address": "10.1.2.3", "Port": 8080},
            "wan": {"Address": "198.51.100.7", "Port": 80}
        }),
        "{sn}"
    );
    assert_eq!(
        sn["ServiceWeights"],
        json!({"Passing": 10, "Warning": 3}),
        "{sn}"
    );
    assert_eq!(
        sn["ServiceMeta"],
        json!({"env": "prod", "Weird-Key": "x"}),
        "{sn}"
    );
    assert_eq!(sn["ServicePort"], 8080, "{sn}");
    assert_eq!(sn["ServiceEnableTagOverride"], false, "{sn}");
    assert_eq!(
        sn["ServiceProxy"],
        json!({"Mode": "", "MeshGateway": {}, "Expose": {}}),
        "{sn}"
    );
    assert_eq!(sn["ServiceConnect"], json!({}), "{sn}");
    let create = sn["CreateIndex"].as_u64().unwrap_or(0);
    let modify = sn["ModifyIndex"].as_u64().unwrap_or(0);
    assert!(create > 0 && modify >= create, "indexes: {sn}");

    // /v1/health/service/:name: all instances without ?passing, healthy ones with it.
    let all = wait_health_entries(&agent, "web", "", 1).await;
    let checks: Vec<&str> = all[0]["Checks"]
        .as_array()
        .expect("Checks array")
        .iter()
        .map(|c| c["CheckID"].as_str().unwrap_or(""))
        .collect();
    assert!(
        checks.contains(&"serfHealth") && checks.contains(&"web-ttl"),
        "node and service checks in Checks: {all}"
    );
    assert_eq!(all[0]["Service"]["ID"], "web-1", "{all}");
    assert_eq!(all[0]["Node"]["Node"], agent.node(), "{all}");
    let ttl = all[0]["Checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["CheckID"] == "web-ttl"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ttl["Status"], "critical",
        "TTL checks start critical: {ttl}"
    );
    assert_eq!(ttl["Type"], "ttl", "{ttl}");
    assert_eq!(ttl["ServiceName"], "web", "{ttl}");
    let passing = get(&agent, "/v1/health/service/web?passing").await;
    assert_eq!(passing, json!([]), "critical instance excluded by ?passing");
    let explicit_false = get(&agent, "/v1/health/service/web?passing=false").await;
    assert_eq!(
        explicit_false.as_array().map(Vec::len),
        Some(1),
        "?passing=false (ParseBool) keeps every instance: {explicit_false}"
    );
    let (code, text) = status_text(
        &agent,
        Method::GET,
        "/v1/health/service/web?passing=maybe",
        "",
    )
    .await;
    assert_eq!((code, text.as_str()), (400, "Invalid value for ?passing"));

    put_ok(&agent, "/v1/agent/check/pass/web-ttl").await;
    wait_health_entries(&agent, "web", "?passing", 1).await;
    wait_health_entries(&agent, "web", "?passing=1", 1).await;

    // Deregistration removes it from every view at once.
    put_ok(&agent, "/v1/agent/service/deregister/web-1").await;
    let services = get(&agent, "/v1/agent/services").await;
    assert!(services.get("web-1").is_none(), "{services}");
    let gone = must(agent.http_get("/v1/agent/service/web-1").await);
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert!(
        agent_check(&agent, "web-ttl").await.is_none(),
        "the service's checks go with it"
    );
    assert_eq!(get(&agent, "/v1/catalog/service/web").await, json!([]));
    assert_eq!(get(&agent, "/v1/health/service/web").await, json!([]));
    assert_eq!(get(&agent, "/v1/health/checks/web").await, json!([]));
    let names = get(&agent, "/v1/catalog/services").await;
    assert!(names.get("web").is_none(), "{names}");
    assert!(names.get("consul").is_some(), "{names}");
}

#[tokio::test]
async fn python_consul_lowercase_and_snake_case_bodies_bind() {
    let agent = dev("agent-lower").await;
    let stub = must(StatusServer::start(200).await);
    let url = stub.url("/health");
    // python-consul's Agent.Service.register body, plus unknown legacy fields.
    register(
        &agent,
        json!({
            "name": "pyweb",
            "id": "pyweb-1",
            "tags": ["a"],
            "port": 8081,
            "address": "127.0.0.1",
            "enabletagoverride": true,
            "meta": {"Lower": "v"},
            "check": {"http": url, "interval": "1s", "timeout": "2s"},
            "script": null,
            "WriteRequest": {"Token": ""}
        }),
    )
    .await;
    // snake_case spellings and numbers-as-nanoseconds durations.
    register(
        &agent,
        json!({
            "name": "snake",
            "enable_tag_override": true,
            "tagged_addresses": {"lan": {"address": "10.0.0.9", "port": 9}},
            "checks": [
                {"name": "first", "ttl": "10s"},
                {"name": "second", "ttl": 10_000_000_000u64, "status": "passing"}
            ]
        }),
    )
    .await;

    let services = get(&agent, "/v1/agent/services").await;
    let py = &services["pyweb-1"];
    assert_eq!(py["Service"], "pyweb", "{services}");
    assert_eq!(py["Tags"], json!(["a"]), "{py}");
    assert_eq!(py["Port"], 8081, "{py}");
    assert_eq!(py["EnableTagOverride"], true, "{py}");
    assert_eq!(py["Meta"], json!({"Lower": "v"}), "map keys stay verbatim");
    let snake = &services["snake"];
    assert_eq!(snake["ID"], "snake", "ID defaults to the name: {services}");
    assert_eq!(snake["EnableTagOverride"], true, "{snake}");
    assert_eq!(
        snake["TaggedAddresses"]["lan"],
        json!({"Address": "10.0.0.9", "Port": 9}),
        "{snake}"
    );
    assert_eq!(snake["Tags"], json!([]), "null tags are [] on output");

    let checks = get(&agent, "/v1/agent/checks").await;
    let http = &checks["service:pyweb-1"];
    assert_eq!(http["Name"], "Service 'pyweb' check", "{checks}");
    assert_eq!(http["Type"], "http", "{http}");
    assert_eq!(http["ServiceID"], "pyweb-1", "{http}");
    assert_eq!(http["ServiceName"], "pyweb", "{http}");
    assert_eq!(http["Definition"]["HTTP"], url.as_str(), "{http}");
    assert_eq!(http["Definition"]["Interval"], "1s", "{http}");
    assert_eq!(http["Interval"], "1s", "{http}");
    assert_eq!(http["Timeout"], "2s", "{http}");
    let first = &checks["service:snake:1"];
    let second = &checks["service:snake:2"];
    assert_eq!(
        first["Name"], "first",
        "multiple checks are numbered: {checks}"
    );
    assert_eq!(first["Status"], "critical", "{first}");
    assert_eq!(second["Name"], "second", "{checks}");
    assert_eq!(second["Status"], "passing", "{second}");
    assert_eq!(second["Definition"]["TTL"], "10s", "{second}");

    // The HTTP check really runs against the stub.
    let passing = wait_agent_check(&agent, "service:pyweb-1", "passing").await;
    assert_eq!(
        passing["Output"],
        format!("HTTP GET {url}: 200 OK Output: status 200"),
        "{passing}"
    );
    assert!(stub.requests() >= 1);
    let entries = wait_health_entries(&agent, "pyweb", "?passing", 1).await;
    assert_eq!(entries[0]["Service"]["Port"], 8081, "{entries}");
}

#[tokio::test]
async fn reregistration_upserts_and_replace_existing_checks_prunes() {
    let agent = dev("agent-upsert").await;
    register(
        &agent,
        json!({
            "Name": "api",
            "Port": 1,
            "Checks": [
                {"CheckID": "api-a", "TTL": "30s", "Status": "passing"},
                {"CheckID": "api-b", "TTL": "30s"}
            ]
        }),
    )
    .await;
    put_ok(&agent, "/v1/agent/check/warn/api-a?note=kept").await;

    // Same ID again: replaced; unspecified checks kept, status of a re-specified one kept.
    register(
        &agent,
        json!({"Name": "api", "Port": 2, "Check": {"CheckID": "api-a", "TTL": "30s"}}),
    )
    .await;
    let services = get(&agent, "/v1/agent/services").await;
    assert_eq!(services["api"]["Port"], 2, "{services}");
    let a = must(
        agent_check(&agent, "api-a")
            .await
            .ok_or_else(|| anyhow::anyhow!("api-a vanished")),
    );
    assert_eq!(
        a["Status"], "warning",
        "status kept across re-registration: {a}"
    );
    assert!(
        agent_check(&agent, "api-b").await.is_some(),
        "without replace-existing-checks the other check stays"
    );

    let path = "/v1/agent/service/register?replace-existing-checks";
    must(
        must(
            agent
                .http_put_json(
                    path,
                    &json!({"Name": "api", "Port": 3, "Check": {"CheckID": "api-a", "TTL": "30s"}}),
                )
                .await,
        )
        .ensure_ok(),
    );
    assert!(agent_check(&agent, "api-a").await.is_some());
    assert!(
        agent_check(&agent, "api-b").await.is_none(),
        "replace-existing-checks removes checks missing from the new definition"
    );
    let catalog_checks = must(
        wait_until(SETTLE, "api-b to leave the catalog", || async {
            let v = agent.get_json("/v1/health/checks/api").await?;
            let ids: Vec<String> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["CheckID"].as_str().map(str::to_owned))
                .collect();
            if ids == ["api-a"] {
                Ok(ids)
            } else {
                anyhow::bail!("catalog checks are {ids:?}")
            }
        })
        .await,
    );
    assert_eq!(catalog_checks, ["api-a"]);
}

#[tokio::test]
async fn consul_error_texts_and_method_rules() {
    let agent = dev("agent-errors").await;

    let (code, text) = status_text(&agent, Method::PUT, "/v1/agent/service/deregister/x", "").await;
    assert_eq!(code, 404, "{text}");
    assert_eq!(
        text,
        "Unknown service ID \"x\". Ensure that the service ID is passed, not the service name."
    );

    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/service/register",
        r#"{"Port": 80}"#,
    )
    .await;
    assert_eq!((code, text.as_str()), (400, "Missing service name"));

    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/service/register",
        r#"{"Name": "x", "Address": "0.0.0.0"}"#,
    )
    .await;
    assert_eq!((code, text.as_str()), (400, "Invalid service address"));

    // Registration validation (§5.2): the whole registration is refused.
    for (body, want) in [
        (
            json!({"Name": "v", "Check": {"TTL": "10s", "Status": "bogus"}}),
            "Status for checks must 'passing', 'warning', 'critical'",
        ),
        (
            json!({"Name": "v", "Checks": [{"TTL": "10s"}, {"TTL": "10s", "Status": "up"}]}),
            "Status for checks must 'passing', 'warning', 'critical'",
        ),
        (
            json!({"Name": "v", "Check": {"TTL": "10s", "Interval": "10s"}}),
            "Invalid check: ",
        ),
        (
            json!({"Name": "v", "Check": {"HTTP": "http://127.0.0.1:1/"}}),
            "Invalid check: ",
        ),
        (
            json!({"Name": "v", "Weights": {"Passing": 0, "Warning": 1}}),
            "Invalid Weights: ",
        ),
        (
            json!({"Name": "v", "Meta": {"consul-reserved": "x"}}),
            "Invalid Service Meta: ",
        ),
        (
            json!({"Name": "v", "Port": "eighty"}),
            "Request decode failed: ",
        ),
    ] {
        let (code, text) = status_text(
            &agent,
            Method::PUT,
            "/v1/agent/service/register",
            &body.to_string(),
        )
        .await;
        assert_eq!(code, 400, "{body}: {text}");
        assert!(
            text.starts_with(want),
            "{body}: expected {want:?}, got {text:?}"
        );
    }
    let services = get(&agent, "/v1/agent/services").await;
    assert!(
        services.get("v").is_none(),
        "a refused registration left {services}"
    );

    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/service/register",
        "{not json",
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(text.starts_with("Request decode failed: "), "{text}");

    // Wrong verb: 405 with Consul's text and an Allow header naming the right verb.
    let reply = must(agent.http_get("/v1/agent/service/register").await);
    assert_eq!(reply.status, 405, "{}", reply.text());
    assert_eq!(reply.text(), "method GET not allowed");
    let allow = reply.header("allow").unwrap_or("").to_owned();
    let verbs: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(
        verbs.contains(&"PUT") && verbs.contains(&"OPTIONS"),
        "Allow must list OPTIONS and PUT, got {allow:?}"
    );
    assert!(!verbs.contains(&"GET"), "Allow: {allow:?}");
    let reply = must(agent.http_delete("/v1/agent/services").await);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.text(), "method DELETE not allowed");
    let allow = reply.header("allow").unwrap_or("");
    assert!(
        allow.split(',').any(|v| v.trim() == "GET"),
        "Allow: {allow:?}"
    );
    let options = must(
        agent
            .http(Method::OPTIONS, "/v1/agent/service/register", "")
            .await,
    );
    assert_eq!(
        options.status,
        200,
        "OPTIONS answers 200: {}",
        options.text()
    );
    assert!(options.body.is_empty(), "{}", options.text());
    let allow = options.header("allow").unwrap_or("");
    assert!(
        allow.split(',').any(|v| v.trim() == "PUT"),
        "Allow: {allow:?}"
    );
    for path in [
        "/v1/agent/maintenance",
        "/v1/agent/reload",
        "/v1/agent/check/pass/x",
        "/v1/agent/service/deregister/x",
    ] {
        let (code, text) = status_text(&agent, Method::GET, path, "").await;
        assert_eq!(
            (code, text.as_str()),
            (405, "method GET not allowed"),
            "{path}"
        );
    }

    // Unknown paths (§1.2).
    for path in ["/v1/nope", "/v1/agent/nope/deeper", "/x/v1/y"] {
        let (code, text) = status_text(&agent, Method::GET, path, "").await;
        assert_eq!((code, text.as_str()), (404, UNKNOWN_PATH_V1), "{path}");
    }
    let (code, text) = status_text(&agent, Method::GET, "/nope", "").await;
    assert_eq!((code, text.as_str()), (404, UNKNOWN_PATH));

    // Script checks from the API are refused with Consul's text; nothing is registered.
    for body in [
        json!({"Name": "scripted", "Check": {"Args": ["/bin/true"], "Interval": "10s"}}),
        json!({"Name": "scripted", "check": {"args": ["/bin/true"], "interval": "10s"}}),
        json!({"Name": "scripted", "Checks": [{"ScriptArgs": ["/bin/true"], "Interval": "10s"}]}),
    ] {
        let (code, text) = status_text(
            &agent,
            Method::PUT,
            "/v1/agent/service/register",
            &body.to_string(),
        )
        .await;
        assert_ne!(code, 200, "script check accepted: {body}");
        assert_eq!(text, SCRIPTS_DISABLED, "{body}");
    }
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/check/register",
        r#"{"Name": "s", "ScriptArgs": ["/bin/true"], "Interval": "10s"}"#,
    )
    .await;
    assert_ne!(code, 200);
    assert_eq!(text, SCRIPTS_DISABLED);
    let services = get(&agent, "/v1/agent/services").await;
    assert!(services.get("scripted").is_none(), "{services}");
    assert!(agent_check(&agent, "s").await.is_none());

    // Check validation.
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/check/register",
        r#"{"TTL": "10s"}"#,
    )
    .await;
    assert_eq!((code, text.as_str()), (400, "Missing check name"));
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/check/register",
        r#"{"Name": "c", "TTL": "10s", "Status": "fine"}"#,
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (
            400,
            "Status for checks must 'passing', 'warning', 'critical'"
        )
    );
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/check/register",
        r#"{"Name": "c", "TTL": "10s", "ServiceID": "nope"}"#,
    )
    .await;
    assert_ne!(code, 200, "{text}");
    assert!(text.contains("\"nope\""), "{text}");
    let (code, text) =
        status_text(&agent, Method::PUT, "/v1/agent/check/deregister/nope", "").await;
    assert_eq!(code, 404, "{text}");
    assert_eq!(
        text,
        "Unknown check ID \"nope\". Ensure that the check ID is passed, not the check name."
    );

    // Headers on success too.
    let ok = must(agent.http_get("/v1/agent/services").await);
    assert_eq!(ok.status, 200);
    assert!(ok.header("x-consul-default-acl-policy").is_some());
    assert_eq!(
        ok.header("content-type"),
        Some("application/json"),
        "{:?}",
        ok.headers
    );
}

#[tokio::test]
async fn ttl_checks_pass_warn_fail_update_and_expire() {
    let agent = dev("agent-ttl").await;
    register(
        &agent,
        json!({"Name": "ttlsvc", "Check": {"CheckID": "ttl-c", "TTL": "2s"}}),
    )
    .await;
    let c = must(
        agent_check(&agent, "ttl-c")
            .await
            .ok_or_else(|| anyhow::anyhow!("ttl-c not registered")),
    );
    assert_eq!(c["Status"], "critical", "{c}");
    assert_eq!(c["Type"], "ttl", "{c}");
    assert_eq!(c["Definition"]["TTL"], "2s", "{c}");

    for (verb, status) in [
        ("pass", "passing"),
        ("warn", "warning"),
        ("fail", "critical"),
    ] {
        let note = format!("{verb} note");
        put_ok(
            &agent,
            &format!(
                "/v1/agent/check/{verb}/ttl-c?note={}",
                note.replace(' ', "%20")
            ),
        )
        .await;
        let c = agent_check(&agent, "ttl-c").await.unwrap_or_default();
        assert_eq!(c["Status"], status, "after {verb}: {c}");
        assert_eq!(c["Output"], note.as_str(), "the note becomes Output: {c}");
    }
    must(
        must(
            agent
                .http_put_json(
                    "/v1/agent/check/update/ttl-c",
                    &json!({"Status": "passing", "Output": "via update"}),
                )
                .await,
        )
        .ensure_ok(),
    );
    let c = agent_check(&agent, "ttl-c").await.unwrap_or_default();
    assert_eq!(
        (&c["Status"], &c["Output"]),
        (&json!("passing"), &json!("via update"))
    );
    must(
        must(
            agent
                .http_put_json(
                    "/v1/agent/check/update/ttl-c",
                    &json!({"status": "warning", "output": "lowercase"}),
                )
                .await,
        )
        .ensure_ok(),
    );
    let c = agent_check(&agent, "ttl-c").await.unwrap_or_default();
    assert_eq!(
        (&c["Status"], &c["Output"]),
        (&json!("warning"), &json!("lowercase"))
    );
    // The status reaches the catalog.
    must(
        wait_until(SETTLE, "the catalog to show ttl-c warning", || async {
            let v = agent.get_json("/v1/health/checks/ttlsvc").await?;
            match v.as_array().and_then(|a| a.first()) {
                Some(c) if c["Status"] == "warning" => Ok(()),
                _ => anyhow::bail!("catalog checks: {v}"),
            }
        })
        .await,
    );

    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/check/update/ttl-c",
        r#"{"Status": "bogus"}"#,
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (400, "Invalid check status: 'bogus'")
    );
    for path in [
        "/v1/agent/check/pass/nope",
        "/v1/agent/check/warn/nope",
        "/v1/agent/check/fail/nope",
    ] {
        let (code, text) = status_text(&agent, Method::PUT, path, "").await;
        assert_eq!(
            (code, text.as_str()),
            (500, "CheckID \"nope\" does not have associated TTL"),
            "{path}"
        );
    }
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/check/update/nope",
        r#"{"Status": "passing"}"#,
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (500, "CheckID \"nope\" does not have associated TTL")
    );

    // Expiry: critical with Consul's text once the TTL passes without an update.
    put_ok(&agent, "/v1/agent/check/pass/ttl-c?note=last%20words").await;
    let updated = Instant::now();
    let c = agent_check(&agent, "ttl-c").await.unwrap_or_default();
    assert_eq!(c["Status"], "passing", "{c}");
    let expired = wait_agent_check(&agent, "ttl-c", "critical").await;
    let after = updated.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "a 2s TTL expired after only {after:?}"
    );
    assert_eq!(
        expired["Output"], "TTL expired (last output before timeout follows): last words",
        "{expired}"
    );
    must(
        wait_until(SETTLE, "the catalog to show ttl-c critical", || async {
            let v = agent.get_json("/v1/health/checks/ttlsvc").await?;
            match v.as_array().and_then(|a| a.first()) {
                Some(c) if c["Status"] == "critical" => Ok(()),
                _ => anyhow::bail!("catalog checks: {v}"),
            }
        })
        .await,
    );

    // A standalone TTL check: ID defaults to the name; a non-TTL check cannot be passed.
    must(
        must(
            agent
                .http_put_json(
                    "/v1/agent/check/register",
                    &json!({"Name": "solo", "TTL": "30s", "Status": "passing", "Notes": "n"}),
                )
                .await,
        )
        .ensure_ok(),
    );
    let solo = agent_check(&agent, "solo").await.unwrap_or_default();
    assert_eq!(solo["Status"], "passing", "{solo}");
    assert_eq!(solo["Notes"], "n", "{solo}");
    assert_eq!(solo["ServiceID"], "", "{solo}");
    put_ok(&agent, "/v1/agent/check/deregister/solo").await;
    assert!(agent_check(&agent, "solo").await.is_none());
}

#[tokio::test]
async fn http_and_tcp_checks_follow_the_target() {
    let agent = dev("agent-http").await;
    let stub = must(StatusServer::start(200).await);
    let url = stub.url("/status");
    let closed = must(tribune_tests::process::free_port());
    for body in [
        json!({"Name": "stub-http", "HTTP": url, "Interval": "1s", "Timeout": "2s"}),
        json!({"Name": "stub-tcp", "TCP": stub.addr().to_string(), "Interval": "1s"}),
        json!({"Name": "closed-tcp", "TCP": format!("127.0.0.1:{closed}"), "Interval": "1s", "Status": "passing"}),
    ] {
        must(must(agent.http_put_json("/v1/agent/check/register", &body).await).ensure_ok());
    }

    let c = wait_agent_check(&agent, "stub-http", "passing").await;
    assert_eq!(
        c["Output"],
        format!("HTTP GET {url}: 200 OK Output: status 200"),
        "{c}"
    );
    assert_eq!(c["Type"], "http", "{c}");
    let head = stub.last_request().to_ascii_lowercase();
    assert!(head.starts_with("get /status http/1.1\r\n"), "{head}");
    assert!(
        head.contains("\r\nuser-agent: consul health check\r\n"),
        "Consul's User-Agent: {head}"
    );
    assert!(
        head.contains("\r\naccept: text/plain, text/*, */*\r\n"),
        "Consul's Accept: {head}"
    );

    // Method and headers of the definition are used and echoed in Definition.
    let post = must(StatusServer::start(200).await);
    must(
        agent
            .put_json_ok(
                "/v1/agent/check/register",
                &json!({"Name": "stub-post", "HTTP": post.url("/hook"), "Method": "POST",
                        "Header": {"X-Probe": ["yes"]}, "Interval": "1s"}),
            )
            .await,
    );
    let c = wait_agent_check(&agent, "stub-post", "passing").await;
    assert_eq!(c["Definition"]["Method"], "POST", "{c}");
    assert_eq!(
        c["Definition"]["Header"],
        json!({"X-Probe": ["yes"]}),
        "{c}"
    );
    let head = post.last_request().to_ascii_lowercase();
    assert!(head.starts_with("post /hook http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nx-probe: yes\r\n"), "{head}");
    let tcp = wait_agent_check(&agent, "stub-tcp", "passing").await;
    assert_eq!(
        tcp["Output"],
        format!("TCP connect {}: Success", stub.addr()),
        "{tcp}"
    );
    assert_eq!(tcp["Type"], "tcp", "{tcp}");
    wait_agent_check(&agent, "closed-tcp", "critical").await;

    stub.set_status(429);
    let c = wait_agent_check(&agent, "stub-http", "warning").await;
    assert_eq!(
        c["Output"],
        format!("HTTP GET {url}: 429 Too Many Requests Output: status 429"),
        "{c}"
    );
    stub.set_status(500);
    let c = wait_agent_check(&agent, "stub-http", "critical").await;
    assert_eq!(
        c["Output"],
        format!("HTTP GET {url}: 500 Internal Server Error Output: status 500"),
        "{c}"
    );
    // Status changes reach the catalog.
    must(
        wait_until(
            SETTLE,
            "stub-http critical in /v1/health/state/critical",
            || async {
                let v = agent.get_json("/v1/health/state/critical").await?;
                let ids: Vec<&str> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["CheckID"].as_str())
                    .collect();
                if ids.contains(&"stub-http") && ids.contains(&"closed-tcp") {
                    Ok(())
                } else {
                    anyhow::bail!("critical checks: {ids:?}")
                }
            },
        )
        .await,
    );
    stub.set_status(200);
    wait_agent_check(&agent, "stub-http", "passing").await;
}

#[tokio::test]
async fn maintenance_mode_for_node_and_service() {
    let agent = dev("agent-maint").await;
    register(
        &agent,
        json!({"ID": "m-1", "Name": "maint-svc", "Check": {"CheckID": "m-ttl", "TTL": "60s", "Status": "passing"}}),
    )
    .await;
    wait_health_entries(&agent, "maint-svc", "?passing", 1).await;

    let (code, text) = status_text(&agent, Method::PUT, "/v1/agent/maintenance", "").await;
    assert_eq!((code, text.as_str()), (400, "Missing value for enable"));
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/maintenance?enable=maybe",
        "",
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (400, "Invalid value for enable: \"maybe\"")
    );
    let (code, text) =
        status_text(&agent, Method::PUT, "/v1/agent/service/maintenance/m-1", "").await;
    assert_eq!((code, text.as_str()), (400, "Missing value for enable"));
    let (code, _) = status_text(
        &agent,
        Method::PUT,
        "/v1/agent/service/maintenance/nope?enable=true",
        "",
    )
    .await;
    assert_eq!(code, 404, "maintenance of an unknown service");

    // Node maintenance.
    put_ok(&agent, "/v1/agent/maintenance?enable=true&reason=patching").await;
    let m = must(
        agent_check(&agent, "_node_maintenance")
            .await
            .ok_or_else(|| anyhow::anyhow!("no _node_maintenance check")),
    );
    assert_eq!(m["Status"], "critical", "{m}");
    assert_eq!(m["Name"], "Node Maintenance Mode", "{m}");
    assert_eq!(m["Notes"], "patching", "{m}");
    assert_eq!(m["ServiceID"], "", "{m}");
    assert_eq!(m["Type"], "", "maintenance checks have an empty Type: {m}");
    wait_health_entries(&agent, "maint-svc", "?passing", 0).await;
    let all = wait_health_entries(&agent, "maint-svc", "", 1).await;
    assert!(
        all[0]["Checks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["CheckID"] == "_node_maintenance")),
        "node maintenance shows in the instance's Checks: {all}"
    );
    put_ok(&agent, "/v1/agent/maintenance?enable=false").await;
    assert!(agent_check(&agent, "_node_maintenance").await.is_none());
    wait_health_entries(&agent, "maint-svc", "?passing", 1).await;

    // Service maintenance (python-consul sends True/False).
    put_ok(&agent, "/v1/agent/service/maintenance/m-1?enable=True").await;
    let s = must(
        agent_check(&agent, "_service_maintenance:m-1")
            .await
            .ok_or_else(|| anyhow::anyhow!("no _service_maintenance:m-1 check")),
    );
    assert_eq!(s["Status"], "critical", "{s}");
    assert_eq!(s["Name"], "Service Maintenance Mode", "{s}");
    assert_eq!(s["ServiceID"], "m-1", "{s}");
    assert_eq!(s["ServiceName"], "maint-svc", "{s}");
    assert_eq!(
        s["Notes"],
        "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.",
        "{s}"
    );
    assert_eq!(s["Type"], "", "{s}");
    wait_health_entries(&agent, "maint-svc", "?passing", 0).await;
    let by_id = must(agent.http_get("/v1/agent/health/service/id/m-1").await);
    assert_eq!(by_id.status, 503, "{}", by_id.text());
    assert_eq!(must(by_id.json())["AggregatedStatus"], "maintenance");
    put_ok(&agent, "/v1/agent/service/maintenance/m-1?enable=False").await;
    assert!(agent_check(&agent, "_service_maintenance:m-1")
        .await
        .is_none());
    wait_health_entries(&agent, "maint-svc", "?passing", 1).await;
    let by_id = must(
        agent
            .http_get("/v1/agent/health/service/id/m-1?format=text")
            .await,
    );
    assert_eq!(
        (by_id.status.as_u16(), by_id.text().as_str()),
        (200, "passing")
    );
}

#[tokio::test]
async fn filters_on_agent_services_and_checks() {
    let agent = dev("agent-filter").await;
    register(
        &agent,
        json!({"ID": "f-prod", "Name": "f", "Tags": ["blue"], "Meta": {"env": "prod"}, "Port": 1,
               "Check": {"CheckID": "f-prod-ttl", "TTL": "60s", "Status": "passing"}}),
    )
    .await;
    register(
        &agent,
        json!({"ID": "f-dev", "Name": "f", "Tags": ["green"], "Meta": {"env": "dev"}, "Port": 2,
               "Check": {"CheckID": "f-dev-ttl", "TTL": "60s"}}),
    )
    .await;
    let ids = |v: &Value| {
        let mut k: Vec<String> = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    let cases = [
        ("Meta.env%20%3D%3D%20%22prod%22", vec!["f-prod"]),
        ("Tags%20contains%20%22green%22", vec!["f-dev"]),
        (
            "Port%20%3D%3D%202%20or%20ID%20%3D%3D%20%22f-prod%22",
            vec!["f-dev", "f-prod"],
        ),
        ("Service%20%3D%3D%20%22nope%22", vec![]),
    ];
    for (filter, want) in cases {
        let v = get(&agent, &format!("/v1/agent/services?filter={filter}")).await;
        assert_eq!(ids(&v), want, "filter {filter}: {v}");
    }
    let v = get(
        &agent,
        "/v1/agent/checks?filter=Status%20%3D%3D%20%22passing%22",
    )
    .await;
    assert_eq!(ids(&v), ["f-prod-ttl"], "{v}");
    for path in [
        "/v1/agent/services?filter=Meta.env%20%3D%3D",
        "/v1/agent/checks?filter=%28%28",
    ] {
        let (code, text) = status_text(&agent, Method::GET, path, "").await;
        assert_eq!(code, 400, "{path}: {text}");
        assert!(!text.is_empty(), "{path}: a bad filter names the problem");
    }
}

#[tokio::test]
async fn agent_self_and_members_have_client_shapes() {
    let agent = must(Agent::start_dev_with_args("agent-self", &["-datacenter=east"]).await);
    let reply = must(must(agent.http_get("/v1/agent/self").await).ensure_ok());
    assert!(reply.header("x-consul-default-acl-policy").is_some());
    let me = must(reply.json());
    assert_eq!(me["Config"]["Datacenter"], "east", "{}", me["Config"]);
    assert_eq!(me["Config"]["NodeName"], "agent-self", "{}", me["Config"]);
    assert!(me["Config"]["NodeID"].is_string(), "{}", me["Config"]);
    assert_eq!(me["Config"]["Server"], true, "{}", me["Config"]);
    assert!(
        me["Config"]["Version"]
            .as_str()
            .is_some_and(|v| v.split('.').count() == 3),
        "Config.Version is semver: {}",
        me["Config"]
    );
    assert_eq!(me["Member"]["Name"], "agent-self", "{}", me["Member"]);
    let stats = me["Stats"].as_object().expect("Stats is an object");
    for (section, values) in stats {
        for (k, v) in values.as_object().into_iter().flatten() {
            assert!(
                v.is_string(),
                "Stats.{section}.{k} must be a string, got {v}"
            );
        }
    }
    assert_eq!(me["Stats"]["consul"]["leader"], "true", "{}", me["Stats"]);

    let members = get(&agent, "/v1/agent/members").await;
    let list = members.as_array().expect("members is an array");
    assert_eq!(list.len(), 1, "{members}");
    let m = &list[0];
    assert_eq!(m["Name"], "agent-self", "{m}");
    assert_eq!(m["Addr"], "127.0.0.1", "{m}");
    assert_eq!(m["Port"], agent.ports().serf_lan, "{m}");
    assert_eq!(m["Status"], 1, "alive: {m}");
    assert_eq!(m["Tags"]["dc"], "east", "{m}");
    assert_eq!(m["Tags"]["role"], "consul", "{m}");
    for k in [
        "ProtocolMin",
        "ProtocolMax",
        "ProtocolCur",
        "DelegateMin",
        "DelegateMax",
        "DelegateCur",
    ] {
        assert!(m[k].is_u64(), "{k} must be a number: {m}");
    }
    let filtered = get(
        &agent,
        "/v1/agent/members?filter=Name%20%3D%3D%20%22someone-else%22",
    )
    .await;
    assert_eq!(filtered, json!([]));
}
