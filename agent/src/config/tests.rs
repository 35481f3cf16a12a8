//! End-to-end tests of the config layer: real files in temporary directories, through
//! flags, merge and builder. The host (hostname, addresses) is injected.

use super::builder::{self, Host, Mode, SCRIPTS_DISABLED};
use super::*;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

/// A real `consul keygen`-style key (32 bytes) and a UUID token, substituted into the seed.
const KEY: &str = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
const TOKEN: &str = "08ad8862-f702-eb26-0276-d8255b11267e";
const SERVICE_TOKEN: &str = "233b604b-b92e-48c8-a253-5f11514e4b50";

/// The seed's server1 `config.json`, verbatim but for `${CONSUL_KEY}` and
/// `${CONSUL_HTTP_TOKEN}`.
fn seed_config() -> String {
    r#"{
"datacenter": "prometheus",
"bind_addr":"192.168.1.153",
"log_level": "INFO",
"node_id":"09d82408-bc4f-49e0-1111-61ef1d4842f7",
"node_name": "server1",
"data_dir":"/data/consul/server/data",
"server": true,
"bootstrap_expect": 3,
"encrypt": "${CONSUL_KEY}",
"ui":true,
"client_addr":"0.0.0.0",
"retry_join":["192.168.1.153:8301","192.168.1.154:8301","192.168.1.155:8301"],
"ports": {
"http": 8500,
"dns": 8600,
"serf_lan":8301,
"serf_wan":8302,
"server":8300,
"grpc":8400
},
"acl": {
"enabled": true,
"default_policy": "deny",
"down_policy": "extend-cache",
"tokens":{
"master":"${CONSUL_HTTP_TOKEN}",
"agent":"${CONSUL_HTTP_TOKEN}"
}
}
}
"#
    .replace("${CONSUL_KEY}", KEY)
    .replace("${CONSUL_HTTP_TOKEN}", TOKEN)
}

/// The seed's `nginx.json` service file, verbatim.
const SEED_NGINX: &str = r#"{
"service":{
"name":"nginx",
"tags":[
"web"
],
"port":80,
"check":{
"http":"http://127.0.0.1:80",
"interval":"10s"
},
"token":"233b604b-b92e-48c8-a253-5f11514e4b50"
}
}
"#;

/// The seed's server config as HCL.
fn seed_config_hcl() -> String {
    r#"
datacenter = "prometheus"
bind_addr = "192.168.1.153"
log_level = "INFO"
node_id = "09d82408-bc4f-49e0-1111-61ef1d4842f7"
node_name = "server1"
data_dir = "/data/consul/server/data"
server = true
bootstrap_expect = 3
encrypt = "${CONSUL_KEY}"
ui = true
client_addr = "0.0.0.0"
retry_join = ["192.168.1.153:8301", "192.168.1.154:8301", "192.168.1.155:8301"]
ports {
  http = 8500
  dns = 8600
  serf_lan = 8301
  serf_wan = 8302
  server = 8300
  grpc = 8400
}
acl {
  enabled = true
  default_policy = "deny"
  down_policy = "extend-cache"
  tokens {
    master = "${CONSUL_HTTP_TOKEN}"
    agent = "${CONSUL_HTTP_TOKEN}"
  }
}
"#
    .replace("${CONSUL_KEY}", KEY)
    .replace("${CONSUL_HTTP_TOKEN}", TOKEN)
}

const SEED_NGINX_HCL: &str = r#"
service {
  name = "nginx"
  tags = ["web"]
  port = 80
  check {
    http = "http://127.0.0.1:80"
    interval = "10s"
  }
  token = "233b604b-b92e-48c8-a253-5f11514e4b50"
}
"#;

fn host() -> Host {
    Host {
        hostname: Some("testhost".into()),
        ipv4: vec![Ipv4Addr::LOCALHOST, Ipv4Addr::new(10, 1, 2, 3)],
    }
}

fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `tribune agent <args>` on the injected host.
fn run(list: &[&str]) -> Result<(RuntimeConfig, Vec<String>), ConfigErrors> {
    let flags = parse_agent_flags(&args(list))?;
    let mode = Mode {
        dev: flags.dev,
        require_data_dir: !flags.dev,
    };
    builder::build(
        &flags,
        &flags.config_paths,
        flags.config_format,
        mode,
        &host(),
    )
    .map_err(ConfigErrors)
}

fn run_dir(dir: &TempDir, extra: &[&str]) -> Result<(RuntimeConfig, Vec<String>), ConfigErrors> {
    let d = dir.path().display().to_string();
    let mut list = vec!["-config-dir", d.as_str()];
    list.extend_from_slice(extra);
    run(&list)
}

fn errors_of(r: Result<(RuntimeConfig, Vec<String>), ConfigErrors>) -> ConfigErrors {
    match r {
        Ok((c, w)) => panic!("expected errors, got {c:#?} with warnings {w:#?}"),
        Err(e) => e,
    }
}

fn file_name(e: &ConfigError) -> Option<String> {
    e.file.as_deref().map(|f| {
        Path::new(f)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    })
}

fn assert_seed_server(c: &RuntimeConfig) {
    assert_eq!(c.datacenter, "prometheus");
    assert_eq!(c.primary_datacenter, "prometheus");
    assert_eq!(c.bind_addr, "192.168.1.153".parse::<IpAddr>().unwrap());
    assert_eq!(c.advertise_addr, c.bind_addr);
    assert_eq!(c.log_level, "info");
    assert_eq!(
        c.node_id.as_deref(),
        Some("09d82408-bc4f-49e0-1111-61ef1d4842f7")
    );
    assert_eq!(c.node_name, "server1");
    assert_eq!(
        c.data_dir.as_deref(),
        Some(Path::new("/data/consul/server/data"))
    );
    assert!(c.server);
    assert!(!c.bootstrap);
    assert_eq!(c.bootstrap_expect, 3);
    assert_eq!(c.encrypt.as_ref().map(Secret::expose), Some(KEY));
    assert!(c.encrypt_verify_incoming && c.encrypt_verify_outgoing);
    assert!(c.ui);
    assert_eq!(c.client_addrs, vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]);
    assert_eq!(
        c.retry_join,
        vec![
            "192.168.1.153:8301",
            "192.168.1.154:8301",
            "192.168.1.155:8301"
        ]
    );
    assert_eq!(
        c.ports,
        Ports {
            dns: 8600,
            http: 8500,
            https: -1,
            grpc: 8400,
            serf_lan: 8301,
            serf_wan: 8302,
            server: 8300,
        }
    );
    assert_eq!(
        c.http_addrs(),
        vec!["0.0.0.0:8500".parse::<SocketAddr>().unwrap()]
    );
    assert!(c.acl.enabled);
    assert_eq!(c.acl.default_policy, "deny");
    assert_eq!(c.acl.down_policy, "extend-cache");
    let t = &c.acl.tokens;
    assert_eq!(
        t.initial_management.as_ref().map(Secret::expose),
        Some(TOKEN)
    );
    assert_eq!(t.agent.as_ref().map(Secret::expose), Some(TOKEN));
    assert!(t.agent_recovery.is_none() && t.default.is_none());
    // Defaults the seed does not set.
    assert_eq!(c.syslog_facility, "LOCAL0");
    assert_eq!(c.retry_interval, Duration::from_secs(30));
    assert_eq!(c.domain, "consul.");
    assert!(!c.leave_on_terminate, "servers do not leave on SIGTERM");
    assert!(c.skip_leave_on_interrupt);
    assert_eq!(c.raft_multiplier, 5);
    assert_eq!(
        (c.raft_snapshot_threshold, c.raft_trailing_logs),
        (16384, 10240)
    );
    assert_eq!(
        c.tagged_addresses.get("lan").map(String::as_str),
        Some("192.168.1.153")
    );
    assert_eq!(
        c.tagged_addresses.get("wan_ipv4").map(String::as_str),
        Some("192.168.1.153")
    );
}

#[test]
fn raft_snapshot_keys_are_read() {
    let dir = dir_with(&[(
        "raft.json",
        r#"{"data_dir": "/tmp/x", "raft_snapshot_threshold": 64, "raft_trailing_logs": 8}"#,
    )]);
    let (c, _) = run_dir(&dir, &[]).unwrap();
    assert_eq!((c.raft_snapshot_threshold, c.raft_trailing_logs), (64, 8));
}

#[test]
fn seed_server_config_loads() {
    let dir = dir_with(&[("config.json", &seed_config())]);
    let (c, warnings) = run_dir(&dir, &[]).unwrap();
    assert_seed_server(&c);
    assert!(c.services.is_empty());
    assert_eq!(c.sources.len(), 1);
    assert!(c.sources[0].ends_with("config.json"));
    let w = warnings.join("\n");
    assert!(
        w.contains("'ui' is deprecated; use 'ui_config.enabled'"),
        "{w}"
    );
    assert!(w.contains("'acl.tokens.master' is deprecated"), "{w}");
    assert!(!w.contains(KEY) && !w.contains(TOKEN));
    let debug = format!("{c:?}");
    assert!(!debug.contains(KEY) && !debug.contains(TOKEN), "{debug}");
}

#[test]
fn seed_nginx_service_file_loads() {
    let dir = dir_with(&[("config.json", &seed_config()), ("nginx.json", SEED_NGINX)]);
    let (c, _) = run_dir(&dir, &[]).unwrap();
    assert_eq!(c.services.len(), 1);
    let s = &c.services[0];
    assert_eq!(s.name, "nginx");
    assert_eq!(s.tags, vec!["web"]);
    assert_eq!(s.port, 80);
    assert_eq!(s.token, SERVICE_TOKEN);
    let check = s.check.as_ref().unwrap();
    assert_eq!(check.http, "http://127.0.0.1:80");
    assert_eq!(check.interval.unwrap().0, Duration::from_secs(10));
    assert_eq!(c.sources.len(), 2);
    assert!(!format!("{c:?}").contains(SERVICE_TOKEN));
}

#[test]
fn hcl_equivalent_of_the_seed_loads_the_same() {
    let json_dir = dir_with(&[("config.json", &seed_config()), ("nginx.json", SEED_NGINX)]);
    let hcl_dir = dir_with(&[
        ("config.hcl", &seed_config_hcl()),
        ("nginx.hcl", SEED_NGINX_HCL),
    ]);
    let (mut from_json, _) = run_dir(&json_dir, &[]).unwrap();
    let (mut from_hcl, _) = run_dir(&hcl_dir, &[]).unwrap();
    assert_seed_server(&from_hcl);
    assert_eq!(from_hcl.services, from_json.services);
    from_json.sources.clear();
    from_hcl.sources.clear();
    assert_eq!(format!("{from_json:?}"), format!("{from_hcl:?}"));
}

#[test]
fn hcl_service_blocks_and_services_lists_accumulate() {
    let dir = dir_with(&[(
        "svc.hcl",
        r#"
        data_dir = "/tmp/x"
        service { name = "web" }
        service { name = "api" }
        services = [{ name = "db" }]
        check {
          name = "mem"
          ttl = "30s"
        }
        "#,
    )]);
    let (c, _) = run_dir(&dir, &[]).unwrap();
    let names: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["web", "api", "db"]);
    assert_eq!(c.checks.len(), 1);
}

#[test]
fn directory_order_and_merge_rules() {
    let dir = dir_with(&[
        (
            "b.json",
            r#"{"datacenter": "b", "retry_join": ["b1"], "ports": {"dns": 53},
                "acl": {"tokens": {"default": "tok-b"}},
                "node_meta": {"from_b": "1"},
                "services": [{"name": "svc-b"}], "checks": [{"name": "c-b", "ttl": "1s"}]}"#,
        ),
        (
            "a.json",
            r#"{"datacenter": "a", "data_dir": "/tmp/a", "retry_join": ["a1", "a2"],
                "ports": {"http": 1234}, "acl": {"enabled": true, "tokens": {"agent": "tok-a"}},
                "node_meta": {"from_a": "1"},
                "service": {"name": "svc-a"}, "check": {"name": "c-a", "ttl": "1s"}}"#,
        ),
        ("c.hcl", "log_level = \"warn\"\nretry_join = [\"c1\"]\n"),
        ("notes.txt", "not config"),
        ("z.json~", "{}"),
    ]);
    fs::create_dir(dir.path().join("sub.json")).unwrap();
    let (c, warnings) = run_dir(&dir, &[]).unwrap();
    assert_eq!(c.datacenter, "b", "later files override scalars");
    assert_eq!(c.log_level, "warn");
    assert_eq!(
        c.retry_join,
        vec!["a1", "a2", "b1", "c1"],
        "lists append in file order"
    );
    assert_eq!(c.ports.http, 1234, "objects merge");
    assert_eq!(c.ports.dns, 53);
    assert_eq!(c.ports.serf_lan, 8301);
    assert!(c.acl.enabled);
    assert_eq!(
        c.acl.tokens.agent.as_ref().map(Secret::expose),
        Some("tok-a")
    );
    assert_eq!(
        c.acl.tokens.default.as_ref().map(Secret::expose),
        Some("tok-b")
    );
    assert_eq!(c.node_meta.len(), 2);
    let services: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(services, vec!["svc-a", "svc-b"]);
    let checks: Vec<&str> = c.checks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(checks, vec!["c-a", "c-b"]);
    let names: Vec<String> = c
        .sources
        .iter()
        .map(|s| {
            Path::new(s)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    assert_eq!(names, vec!["a.json", "b.json", "c.hcl"]);
    let d = dir.path().display();
    assert!(warnings.contains(&format!(
        "skipping file {d}/notes.txt, extension must be .hcl or .json, or config format must be set"
    )));
    assert!(warnings.iter().any(|w| w.contains("z.json~")));
}

#[test]
fn config_format_reads_any_extension() {
    let dir = dir_with(&[("agent.conf", "datacenter = \"east\"\n")]);
    let file = dir.path().join("agent.conf").display().to_string();
    let (c, warnings) = run(&["-dev", "-config-file", &file]).unwrap();
    assert_eq!(c.datacenter, "dc1");
    assert_eq!(
        warnings,
        vec![format!(
            "skipping file {file}, extension must be .hcl or .json, or config format must be set"
        )]
    );
    let (c, _) = run(&["-dev", "-config-file", &file, "-config-format=hcl"]).unwrap();
    assert_eq!(c.datacenter, "east");
}

#[test]
fn flags_override_files() {
    let dir = dir_with(&[(
        "a.json",
        r#"{"datacenter": "a", "data_dir": "/tmp/a", "retry_join": ["file"],
            "ports": {"http": 1, "dns": 2}, "log_level": "info", "server": false}"#,
    )]);
    let (c, _) = run_dir(
        &dir,
        &[
            "-datacenter=B",
            "-retry-join",
            "flag",
            "-http-port=8080",
            "-log-level",
            "debug",
            "-server",
            "-ui",
            "-syslog",
            "-hcl",
            "log_level = \"trace\"",
        ],
    )
    .unwrap();
    assert_eq!(c.datacenter, "b", "flags win, lower-cased");
    assert_eq!(
        c.retry_join,
        vec!["flag", "file"],
        "Consul merges list flags first"
    );
    assert_eq!(c.ports.http, 8080);
    assert_eq!(c.ports.dns, 2, "objects still merge under flags");
    assert_eq!(c.log_level, "trace", "-hcl comes after the flags");
    assert!(c.server && c.ui && c.enable_syslog);
    assert!(!c.leave_on_terminate);
}

#[test]
fn dev_defaults() {
    let (c, _) = run(&["-dev"]).unwrap();
    assert!(c.dev && c.server && c.bootstrap && c.ui);
    assert_eq!(c.bootstrap_expect, 0);
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!((c.bind_addr, c.advertise_addr), (lo, lo));
    assert_eq!(c.client_addrs, vec![lo]);
    assert_eq!(c.log_level, "debug");
    assert!(c.data_dir.is_none());
    assert_eq!(c.node_name, "testhost");
    assert_eq!(c.raft_multiplier, 1);
    assert_eq!(c.ports.grpc, 8502);
    assert!(c.disable_keyring_file);
    assert_eq!(
        c.http_addrs(),
        vec!["127.0.0.1:8500".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn dev_config_fixture() {
    let c = dev_config("n1");
    assert_eq!(c.node_name, "n1");
    assert!(c.dev && c.server && c.bootstrap && c.data_dir.is_none());
    assert!(c.sources.is_empty());
}

#[test]
fn dev_defaults_yield_to_files_and_data_dir_is_ignored() {
    let dir = dir_with(&[(
        "a.json",
        r#"{"log_level": "warn", "data_dir": "/tmp/x", "bind_addr": "0.0.0.0"}"#,
    )]);
    let (c, warnings) = run_dir(&dir, &["-dev"]).unwrap();
    assert_eq!(c.log_level, "warn");
    assert!(c.data_dir.is_none());
    assert_eq!(
        c.advertise_addr,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "dev advertises loopback"
    );
    assert!(warnings
        .iter()
        .any(|w| w.contains("data_dir is ignored in -dev")));
}

#[test]
fn plain_defaults() {
    let dir = dir_with(&[("a.json", r#"{"data_dir": "/tmp/x"}"#)]);
    let (c, _) = run_dir(&dir, &[]).unwrap();
    assert_eq!(c.datacenter, "dc1");
    assert_eq!(c.node_name, "testhost");
    assert_eq!(c.bind_addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(c.advertise_addr, IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    assert_eq!(c.client_addrs, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    assert_eq!(c.ports, Ports::default());
    assert_eq!(c.log_level, "info");
    assert_eq!(c.log_rotate_duration, Duration::from_secs(86400));
    assert_eq!(c.default_query_time, Duration::from_secs(300));
    assert_eq!(c.max_query_time, Duration::from_secs(600));
    assert_eq!(c.check_output_max_size, 4096);
    assert_eq!(c.session_ttl_min, Duration::from_secs(10));
    assert_eq!(c.reconnect_timeout, Duration::from_secs(72 * 3600));
    assert_eq!(c.kv_max_value_size, 524_288);
    assert_eq!(c.txn_max_req_len, 524_288);
    assert_eq!(c.http_max_conns_per_client, 200);
    assert!(c.leave_on_terminate && !c.skip_leave_on_interrupt);
    assert_eq!(c.acl.default_policy, "allow");
    assert_eq!(c.acl.down_policy, "extend-cache");
    assert!(!c.acl.enabled && !c.ui);
    assert_eq!(c.dns_config, DnsConfig::default());
    assert!(
        c.serf_wan_addr().is_none() && c.rpc_addr().is_none(),
        "clients have neither"
    );
}

#[test]
fn four_mistakes_four_errors() {
    let dir = dir_with(&[
        (
            "a.json",
            r#"{"data_dir": "/tmp/x", "ports": {"http": "abc"}, "acl": {"tokns": {"agent": "x"}}}"#,
        ),
        ("b.hcl", "retry_interval = \"30\"\nbind_addr = \"1.2.3\"\n"),
    ]);
    let errors = errors_of(run_dir(&dir, &[]));
    // Sorted: the order within a file follows serde_json's map order.
    let mut got: Vec<(Option<String>, &str)> = errors
        .iter()
        .map(|e| (file_name(e), e.key.as_str()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (Some("a.json".into()), "acl.tokns"),
            (Some("a.json".into()), "ports.http"),
            (Some("b.hcl".into()), "bind_addr"),
            (Some("b.hcl".into()), "retry_interval"),
        ],
        "{errors}"
    );
    let mut lines: Vec<String> = errors.to_string().lines().map(str::to_string).collect();
    lines.sort();
    let d = dir.path().display();
    assert_eq!(
        lines.join("\n"),
        format!(
            "{d}/a.json: invalid config key acl.tokns (did you mean \"tokens\"?)\n\
             {d}/a.json: key \"ports.http\": invalid value \"abc\": expected an integer, got a string\n\
             {d}/b.hcl: key \"bind_addr\": invalid value \"1.2.3\": expected an IP address such as \"10.0.0.1\" or \"::1\"\n\
             {d}/b.hcl: key \"retry_interval\": invalid value \"30\": expected a duration such as \"10s\", \"1m30s\" or \"500ms\""
        )
    );
}

/// One file per error class; every class is reported in one run.
#[test]
fn every_error_class_is_reported_at_once() {
    let dir = dir_with(&[
        ("01-uuid.json", r#"{"node_id": "not-a-uuid"}"#),
        ("02-level.json", r#"{"log_level": "loud"}"#),
        ("03-key-b64.json", r#"{"encrypt": "!!!notbase64!!!"}"#),
        ("04-key-len.json", r#"{"encrypt": "c2hvcnRrZXk="}"#),
        ("05-port.json", r#"{"ports": {"dns": 70000}}"#),
        (
            "06-template.json",
            r#"{"client_addr": "{{ GetPrivateIP }}"}"#,
        ),
        ("07-type.json", r#"{"server": "yes"}"#),
        ("08-duration.json", r#"{"retry_interval": "soon"}"#),
        (
            "09-script.json",
            r#"{"service": {"name": "s", "check": {"args": ["/bin/true"], "interval": "10s"}}}"#,
        ),
        (
            "10-legacy-script.json",
            r#"{"check": {"name": "c", "script": "/bin/true", "interval": "10s"}}"#,
        ),
        (
            "11-bootstrap.json",
            r#"{"bootstrap": true, "bootstrap_expect": 3}"#,
        ),
        ("12-unknown.json", r#"{"nonsense": 1}"#),
    ]);
    let errors = errors_of(run_dir(&dir, &[]));
    let by_file = |name: &str| -> Vec<&ConfigError> {
        errors
            .iter()
            .filter(|e| file_name(e).as_deref() == Some(name))
            .collect()
    };
    assert_eq!(by_file("01-uuid.json")[0].key, "node_id");
    assert!(by_file("02-level.json")[0]
        .message
        .contains("trace, debug, info, warn, err, error"));
    let b64 = by_file("03-key-b64.json");
    assert!(
        b64[0].message.starts_with("encrypt has invalid key: "),
        "{}",
        b64[0]
    );
    assert_eq!(
        by_file("04-key-len.json")[0].message,
        "Failed to configure keyring: Invalid key: key size must be 16, 24 or 32 bytes"
    );
    assert_eq!(
        by_file("05-port.json")[0].message,
        "out of range: must be between -1 and 65535"
    );
    assert!(by_file("06-template.json")[0]
        .message
        .contains("templates are not supported yet"));
    assert_eq!(
        by_file("07-type.json")[0].message,
        "expected a boolean, got a string"
    );
    assert_eq!(by_file("08-duration.json")[0].key, "retry_interval");
    let script = by_file("09-script.json");
    assert_eq!(script[0].key, "service.check.args");
    assert_eq!(script[0].message, SCRIPTS_DISABLED);
    assert!(by_file("10-legacy-script.json")[0]
        .message
        .contains("\"script\" check field was removed"));
    let boot = by_file("11-bootstrap.json");
    let boot: Vec<&str> = boot.iter().map(|e| e.message.as_str()).collect();
    assert!(boot.contains(&"'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive"));
    assert!(boot.contains(&"'bootstrap_expect > 0' requires 'server = true'"));
    assert!(boot.contains(&"'bootstrap = true' requires 'server = true'"));
    assert!(by_file("12-unknown.json")[0]
        .message
        .starts_with("invalid config key nonsense"));
    let data_dir: Vec<&ConfigError> = errors.iter().filter(|e| e.key == "data_dir").collect();
    assert_eq!(data_dir.len(), 1);
    assert_eq!(data_dir[0].message, "data_dir cannot be empty");
    assert_eq!(data_dir[0].file, None);
}

#[test]
fn script_checks_need_a_switch() {
    let svc = r#"{"data_dir": "/tmp/x", "service": {"name": "s", "checks": [{"args": ["/bin/true"], "interval": "10s"}]}}"#;
    let dir = dir_with(&[("a.json", svc)]);
    assert!(run_dir(&dir, &["-enable-local-script-checks"]).is_ok());
    let (_, warnings) = run_dir(&dir, &["-enable-script-checks"]).unwrap();
    assert!(warnings.iter().any(|w| w.contains("DANGEROUS")));
    let errors = errors_of(run_dir(&dir, &[]));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.0[0].key, "service.checks[0].args");
}

#[test]
fn bootstrap_expect_rules() {
    let dir = dir_with(&[("a.json", r#"{"data_dir": "/tmp/x", "bootstrap_expect": 3}"#)]);
    let errors = errors_of(run_dir(&dir, &[]));
    assert_eq!(errors.len(), 1);
    assert_eq!(
        file_name(&errors.0[0]).as_deref(),
        Some("a.json"),
        "names the file that set it"
    );
    assert_eq!(
        errors.0[0].message,
        "'bootstrap_expect > 0' requires 'server = true'"
    );

    let errors = errors_of(run(&["-dev", "-bootstrap-expect=3"]));
    assert_eq!(
        errors.0[0].key, "-bootstrap-expect",
        "names the flag that set it"
    );
    assert_eq!(
        errors.0[0].message,
        "'bootstrap_expect > 0' not allowed in dev mode"
    );

    let (c, warnings) = run_dir(&dir, &["-server", "-bootstrap-expect=1"]).unwrap();
    assert!(c.bootstrap && c.bootstrap_expect == 0);
    assert!(warnings.iter().any(|w| w.contains("same as bootstrap")));
}

#[test]
fn flag_values_are_validated_under_their_flag_names() {
    let errors = errors_of(run(&[
        "-dev",
        "-bind=1.2.3",
        "-encrypt=bm90IGEga2V5",
        "-retry-interval=1",
        "-node-id=x",
    ]));
    let mut keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["-bind", "-encrypt", "-node-id", "-retry-interval"]
    );
    assert!(errors.iter().all(|e| e.file.is_none()));
    let text = errors.to_string();
    assert!(
        text.contains("flag -bind: invalid value \"1.2.3\""),
        "{text}"
    );
    assert!(!text.contains("bm90IGEga2V5"), "{text}");
}

#[test]
fn secrets_never_appear_in_errors() {
    let secrets = [
        "S3CRET-TOKEN-ONE",
        "S3CRET-TOKEN-TWO",
        "S3CRET-TOKEN-THREE",
        "c2VjcmV0LWtleS1ieXRlcw==",
        "!!S3CRET-NOT-BASE64!!",
        "S3CRET-TOKEN-FOUR",
    ];
    let dir = dir_with(&[
        (
            "a.json",
            r#"{"acl": {"tokns": {"master": "S3CRET-TOKEN-ONE"}, "tokens": {"agent": 42}}}"#,
        ),
        ("b.json", r#"{"encrypt": "c2VjcmV0LWtleS1ieXRlcw=="}"#),
        ("c.json", r#"{"encrypt": "!!S3CRET-NOT-BASE64!!"}"#),
        (
            "d.json",
            r#"{"service": {"name": "s", "token": 7, "tokne": "S3CRET-TOKEN-TWO",
                "check": {"ttl": "1s", "token": ["S3CRET-TOKEN-THREE"]}}}"#,
        ),
        ("e.hcl", "acl_token = \"S3CRET-TOKEN-ONE\nbroken"),
        ("f.json", r#"{"acl_agent_token": false}"#),
        (
            "g.json",
            r#"{"check": {"name": "h", "http": "http://x", "interval": "1s",
                "header": {"Authorization": "Bearer S3CRET-TOKEN-FOUR"}}}"#,
        ),
    ]);
    let errors = errors_of(run_dir(&dir, &["-encrypt", "!!S3CRET-NOT-BASE64!!"]));
    assert!(errors.len() >= 9, "{errors}");
    let text = format!("{errors}\n{errors:?}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(text.contains("<hidden>"));
}

#[test]
fn unreadable_paths_are_errors() {
    let errors = errors_of(run(&["-config-file", "/nonexistent/tribune.json", "-dev"]));
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors.0[0].file.as_deref(),
        Some("/nonexistent/tribune.json")
    );
    let dir = dir_with(&[("a.json", "{\"datacenter\": }")]);
    let errors = errors_of(run_dir(&dir, &["-dev"]));
    assert!(
        errors.0[0].message.starts_with("invalid JSON: "),
        "{errors}"
    );
}

#[test]
fn legacy_keys_map_to_the_acl_block_and_new_keys_win() {
    let dir = dir_with(&[
        (
            "a.json",
            r#"{"data_dir": "/tmp/x", "acl_datacenter": "Primary", "acl_default_policy": "deny",
                "acl_master_token": "old-master", "acl_token": "anon", "acl_ttl": "1m",
                "acl_agent_master_token": "recovery", "start_join": ["10.0.0.9"]}"#,
        ),
        (
            "b.json",
            r#"{"acl": {"tokens": {"initial_management": "new-master"}}}"#,
        ),
    ]);
    let (c, warnings) = run_dir(&dir, &[]).unwrap();
    assert!(c.acl.enabled, "acl_datacenter implies ACLs");
    assert_eq!(c.primary_datacenter, "primary");
    assert_eq!(c.acl.default_policy, "deny");
    assert_eq!(c.acl.token_ttl, Duration::from_secs(60));
    let t = &c.acl.tokens;
    assert_eq!(
        t.initial_management.as_ref().map(Secret::expose),
        Some("new-master")
    );
    assert_eq!(t.default.as_ref().map(Secret::expose), Some("anon"));
    assert_eq!(
        t.agent_recovery.as_ref().map(Secret::expose),
        Some("recovery")
    );
    assert_eq!(c.retry_join, vec!["10.0.0.9"]);
    assert!(warnings
        .iter()
        .any(|w| w.contains("'start_join' is deprecated")));
}

#[test]
fn validate_paths_does_not_need_a_data_dir() {
    let dir = dir_with(&[("a.json", r#"{"server": true, "bootstrap_expect": 3}"#)]);
    let (c, _) = validate_paths(&[dir.path().to_path_buf()]).unwrap();
    assert!(c.data_dir.is_none());
    let file = dir.path().join("a.json");
    assert!(validate_paths(&[file]).is_ok());
}

#[test]
fn plugins_shape() {
    let dir = dir_with(&[(
        "p.json",
        r#"{"data_dir": "/tmp/x", "plugins": [
            {"name": "a", "path": "a.wasm", "config": {"k": "secret"}},
            {"name": "a", "path": "b.wasm"},
            {"path": "c.wasm", "grants": [], "color": "red"}
        ]}"#,
    )]);
    let errors = errors_of(run_dir(&dir, &[]));
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "plugins[2].color",
            "plugins[2].name",
            "plugins[2].grants",
            "plugins[1].name"
        ],
        "{errors}"
    );
    let dir = dir_with(&[(
        "p.json",
        r#"{"data_dir": "/tmp/x", "plugins": [{"name": "a", "path": "a.wasm", "config": {"k": "s3cr3t"}}]}"#,
    )]);
    let (c, _) = run_dir(&dir, &[]).unwrap();
    assert_eq!(c.plugins[0].config["k"], "s3cr3t");
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn plugin_grants_limits_and_events_are_checked() {
    let dir = dir_with(&[(
        "p.json",
        r#"{"data_dir": "/tmp/x", "plugins": [
            {"name": "a", "path": "a.wasm", "kind": "checker",
             "grants": {"htp": ["x"], "tcp": ["redis"]},
             "limits": {"memory_mb": 0, "fuel": 10},
             "events": ["service-registered", "reboot"]}
        ]}"#,
    )]);
    let errors = errors_of(run_dir(&dir, &[]));
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "plugins[0].kind",
            "plugins[0].limits.memory_mb",
            "plugins[0].grants.htp",
            "plugins[0].grants.tcp[0]",
            "plugins[0].events[1]"
        ],
        "{errors}"
    );
    let dir = dir_with(&[(
        "p.json",
        r#"{"data_dir": "/tmp/x", "plugins": [{"name": "h", "path": "h.wasm",
            "kind": "event-hook", "events": ["leader-changed"],
            "grants": {"http": ["127.0.0.1:9000"]}, "limits": {"timeout": "2s"}}]}"#,
    )]);
    let (c, _) = run_dir(&dir, &[]).unwrap();
    assert_eq!(
        c.plugins[0].events.as_deref(),
        Some(&["leader-changed".to_string()][..])
    );
}

/// The golden file holds every key of the schema; it must load, and keep doing so.
#[test]
fn golden_full_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/testdata/full.json");
    let p = path.display().to_string();
    let (c, warnings) = run(&["-config-file", &p]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.datacenter, "golden-dc");
    assert_eq!(
        c.node_id.as_deref(),
        Some("09d82408-bc4f-49e0-1111-61ef1d4842f7")
    );
    assert_eq!(c.log_level, "error");
    assert_eq!(c.syslog_facility, "LOCAL5");
    assert_eq!(
        c.syslog_address,
        Some(SyslogAddress::Tcp("logs.example:6514".into()))
    );
    assert_eq!(c.syslog_format, SyslogFormat::Rfc5424);
    assert_eq!(c.syslog_tag, "tribune-golden");
    assert_eq!(c.syslog_udp_rate, 20_000);
    assert!(c.log_rotate_compress && !c.log_stdout);
    assert_eq!(c.domain, "golden.");
    assert_eq!(c.alt_domain.as_deref(), Some("example."));
    assert_eq!(
        c.acl.default_policy, "deny",
        "acl block beats acl_default_policy"
    );
    assert_eq!(
        c.acl.tokens.initial_management.as_ref().map(Secret::expose),
        Some("a7777777-7777-4777-8777-777777777777")
    );
    assert_eq!(c.services.len(), 2);
    assert_eq!(c.services[0].checks.len(), 6);
    assert_eq!(c.checks.len(), 4, "check + checks");
    assert_eq!(c.plugins.len(), 2);
    assert_eq!(
        c.retry_join,
        vec!["10.0.0.11", "10.0.0.12:8301", "10.0.0.13"]
    );
    assert_eq!(c.raft_multiplier, 3);
    assert_eq!(c.kv_max_value_size, 1_048_576);
    assert_eq!(c.http_max_conns_per_client, 500);
    assert_eq!(c.dns_config.soa.expire, 86401);
    assert_eq!(
        c.dns_config.service_ttl.get("web"),
        Some(&Duration::from_secs(30))
    );
    assert_eq!(c.gossip_wan.suspicion_mult, 7);
    assert_eq!(
        c.tagged_addresses.get("lan").map(String::as_str),
        Some("10.0.0.100")
    );
    assert_eq!(
        c.tagged_addresses.get("wan").map(String::as_str),
        Some("203.0.113.10")
    );
    assert_eq!(c.http_config.response_headers.len(), 2);
    assert_eq!(c.http_addrs().len(), 2);
    assert_eq!(c.reconnect_timeout_wan, Duration::from_secs(96 * 3600));
    assert!(warnings.iter().any(|w| w.contains("h2ping_use_tls")));
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("a7777777") && !debug.contains("d1111111"),
        "{debug}"
    );
}

#[test]
fn golden_file_covers_every_schema_key() {
    use super::schema::{Field, Kind, TOP};
    fn check(fields: &[Field], v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        for field in fields {
            let p = if path.is_empty() {
                field.name.to_string()
            } else {
                format!("{path}.{}", field.name)
            };
            match v.get(field.name) {
                None => missing.push(p),
                Some(inner) => {
                    if let Kind::Object(sub) = field.kind {
                        check(sub, inner, &p, missing);
                    }
                }
            }
        }
    }
    let text = include_str!("testdata/full.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut missing = Vec::new();
    check(TOP, &v, "", &mut missing);
    assert!(missing.is_empty(), "full.json lacks {missing:?}");
}

/// Tribune's logging keys: defaults, values, and every mistake reported at once with file
/// and key.
#[test]
fn logging_keys() {
    let dir = dir_with(&[("a.json", r#"{"data_dir": "/tmp/x"}"#)]);
    let (c, warnings) = run_dir(&dir, &[]).unwrap();
    assert!(c.log_stdout && !c.log_rotate_compress);
    assert_eq!(c.syslog_address, None);
    assert_eq!(c.syslog_tag, "tribune");
    assert_eq!(c.syslog_format, SyslogFormat::Auto);
    assert_eq!(c.syslog_udp_rate, 50_000);
    assert!(warnings.is_empty(), "{warnings:?}");

    let dir = dir_with(&[(
        "a.hcl",
        "data_dir = \"/tmp/x\"\nenable_syslog = true\nsyslog_address = \"udp://127.0.0.1:5514\"\n\
         syslog_tag = \"consul\"\nsyslog_format = \"rfc3164\"\nsyslog_udp_rate = 0\n\
         log_stdout = false\nlog_rotate_compress = true\n",
    )]);
    let (c, _) = run_dir(&dir, &[]).unwrap();
    assert_eq!(
        c.syslog_address,
        Some(SyslogAddress::Udp("127.0.0.1:5514".into()))
    );
    assert_eq!(c.syslog_tag, "consul");
    assert_eq!(c.syslog_format, SyslogFormat::Rfc3164);
    assert_eq!(c.syslog_udp_rate, 0);
    assert!(!c.log_stdout && c.log_rotate_compress);

    let dir = dir_with(&[(
        "a.json",
        r#"{"data_dir": "/tmp/x", "syslog_address": "logs:514"}"#,
    )]);
    let (c, warnings) =
        run_dir(&dir, &["-hcl", "syslog_address = \"unix:///tmp/s.sock\""]).unwrap();
    assert_eq!(
        c.syslog_address,
        Some(SyslogAddress::Unix("/tmp/s.sock".into()))
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("enable_syslog is false")),
        "{warnings:?}"
    );

    let dir = dir_with(&[
        (
            "01-address.json",
            r#"{"data_dir": "/tmp/x", "syslog_address": "http://x"}"#,
        ),
        ("02-tag.json", r#"{"syslog_tag": "two words"}"#),
        ("03-format.json", r#"{"syslog_format": "gelf"}"#),
        ("04-rate.json", r#"{"syslog_udp_rate": -1}"#),
        ("05-stdout.json", r#"{"log_stdout": "no"}"#),
        ("06-compress.json", r#"{"log_rotate_compress": 1}"#),
    ]);
    let errors = errors_of(run_dir(&dir, &[]));
    let mut got: Vec<(Option<String>, &str)> = errors
        .iter()
        .map(|e| (file_name(e), e.key.as_str()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (Some("01-address.json".into()), "syslog_address"),
            (Some("02-tag.json".into()), "syslog_tag"),
            (Some("03-format.json".into()), "syslog_format"),
            (Some("04-rate.json".into()), "syslog_udp_rate"),
            (Some("05-stdout.json".into()), "log_stdout"),
            (Some("06-compress.json".into()), "log_rotate_compress"),
        ],
        "{errors}"
    );
    let text = errors.to_string();
    assert!(text.contains("unknown scheme \"http\""), "{text}");
    assert!(text.contains("\"two words\""), "{text}");
}
