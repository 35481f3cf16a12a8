//! `/v1/catalog/*` and `/v1/health/*` against a real agent (compat §1, §2.3, §6,
//! §7, §16): catalog registration of external nodes, node and service reads,
//! sorting, `tag=`, `node-meta=` and `?filter=`, `?dc=`, `?pretty`, check
//! states.
//!
//! Every test starts its own dev agent, so they run in parallel.

use reqwest::Method;
use serde_json::{json, Value};
use tribune_tests::{must, Agent};

const NO_PATH_TO_DC: &str = "No path to datacenter";

async fn dev(node: &str) -> Agent {
    must(Agent::start_dev(node).await)
}

async fn get(agent: &Agent, path: &str) -> Value {
    must(agent.get_json(path).await)
}

/// `PUT path` with `body`; the answer must be 200 with the JSON literal `true`.
async fn put_true(agent: &Agent, path: &str, body: Value) {
    let reply = must(must(agent.http_put_json(path, &body).await).ensure_ok());
    assert_eq!(
        must(reply.json()),
        json!(true),
        "{path} answers the JSON literal true"
    );
}

async fn catalog_register(agent: &Agent, body: Value) {
    put_true(agent, "/v1/catalog/register", body).await;
}

async fn status_text(agent: &Agent, method: Method, path: &str, body: &str) -> (u16, String) {
    let reply = must(agent.http(method, path, body.to_owned()).await);
    (reply.status.as_u16(), reply.text())
}

/// The values of `field` of every element of a JSON array.
fn field<'a>(v: &'a Value, field: &str) -> Vec<&'a str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|e| e[field].as_str().unwrap_or(""))
        .collect()
}

/// The `Node.Node` of every element of a `/v1/health/service` answer.
fn health_nodes(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|e| e["Node"]["Node"].as_str().unwrap_or(""))
        .collect()
}

#[tokio::test]
async fn catalog_registers_and_deregisters_external_nodes() {
    let agent = dev("catalog-ext").await;
    catalog_register(
        &agent,
        json!({
            "Node": "ext-1",
            "Address": "192.0.2.10",
            "NodeMeta": {"rack": "r1"},
            "TaggedAddresses": {"wan": "203.0.113.10"},
            "Service": {"Service": "ext-db", "ID": "db-1", "Tags": ["primary"], "Port": 5432,
                        "Meta": {"v": "1"}},
            "Check": {"CheckID": "db-alive", "Name": "db alive", "Status": "passing",
                      "ServiceID": "db-1", "Output": "ok"}
        }),
    )
    .await;
    // python-consul's lowercase body; the ID defaults to the service name.
    catalog_register(
        &agent,
        json!({"node": "ext-1", "address": "192.0.2.10", "nodemeta": {"rack": "r1"},
               "taggedaddresses": {"wan": "203.0.113.10"},
               "service": {"service": "ext-cache", "port": 6379}}),
    )
    .await;
    catalog_register(
        &agent,
        json!({"Node": "ext-1", "Address": "192.0.2.10", "NodeMeta": {"rack": "r1"},
               "TaggedAddresses": {"wan": "203.0.113.10"},
               "Checks": [{"CheckID": "ext-node", "Name": "node ok", "Status": "warning"}]}),
    )
    .await;

    let db = get(&agent, "/v1/catalog/service/ext-db").await;
    assert_eq!(field(&db, "Node"), ["ext-1"], "{db}");
    let sn = &db[0];
    assert_eq!(sn["Address"], "192.0.2.10", "{sn}");
    assert_eq!(sn["ID"], "", "external nodes registered without ID: {sn}");
    assert_eq!(sn["NodeMeta"], json!({"rack": "r1"}), "{sn}");
    assert_eq!(
        sn["TaggedAddresses"],
        json!({"wan": "203.0.113.10"}),
        "{sn}"
    );
    assert_eq!(sn["ServiceID"], "db-1", "{sn}");
    assert_eq!(sn["ServiceName"], "ext-db", "{sn}");
    assert_eq!(sn["ServiceTags"], json!(["primary"]), "{sn}");
    assert_eq!(sn["ServicePort"], 5432, "{sn}");
    assert_eq!(sn["ServiceMeta"], json!({"v": "1"}), "{sn}");
    assert_eq!(
        sn["ServiceWeights"],
        json!({"Passing": 1, "Warning": 1}),
        "default weights: {sn}"
    );
    assert_eq!(sn["Datacenter"], "dc1", "{sn}");

    let node = get(&agent, "/v1/catalog/node/ext-1").await;
    assert_eq!(node["Node"]["Node"], "ext-1", "{node}");
    assert_eq!(node["Node"]["Address"], "192.0.2.10", "{node}");
    assert_eq!(node["Node"]["Meta"], json!({"rack": "r1"}), "{node}");
    let services = node["Services"].as_object().expect("Services is a map");
    let mut ids: Vec<&String> = services.keys().collect();
    ids.sort();
    assert_eq!(ids, ["db-1", "ext-cache"], "{node}");
    assert_eq!(services["db-1"]["Service"], "ext-db", "{node}");
    assert_eq!(services["ext-cache"]["Port"], 6379, "{node}");
    assert_eq!(services["ext-cache"]["Tags"], json!([]), "{node}");

    let mut node_checks = field(&get(&agent, "/v1/health/node/ext-1").await, "CheckID")
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    node_checks.sort();
    assert_eq!(node_checks, ["db-alive", "ext-node"]);
    let svc_checks = get(&agent, "/v1/health/checks/ext-db").await;
    assert_eq!(
        field(&svc_checks, "CheckID"),
        ["db-alive"],
        "only the service's own checks: {svc_checks}"
    );
    assert_eq!(svc_checks[0]["ServiceName"], "ext-db", "{svc_checks}");
    assert_eq!(svc_checks[0]["Output"], "ok", "{svc_checks}");

    let health = get(&agent, "/v1/health/service/ext-db").await;
    let mut checks = field(&health[0]["Checks"], "CheckID");
    checks.sort();
    assert_eq!(
        checks,
        ["db-alive", "ext-node"],
        "node checks plus this service's, no other service's: {health}"
    );
    assert_eq!(
        get(&agent, "/v1/health/service/ext-db?passing").await,
        json!([]),
        "a warning node check excludes the instance from ?passing"
    );
    let names = get(&agent, "/v1/catalog/services").await;
    assert_eq!(names["ext-db"], json!(["primary"]), "{names}");
    assert_eq!(names["ext-cache"], json!([]), "{names}");

    // Service-only deregistration takes the service's checks, keeps the node.
    put_true(
        &agent,
        "/v1/catalog/deregister",
        json!({"Node": "ext-1", "ServiceID": "db-1"}),
    )
    .await;
    assert_eq!(get(&agent, "/v1/catalog/service/ext-db").await, json!([]));
    assert_eq!(
        field(&get(&agent, "/v1/health/node/ext-1").await, "CheckID"),
        ["ext-node"]
    );
    assert_eq!(
        field(&get(&agent, "/v1/catalog/service/ext-cache").await, "Node"),
        ["ext-1"]
    );
    // Check-only deregistration.
    put_true(
        &agent,
        "/v1/catalog/deregister",
        json!({"Node": "ext-1", "CheckID": "ext-node"}),
    )
    .await;
    assert_eq!(get(&agent, "/v1/health/node/ext-1").await, json!([]));
    assert_eq!(
        health_nodes(&get(&agent, "/v1/health/service/ext-cache?passing").await),
        ["ext-1"]
    );
    // Node-only deregistration removes everything on it.
    put_true(&agent, "/v1/catalog/deregister", json!({"Node": "ext-1"})).await;
    let gone = must(must(agent.http_get("/v1/catalog/node/ext-1").await).ensure_ok());
    assert_eq!(
        gone.text().trim_end(),
        "null",
        "unknown node answers 200 null"
    );
    assert_eq!(
        get(&agent, "/v1/catalog/service/ext-cache").await,
        json!([])
    );
    let nodes = get(&agent, "/v1/catalog/nodes").await;
    assert!(!field(&nodes, "Node").contains(&"ext-1"), "{nodes}");
    let names = get(&agent, "/v1/catalog/services").await;
    assert!(names.get("ext-cache").is_none(), "{names}");

    // A node registered without tagged addresses or meta shows Go's nil maps.
    catalog_register(
        &agent,
        json!({"Node": "bare", "Address": "192.0.2.11", "Service": {"Service": "bare-svc"}}),
    )
    .await;
    let bare = get(&agent, "/v1/catalog/service/bare-svc").await;
    assert_eq!(bare[0]["TaggedAddresses"], Value::Null, "{bare}");
    assert_eq!(bare[0]["NodeMeta"], Value::Null, "{bare}");
    assert_eq!(
        bare[0]["ServiceID"], "bare-svc",
        "ID defaults to the name: {bare}"
    );
    assert_eq!(bare[0]["ServicePort"], 0, "{bare}");
    let bare_node = get(&agent, "/v1/catalog/node/bare").await;
    assert_eq!(bare_node["Node"]["Meta"], Value::Null, "{bare_node}");
    assert!(
        bare_node["Services"]["bare-svc"].get("Port").is_none(),
        "NodeService omits Port 0 (§16.2): {bare_node}"
    );

    let unknown = must(must(agent.http_get("/v1/catalog/node/never-seen").await).ensure_ok());
    assert_eq!(unknown.text().trim_end(), "null");
    assert!(
        unknown.index().is_some_and(|i| i >= 1),
        "{:?}",
        unknown.headers
    );

    // Validation.
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/catalog/register",
        r#"{"Address": "192.0.2.1"}"#,
    )
    .await;
    assert_eq!((code, text.as_str()), (400, "Must provide node"));
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/catalog/register",
        r#"{"Node": "n"}"#,
    )
    .await;
    assert_eq!((code, text.as_str()), (400, "Must provide address"));
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/catalog/register",
        r#"{"Node": "n", "Address": "192.0.2.1", "Service": {"ID": "x", "Name": "agent-style"}}"#,
    )
    .await;
    assert_ne!(
        code, 200,
        "the catalog's service name field is Service, not Name: {text}"
    );
    let (code, text) = status_text(
        &agent,
        Method::PUT,
        "/v1/catalog/deregister",
        r#"{"ServiceID": "x"}"#,
    )
    .await;
    assert_eq!((code, text.as_str()), (400, "Must provide node"));
}

#[tokio::test]
async fn catalog_lists_are_sorted_and_filter_by_node_meta() {
    let agent = dev("catalog-lists").await;
    for (node, rack, zone) in [
        ("zeta", "r1", "a"),
        ("alpha", "r2", "a"),
        ("mid", "r1", "b"),
    ] {
        catalog_register(
            &agent,
            json!({"Node": node, "Address": "192.0.2.1", "NodeMeta": {"rack": rack, "zone": zone},
                   "Service": {"Service": "api", "ID": format!("api-{node}"), "Port": 80}}),
        )
        .await;
    }
    let nodes = get(&agent, "/v1/catalog/nodes").await;
    let names = field(&nodes, "Node");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "nodes sorted by name");
    for n in ["alpha", "mid", "zeta", "catalog-lists"] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }

    let r1 = get(&agent, "/v1/catalog/nodes?node-meta=rack:r1").await;
    assert_eq!(field(&r1, "Node"), ["mid", "zeta"], "{r1}");
    let r1a = get(
        &agent,
        "/v1/catalog/nodes?node-meta=rack:r1&node-meta=zone:a",
    )
    .await;
    assert_eq!(
        field(&r1a, "Node"),
        ["zeta"],
        "node-meta pairs are ANDed: {r1a}"
    );
    let api_r2 = get(&agent, "/v1/catalog/service/api?node-meta=rack:r2").await;
    assert_eq!(field(&api_r2, "Node"), ["alpha"], "{api_r2}");
    let health_r1 = get(&agent, "/v1/health/service/api?node-meta=rack:r1").await;
    assert_eq!(health_nodes(&health_r1), ["mid", "zeta"], "{health_r1}");
    let api = get(&agent, "/v1/catalog/service/api").await;
    assert_eq!(
        field(&api, "Node"),
        ["alpha", "mid", "zeta"],
        "instances ordered by node: {api}"
    );

    let services = get(&agent, "/v1/catalog/services").await;
    assert_eq!(services["consul"], json!([]), "{services}");
    assert_eq!(services["api"], json!([]), "{services}");
    let by_meta = get(&agent, "/v1/catalog/services?node-meta=rack:r2").await;
    assert_eq!(
        by_meta,
        json!({"api": []}),
        "consul runs on a node without rack"
    );

    // The server's own `consul` service.
    let consul = get(&agent, "/v1/catalog/service/consul").await;
    assert_eq!(field(&consul, "Node"), ["catalog-lists"], "{consul}");
    assert_eq!(consul[0]["ServiceID"], "consul", "{consul}");
    assert_eq!(
        consul[0]["ServicePort"],
        agent.ports().server,
        "consul's port is the server port: {consul}"
    );
    assert!(
        consul[0]["ServiceMeta"].get("raft_version").is_some()
            && consul[0]["ServiceMeta"].get("version").is_some(),
        "{consul}"
    );
    let serf = get(&agent, "/v1/health/node/catalog-lists").await;
    let serf = serf
        .as_array()
        .and_then(|a| a.iter().find(|c| c["CheckID"] == "serfHealth"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(serf["Name"], "Serf Health Status", "{serf}");
    assert_eq!(serf["Status"], "passing", "{serf}");
    assert_eq!(serf["Output"], "Agent alive and reachable", "{serf}");
    assert_eq!(serf["ServiceID"], "", "{serf}");
}

#[tokio::test]
async fn tag_and_expression_filters() {
    let agent = dev("catalog-filter").await;
    for (node, tags, rack, port) in [
        ("n1", json!(["Prod", "v1"]), "r1", 1),
        ("n2", json!(["prod"]), "r2", 2),
        ("n3", json!(["v1"]), "r3", 3),
    ] {
        catalog_register(
            &agent,
            json!({"Node": node, "Address": "192.0.2.1", "NodeMeta": {"rack": rack},
                   "Service": {"Service": "web", "Tags": tags, "Port": port}}),
        )
        .await;
    }
    let cases: [(&str, &[&str]); 5] = [
        ("tag=prod", &["n1", "n2"]),
        ("tag=PROD", &["n1", "n2"]),
        ("tag=prod&tag=v1", &["n1"]),
        ("tag=V1&tag=pRod", &["n1"]),
        ("tag=none", &[]),
    ];
    for (query, want) in cases {
        let c = get(&agent, &format!("/v1/catalog/service/web?{query}")).await;
        assert_eq!(field(&c, "Node"), want, "catalog ?{query}: {c}");
        let h = get(&agent, &format!("/v1/health/service/web?{query}")).await;
        assert_eq!(health_nodes(&h), want, "health ?{query}: {h}");
    }

    let c = get(
        &agent,
        "/v1/catalog/service/web?filter=NodeMeta.rack%20%3D%3D%20%22r2%22",
    )
    .await;
    assert_eq!(field(&c, "Node"), ["n2"], "{c}");
    let c = get(
        &agent,
        "/v1/catalog/service/web?filter=ServicePort%20%21%3D%201%20and%20ServiceTags%20contains%20%22v1%22",
    )
    .await;
    assert_eq!(field(&c, "Node"), ["n3"], "{c}");
    let h = get(
        &agent,
        "/v1/health/service/web?filter=Node.Meta.rack%20%3D%3D%20%22r1%22",
    )
    .await;
    assert_eq!(health_nodes(&h), ["n1"], "{h}");
    let h = get(
        &agent,
        "/v1/health/service/web?filter=Service.Port%20%3D%3D%203",
    )
    .await;
    assert_eq!(health_nodes(&h), ["n3"], "{h}");
    let s = get(
        &agent,
        "/v1/catalog/services?filter=ServiceTags%20contains%20%22v1%22",
    )
    .await;
    assert_eq!(
        s,
        json!({"web": ["Prod", "v1"]}),
        "filter applied per instance before aggregating"
    );
    let n = get(
        &agent,
        "/v1/catalog/nodes?filter=Meta.rack%20%3D%3D%20%22r3%22",
    )
    .await;
    assert_eq!(field(&n, "Node"), ["n3"], "{n}");
    let node = get(&agent, "/v1/catalog/node/n1?filter=Port%20%3D%3D%209").await;
    assert_eq!(
        node["Services"],
        json!({}),
        "catalog/node filters its services: {node}"
    );

    for path in [
        "/v1/catalog/service/web?filter=ServicePort%20%3D%3D",
        "/v1/health/service/web?filter=%28Service.Port",
        "/v1/catalog/services?filter=%3D%3D%20x",
        "/v1/catalog/nodes?filter=Meta.rack%20%3D%3D",
        "/v1/health/state/any?filter=Status%20%3D%3D",
    ] {
        let (code, text) = status_text(&agent, Method::GET, path, "").await;
        assert_eq!(code, 400, "{path}: {text}");
        assert!(!text.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn datacenter_parameter_and_pretty_output() {
    let agent = must(Agent::start_dev_with_args("catalog-dc", &["-datacenter=east"]).await);
    assert_eq!(
        get(&agent, "/v1/catalog/datacenters").await,
        json!(["east"])
    );
    for path in [
        "/v1/catalog/services?dc=east",
        "/v1/catalog/nodes?dc=east",
        "/v1/catalog/service/consul?dc=east",
        "/v1/health/service/consul?dc=east",
        "/v1/health/state/any?dc=east",
        "/v1/kv/?keys&dc=east",
        "/v1/catalog/services?dc=",
    ] {
        must(must(agent.http_get(path).await).ensure_ok());
    }
    for (method, path, body) in [
        (Method::GET, "/v1/catalog/services?dc=west", ""),
        (Method::GET, "/v1/catalog/nodes?dc=west", ""),
        (Method::GET, "/v1/catalog/service/consul?dc=west", ""),
        (Method::GET, "/v1/health/service/consul?dc=west", ""),
        (Method::GET, "/v1/kv/a?dc=west", ""),
        (Method::PUT, "/v1/kv/a?dc=west", "v"),
        (
            Method::PUT,
            "/v1/catalog/register?dc=west",
            r#"{"Node": "n", "Address": "192.0.2.1"}"#,
        ),
        (
            Method::PUT,
            "/v1/catalog/register",
            r#"{"Node": "n", "Address": "192.0.2.1", "Datacenter": "west"}"#,
        ),
    ] {
        let (code, text) = status_text(&agent, method.clone(), path, body).await;
        assert_eq!(
            (code, text.as_str()),
            (500, NO_PATH_TO_DC),
            "{method} {path}"
        );
    }
    assert_eq!(
        must(agent.http_get("/v1/kv/a").await).status,
        404,
        "the refused writes stored nothing"
    );
    let node = must(agent.http_get("/v1/catalog/node/n").await);
    assert_eq!(node.text().trim_end(), "null");

    // A -dev agent indents every answer, as Consul's does.
    let plain = must(must(agent.http_get("/v1/catalog/services").await).ensure_ok());
    assert_eq!(
        plain.text(),
        "{\n    \"consul\": []\n}\n",
        "-dev answers are pretty"
    );
}

#[tokio::test]
async fn pretty_parameter_indents_four_spaces_with_a_trailing_newline() {
    let agent = must(Agent::start_with_config(json!({"node_name": "catalog-pretty"})).await);
    let reply = must(must(agent.http_get("/v1/catalog/services?pretty").await).ensure_ok());
    assert_eq!(reply.text(), "{\n    \"consul\": []\n}\n");
    let compact = must(must(agent.http_get("/v1/catalog/services").await).ensure_ok());
    assert_eq!(
        compact.text(),
        r#"{"consul":[]}"#,
        "no ?pretty, no -dev: compact"
    );
    let pretty = must(must(agent.http_get("/v1/catalog/nodes?pretty").await).ensure_ok());
    let text = pretty.text();
    assert!(text.ends_with("]\n"), "trailing newline: {text:?}");
    assert!(text.starts_with("[\n    {\n        \"ID\""), "{text}");
    let compact = must(must(agent.http_get("/v1/catalog/nodes").await).ensure_ok());
    assert!(!compact.text().contains('\n'), "{}", compact.text());
    assert_eq!(must(pretty.json()), must(compact.json()));
    let me = must(must(agent.http_get("/v1/agent/self?pretty").await).ensure_ok());
    assert!(
        me.text().starts_with("{\n    \"Config\": {\n        \""),
        "{}",
        me.text()
    );
    assert!(me.text().ends_with("}\n"));
    let put = must(must(agent.http_put("/v1/kv/j?pretty", r#"{"a":1}"#).await).ensure_ok());
    assert_eq!(put.text(), "true\n");
    let raw = must(must(agent.http_get("/v1/kv/j?raw&pretty").await).ensure_ok());
    assert_eq!(raw.text(), r#"{"a":1}"#, "?raw is never reformatted");
}

#[tokio::test]
async fn health_state_node_and_check_endpoints() {
    let agent = dev("health-state").await;
    catalog_register(
        &agent,
        json!({"Node": "ext", "Address": "192.0.2.5", "NodeMeta": {"rack": "r1"},
        "Service": {"Service": "svc", "Port": 1},
        "Checks": [
            {"CheckID": "c-pass", "Name": "p", "Status": "passing", "ServiceID": "svc"},
            {"CheckID": "c-warn", "Name": "w", "Status": "warning"},
            {"CheckID": "c-crit", "Name": "c", "Status": "critical", "ServiceID": "svc"}
        ]}),
    )
    .await;
    let ids = |v: &Value| {
        let mut ids: Vec<String> = field(v, "CheckID").into_iter().map(str::to_owned).collect();
        ids.sort();
        ids
    };
    let passing = get(&agent, "/v1/health/state/passing").await;
    assert_eq!(ids(&passing), ["c-pass", "serfHealth"], "{passing}");
    assert_eq!(
        ids(&get(&agent, "/v1/health/state/warning").await),
        ["c-warn"]
    );
    assert_eq!(
        ids(&get(&agent, "/v1/health/state/critical").await),
        ["c-crit"]
    );
    assert_eq!(
        ids(&get(&agent, "/v1/health/state/any").await),
        ["c-crit", "c-pass", "c-warn", "serfHealth"]
    );
    assert_eq!(
        ids(&get(&agent, "/v1/health/state/any?node-meta=rack:r1").await),
        ["c-crit", "c-pass", "c-warn"]
    );
    assert_eq!(
        ids(&get(
            &agent,
            "/v1/health/state/any?filter=Status%20%3D%3D%20%22warning%22"
        )
        .await),
        ["c-warn"]
    );
    let (code, text) = status_text(&agent, Method::GET, "/v1/health/state/bogus", "").await;
    assert_eq!(code, 400, "{text}");
    let (code, text) = status_text(&agent, Method::GET, "/v1/health/state/", "").await;
    assert_eq!((code, text.as_str()), (400, "Missing check state"));

    assert_eq!(
        ids(&get(&agent, "/v1/health/node/ext").await),
        ["c-crit", "c-pass", "c-warn"]
    );
    assert_eq!(get(&agent, "/v1/health/node/nobody").await, json!([]));
    let (code, text) = status_text(&agent, Method::GET, "/v1/health/node/", "").await;
    assert_eq!((code, text.as_str()), (400, "Missing node name"));
    let (code, text) = status_text(&agent, Method::GET, "/v1/health/service/", "").await;
    assert_eq!((code, text.as_str()), (400, "Missing service name"));

    assert_eq!(
        ids(&get(&agent, "/v1/health/checks/svc").await),
        ["c-crit", "c-pass"],
        "service checks only"
    );
    assert_eq!(get(&agent, "/v1/health/checks/nothing").await, json!([]));
    assert_eq!(
        get(&agent, "/v1/health/checks/svc?node-meta=rack:r9").await,
        json!([])
    );
    assert_eq!(get(&agent, "/v1/health/service/nothing").await, json!([]));
    assert_eq!(get(&agent, "/v1/catalog/service/nothing").await, json!([]));

    // HealthCheck shape (§16.4).
    let state = get(&agent, "/v1/health/state/warning").await;
    let c = &state[0];
    for k in [
        "Node",
        "CheckID",
        "Name",
        "Status",
        "Notes",
        "Output",
        "ServiceID",
        "ServiceName",
        "ServiceTags",
        "Type",
        "Definition",
        "CreateIndex",
        "ModifyIndex",
    ] {
        assert!(c.get(k).is_some(), "HealthCheck lacks {k}: {c}");
    }
    assert_eq!(c["ServiceTags"], json!([]), "{c}");
    assert_eq!(c["Node"], "ext", "{c}");
}
