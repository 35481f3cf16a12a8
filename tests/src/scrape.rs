//! The Prometheus side of the seed: node_exporter as a scrape target, and a
//! real scraper that finds it through `consul_sd_configs`.
//!
//! [`ScraperKind`] holds what differs between scrapers (how to start one, how
//! to make its Consul discovery react quickly, which of its own metrics counts
//! its Consul requests); [`Scraper`] runs one and reads the Prometheus HTTP API
//! both expose (`/api/v1/targets`, `/api/v1/query`). Debian's `prometheus` is
//! built without Consul discovery, so the default is Debian's
//! `victoria-metrics`; set `PROMETHEUS_BIN` to run a Prometheus that has it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::http::{self, Reply};
use crate::process::{self, Spawned, Workdir};

/// How long a scraper or exporter may take to start serving HTTP.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What differs between Prometheus-compatible scrapers.
pub trait ScraperKind: fmt::Debug + Send + Sync {
    /// A short name for messages: `victoria-metrics`, `prometheus`.
    fn name(&self) -> &'static str;

    /// The command that serves the HTTP API on `listen`, stores data under
    /// `data_dir` and scrapes what `config` (a Prometheus config file) says.
    fn command(&self, config: &Path, listen: SocketAddr, data_dir: &Path) -> Command;

    /// A path that answers 200 once the scraper is up.
    fn ready_path(&self) -> &'static str;

    /// Lines to add to each `consul_sd_configs` entry (already indented for
    /// the entry's keys) so that discovery issues its next blocking query at
    /// once; empty when the scraper takes that from a flag instead.
    fn consul_sd_tuning(&self, indent: &str) -> String;

    /// The longest time from a change in Consul to the scraper's target list
    /// showing it, given a blocking query that returns as soon as the change
    /// happens. Far below the blocking wait (2 minutes), so meeting it proves
    /// the agent answered the blocking query early.
    fn propagation_budget(&self) -> Duration;

    /// The scraper's own metric (in its `/metrics`) that counts requests to
    /// Consul; summed over all its series.
    fn consul_requests_metric(&self) -> &'static str;
}

/// Debian's `victoria-metrics` (single-node VictoriaMetrics with promscrape).
///
/// Measured with 1.79.5: its Consul watcher keeps one blocking query per
/// service (and one on the catalog) in flight and stores each answer as it
/// arrives, while the target list is rebuilt from those answers every
/// `-promscrape.consulSDCheckInterval`. So the interval is set to 1 s (its
/// minimum) and the blocking wait to 120 s: a target then changes within
/// about 1 s of the agent answering, and only an early answer can make it
/// change before two minutes.
#[derive(Debug)]
pub struct VictoriaMetrics {
    bin: PathBuf,
}

impl VictoriaMetrics {
    /// Finds `victoria-metrics` (`VICTORIA_METRICS_BIN` overrides).
    pub fn find() -> anyhow::Result<VictoriaMetrics> {
        let bin = process::find_program(
            "VICTORIA_METRICS_BIN",
            &["/usr/bin/victoria-metrics", "victoria-metrics"],
            "victoria-metrics (Debian package victoria-metrics)",
        )?;
        Ok(VictoriaMetrics { bin })
    }
}

impl ScraperKind for VictoriaMetrics {
    fn name(&self) -> &'static str {
        "victoria-metrics"
    }

    fn command(&self, config: &Path, listen: SocketAddr, data_dir: &Path) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("-httpListenAddr={listen}"))
            .arg(format!("-storageDataPath={}", data_dir.display()))
            .arg(format!("-promscrape.config={}", config.display()))
            .arg("-promscrape.consulSDCheckInterval=1s")
            .arg("-promscrape.consul.waitTime=120s")
            // Fresh samples must be queryable at once, not after the 30 s default.
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-memory.allowedPercent=10")
            .arg("-loggerLevel=WARN");
        cmd
    }

    fn ready_path(&self) -> &'static str {
        "/health"
    }

    fn consul_sd_tuning(&self, _indent: &str) -> String {
        String::new()
    }

    fn propagation_budget(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn consul_requests_metric(&self) -> &'static str {
        "vm_promscrape_discovery_requests_total"
    }
}

/// A Prometheus built with Consul discovery, from `PROMETHEUS_BIN`.
///
/// Its Consul discovery waits `refresh_interval` between two blocking queries
/// and hands changes to the scrape manager at most every 5 s, hence
/// `refresh_interval: 1s` and a 10 s budget.
#[derive(Debug)]
pub struct Prometheus {
    bin: PathBuf,
}

impl ScraperKind for Prometheus {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn command(&self, config: &Path, listen: SocketAddr, data_dir: &Path) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={listen}"))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg("--log.level=warn");
        cmd
    }

    fn ready_path(&self) -> &'static str {
        "/-/ready"
    }

    fn consul_sd_tuning(&self, indent: &str) -> String {
        format!("{indent}refresh_interval: 1s\n")
    }

    fn propagation_budget(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn consul_requests_metric(&self) -> &'static str {
        "prometheus_sd_consul_rpc_duration_seconds_count"
    }
}

/// The scraper to test with: Prometheus if `PROMETHEUS_BIN` is set, else
/// VictoriaMetrics. Fails (never skips) when the program is missing.
pub fn scraper_from_env() -> anyhow::Result<Box<dyn ScraperKind>> {
    if std::env::var_os("PROMETHEUS_BIN").is_some_and(|v| !v.is_empty()) {
        let bin = process::find_program("PROMETHEUS_BIN", &[], "prometheus")?;
        return Ok(Box::new(Prometheus { bin }));
    }
    Ok(Box::new(VictoriaMetrics::find()?))
}

/// One active scrape target as `/api/v1/targets` shows it.
#[derive(Debug, Clone)]
pub struct Target {
    pub scrape_pool: String,
    /// Labels after relabelling (`job`, `instance`, `env`, ...).
    pub labels: BTreeMap<String, String>,
    /// Labels from discovery, before relabelling (`__meta_consul_*`, ...).
    pub discovered: BTreeMap<String, String>,
    /// `up`, `down` or `unknown`.
    pub health: String,
    pub last_error: String,
}

/// One series of an instant query's vector result.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: String,
}

/// A running scraper; dropping it kills the process and removes its directory.
#[derive(Debug)]
pub struct Scraper {
    kind: Box<dyn ScraperKind>,
    addr: SocketAddr,
    client: reqwest::Client,
    process: Spawned,
    dir: Workdir,
}

impl Scraper {
    /// Writes `config` (a Prometheus YAML config) and starts the scraper on a
    /// free loopback port; returns once its ready path answers 200.
    pub async fn start(kind: Box<dyn ScraperKind>, config: &str) -> anyhow::Result<Scraper> {
        let dir = Workdir::new(kind.name())?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let data_dir = dir.path().join("data");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, process::free_port()?));
        let cmd = kind.command(&config_path, addr, &data_dir);
        let process = Spawned::spawn(kind.name(), cmd, dir.path())?;
        let mut scraper = Scraper {
            kind,
            addr,
            client: http::client(),
            process,
            dir,
        };
        scraper.wait_ready().await?;
        Ok(scraper)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let url = self.url(self.kind.ready_path());
        loop {
            self.process.ensure_running()?;
            let last = match Reply::send(self.client.get(&url)).await {
                Ok(reply) if reply.status == 200 => return Ok(()),
                Ok(reply) => format!("status {}", reply.status),
                Err(err) => format!("{err:#}"),
            };
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "{} did not become ready within {START_TIMEOUT:?} (GET {url}: {last})\n{}",
                    self.kind.name(),
                    self.process.output_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What kind of scraper this is.
    pub fn kind(&self) -> &dyn ScraperKind {
        self.kind.as_ref()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The scraper's temporary directory (config, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines the scraper wrote, for failure messages.
    pub fn output_tail(&self) -> String {
        self.process.output_tail()
    }

    /// Active targets of scrape pool `job`.
    pub async fn active_targets(&self, job: &str) -> anyhow::Result<Vec<Target>> {
        let reply = Reply::send(self.client.get(self.url("/api/v1/targets")))
            .await?
            .ensure_ok()?;
        let doc = reply.json()?;
        let active = doc["data"]["activeTargets"]
            .as_array()
            .with_context(|| format!("no data.activeTargets in {doc}"))?;
        Ok(active
            .iter()
            .map(|t| Target {
                scrape_pool: str_field(t, "scrapePool"),
                labels: string_map(&t["labels"]),
                discovered: string_map(&t["discoveredLabels"]),
                health: str_field(t, "health"),
                last_error: str_field(t, "lastError"),
            })
            .filter(|t| {
                t.scrape_pool == job || t.labels.get("job").map(String::as_str) == Some(job)
            })
            .collect())
    }

    /// An instant query; the vector result.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let reply = Reply::send(
            self.client
                .get(self.url("/api/v1/query"))
                .query(&[("query", promql)]),
        )
        .await?
        .ensure_ok()?;
        let doc = reply.json()?;
        if doc["status"] != "success" || doc["data"]["resultType"] != "vector" {
            bail!("query {promql} answered {doc}");
        }
        let result = doc["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(result
            .iter()
            .map(|s| Sample {
                labels: string_map(&s["metric"]),
                value: s["value"][1].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// How many requests the scraper has sent to Consul so far, from its own
    /// metrics.
    pub async fn consul_requests(&self) -> anyhow::Result<u64> {
        let reply = Reply::send(self.client.get(self.url("/metrics")))
            .await?
            .ensure_ok()?;
        let name = self.kind.consul_requests_metric();
        let text = reply.text();
        let mut total = 0.0;
        let mut seen = false;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                continue;
            }
            if let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                total += value;
                seen = true;
            }
        }
        if !seen {
            bail!("{} exposes no {name} in /metrics", self.kind.name());
        }
        // Counters of requests are whole numbers.
        Ok(total as u64)
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// node_exporter (Debian's `prometheus-node-exporter`) on a free loopback port.
///
/// Only the cheap `loadavg` collector runs (no root needed, nothing slow);
/// its own `node_exporter_build_info` is always exported.
#[derive(Debug)]
pub struct NodeExporter {
    addr: SocketAddr,
    process: Spawned,
    _dir: Workdir,
}

impl NodeExporter {
    /// Starts it and returns once `/metrics` answers 200.
    pub async fn start() -> anyhow::Result<NodeExporter> {
        let bin = process::find_program(
            "NODE_EXPORTER_BIN",
            &[
                "/usr/bin/prometheus-node-exporter",
                "prometheus-node-exporter",
                "node_exporter",
            ],
            "node_exporter (Debian package prometheus-node-exporter)",
        )?;
        let dir = Workdir::new("node-exporter")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, process::free_port()?));
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--web.listen-address={addr}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.loadavg")
            .arg("--log.level=warn");
        let mut process = Spawned::spawn("node-exporter", cmd, dir.path())?;
        let client = http::client();
        let url = format!("http://{addr}/metrics");
        let started = std::time::Instant::now();
        loop {
            process.ensure_running()?;
            match Reply::send(client.get(&url)).await {
                Ok(reply) if reply.status == 200 => break,
                _ if started.elapsed() > START_TIMEOUT => bail!(
                    "node_exporter did not serve {url} within {START_TIMEOUT:?}\n{}",
                    process.output_tail()
                ),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Ok(NodeExporter {
            addr,
            process,
            _dir: dir,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The last lines it wrote, for failure messages.
    pub fn output_tail(&self) -> String {
        self.process.output_tail()
    }
}
