//! Commands that act on the local agent: `reload`, `leave`, `join`, `force-leave`, `info`
//! and `monitor` (compat §15.2, §14.4). Each is one or two requests; the texts are Consul's.

use super::flags::FlagSet;
use super::ui::Ui;
use super::{connect, go_list, http_flags, parse_flags};
use serde_json::Value;

const RELOAD_HELP: &str = "
Usage: tribune reload [options]

  Causes the agent to reload configurations. This can be used instead
  of sending the SIGHUP signal to the agent.
";

const LEAVE_HELP: &str = "
Usage: tribune leave [options]

  Causes the agent to gracefully leave the cluster and shutdown.
";

const JOIN_HELP: &str = "
Usage: tribune join [options] address ...

  Tells a running agent (with \"tribune agent\") to join the cluster
  by specifying at least one existing member.
";

const FORCE_LEAVE_HELP: &str = "
Usage: tribune force-leave [options] name

  Forces a member of the cluster to enter the \"left\" state. Note
  that if the member is still actually alive, it will eventually rejoin
  the cluster. This command is most useful for cleaning out \"failed\" nodes
  that are never coming back. If you do not force leave a failed node,
  it will be reaped after 72 hours.
";

const INFO_HELP: &str = "
Usage: tribune info [options]

  Provides debugging information for operators.
";

const MONITOR_HELP: &str = "
Usage: tribune monitor [options]

  Shows recent log messages of an agent, and attaches to the agent,
  outputting log messages as they occur in real time. The monitor lets you
  listen for log levels that may be filtered out of the agent. For
  example your agent may only be logging at INFO level, but with the monitor
  you can see the DEBUG level logs.
";

fn reload_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
}

fn leave_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
}

fn join_flags() -> FlagSet {
    http_flags::add(FlagSet::new()).bool("wan", "Joins a server to another server in the WAN pool.")
}

fn force_leave_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .bool("prune", "Remove agent forcibly from list of members")
        .bool("wan", "Exclusively leave the agent from the WAN serf pool.")
}

fn info_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
}

fn monitor_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .string("log-level", "string", "Log level of the agent.")
        .bool("log-json", "Output logs in JSON format.")
}

pub(super) fn reload_help() -> String {
    reload_flags().usage(RELOAD_HELP)
}
pub(super) fn leave_help() -> String {
    leave_flags().usage(LEAVE_HELP)
}
pub(super) fn join_help() -> String {
    join_flags().usage(JOIN_HELP)
}
pub(super) fn force_leave_help() -> String {
    force_leave_flags().usage(FORCE_LEAVE_HELP)
}
pub(super) fn info_help() -> String {
    info_flags().usage(INFO_HELP)
}
pub(super) fn monitor_help() -> String {
    monitor_flags().usage(MONITOR_HELP)
}

/// `tribune reload` (the seed's `ExecReload`).
pub(super) async fn reload(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = reload_flags();
    let p = match parse_flags(&fs, RELOAD_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    match client.agent_reload().await {
        Ok(()) => {
            ui.output("Configuration reload triggered");
            0
        }
        Err(e) => {
            ui.error(format!("Error reloading: {e}"));
            1
        }
    }
}

pub(super) async fn leave(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = leave_flags();
    let p = match parse_flags(&fs, LEAVE_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if !p.args.is_empty() {
        ui.error(format!("Error found unexpected args: {}", go_list(&p.args)));
        ui.output(leave_help());
        return 1;
    }
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    match client.agent_leave().await {
        Ok(()) => {
            ui.output("Graceful leave complete");
            0
        }
        Err(e) => {
            ui.error(format!("Error leaving: {e}"));
            1
        }
    }
}

pub(super) async fn join(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = join_flags();
    let p = match parse_flags(&fs, JOIN_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if p.args.is_empty() {
        ui.error("At least one address to join must be specified.");
        ui.error("");
        ui.error(join_help());
        return 1;
    }
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    let wan = p.bool("wan");
    let mut joined = 0;
    for addr in &p.args {
        match client.agent_join(addr, wan).await {
            Ok(()) => joined += 1,
            Err(e) => ui.error(format!("Error joining address '{addr}': {e}")),
        }
    }
    if joined == 0 {
        ui.error("Failed to join any nodes.");
        return 1;
    }
    ui.output(format!(
        "Successfully joined cluster by contacting {joined} nodes."
    ));
    0
}

pub(super) async fn force_leave(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = force_leave_flags();
    let p = match parse_flags(&fs, FORCE_LEAVE_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let [node] = p.args.as_slice() else {
        ui.error("A single node name must be specified to force leave.");
        ui.error("");
        ui.error(force_leave_help());
        return 1;
    };
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    match client
        .agent_force_leave(node, p.bool("prune"), p.bool("wan"))
        .await
    {
        Ok(()) => 0,
        Err(e) => {
            ui.error(format!("Error force leaving: {e}"));
            1
        }
    }
}

/// `tribune info`: the `Stats` of `/v1/agent/self`, sections and keys sorted.
pub(super) async fn info(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = info_flags();
    let p = match parse_flags(&fs, INFO_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    let me = match client.agent_self().await {
        Ok(v) => v,
        Err(e) => {
            ui.error(format!("Error querying agent: {e}"));
            return 1;
        }
    };
    match render_stats(&me) {
        Ok(text) => {
            ui.output(text);
            0
        }
        Err(e) => {
            ui.error(e);
            1
        }
    }
}

/// `section:` then `\tkey = value` lines, both sorted (sorted explicitly: serde_json may
/// be built with `preserve_order`).
pub(super) fn render_stats(me: &Value) -> Result<String, String> {
    let Some(Value::Object(stats)) = me.get("Stats") else {
        return Err("Agent response did not contain 'Stats' key".to_string());
    };
    let mut sections: Vec<(&String, &Value)> = stats.iter().collect();
    sections.sort_by_key(|(k, _)| *k);
    let mut lines = Vec::new();
    for (section, values) in sections {
        lines.push(format!("{section}:"));
        let Value::Object(values) = values else {
            return Err(format!("Got invalid subkey in stats: {values}"));
        };
        let mut values: Vec<(&String, &Value)> = values.iter().collect();
        values.sort_by_key(|(k, _)| *k);
        for (k, v) in values {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            lines.push(format!("\t{k} = {v}"));
        }
    }
    Ok(lines.join("\n"))
}

/// `tribune monitor`: streams the agent's log until interrupted (exit 0) or until the agent
/// ends the stream (exit 1, as Consul).
pub(super) async fn monitor(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = monitor_flags();
    let p = match parse_flags(&fs, MONITOR_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    let mut stream = match client
        .agent_monitor(p.str_or("log-level", "INFO"), p.bool("log-json"))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            ui.error(format!("Error starting monitor: {e}"));
            return 1;
        }
    };
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return 0,
            chunk = stream.next_chunk() => match chunk {
                Ok(Some(bytes)) => ui.write_raw(&bytes),
                Ok(None) | Err(_) => break,
            },
        }
    }
    ui.output("");
    ui.output("Remote side ended the monitor! This usually means that the\nremote side has exited or crashed.");
    1
}

/// Completes on Ctrl-C. Tests never install the process-wide SIGINT handler (it would
/// outlive the test and swallow the developer's Ctrl-C).
async fn interrupted() {
    #[cfg(not(test))]
    if tokio::signal::ctrl_c().await.is_ok() {
        return;
    }
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::super::fake_agent::{reply, run_at, FakeAgent};

    #[tokio::test]
    async fn reload_and_its_failure() {
        let agent = FakeAgent::start(vec![("PUT /v1/agent/reload", reply(200, ""))]).await;
        let o = run_at(&agent, &["reload"]).await;
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "Configuration reload triggered\n")
        );
        assert_eq!(agent.one().method, "PUT");
        let bad = FakeAgent::start(vec![(
            "PUT /v1/agent/reload",
            reply(403, "Permission denied"),
        )])
        .await;
        let o = run_at(&bad, &["reload"]).await;
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (
                1,
                "Error reloading: Unexpected response code: 403 (Permission denied)\n"
            )
        );
    }

    #[tokio::test]
    async fn unreachable_agent_is_a_transport_error() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let o = super::super::fake_agent::run_cli(&["reload", "-http-addr", &addr], &[], b"").await;
        assert_eq!(o.code, 1);
        assert!(
            o.stderr
                .starts_with("Error reloading: error sending request"),
            "{}",
            o.stderr
        );
        assert!(
            o.stderr.to_lowercase().contains("connection refused"),
            "{}",
            o.stderr
        );
    }

    #[tokio::test]
    async fn leave_join_force_leave() {
        let agent = FakeAgent::start(vec![
            ("PUT /v1/agent/leave", reply(200, "")),
            ("PUT /v1/agent/join/10.0.0.1:8301", reply(200, "")),
            (
                "PUT /v1/agent/join/10.0.0.9",
                reply(500, "dial tcp: i/o timeout"),
            ),
            ("PUT /v1/agent/force-leave/server3", reply(200, "")),
        ])
        .await;
        let o = run_at(&agent, &["leave"]).await;
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "Graceful leave complete\n")
        );
        let o = run_at(&agent, &["join", "-wan", "10.0.0.1:8301", "10.0.0.9"]).await;
        assert_eq!(o.code, 0);
        assert_eq!(
            o.stdout,
            "Successfully joined cluster by contacting 1 nodes.\n"
        );
        assert_eq!(
            o.stderr,
            "Error joining address '10.0.0.9': Unexpected response code: 500 (dial tcp: i/o timeout)\n"
        );
        assert_eq!(agent.seen()[1].query, "wan=1");
        let o = run_at(&agent, &["join", "10.0.0.9"]).await;
        assert_eq!(o.code, 1);
        assert!(o.stderr.ends_with("Failed to join any nodes.\n"));
        let o = run_at(&agent, &["force-leave", "-prune", "server3"]).await;
        assert_eq!((o.code, o.stdout.as_str(), o.stderr.as_str()), (0, "", ""));
        assert_eq!(agent.seen().last().unwrap().query, "prune=1");
        let o = run_at(&agent, &["force-leave"]).await;
        assert_eq!(o.code, 1);
        assert!(o
            .stderr
            .starts_with("A single node name must be specified to force leave.\n"));
        let o = run_at(&agent, &["leave", "x"]).await;
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (1, "Error found unexpected args: [x]\n")
        );
    }

    #[tokio::test]
    async fn info_prints_sorted_stats() {
        let me = r#"{"Config":{"NodeName":"server1"},"Stats":{
            "serf_lan":{"members":"3","encrypted":"true"},
            "agent":{"checks":"0","services":"1"},
            "consul":{"leader":"true","acl":"enabled"}}}"#;
        let agent = FakeAgent::start(vec![("GET /v1/agent/self", reply(200, me))]).await;
        let o = run_at(&agent, &["info"]).await;
        assert_eq!(o.code, 0);
        assert_eq!(
            o.stdout,
            "agent:\n\tchecks = 0\n\tservices = 1\nconsul:\n\tacl = enabled\n\tleader = true\n\
             serf_lan:\n\tencrypted = true\n\tmembers = 3\n"
        );
        let broken =
            FakeAgent::start(vec![("GET /v1/agent/self", reply(403, "ACL not found"))]).await;
        let o = run_at(&broken, &["info"]).await;
        assert_eq!(
            o.stderr,
            "Error querying agent: Unexpected response code: 403 (ACL not found)\n"
        );
    }

    #[tokio::test]
    async fn monitor_streams_until_the_agent_ends_it() {
        let log = "2024-01-01T00:00:00.000Z [INFO]  agent: Synced node info\n";
        let agent = FakeAgent::start(vec![("GET /v1/agent/monitor", reply(200, log))]).await;
        let o = run_at(&agent, &["monitor", "-log-level=debug", "-log-json"]).await;
        assert_eq!(o.code, 1);
        assert_eq!(
            o.stdout,
            format!("{log}\nRemote side ended the monitor! This usually means that the\nremote side has exited or crashed.\n")
        );
        assert_eq!(agent.one().query, "loglevel=debug&logjson=true");
        let o = run_at(&agent, &["monitor"]).await;
        assert_eq!(agent.seen()[1].query, "loglevel=INFO");
        assert_eq!(o.code, 1);
    }
}
