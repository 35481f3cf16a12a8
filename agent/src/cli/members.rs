//! `tribune members`: the gossip pool as Consul prints it (compat §15.1), the table the seed
//! tutorial shows after `consul members --token=…`.

use super::flags::FlagSet;
use super::table::columnize;
use super::ui::Ui;
use super::{connect, http_flags, parse_flags};
use std::net::IpAddr;
use tribune_api::types::AgentMember;

/// Consul's `api.AllSegments`: list members of every network segment.
const ALL_SEGMENTS: &str = "_all";

const HELP: &str = "
Usage: tribune members [options]

  Outputs the members of a running agent's gossip pool.
";

fn flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .bool("detailed", "Provides detailed information about nodes.")
        .bool("wan", "If the agent is in server mode, this can be used to return the other peers in the WAN pool.")
        .string(
            "status",
            "string",
            "If provided, output is filtered to only nodes matching the regular expression for status.",
        )
        .string("segment", "string", "(Enterprise-only) If provided, output is filtered to only nodes in the given segment.")
}

pub(super) fn help() -> String {
    flags().usage(HELP)
}

pub(super) async fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = flags();
    let p = match parse_flags(&fs, HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let status_re = match regex::Regex::new(p.str_or("status", ".*")) {
        Ok(re) => re,
        Err(e) => {
            ui.error(format!("Failed to compile status regexp: {e}"));
            return 1;
        }
    };
    let segment = p.str_or("segment", ALL_SEGMENTS).to_string();
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    let members = match client.agent_members(p.bool("wan"), Some(&segment)).await {
        Ok(m) => m,
        Err(e) => {
            ui.error(format!("Error retrieving members: {e}"));
            return 1;
        }
    };
    match render(members, &segment, &status_re, p.bool("detailed")) {
        Some(table) => {
            ui.output(table);
            0
        }
        // Nothing matched: no output, exit 2 (scripts test for it).
        None => 2,
    }
}

/// The table for `members`, or `None` when no member passes the status filter.
pub(super) fn render(
    mut members: Vec<AgentMember>,
    segment: &str,
    status_re: &regex::Regex,
    detailed: bool,
) -> Option<String> {
    for m in &mut members {
        // As Consul does: fill in the displayed segment in the tags themselves, so the
        // detailed view shows it too.
        if m.tags.get("segment").is_none_or(String::is_empty) {
            m.tags.insert("segment".into(), "<default>".into());
        }
        if segment == ALL_SEGMENTS && m.tags.get("role").map(String::as_str) == Some("consul") {
            m.tags.insert("segment".into(), "<all>".into());
        }
    }
    members.retain(|m| status_re.is_match(status_word(m.status)));
    if members.is_empty() {
        return None;
    }
    members.sort_by(|a, b| {
        a.tags
            .get("segment")
            .cmp(&b.tags.get("segment"))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(members.len() + 1);
    if detailed {
        rows.push(cells(&["Node", "Address", "Status", "Tags"]));
        for m in &members {
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            rows.push(vec![
                m.name.clone(),
                address(m),
                status_word(m.status).into(),
                tags.join(","),
            ]);
        }
    } else {
        rows.push(cells(&[
            "Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Segment",
        ]));
        for m in &members {
            rows.push(standard_row(m));
        }
    }
    Some(columnize(&rows))
}

fn cells(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn standard_row(m: &AgentMember) -> Vec<String> {
    let tag = |k: &str| m.tags.get(k).cloned().unwrap_or_default();
    let status = status_word(m.status).to_string();
    let kind = match tag("role").as_str() {
        "consul" => "server",
        "node" => "client",
        _ => {
            return vec![
                m.name.clone(),
                address(m),
                status,
                "unknown".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]
        }
    };
    let build = match tag("build") {
        b if b.is_empty() => "< 0.3".to_string(),
        b => b.split(':').next().unwrap_or_default().to_string(),
    };
    vec![
        m.name.clone(),
        address(m),
        status,
        kind.into(),
        build,
        tag("vsn"),
        tag("dc"),
        tag("segment"),
    ]
}

/// Serf's `MemberStatus` names.
fn status_word(status: i64) -> &'static str {
    match status {
        0 => "none",
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "unknown",
    }
}

/// Go's `net.TCPAddr{IP, Port}.String()`: `ip:port`, `[v6]:port`, `:port` when the address
/// does not parse.
fn address(m: &AgentMember) -> String {
    match m.addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => format!("{ip}:{}", m.port),
        Ok(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", m.port),
            None => format!("[{ip}]:{}", m.port),
        },
        Err(_) => format!(":{}", m.port),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake_agent::{reply, run_at, run_cli, FakeAgent};
    use super::*;

    /// Three servers and a client as the agent returns them (unsorted).
    const SAMPLE: &str = r#"[
      {"Name":"server2","Addr":"192.168.1.154","Port":8301,"Status":1,
       "Tags":{"build":"1.7.7:abc","dc":"prometheus","role":"consul","vsn":"2","segment":""},
       "ProtocolMin":1,"ProtocolMax":5,"ProtocolCur":2,"DelegateMin":2,"DelegateMax":5,"DelegateCur":4},
      {"Name":"web1","Addr":"192.168.1.151","Port":8301,"Status":4,
       "Tags":{"build":"1.7.7:abc","dc":"prometheus","role":"node","vsn":"2"}},
      {"Name":"server1","Addr":"192.168.1.153","Port":8301,"Status":1,
       "Tags":{"build":"1.7.7:abc","dc":"prometheus","role":"consul","vsn":"2"}},
      {"Name":"server3","Addr":"192.168.1.155","Port":8301,"Status":1,
       "Tags":{"build":"1.7.7:abc","dc":"prometheus","role":"consul","vsn":"2"}}
    ]"#;

    fn sample() -> Vec<AgentMember> {
        serde_json::from_str(SAMPLE).unwrap()
    }

    fn any() -> regex::Regex {
        regex::Regex::new(".*").unwrap()
    }

    #[test]
    fn rows_like_the_seed() {
        let out = render(sample(), ALL_SEGMENTS, &any(), false).unwrap();
        assert_eq!(
            out,
            "Node     Address             Status  Type    Build  Protocol  DC          Segment\n\
             server1  192.168.1.153:8301  alive   server  1.7.7  2         prometheus  <all>\n\
             server2  192.168.1.154:8301  alive   server  1.7.7  2         prometheus  <all>\n\
             server3  192.168.1.155:8301  alive   server  1.7.7  2         prometheus  <all>\n\
             web1     192.168.1.151:8301  failed  client  1.7.7  2         prometheus  <default>"
        );
    }

    #[test]
    fn detailed_and_filtered() {
        let re = regex::Regex::new("fail").unwrap();
        let out = render(sample(), ALL_SEGMENTS, &re, true).unwrap();
        assert_eq!(
            out,
            "Node  Address             Status  Tags\n\
             web1  192.168.1.151:8301  failed  build=1.7.7:abc,dc=prometheus,role=node,segment=<default>,vsn=2"
        );
        assert_eq!(
            render(
                sample(),
                ALL_SEGMENTS,
                &regex::Regex::new("^left$").unwrap(),
                false
            ),
            None
        );
    }

    #[test]
    fn odd_members() {
        let m = AgentMember {
            name: "x".into(),
            addr: "::1".into(),
            port: 8301,
            status: 3,
            ..Default::default()
        };
        assert_eq!(address(&m), "[::1]:8301");
        assert_eq!(standard_row(&m)[3], "unknown");
        let out = render(vec![m], "", &any(), false).unwrap();
        assert_eq!(
            out.lines().nth(1),
            Some("x     [::1]:8301  left    unknown")
        );
    }

    #[tokio::test]
    async fn members_against_an_agent() {
        let agent = FakeAgent::start(vec![("GET /v1/agent/members", reply(200, SAMPLE))]).await;
        let o = run_cli(
            &[
                "members",
                "--token=08ad8862-f702-eb26-0276-d8255b11267e",
                "-wan",
            ],
            &[
                ("CONSUL_HTTP_ADDR", &agent.addr),
                ("CONSUL_HTTP_TOKEN", "env-token"),
            ],
            b"",
        )
        .await;
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stdout.starts_with("Node     Address "));
        assert_eq!(o.stdout.lines().count(), 5);
        let req = agent.one();
        assert_eq!(req.query, "segment=_all&wan=1");
        assert_eq!(
            req.header("X-Consul-Token"),
            Some("08ad8862-f702-eb26-0276-d8255b11267e")
        );
        assert!(!o.stdout.contains("08ad8862") && !o.stderr.contains("08ad8862"));
    }

    #[tokio::test]
    async fn no_match_exits_2_and_errors_exit_1() {
        let agent = FakeAgent::start(vec![("GET /v1/agent/members", reply(200, SAMPLE))]).await;
        let o = run_at(&agent, &["members", "-status=left"]).await;
        assert_eq!((o.code, o.stdout.as_str(), o.stderr.as_str()), (2, "", ""));

        let denied =
            FakeAgent::start(vec![("GET /v1/agent/members", reply(403, "ACL not found"))]).await;
        let o = run_at(&denied, &["members"]).await;
        assert_eq!(o.code, 1);
        assert_eq!(
            o.stderr,
            "Error retrieving members: Unexpected response code: 403 (ACL not found)\n"
        );

        let o = run_at(&agent, &["members", "-status=("]).await;
        assert_eq!(o.code, 1);
        assert!(o.stderr.starts_with("Failed to compile status regexp: "));
    }
}
