//! `tribune operator raft list-peers|remove-peer` (§9.3).

use super::flags::FlagSet;
use super::table::columnize;
use super::ui::Ui;
use super::{connect, http_flags, parse_flags};
use tribune_api::types::RaftConfiguration;

const LIST_PEERS_HELP: &str = "
Usage: tribune operator raft list-peers [options]

  Displays the current Raft peer configuration.
";

const REMOVE_PEER_HELP: &str = "
Usage: tribune operator raft remove-peer [options]

  Remove the server with given -address from the Raft configuration.

  There are rare cases where a peer may be left behind in the Raft quorum even
  though the server is no longer present and known to the cluster. This command
  can be used to remove the failed server so that it is no longer affects the Raft
  quorum. If the server still shows in the output of the \"tribune members\"
  command, it is preferable to clean up by simply running \"tribune force-leave\"
  instead of this command.
";

fn list_peers_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
}

fn remove_peer_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .string(
            "address",
            "IP:port",
            "The address to remove from the Raft configuration.",
        )
        .string("id", "id", "The ID to remove from the Raft configuration.")
}

pub(super) fn list_peers_help() -> String {
    list_peers_flags().usage(LIST_PEERS_HELP)
}

pub(super) fn remove_peer_help() -> String {
    remove_peer_flags().usage(REMOVE_PEER_HELP)
}

pub(super) async fn list_peers(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = list_peers_flags();
    let p = match parse_flags(&fs, LIST_PEERS_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    match client
        .operator_raft_configuration(&http_flags::query_options(&p))
        .await
    {
        Ok(cfg) => {
            ui.output(render_peers(&cfg));
            0
        }
        Err(e) => {
            ui.error(format!(
                "Error getting peers: Failed to retrieve raft configuration: {e}"
            ));
            1
        }
    }
}

/// `Node  ID  Address  State  Voter  RaftProtocol`.
pub(super) fn render_peers(cfg: &RaftConfiguration) -> String {
    let mut rows = vec![["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
        .map(String::from)
        .to_vec()];
    for s in &cfg.servers {
        let protocol = if s.protocol_version.is_empty() {
            "<=1".to_string()
        } else {
            s.protocol_version.clone()
        };
        let state = if s.leader { "leader" } else { "follower" };
        rows.push(vec![
            s.node.clone(),
            s.id.clone(),
            s.address.clone(),
            state.into(),
            s.voter.to_string(),
            protocol,
        ]);
    }
    columnize(&rows)
}

pub(super) async fn remove_peer(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = remove_peer_flags();
    let p = match parse_flags(&fs, REMOVE_PEER_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (address, id) = (p.str_or("address", ""), p.str_or("id", ""));
    let problem = match (address.is_empty(), id.is_empty()) {
        (true, true) => Some("an address or id is required for the peer to remove"),
        (false, false) => Some("cannot give both an address and id"),
        _ => None,
    };
    if let Some(problem) = problem {
        ui.error(format!("Error removing peer: {problem}"));
        return 1;
    }
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    let result = if address.is_empty() {
        client.operator_raft_remove_peer_by_id(id).await
    } else {
        client.operator_raft_remove_peer_by_address(address).await
    };
    match result {
        Ok(()) if address.is_empty() => {
            ui.output(format!("Removed peer with id {id:?}"));
            0
        }
        Ok(()) => {
            ui.output(format!("Removed peer with address {address:?}"));
            0
        }
        Err(e) => {
            ui.error(format!("Error removing peer: {e}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake_agent::{reply, run_at, FakeAgent};

    const CONFIG: &str = r#"{"Servers":[
      {"ID":"09d82408-bc4f-49e0-1111-61ef1d4842f7","Node":"server1","Address":"192.168.1.153:8300","Leader":true,"ProtocolVersion":"3","Voter":true,"LastIndex":10},
      {"ID":"613ccd6e-68d1-3bbd-2222-3cbc450f019d","Node":"server2","Address":"192.168.1.154:8300","Leader":false,"ProtocolVersion":"3","Voter":true,"LastIndex":10}
    ],"Index":10}"#;

    #[tokio::test]
    async fn list_peers_table() {
        let agent = FakeAgent::start(vec![(
            "GET /v1/operator/raft/configuration",
            reply(200, CONFIG),
        )])
        .await;
        let o = run_at(&agent, &["operator", "raft", "list-peers", "-stale"]).await;
        assert_eq!(o.code, 0, "{o:?}");
        assert_eq!(
            o.stdout,
            "Node     ID                                    Address             State     Voter  RaftProtocol\n\
             server1  09d82408-bc4f-49e0-1111-61ef1d4842f7  192.168.1.153:8300  leader    true   3\n\
             server2  613ccd6e-68d1-3bbd-2222-3cbc450f019d  192.168.1.154:8300  follower  true   3\n"
        );
        assert_eq!(agent.one().query, "stale=");
    }

    #[tokio::test]
    async fn remove_peer_by_id_or_address() {
        let agent = FakeAgent::start(vec![("DELETE /v1/operator/raft/peer", reply(200, ""))]).await;
        let o = run_at(&agent, &["operator", "raft", "remove-peer", "-id=abc"]).await;
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "Removed peer with id \"abc\"\n")
        );
        assert_eq!(agent.one().query, "id=abc");
        let o = run_at(
            &agent,
            &["operator", "raft", "remove-peer", "-address=10.0.0.1:8300"],
        )
        .await;
        assert_eq!(o.stdout, "Removed peer with address \"10.0.0.1:8300\"\n");
        assert_eq!(agent.seen()[1].query, "address=10.0.0.1%3A8300");
        let o = run_at(&agent, &["operator", "raft", "remove-peer"]).await;
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (
                1,
                "Error removing peer: an address or id is required for the peer to remove\n"
            )
        );
    }
}
