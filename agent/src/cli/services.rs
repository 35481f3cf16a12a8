//! `tribune services register|deregister`: services on the local agent, from flags or from
//! JSON/HCL files holding `service` / `services` blocks (the same shape as service files in
//! `-config-dir`, e.g. the seed's `nginx.json`).

use super::flags::FlagSet;
use super::ui::Ui;
use super::{connect, http_flags, parse_flags};
use serde_json::Value;
use std::path::Path;
use tribune_api::types::ServiceDefinition;

const REGISTER_HELP: &str = "
Usage: tribune services register [options] [FILE...]

  Register one or more services using the local agent API. Services can
  be registered from standard agent configuration files (JSON or HCL with
  a \"service\" or \"services\" block) or using flags. The service is
  registered and the command returns. The caller must remember to call
  \"tribune services deregister\" or a similar API to deregister the service
  when complete.

      $ tribune services register web.json

  Additional flags and more advanced use cases are detailed below.
";

const DEREGISTER_HELP: &str = "
Usage: tribune services deregister [options] [FILE...]

  Deregister one or more services that were previously registered with
  the local agent.

      $ tribune services deregister web.json db.json

  The -id flag may be used to deregister a single service by ID:

      $ tribune services deregister -id=web

  Services are deregistered from the local agent catalog. This command must
  be run against the same agent where the service was registered.
";

fn register_flags() -> FlagSet {
    http_flags::add(FlagSet::new())
        .string("name", "value", "Name of the service to register.")
        .string("id", "value", "ID of the service to register.")
        .string("address", "addr", "Address of the service.")
        .int("port", "Port of the service.")
        .list("tag", "value", "Tag to add to the service. This flag can be specified multiple times to set multiple tags.")
        .map("meta", "Metadata to set on the service, formatted as key=value. This flag may be specified multiple times to set multiple meta fields.")
}

fn deregister_flags() -> FlagSet {
    http_flags::add(FlagSet::new()).string(
        "id",
        "value",
        "ID to delete. This must not be set if arguments are given.",
    )
}

pub(super) fn register_help() -> String {
    register_flags().usage(REGISTER_HELP)
}

pub(super) fn deregister_help() -> String {
    deregister_flags().usage(DEREGISTER_HELP)
}

pub(super) async fn register(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = register_flags();
    let p = match parse_flags(&fs, REGISTER_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let name = p.str_or("name", "");
    let services = if p.args.is_empty() {
        if name.is_empty() {
            ui.error("Service registration requires at least one argument or flags.");
            return 1;
        }
        vec![ServiceDefinition {
            name: name.to_string(),
            id: p.str_or("id", "").to_string(),
            address: p.str_or("address", "").to_string(),
            port: p.int("port"),
            tags: p.list("tag"),
            meta: p.map("meta"),
            ..ServiceDefinition::default()
        }]
    } else {
        if !name.is_empty() {
            ui.error("Service registration requires arguments or -id, not both.");
            return 1;
        }
        match services_from_files(&p.args) {
            Ok(s) => s,
            Err(e) => {
                ui.error(format!("Error: {e}"));
                return 1;
            }
        }
    };
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    for svc in &services {
        if let Err(e) = client.agent_service_register(svc).await {
            ui.error(format!("Error registering service {:?}: {e}", svc.name));
            return 1;
        }
        ui.output(format!("Registered service: {}", svc.name));
    }
    0
}

pub(super) async fn deregister(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let fs = deregister_flags();
    let p = match parse_flags(&fs, DEREGISTER_HELP, args, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let id = p.str_or("id", "");
    let services = if p.args.is_empty() {
        if id.is_empty() {
            ui.error("Service deregistration requires at least one argument or -id.");
            return 1;
        }
        vec![ServiceDefinition {
            id: id.to_string(),
            ..ServiceDefinition::default()
        }]
    } else {
        if !id.is_empty() {
            ui.error("Service deregistration requires arguments or -id, not both.");
            return 1;
        }
        match services_from_files(&p.args) {
            Ok(s) => s,
            Err(e) => {
                ui.error(format!("Error: {e}"));
                return 1;
            }
        }
    };
    let Some(client) = connect(&p, ui) else {
        return 1;
    };
    for svc in &services {
        // A file's service without an ID is known to the agent by its name.
        let id = if svc.id.is_empty() {
            svc.name.as_str()
        } else {
            svc.id.as_str()
        };
        if id.is_empty() {
            continue;
        }
        if let Err(e) = client.agent_service_deregister(id).await {
            ui.error(format!("Error deregistering service {id:?}: {e}"));
            return 1;
        }
        ui.output(format!("Deregistered service: {id}"));
    }
    0
}

/// Every service defined in `paths`, in file order then definition order.
pub(super) fn services_from_files(paths: &[String]) -> Result<Vec<ServiceDefinition>, String> {
    let mut out = Vec::new();
    for path in paths {
        let doc = read_document(Path::new(path))?;
        let Value::Object(top) = doc else {
            return Err(format!("{path}: expected an object at the top level"));
        };
        let mut found = false;
        for (key, value) in top {
            if key != "service" && key != "services" {
                continue;
            }
            found = true;
            let entries = match value {
                Value::Array(items) => items,
                other => vec![other],
            };
            for (i, entry) in entries.into_iter().enumerate() {
                let svc: ServiceDefinition =
                    tribune_api::decode::from_value(normalize_service(entry))
                        .map_err(|e| format!("{path}: {key}[{i}]: {e}"))?;
                out.push(svc);
            }
        }
        if !found {
            return Err(format!(
                "{path}: no \"service\" or \"services\" definition found"
            ));
        }
    }
    Ok(out)
}

/// Parses a file as JSON or HCL by extension; anything else is tried as JSON, then HCL.
fn read_document(path: &Path) -> Result<Value, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("failed to read {shown}: {e}"))?;
    let json = |t: &str| {
        serde_json::from_str::<Value>(t).map_err(|e| format!("failed to parse {shown}: {e}"))
    };
    let hcl =
        |t: &str| hcl::from_str::<Value>(t).map_err(|e| format!("failed to parse {shown}: {e}"));
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => json(&text),
        Some("hcl") => hcl(&text),
        _ => json(&text).or_else(|_| hcl(&text)),
    }
}

/// HCL turns a single `checks { … }` block into an object; the API wants a list.
fn normalize_service(mut entry: Value) -> Value {
    if let Value::Object(map) = &mut entry {
        for (k, v) in map.iter_mut() {
            if tribune_api::decode::normalize_key(k) == "checks" && v.is_object() {
                *v = Value::Array(vec![v.take()]);
            }
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::super::fake_agent::{reply, run_at, FakeAgent};
    use super::*;

    /// The seed's `nginx.json`.
    const NGINX: &str = r#"{
      "service":{
        "name":"nginx",
        "tags":["web"],
        "port":80,
        "check":{"http":"http://127.0.0.1:80","interval":"10s"},
        "token":"233b604b-b92e-48c8-a253-5f11514e4b50"
      }
    }"#;

    const HCL: &str = r#"
services {
  name = "a"
  id   = "a1"
  port = 1
  checks {
    tcp      = "127.0.0.1:1"
    interval = "5s"
  }
}
services {
  name = "b"
}
"#;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn files_in_json_and_hcl() {
        let dir = tempfile::tempdir().unwrap();
        let json = write(&dir, "nginx.json", NGINX);
        let hcl = write(&dir, "two.hcl", HCL);
        let svcs = services_from_files(&[json, hcl]).unwrap();
        assert_eq!(svcs.len(), 3);
        assert_eq!(svcs[0].name, "nginx");
        assert_eq!(svcs[0].tags, vec!["web"]);
        assert_eq!(svcs[0].port, 80);
        let check = svcs[0].check.as_ref().unwrap();
        assert_eq!(check.http, "http://127.0.0.1:80");
        assert_eq!(check.interval.map(|d| d.0.as_secs()), Some(10));
        assert_eq!((svcs[1].name.as_str(), svcs[1].id.as_str()), ("a", "a1"));
        assert_eq!(svcs[1].checks.len(), 1);
        assert_eq!(svcs[1].checks[0].tcp, "127.0.0.1:1");
        assert_eq!(svcs[2].name, "b");
        let none = write(&dir, "empty.json", "{}");
        assert!(services_from_files(&[none])
            .unwrap_err()
            .contains("no \"service\""));
    }

    #[tokio::test]
    async fn register_from_file_and_flags() {
        let agent =
            FakeAgent::start(vec![("PUT /v1/agent/service/register", reply(200, ""))]).await;
        let dir = tempfile::tempdir().unwrap();
        let json = write(&dir, "nginx.json", NGINX);
        let o = run_at(&agent, &["services", "register", &json]).await;
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "Registered service: nginx\n"),
            "{o:?}"
        );
        let req = agent.one();
        assert_eq!(req.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["Name"], "nginx");
        assert_eq!(body["Port"], 80);
        assert_eq!(body["Check"]["HTTP"], "http://127.0.0.1:80");

        let o = run_at(
            &agent,
            &[
                "services",
                "register",
                "-name=web",
                "-id=web1",
                "-port=8080",
                "-tag=a",
                "-tag=b",
                "-meta=env=prod",
            ],
        )
        .await;
        assert_eq!(o.code, 0, "{o:?}");
        assert_eq!(o.stdout, "Registered service: web\n");
        let body: Value = serde_json::from_slice(&agent.seen()[1].body).unwrap();
        assert_eq!(body["ID"], "web1");
        assert_eq!(body["Tags"], serde_json::json!(["a", "b"]));
        assert_eq!(body["Meta"], serde_json::json!({"env": "prod"}));
        assert_eq!(body["Port"], 8080);
    }

    #[tokio::test]
    async fn register_errors() {
        let agent = FakeAgent::start(vec![(
            "PUT /v1/agent/service/register",
            reply(400, "Missing service name"),
        )])
        .await;
        let o = run_at(&agent, &["services", "register"]).await;
        assert_eq!(
            (o.code, o.stderr.as_str()),
            (
                1,
                "Service registration requires at least one argument or flags.\n"
            )
        );
        let o = run_at(&agent, &["services", "register", "-name=x", "file.json"]).await;
        assert_eq!(o.code, 1);
        let o = run_at(&agent, &["services", "register", "-name=x"]).await;
        assert_eq!(o.code, 1);
        assert_eq!(
            o.stderr,
            "Error registering service \"x\": Unexpected response code: 400 (Missing service name)\n"
        );
    }

    #[tokio::test]
    async fn deregister_by_id_and_file() {
        let agent = FakeAgent::start(vec![
            (
                "PUT /v1/agent/service/deregister/node_exporter01",
                reply(200, ""),
            ),
            ("PUT /v1/agent/service/deregister/nginx", reply(200, "")),
        ])
        .await;
        let o = run_at(&agent, &["services", "deregister", "-id=node_exporter01"]).await;
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "Deregistered service: node_exporter01\n")
        );
        let dir = tempfile::tempdir().unwrap();
        let json = write(&dir, "nginx.json", NGINX);
        let o = run_at(&agent, &["services", "deregister", &json]).await;
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (0, "Deregistered service: nginx\n")
        );
        let o = run_at(&agent, &["services", "deregister", "-id=missing"]).await;
        assert_eq!(o.code, 1);
        assert!(o
            .stderr
            .starts_with("Error deregistering service \"missing\": Unexpected response code: 404"));
        let o = run_at(&agent, &["services", "deregister"]).await;
        assert_eq!(
            o.stderr,
            "Service deregistration requires at least one argument or -id.\n"
        );
    }
}
