//! `tribune catalog datacenters|nodes|services` (compat §15.2), with Consul's tables and its
//! "no results" conventions (a message on stderr, exit 0, for nodes and services).

use super::flags::{FlagSet, Parsed};
use super::table::{columnize, tabwrite};
use super::ui::Ui;
use super::{connect, http_flags, parse_flags};
use std::collections::BTreeMap;
use tribune_api::client::QueryOptions;
use tribune_api::types::Node;

const DATACENTERS_HELP: &str = "
Usage: tribune catalog datacenters [options]

  Retrieves the list of all known datacenters. This datacenters are sorted in
  ascending order based on the estimated median round trip time from the servers
  in this datacenter to the servers in the other datacenters.

  To retrieve the list of datacenters:

      $ tribune catalog datacenters
";

const NODES_HELP: &str = "
Usage: tribune catalog nodes [options]

  Retrieves the list nodes registered in a given datacenter. By default, the
  datacenter of the local agent is queried.

  To retrieve the list of nodes:

      $ tribune catalog nodes

  To print detailed information including full node IDs, tagged addresses, and
  metadata information:

      $ tribune catalog nodes -detailed

  To list nodes which are running a particular service:

      $ tribune catalog nodes -service=web
";

const SERVICES_HELP: &str = "
Usage: tribune catalog services [options]

  Retrieves the list services registered in a given datacenter. By default, the
  datacenter of the local agent is queried.

  To retrieve the list of services:

      $ tribune catalog services

  To include the services' tags in the output:

      $ tribune catalog services -tags

  To list services which run on a particular node:

      $ tribune catalog services -node=web
";

fn datacenters_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
}

fn nodes_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .bool("detailed", "Output detailed information about the nodes including their addresses and metadata.")
        .string("near", "node", "Node name to sort the node list in ascending order based on estimated round-trip time from that node. Passing \"_agent\" will use this agent's node for sorting.")
        .map("node-meta", "Metadata to filter nodes with the given `key=value` pairs. This flag may be specified multiple times to filter on multiple sources of metadata.")
        .string("service", "id or name", "Service id or name to filter nodes. Only nodes which are providing the given service will be returned.")
        .string("filter", "filter", "Filter to use with the request")
}

fn services_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .string("node", "node_name", "Node `id or name` for which to list services.")
        .map("node-meta", "Metadata to filter nodes with the given `key=value` pairs. If specified, only services running on nodes matching the given metadata will be returned. This flag may be specified multiple times to filter on multiple sources of metadata.")
        .bool("tags", "Display each service's tags as a comma-separated list beside each service entry.")
}

pub(super) fn datacenters_help() -> String {
    datacenters_flags().usage(DATACENTERS_HELP)
}

pub(super) fn nodes_help() -> String {
    nodes_flags().usage(NODES_HELP)
}

pub(super) fn services_help() -> String {
    services_flags().usage(SERVICES_HELP)
}

/// Consul's check for commands that take no positional arguments.
fn no_args(p: &Parsed, ui: &mut Ui<'_>) -> bool {
    if p.args.is_empty() {
        return true;
    }
    ui.error(format!(
        "Too many arguments (expected 0, got {})",
        p.args.len()
    ));
    false
}

fn query_options(p: &Parsed) -> QueryOptions {
    QueryOptions {
        near: p.str("near").map(str::to_string),
        filter: p.str("filter").map(str::to_string),
        node_meta: p.map("node-meta").into_iter().collect(),
        ..http_flags::query_options(p)
    }
}

pub(super) async fn datacenters(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = datacenters_flags();
    let p = match parse_flags(&fs, DATACENTERS_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if !no_args(&p, ui) {
        return 1;
    }
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    let dcs = match client.catalog_datacenters().await {
        Ok(d) => d,
        Err(e) => {
            ui.error(format!("Error listing datacenters: {e}"));
            return 1;
        }
    };
    if dcs.is_empty() {
        ui.error("No datacenters found");
        return 1;
    }
    for dc in dcs {
        ui.output(dc);
    }
    0
}

pub(super) async fn nodes(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = nodes_flags();
    let p = match parse_flags(&fs, NODES_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if !no_args(&p, ui) {
        return 1;
    }
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    let opts = query_options(&p);
    let nodes: Vec<Node> = match p.str("service").filter(|s| !s.is_empty()) {
        Some(service) => match client.catalog_service(service, None, &opts).await {
            Ok(instances) => instances
                .into_iter()
                .map(|s| Node {
                    id: s.id,
                    node: s.node,
                    address: s.address,
                    datacenter: s.datacenter,
                    tagged_addresses: s.tagged_addresses,
                    meta: s.node_meta,
                    create_index: s.create_index,
                    modify_index: s.modify_index,
                })
                .collect(),
            Err(e) => {
                ui.error(format!("Error listing nodes for service: {e}"));
                return 1;
            }
        },
        None => match client.catalog_nodes(&opts).await {
            Ok(n) => n,
            Err(e) => {
                ui.error(format!("Error listing nodes: {e}"));
                return 1;
            }
        },
    };
    if nodes.is_empty() {
        ui.error("No nodes match the given query - try expanding your search.");
        return 0;
    }
    ui.output(render_nodes(&nodes, p.bool("detailed")));
    0
}

/// `Node  ID  Address  DC` (ID up to its first `-`), or with `-detailed` the full ID plus
/// `TaggedAddresses` and `Meta` as sorted `k=v, k=v`.
pub(super) fn render_nodes(nodes: &[Node], detailed: bool) -> String {
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(nodes.len() + 1);
    if detailed {
        rows.push(
            ["Node", "ID", "Address", "DC", "TaggedAddresses", "Meta"]
                .map(String::from)
                .to_vec(),
        );
        for n in nodes {
            rows.push(vec![
                n.node.clone(),
                n.id.clone(),
                n.address.clone(),
                n.datacenter.clone(),
                map_to_kv(n.tagged_addresses.as_ref()),
                map_to_kv(n.meta.as_ref()),
            ]);
        }
    } else {
        rows.push(["Node", "ID", "Address", "DC"].map(String::from).to_vec());
        for n in nodes {
            let id = match n.id.find('-') {
                Some(i) if i > 0 => &n.id[..i],
                _ => n.id.as_str(),
            };
            rows.push(vec![
                n.node.clone(),
                id.to_string(),
                n.address.clone(),
                n.datacenter.clone(),
            ]);
        }
    }
    columnize(&rows)
}

fn map_to_kv(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

pub(super) async fn services(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = services_flags();
    let p = match parse_flags(&fs, SERVICES_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if !no_args(&p, ui) {
        return 1;
    }
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    let opts = query_options(&p);
    let services: BTreeMap<String, Vec<String>> = match p.str("node").filter(|n| !n.is_empty()) {
        Some(node) => match client.catalog_node(node, &opts).await {
            Ok(Some(n)) => {
                let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for s in n.services.into_values() {
                    m.entry(s.service).or_default().extend(s.tags);
                }
                m
            }
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                ui.error(format!("Error listing services for node: {e}"));
                return 1;
            }
        },
        None => match client.catalog_services(&opts).await {
            Ok(m) => m,
            Err(e) => {
                ui.error(format!("Error listing services: {e}"));
                return 1;
            }
        },
    };
    if services.is_empty() {
        ui.error("No services match the given query - try expanding your search.");
        return 0;
    }
    ui.output(render_services(services, p.bool("tags")));
    0
}

/// One name per line, or with `-tags` Go's tabwriter layout `name<pad>tag1,tag2` (tags
/// sorted), trimmed as Consul trims it.
pub(super) fn render_services(services: BTreeMap<String, Vec<String>>, tags: bool) -> String {
    if !tags {
        return services.into_keys().collect::<Vec<_>>().join("\n");
    }
    let mut text = String::new();
    for (name, mut t) in services {
        t.sort();
        text.push_str(&format!("{name}\t{}\n", t.join(",")));
    }
    tabwrite(&text, 6).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::super::fake_agent::{reply, run_at, FakeAgent};

    const NODES: &str = r#"[
      {"ID":"09d82408-bc4f-49e0-1111-61ef1d4842f7","Node":"server1","Address":"192.168.1.153",
       "Datacenter":"prometheus","TaggedAddresses":{"wan":"192.168.1.153","lan":"192.168.1.153"},
       "Meta":{"consul-network-segment":""},"CreateIndex":5,"ModifyIndex":6},
      {"ID":"613ccd6e-68d1-3bbd-2222-3cbc450f019d","Node":"server2","Address":"192.168.1.154",
       "Datacenter":"prometheus","TaggedAddresses":null,"Meta":null,"CreateIndex":7,"ModifyIndex":7}
    ]"#;

    #[tokio::test]
    async fn nodes_table() {
        let agent = FakeAgent::start(vec![("GET /v1/catalog/nodes", reply(200, NODES))]).await;
        let o = run_at(&agent, &["catalog", "nodes", "-stale"]).await;
        assert_eq!(o.code, 0, "{o:?}");
        assert_eq!(
            o.stdout,
            "Node     ID        Address        DC\n\
             server1  09d82408  192.168.1.153  prometheus\n\
             server2  613ccd6e  192.168.1.154  prometheus\n"
        );
        assert_eq!(agent.one().query, "stale=");
        let o = run_at(&agent, &["catalog", "nodes", "-detailed"]).await;
        assert_eq!(
            o.stdout.lines().nth(1),
            Some(
                "server1  09d82408-bc4f-49e0-1111-61ef1d4842f7  192.168.1.153  prometheus  \
                 lan=192.168.1.153, wan=192.168.1.153  consul-network-segment="
            )
        );
        let o = run_at(&agent, &["catalog", "nodes", "extra"]).await;
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (1, "Too many arguments (expected 0, got 1)\n")
        );
    }

    #[tokio::test]
    async fn nodes_for_a_service_and_empty_results() {
        let agent = FakeAgent::start(vec![
            (
                "GET /v1/catalog/service/nginx",
                reply(200, r#"[{"ID":"abc-def","Node":"server1","Address":"10.0.0.1","Datacenter":"dc1","ServiceName":"nginx"}]"#),
            ),
            ("GET /v1/catalog/service/none", reply(200, "[]")),
        ])
        .await;
        let o = run_at(
            &agent,
            &["catalog", "nodes", "-service=nginx", "-node-meta=rack=r1"],
        )
        .await;
        assert_eq!(
            o.stdout,
            "Node     ID   Address   DC\nserver1  abc  10.0.0.1  dc1\n"
        );
        assert_eq!(agent.one().query, "node-meta=rack%3Ar1");
        let o = run_at(&agent, &["catalog", "nodes", "-service=none"]).await;
        assert_eq!(o.code, 0);
        assert_eq!(
            o.stderr,
            "No nodes match the given query - try expanding your search.\n"
        );
    }

    #[tokio::test]
    async fn services_plain_tags_and_by_node() {
        let agent = FakeAgent::start(vec![
            ("GET /v1/catalog/services", reply(200, r#"{"consul":[],"nginx":["web","a"],"redis":null}"#)),
            (
                "GET /v1/catalog/node/server1",
                reply(200, r#"{"Node":{"Node":"server1"},"Services":{"n1":{"ID":"n1","Service":"nginx","Tags":["web"]},"n2":{"ID":"n2","Service":"nginx","Tags":["x"]}}}"#),
            ),
            ("GET /v1/catalog/node/ghost", reply(200, "null")),
        ])
        .await;
        let o = run_at(&agent, &["catalog", "services"]).await;
        assert_eq!(o.stdout, "consul\nnginx\nredis\n");
        let o = run_at(&agent, &["catalog", "services", "-tags"]).await;
        assert_eq!(o.stdout, "consul      \nnginx       a,web\nredis\n");
        let o = run_at(&agent, &["catalog", "services", "-node=server1", "-tags"]).await;
        assert_eq!(o.stdout, "nginx      web,x\n");
        let o = run_at(&agent, &["catalog", "services", "-node=ghost"]).await;
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (
                0,
                "No services match the given query - try expanding your search.\n"
            )
        );
    }

    #[tokio::test]
    async fn datacenters_list_and_errors() {
        let agent = FakeAgent::start(vec![(
            "GET /v1/catalog/datacenters",
            reply(200, r#"["dc1","prometheus"]"#),
        )])
        .await;
        let o = run_at(&agent, &["catalog", "datacenters", "-datacenter=dc2"]).await;
        assert_eq!((o.code, o.stdout.as_str()), (0, "dc1\nprometheus\n"));
        assert_eq!(agent.one().query, "dc=dc2");
        let broken = FakeAgent::start(vec![(
            "GET /v1/catalog/datacenters",
            reply(500, "No cluster leader"),
        )])
        .await;
        let o = run_at(&broken, &["catalog", "datacenters"]).await;
        assert_eq!(
            o.stderr,
            "Error listing datacenters: Unexpected response code: 500 (No cluster leader)\n"
        );
    }
}
