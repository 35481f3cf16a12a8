//! `deploy/`: the files an operator installs, checked with the real tools.
//!
//! What a pass proves:
//! 1. `deploy/verify.sh` accepts the systemd units (`systemd-analyze verify`),
//!    the example configs (`tribune validate`), the rsyslog snippets
//!    (`rsyslogd -N1`), the scrape job, the compose file and the ELK pipeline,
//!    and it rejects a broken unit and a broken config;
//! 2. the agent speaks `Type=notify`: `READY=1` once it serves HTTP,
//!    `STOPPING=1` when told to stop;
//! 3. the collector snippet, run by a real rsyslogd, turns an agent's RFC 5424
//!    lines into the JSON objects the ELK pipeline reads.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tribune_tests::process::{find_program, free_port, free_ports, tribune_bin, Spawned, Workdir};
use tribune_tests::{must, wait_until, Agent};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn run_verify(dir: &Path) -> (bool, String) {
    let tribune = must(tribune_bin());
    let out = Command::new("bash")
        .arg(dir.join("verify.sh"))
        .arg(&tribune)
        .output()
        .expect("run deploy/verify.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn verify_sh_accepts_everything_in_deploy() {
    let (ok, out) = run_verify(&deploy_dir());
    assert!(ok, "deploy/verify.sh failed:\n{out}");
    for line in [
        "ok   systemd-analyze verify tribune-server.service",
        "ok   systemd-analyze verify tribune-client.service",
        "ok   tribune validate config/server.hcl",
        "ok   tribune validate config/client.hcl",
        "ok   tribune validate compose/config/server.hcl",
        "ok   tribune validate compose/config/client.hcl",
        "ok   rsyslogd -N1 rsyslog/*.conf",
        "ok   victoria-metrics dry run compose/prometheus.yml",
        "deploy/verify.sh: all checks passed",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn verify_sh_rejects_a_broken_unit_and_a_broken_config() {
    let work = Workdir::new("deploy").unwrap();
    let copy = work.path().join("deploy");
    copy_dir(&deploy_dir(), &copy);
    let unit = copy.join("systemd/tribune-server.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, text.replace("Type=notify", "Type=notfy")).unwrap();
    let cfg = copy.join("config/client.hcl");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("retry_join ", "retry_jion ")).unwrap();
    let (ok, out) = run_verify(&copy);
    assert!(!ok, "verify.sh passed broken files:\n{out}");
    assert!(
        out.contains("FAIL systemd-analyze verify tribune-server.service"),
        "{out}"
    );
    assert!(out.contains("notfy"), "{out}");
    assert!(
        out.contains("FAIL tribune validate config/client.hcl"),
        "{out}"
    );
    assert!(out.contains("retry_jion"), "{out}");
    assert!(
        out.contains("ok   tribune validate config/server.hcl"),
        "{out}"
    );
}

/// Reads one sd_notify datagram, waiting at most `timeout`.
fn notification(sock: &UnixDatagram, timeout: Duration) -> anyhow::Result<String> {
    sock.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).context("no sd_notify message")?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn the_agent_speaks_type_notify() {
    let work = Workdir::new("notify").unwrap();
    let path = work.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let p = must(free_ports(5));
    let mut cmd = Command::new(must(tribune_bin()));
    cmd.args([
        "agent".to_string(),
        "-dev".into(),
        "-node=notify".into(),
        format!("-http-port={}", p[0]),
        format!("-dns-port={}", p[1]),
        format!("-serf-lan-port={}", p[2]),
        format!("-serf-wan-port={}", p[3]),
        format!("-server-port={}", p[4]),
        "-grpc-port=-1".into(),
    ])
    .env("NOTIFY_SOCKET", &path);
    let started = Instant::now();
    let mut agent = must(Spawned::spawn("agent", cmd, work.path()));
    let ready = notification(&sock, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.output_tail()));
    assert_eq!(ready, "READY=1");
    eprintln!("READY=1 after {:?}", started.elapsed());
    // Ready means serving: the API answers at once.
    let reply = reqwest::get(format!("http://127.0.0.1:{}/v1/agent/self", p[0]))
        .await
        .expect("GET /v1/agent/self after READY=1");
    assert_eq!(reply.status(), 200);
    must(agent.signal(libc::SIGTERM));
    let stopping = must(notification(&sock, Duration::from_secs(15)));
    assert_eq!(stopping, "STOPPING=1");
    must(agent.wait_exit(Duration::from_secs(15)).await);
}

/// deploy/rsyslog/tribune-collector.conf as shipped, on a free port and with its
/// file in a temporary directory, fed by an agent with `syslog_address = tcp://`.
#[tokio::test]
async fn the_collector_snippet_writes_json_for_elk() {
    let rsyslogd = must(find_program(
        "RSYSLOGD_BIN",
        &["rsyslogd", "/usr/sbin/rsyslogd"],
        "rsyslogd (Debian package rsyslog)",
    ));
    let work = Workdir::new("collector").unwrap();
    let port = must(free_port());
    let out = work.path().join("agents.json");
    let snippet =
        std::fs::read_to_string(deploy_dir().join("rsyslog/tribune-collector.conf")).unwrap();
    assert!(snippet.contains("port=\"6514\"") && snippet.contains("/var/log/tribune/agents.json"));
    let snippet = snippet
        .replace(
            "port=\"6514\"",
            &format!("port=\"{port}\" address=\"127.0.0.1\""),
        )
        .replace("/var/log/tribune/agents.json", &out.display().to_string());
    std::fs::write(work.path().join("collector.conf"), snippet).unwrap();
    std::fs::create_dir_all(work.path().join("work")).unwrap();
    std::fs::write(
        work.path().join("rsyslog.conf"),
        format!(
            "global(workDirectory=\"{d}/work\")\nmodule(load=\"imuxsock\" SysSock.Use=\"off\")\n$IncludeConfig {d}/collector.conf\n",
            d = work.path().display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(rsyslogd);
    cmd.arg("-n")
        .arg("-f")
        .arg(work.path().join("rsyslog.conf"))
        .arg("-i")
        .arg(work.path().join("rsyslogd.pid"));
    let mut collector = must(Spawned::spawn("rsyslogd", cmd, work.path()));
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        must(collector.ensure_running());
        assert!(
            Instant::now() < deadline,
            "rsyslogd does not listen on {port}\n{}",
            collector.output_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let agent = must(
        Agent::start_with_config(json!({
            "enable_syslog": true,
            "syslog_address": format!("tcp://127.0.0.1:{port}"),
        }))
        .await,
    );
    must(
        agent
            .put_json_ok(
                "/v1/agent/service/register",
                &json!({"Name": "web", "ID": "web", "Check": {"CheckID": "web-ttl", "TTL": "600s"}}),
            )
            .await,
    );
    must(
        agent
            .put_json_ok(
                "/v1/agent/check/update/web-ttl",
                &json!({"Status": "warning", "Output": "disk \"91%\" ] full"}),
            )
            .await,
    );
    let warning: Value = must(
        wait_until(Duration::from_secs(10), "the warning as JSON", || async {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            for line in text.lines() {
                let v: Value =
                    serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
                if v["@message"] == "Check is now warning." {
                    return Ok(v);
                }
            }
            bail!("{} lines, none is the warning", text.lines().count())
        })
        .await,
    );
    assert_eq!(warning["@level"], "warn", "{warning}");
    assert_eq!(warning["@module"], "checks", "{warning}");
    assert_eq!(warning["fields"]["check_id"], "web-ttl", "{warning}");
    assert_eq!(
        warning["fields"]["output"], "disk \"91%\" ] full",
        "{warning}"
    );
    assert!(
        warning["@timestamp"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "{warning}"
    );
    assert!(
        warning["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{warning}"
    );
    let synced = std::fs::read_to_string(&out).unwrap();
    let found = synced.lines().any(|l| {
        serde_json::from_str::<Value>(l)
            .map(|v| {
                v["@message"] == "Synced service."
                    && v["fields"]["service"] == "web"
                    && v["@level"] == "info"
            })
            .unwrap_or(false)
    });
    assert!(
        found,
        "no `Synced service.` line with fields.service = web:\n{synced}"
    );
    drop(agent);
    drop(collector);
}
