//! `tribune event -name=<n> [-node -service -tag] [payload]`: fires a user event (§9.1).

use super::flags::FlagSet;
use super::ui::Ui;
use super::{connect, http_flags, parse_flags};
use tribune_api::client::FireEvent;

const HELP: &str = "
Usage: tribune event [options] [payload]

  Dispatches a custom user event across a datacenter. An event must provide
  a name, but a payload is optional. Events support filtering using
  regular expressions on node name, service, and tag definitions.
";

fn flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .string("name", "string", "Name of the event.")
        .string(
            "node",
            "string",
            "Regular expression to filter on node names.",
        )
        .string(
            "service",
            "string",
            "Regular expression to filter on service instances.",
        )
        .string(
            "tag",
            "string",
            "Regular expression to filter on service tags. Must be used with -service.",
        )
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
    let name = p.str_or("name", "");
    if name.is_empty() {
        ui.error("Event name must be specified");
        ui.error("");
        ui.error(help());
        return 1;
    }
    let (node, service, tag) = (
        p.str_or("node", ""),
        p.str_or("service", ""),
        p.str_or("tag", ""),
    );
    for (what, re) in [("node", node), ("service", service), ("tag", tag)] {
        if !re.is_empty() {
            if let Err(e) = regex::Regex::new(re) {
                ui.error(format!("Failed to compile {what} filter regexp: {e}"));
                return 1;
            }
        }
    }
    if !tag.is_empty() && service.is_empty() {
        ui.error("Cannot provide tag filter without service filter.");
        return 1;
    }
    let payload = match p.args.as_slice() {
        [] => None,
        [one] => Some(one.as_bytes()),
        _ => {
            ui.error("Too many command line arguments.");
            ui.error("");
            ui.error(help());
            return 1;
        }
    };
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    // Consul checks that the agent answers before firing.
    if let Err(e) = client.agent_node_name().await {
        ui.error(format!("Error querying Consul agent: {e}"));
        return 1;
    }
    let event = FireEvent {
        name,
        payload,
        node_filter: node,
        service_filter: service,
        tag_filter: tag,
    };
    match client.event_fire(&event).await {
        Ok(ev) => {
            ui.output(format!("Event ID: {}", ev.id));
            0
        }
        Err(e) => {
            ui.error(format!("Error firing event: {e}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake_agent::{reply, run_at, FakeAgent};

    #[tokio::test]
    async fn fires_with_filters_and_payload() {
        let agent = FakeAgent::start(vec![
            ("GET /v1/agent/self", reply(200, r#"{"Config":{"NodeName":"n1"}}"#)),
            (
                "PUT /v1/event/fire/deploy",
                reply(200, r#"{"ID":"b54fe110-7af5-cafc-d1fb-afc8ba432b1c","Name":"deploy","Payload":"djI=","Version":1,"LTime":0}"#),
            ),
        ])
        .await;
        let o = run_at(
            &agent,
            &["event", "-name=deploy", "-service=web", "-tag=prod", "v2"],
        )
        .await;
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "Event ID: b54fe110-7af5-cafc-d1fb-afc8ba432b1c\n"),
            "{o:?}"
        );
        let fire = &agent.seen()[1];
        assert_eq!(fire.query, "service=web&tag=prod");
        assert_eq!(fire.body, b"v2");
        let o = run_at(&agent, &["event"]).await;
        assert!(o.stderr.starts_with("Event name must be specified\n"));
        let o = run_at(&agent, &["event", "-name=x", "-tag=a"]).await;
        assert_eq!(
            o.stderr,
            "Cannot provide tag filter without service filter.\n"
        );
        let o = run_at(&agent, &["event", "-name=x", "-node=("]).await;
        assert!(o
            .stderr
            .starts_with("Failed to compile node filter regexp: "));
    }
}
