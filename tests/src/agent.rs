//! [`Agent`]: one real `tribune agent` process on loopback ports, started in
//! dev mode or from a config directory, with the HTTP helpers suites use on it.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

use crate::http::{self, go_millis, with_query, Reply};
use crate::process::{self, Spawned, Workdir};
use crate::wait::wait_until;

/// How long an agent may take to answer `GET /v1/agent/self` after spawn (a
/// debug build on a loaded 2-core machine, possibly beside other suites).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a single-server agent may take to elect itself leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The loopback ports one agent listens on.
#[derive(Debug, Clone, Copy)]
pub struct AgentPorts {
    pub http: u16,
    pub dns: u16,
    pub serf_lan: u16,
    pub serf_wan: u16,
    pub server: u16,
}

impl AgentPorts {
    fn pick() -> anyhow::Result<AgentPorts> {
        let p = process::free_ports(5)?;
        Ok(AgentPorts {
            http: p[0],
            dns: p[1],
            serf_lan: p[2],
            serf_wan: p[3],
            server: p[4],
        })
    }
}

/// The command line of an agent, kept so the same agent can be started again.
#[derive(Debug, Clone)]
struct Recipe {
    program: std::path::PathBuf,
    args: Vec<String>,
    is_server: bool,
}

impl Recipe {
    fn command(&self, dir: &std::path::Path) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).current_dir(dir);
        cmd
    }
}

/// A running `tribune agent`. Dropping it kills the process and removes its
/// directory (which holds `data/`, `config/` and the `agent.stdout` /
/// `agent.stderr` logs).
#[derive(Debug)]
pub struct Agent {
    node: String,
    ports: AgentPorts,
    token: Option<String>,
    client: reqwest::Client,
    /// How to start the process again ([`Agent::restart`]): program and arguments.
    recipe: Recipe,
    /// Starts so far; names the log files of each run (`agent`, `agent-2`, ...).
    runs: u32,
    // Declared before `dir`: fields drop in order, so the process is killed
    // (and its logs printed on panic) before its directory goes.
    process: Spawned,
    dir: Workdir,
}

impl Agent {
    /// Starts `tribune agent -dev` named `node` on free loopback ports and
    /// returns once it answers `GET /v1/agent/self`, has elected itself and
    /// has registered its node in the catalog.
    pub async fn start_dev(node: &str) -> anyhow::Result<Agent> {
        Agent::start_dev_with_args(node, &[]).await
    }

    /// [`Agent::start_dev`] with extra command-line flags appended.
    pub async fn start_dev_with_args(node: &str, extra: &[&str]) -> anyhow::Result<Agent> {
        let dir = Workdir::new("agent")?;
        let ports = AgentPorts::pick()?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir)?;
        let mut args: Vec<String> = vec![
            "agent".into(),
            "-dev".into(),
            format!("-node={node}"),
            format!("-data-dir={}", data_dir.display()),
            format!("-http-port={}", ports.http),
            format!("-dns-port={}", ports.dns),
            format!("-serf-lan-port={}", ports.serf_lan),
            format!("-serf-wan-port={}", ports.serf_wan),
            format!("-server-port={}", ports.server),
            // -dev would otherwise take gRPC's fixed 8502, clashing between parallel tests.
            "-grpc-port=-1".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let recipe = Recipe {
            program: process::tribune_bin()?,
            args,
            is_server: true,
        };
        let agent = Agent::spawn(node, ports, None, recipe, dir).await?;
        agent.wait_for_leader_or_explain().await?;
        Ok(agent)
    }

    /// Starts `tribune agent -config-dir <dir>/config` with `config` written
    /// as `tribune.json`, deep-merged over the harness defaults: node name
    /// `tribune-test`, a temporary `data_dir`, everything bound to 127.0.0.1
    /// on free ports (gRPC off), and a single server (`server: true`,
    /// `bootstrap_expect: 1`). A `null` in `config` removes a default key.
    ///
    /// If the config sets `acl.tokens.initial_management` (or the seed's
    /// `acl.tokens.master`), the helpers send it as `X-Consul-Token`.
    /// Returns once `GET /v1/agent/self` answers 200 and, for a server, once a
    /// leader is known and the node is registered.
    pub async fn start_with_config(config: Value) -> anyhow::Result<Agent> {
        Agent::start_with_config_files(config, &[]).await
    }

    /// [`Agent::start_with_config`] with more files in the config directory
    /// before the agent starts: `(file name, contents)`, e.g. a service
    /// definition `("web.json", "{\"service\": {...}}")`. The directory is
    /// [`Agent::config_dir`]; edit it later and reload to test reloads.
    pub async fn start_with_config_files(
        config: Value,
        files: &[(&str, &str)],
    ) -> anyhow::Result<Agent> {
        let agent = Agent::start_with_config_unready(config, files).await?;
        if agent.recipe.is_server {
            agent.wait_for_leader_or_explain().await?;
        }
        Ok(agent)
    }

    /// [`Agent::start_with_config_files`] that returns as soon as the HTTP API answers,
    /// without waiting for a leader: for servers that form a cluster together
    /// (`bootstrap_expect` > 1 elects nobody until the others are up).
    pub async fn start_with_config_unready(
        config: Value,
        files: &[(&str, &str)],
    ) -> anyhow::Result<Agent> {
        let dir = Workdir::new("agent")?;
        let ports = AgentPorts::pick()?;
        let mut merged = json!({
            "node_name": "tribune-test",
            "data_dir": dir.path().join("data"),
            "bind_addr": "127.0.0.1",
            "client_addr": "127.0.0.1",
            "server": true,
            "bootstrap_expect": 1,
            "ports": {
                "http": ports.http,
                "dns": ports.dns,
                "serf_lan": ports.serf_lan,
                "serf_wan": ports.serf_wan,
                "server": ports.server,
                "grpc": -1,
            },
        });
        merge(&mut merged, config);
        let node = merged["node_name"]
            .as_str()
            .context("config: node_name must be a string")?
            .to_owned();
        let token = ["initial_management", "master"]
            .iter()
            .find_map(|k| merged["acl"]["tokens"][k].as_str())
            .map(str::to_owned);
        let is_server = merged["server"].as_bool().unwrap_or(false);
        let config_dir = dir.path().join("config");
        std::fs::create_dir_all(&config_dir)?;
        std::fs::write(
            config_dir.join("tribune.json"),
            serde_json::to_vec_pretty(&merged)?,
        )?;
        for (name, contents) in files {
            std::fs::write(config_dir.join(name), contents)
                .with_context(|| format!("write config file {name}"))?;
        }
        let recipe = Recipe {
            program: process::tribune_bin()?,
            args: vec![
                "agent".into(),
                format!("-config-dir={}", config_dir.display()),
            ],
            is_server,
        };
        Agent::spawn(&node, ports, token, recipe, dir).await
    }

    async fn spawn(
        node: &str,
        ports: AgentPorts,
        token: Option<String>,
        recipe: Recipe,
        dir: Workdir,
    ) -> anyhow::Result<Agent> {
        let process = Spawned::spawn("agent", recipe.command(dir.path()), dir.path())?;
        let mut agent = Agent {
            node: node.to_owned(),
            ports,
            token,
            client: http::client(),
            recipe,
            runs: 1,
            process,
            dir,
        };
        agent.wait_ready().await?;
        Ok(agent)
    }

    /// Waits until the current process answers `GET /v1/agent/self` with 200.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            self.process.ensure_running()?;
            let last = match self.http_get("/v1/agent/self").await {
                Ok(reply) if reply.status == 200 => return Ok(()),
                Ok(reply) => format!("status {}: {}", reply.status, reply.text()),
                Err(err) => format!("{err:#}"),
            };
            if started.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "tribune agent (pid {}) did not answer GET /v1/agent/self with 200 within \
                     {STARTUP_TIMEOUT:?}; last: {last}; command: {}\n{}",
                    self.process.pid(),
                    self.process.command(),
                    self.process.output_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `GET /v1/status/leader` names a leader.
    pub async fn wait_for_leader(&self) -> anyhow::Result<()> {
        wait_until(LEADER_TIMEOUT, "the agent to know a leader", || async {
            let reply = self.http_get("/v1/status/leader").await?.ensure_ok()?;
            match reply.json()? {
                Value::String(s) if !s.is_empty() => Ok(()),
                other => bail!("GET /v1/status/leader answered {other}"),
            }
        })
        .await
    }

    /// [`Agent::wait_for_leader`] for the start functions: the agent is
    /// dropped on error without a panic, so the error carries its output.
    ///
    /// It also waits for the server to have registered its own node with the
    /// `serfHealth` check: the leader does that shortly after its election,
    /// and a suite reading the catalog before it would see no `consul`
    /// service and no node checks.
    async fn wait_for_leader_or_explain(&self) -> anyhow::Result<()> {
        let explain =
            |err: anyhow::Error| anyhow::anyhow!("{err:#}\n{}", self.process.output_tail());
        self.wait_for_leader().await.map_err(explain)?;
        self.wait_for_self_registration().await.map_err(explain)
    }

    /// Waits until `GET /v1/health/node/<node>` lists `serfHealth`.
    pub async fn wait_for_self_registration(&self) -> anyhow::Result<()> {
        let path = format!("/v1/health/node/{}", self.node);
        wait_until(
            LEADER_TIMEOUT,
            "the agent to register its node with serfHealth",
            || async {
                let checks = self.http_get(&path).await?.ensure_ok()?.json()?;
                let found = checks
                    .as_array()
                    .is_some_and(|a| a.iter().any(|c| c["CheckID"] == "serfHealth"));
                if found {
                    Ok(())
                } else {
                    bail!("GET {path} answered {checks}")
                }
            },
        )
        .await
    }

    /// Kills the process with SIGKILL (no graceful shutdown) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill()
    }

    /// Sends `signal` (e.g. `libc::SIGHUP` to reload) to the running process.
    pub fn signal(&mut self, signal: i32) -> anyhow::Result<()> {
        self.process.signal(signal)
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit;
    /// returns its exit status. Fails (leaving the process running, to be
    /// killed on drop) if it does not exit in time.
    pub async fn terminate(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        self.process.signal(libc::SIGTERM)?;
        self.process.wait_exit(timeout).await
    }

    /// Starts the agent again after [`Agent::kill`] or [`Agent::terminate`]:
    /// the same command line, ports, config and data directories. Returns
    /// once it answers and, for a server, knows a leader. Each run writes its
    /// own log files (`agent-2.stderr`, ...).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.process.exited().is_none() {
            bail!(
                "restart: the agent (pid {}) is still running; kill or terminate it first",
                self.process.pid()
            );
        }
        self.runs += 1;
        let name = format!("agent-{}", self.runs);
        self.process =
            Spawned::spawn(&name, self.recipe.command(self.dir.path()), self.dir.path())?;
        self.wait_ready().await?;
        if self.recipe.is_server {
            self.wait_for_leader_or_explain().await?;
        }
        Ok(())
    }

    /// The directory the agent reads `*.json` config files from (agents
    /// started with [`Agent::start_with_config`] only).
    pub fn config_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("config")
    }

    /// The node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The ports the agent was told to use.
    pub fn ports(&self) -> AgentPorts {
        self.ports
    }

    /// The HTTP API address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.http))
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr())
    }

    /// The agent's temporary directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The token the helpers send, if the config set a management token.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The last lines the agent wrote, for failure messages.
    pub fn output_tail(&self) -> String {
        self.process.output_tail()
    }

    /// Fails if the agent process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// A request to `path` carrying the agent's management token, if any.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.anonymous(method, path);
        match &self.token {
            Some(token) => rb.header("X-Consul-Token", token),
            None => rb,
        }
    }

    /// A request to `path` without any token.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// `GET path`.
    pub async fn http_get(&self, path: &str) -> anyhow::Result<Reply> {
        Reply::send(self.request(Method::GET, path)).await
    }

    /// `PUT path` with a raw body.
    pub async fn http_put(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<Reply> {
        Reply::send(self.request(Method::PUT, path).body(body)).await
    }

    /// `DELETE path`.
    pub async fn http_delete(&self, path: &str) -> anyhow::Result<Reply> {
        Reply::send(self.request(Method::DELETE, path)).await
    }

    /// Any verb, with a raw body.
    pub async fn http(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<Reply> {
        Reply::send(self.request(method, path).body(body)).await
    }

    /// `GET path`, failing unless the answer is 200 with a JSON body.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        self.http_get(path).await?.ensure_ok()?.json()
    }

    /// `PUT path` with a JSON body, failing unless the answer is 200.
    pub async fn put_json_ok(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.http_put_json(path, body).await?.ensure_ok()
    }

    /// `PUT path` with a JSON body.
    pub async fn http_put_json(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.http_put(path, serde_json::to_vec(body)?).await
    }

    /// A blocking query: `GET path?index=<index>&wait=<wait as ms>`, with a
    /// client timeout that allows Consul's jitter (wait/16) plus slack.
    /// Returns the reply; [`Reply::index`] gives the next index to pass.
    pub async fn blocking_get(
        &self,
        path: &str,
        index: u64,
        wait: Duration,
    ) -> anyhow::Result<Reply> {
        let path = with_query(
            &with_query(path, "index", &index.to_string()),
            "wait",
            &go_millis(wait),
        );
        let budget = wait + wait / 16 + Duration::from_secs(10);
        Reply::send(self.request(Method::GET, &path).timeout(budget)).await
    }
}

/// Merges `patch` into `base`: objects recursively, `null` deletes, anything
/// else replaces.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(&key);
                } else {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep_and_null_deletes() {
        let mut base = json!({"a": 1, "ports": {"http": 1, "dns": 2}, "server": true});
        merge(
            &mut base,
            json!({"ports": {"dns": 9}, "server": null, "acl": {"enabled": true}}),
        );
        assert_eq!(
            base,
            json!({"a": 1, "ports": {"http": 1, "dns": 9}, "acl": {"enabled": true}})
        );
    }
}
