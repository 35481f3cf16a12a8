//! The plugin host: the registry of loaded plugins, and the three ways the agent calls
//! them: a check (fresh store per call from the `InstancePre`), a tag rewrite and an
//! event delivery (a kept instance, re-armed with fresh limits per call).
//!
//! Every failure of plugin code (trap, deadline, fuel, memory, host-call quota) becomes
//! an outcome (a critical check, a skipped rewrite, a dropped event) with a sentence that
//! names the limit, and counts toward quarantine: five in a row and the plugin is set
//! aside until the next reload.

use super::bindings;
use super::capability::{cap_str, Io, KvSource, PluginCtx};
use super::events::{dedup_tags, meta_problem, Event, ServiceView, META_MAX_PAIRS};
use super::loader::{self, Analysis, Loaded, Pre};
use super::manifest::{EventKind, Kind};
use super::runtime::{
    deadline_ticks, engine, CallState, EngineOptions, EpochTicker, LimitHit, WorkerPool, OUTPUT_CAP,
};
use super::settings::Settings;
use crate::config::PluginConfig;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

/// Consecutive failures after which a plugin is quarantined until reload.
pub const QUARANTINE_AFTER: u32 = 5;

/// How the agent sets up the host.
#[derive(Clone)]
pub struct HostOptions {
    /// This agent's node name (`config.node-name`, event `node`).
    pub node_name: String,
    /// Where compiled components are cached; `None`: no disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Threads running health checks.
    pub check_workers: usize,
    /// The KV store `kv-read` reads from.
    pub kv: Option<Arc<dyn KvSource>>,
    /// Fuel, epoch deadlines and the memory limiter. Always on in the agent; off only
    /// to measure what they cost (`tribune plugin bench`).
    pub enforce_limits: bool,
}

impl HostOptions {
    pub fn new(node_name: &str, data_dir: Option<&std::path::Path>) -> HostOptions {
        HostOptions {
            node_name: node_name.to_string(),
            cache_dir: Some(default_cache_dir(data_dir)),
            check_workers: 4,
            kv: None,
            enforce_limits: true,
        }
    }
}

/// Where compiled components are cached: `$TRIBUNE_PLUGIN_CACHE` when set (several
/// agents on one machine, tests), else `data_dir/plugin-cache`, else
/// `$HOME/.cache/tribune/plugins`, else the temp dir. Entries are keyed by the
/// component's content hash and the engine's settings, so sharing a directory is safe.
pub fn default_cache_dir(data_dir: Option<&std::path::Path>) -> PathBuf {
    if let Some(dir) = std::env::var_os("TRIBUNE_PLUGIN_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(d) = data_dir {
        return d.join("plugin-cache");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home).join(".cache/tribune/plugins");
    }
    std::env::temp_dir().join("tribune-plugin-cache")
}

/// A check's status as a plugin reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    Passing,
    Warning,
    Critical,
}

/// The result of one check invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    pub status: CheckStatus,
    pub output: String,
}

impl CheckOutcome {
    fn critical(output: impl Into<String>) -> CheckOutcome {
        CheckOutcome {
            status: CheckStatus::Critical,
            output: output.into(),
        }
    }
}

/// What a check invocation is about.
#[derive(Clone, Debug)]
pub struct CheckRequest {
    pub check_id: String,
    pub service_id: String,
    /// The check's `wasm.config` as JSON text.
    pub config_json: String,
    /// The check's timeout: the call's deadline.
    pub timeout: Duration,
}

/// What [`Plugins::call_blocking`] hands a plugin.
pub enum CallInput {
    Check(CheckRequest),
    Rewrite(ServiceView),
    Event(Event),
}

/// The plugin host. Cheap to clone.
#[derive(Clone)]
pub struct Plugins {
    inner: Arc<Inner>,
}

struct Inner {
    /// Built when the first plugin loads: an agent without plugins (most client agents)
    /// pays for no engine, linker, worker thread or epoch ticker.
    runtime: std::sync::OnceLock<Runtime>,
    /// What [`Inner::rt`] builds the runtime from.
    cache_dir: Option<PathBuf>,
    check_workers: usize,
    node_name: String,
    kv: Option<Arc<dyn KvSource>>,
    io: Option<Io>,
    enforce_limits: bool,
    registry: RwLock<Arc<Registry>>,
    /// One load or reload at a time.
    loading: Mutex<()>,
}

/// The engine and the threads that run plugins.
struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    pooling: bool,
    check_pool: WorkerPool,
    rewrite_pool: WorkerPool,
    hook_pool: WorkerPool,
    _ticker: EpochTicker,
}

impl Runtime {
    fn new(
        cache_dir: Option<PathBuf>,
        enforce_limits: bool,
        check_workers: usize,
    ) -> Result<Runtime, String> {
        let (engine, pooling) = engine(&EngineOptions {
            cache_dir,
            enforce_limits,
        })?;
        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| format!("cannot link WASI: {e}"))?;
        super::runtime::clamp_clock_waits(&mut linker)
            .map_err(|e| format!("cannot link WASI: {e}"))?;
        // The health-check world imports every host interface; the other worlds import a
        // subset of the same ones.
        bindings::check::HealthCheck::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| format!("cannot link the host interfaces: {e}"))?;
        let ticker = EpochTicker::start(&engine);
        Ok(Runtime {
            engine,
            linker,
            pooling,
            check_pool: WorkerPool::new(check_workers),
            rewrite_pool: WorkerPool::new(1),
            hook_pool: WorkerPool::new(2),
            _ticker: ticker,
        })
    }
}

impl Inner {
    /// The runtime, built on first use.
    fn rt(&self) -> Result<&Runtime, String> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        static BUILDING: Mutex<()> = Mutex::new(());
        let _one = BUILDING.lock();
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        let rt = Runtime::new(
            self.cache_dir.clone(),
            self.enforce_limits,
            self.check_workers,
        )?;
        Ok(self.runtime.get_or_init(|| rt))
    }
}

#[derive(Default)]
struct Registry {
    /// In configuration order (the order rewriters run in).
    plugins: Vec<Arc<Plugin>>,
}

impl Registry {
    fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.settings.name == name)
    }
}

struct Plugin {
    settings: Settings,
    state: State,
    stats: Stats,
    /// Why it is quarantined, until reload.
    quarantine: Mutex<Option<String>>,
    consecutive: AtomicU32,
    loaded_at: SystemTime,
}

enum State {
    Ready(Box<Ready>),
    Failed {
        analysis: Option<Box<Analysis>>,
        sha256: Option<String>,
        error: String,
    },
}

struct Ready {
    loaded: Loaded,
    ctx: Arc<PluginCtx>,
    /// Rewriters and hooks: the kept instance.
    kept: Mutex<Option<Kept>>,
    /// Hooks: the queue feeding the delivery task, and what it subscribes to.
    queue: Option<tokio::sync::mpsc::Sender<(Event, u64)>>,
    subscriptions: Vec<EventKind>,
}

enum Kept {
    Rewrite(Store<CallState>, bindings::rewrite::TagRewriter),
    Hook(Store<CallState>, bindings::hook::EventHook),
}

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    limit_hits: AtomicU64,
    denied: AtomicU64,
    errors: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    busy_ns: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A failed call: what to say, and whether it was the deadline or another limit.
struct Failure {
    message: String,
    timeout: bool,
    limit: bool,
}

/// One plugin as `GET /v1/agent/plugins` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PluginStatus {
    pub name: String,
    pub kind: String,
    pub path: String,
    /// `ready`, `quarantined` or `failed`.
    pub state: String,
    /// Why it failed or is quarantined.
    pub error: String,
    #[serde(rename = "SHA256")]
    pub sha256: String,
    #[serde(rename = "SDK")]
    pub sdk: String,
    #[serde(rename = "WIT")]
    pub wit: String,
    pub version: String,
    /// Capabilities the manifest declares.
    pub declared: Vec<String>,
    /// Capabilities the operator grants.
    pub granted: Vec<String>,
    pub subscriptions: Vec<String>,
    pub counters: Counters,
    pub last_error: String,
    pub loaded_at_unix: u64,
    pub compile_millis: u64,
}

/// Counters since load (a reload that keeps the plugin keeps them).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Counters {
    pub calls: u64,
    /// Traps, deadlines and exhausted limits.
    pub failures: u64,
    pub timeouts: u64,
    pub limit_hits: u64,
    /// Capability calls refused.
    pub denied: u64,
    /// Hooks: `err` results (the plugin ran fine but reported a problem).
    pub errors: u64,
    pub consecutive_failures: u32,
    /// Hooks: events queued, and dropped because the queue was full or the call failed.
    pub queued: u64,
    pub dropped: u64,
    /// Mean time per call, microseconds.
    pub mean_call_micros: u64,
}

impl Plugins {
    /// Creates the host: the engine, its worker threads and the epoch ticker. Plugins are
    /// loaded by [`Plugins::reload`]. Must be called inside a Tokio runtime when capability
    /// I/O is wanted (`http`, `tcp`).
    pub fn new(opts: HostOptions) -> Result<Plugins, String> {
        let io = tokio::runtime::Handle::try_current().ok().map(Io::new);
        Ok(Plugins {
            inner: Arc::new(Inner {
                runtime: std::sync::OnceLock::new(),
                cache_dir: opts.cache_dir,
                check_workers: opts.check_workers,
                node_name: opts.node_name,
                kv: opts.kv,
                io,
                enforce_limits: opts.enforce_limits,
                registry: RwLock::new(Arc::new(Registry::default())),
                loading: Mutex::new(()),
            }),
        })
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.inner.rt().is_ok_and(|rt| rt.pooling)
    }

    /// Loads `configs`, replacing what was loaded: unchanged plugins (same settings, same
    /// file content) are kept with their counters and instances, changed ones are
    /// reloaded, missing ones dropped. Quarantines end. Returns one sentence per plugin
    /// that failed to load; those stay listed as `failed`.
    pub fn reload(&self, configs: &[PluginConfig]) -> Vec<String> {
        let _one_at_a_time = self.inner.loading.lock();
        let old = self.inner.registry.read().clone();
        let mut next = Registry::default();
        let mut errors = Vec::new();
        for cfg in configs {
            let plugin = self.load_one(cfg, &old);
            if let State::Failed { error, .. } = &plugin.state {
                tracing::error!(target: "plugins", plugin = %cfg.name, path = %cfg.path.display(),
                    error = %error, "Plugin refused.");
                errors.push(format!("plugin {:?}: {error}", cfg.name));
            }
            next.plugins.push(plugin);
        }
        for p in &old.plugins {
            if next.get(&p.settings.name).is_none() {
                tracing::info!(target: "plugins", plugin = %p.settings.name, "Plugin unloaded.");
            }
        }
        *self.inner.registry.write() = Arc::new(next);
        errors
    }

    fn load_one(&self, cfg: &PluginConfig, old: &Registry) -> Arc<Plugin> {
        let failed = |settings: Settings, analysis, sha256, error: String| {
            Arc::new(Plugin {
                settings,
                state: State::Failed {
                    analysis,
                    sha256,
                    error,
                },
                stats: Stats::default(),
                quarantine: Mutex::new(None),
                consecutive: AtomicU32::new(0),
                loaded_at: SystemTime::now(),
            })
        };
        let settings = match Settings::from_config(cfg) {
            Ok(s) => s,
            Err(problems) => {
                let text = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.key, p.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                let s = Settings {
                    name: cfg.name.clone(),
                    path: cfg.path.clone(),
                    kind: None,
                    config_json: "null".into(),
                    grants: Default::default(),
                    limits: Default::default(),
                    events: None,
                };
                return failed(s, None, None, text);
            }
        };
        let wasm = match loader::read(&settings.path) {
            Ok(w) => w,
            Err(e) => return failed(settings, None, None, e),
        };
        let sha256 = loader::sha256_hex(&wasm);
        if let Some(prev) = old.get(&settings.name) {
            if prev.settings == settings
                && prev.sha256() == Some(sha256.as_str())
                && prev.is_ready()
            {
                if prev.quarantine.lock().take().is_some() {
                    tracing::info!(target: "plugins", plugin = %settings.name, "Quarantine lifted by reload.");
                }
                prev.consecutive.store(0, Ordering::Relaxed);
                return prev.clone();
            }
        }
        let started = Instant::now();
        let rt = match self.inner.rt() {
            Ok(rt) => rt,
            Err(e) => return failed(settings, None, Some(sha256), e),
        };
        let (component, analysis) = match loader::analyze(&rt.engine, &wasm) {
            Ok(x) => x,
            Err(e) => return failed(settings, None, Some(sha256), e),
        };
        let loaded = match loader::link(&rt.linker, &component, analysis) {
            Ok(l) => l,
            Err(refused) => {
                let (analysis, e) = *refused;
                return failed(settings, Some(Box::new(analysis)), Some(sha256), e);
            }
        };
        if let Some(k) = settings.kind {
            if k != loaded.kind {
                let msg = format!(
                    "configured as kind {k} but the component is a {}",
                    loaded.kind
                );
                return failed(settings, Some(Box::new(loaded.analysis)), Some(sha256), msg);
            }
        }
        let ctx = Arc::new(PluginCtx {
            name: settings.name.clone(),
            node_name: self.inner.node_name.clone(),
            config_json: settings.config_json.clone(),
            declared: loaded.manifest.capabilities.clone(),
            grants: settings.grants.clone(),
            limits: settings.limits.clone(),
            kv: self.inner.kv.clone(),
            io: self.inner.io.clone(),
            enforce: self.inner.enforce_limits,
        });
        let subscriptions = match (&settings.events, loaded.kind) {
            (_, k) if k != Kind::EventHook => Vec::new(),
            (Some(list), _) => list.clone(),
            (None, _) if !loaded.manifest.subscribe.is_empty() => loaded.manifest.subscribe.clone(),
            (None, _) => EventKind::ALL.to_vec(),
        };
        let (queue, rx) = if loaded.kind == Kind::EventHook {
            let (tx, rx) = tokio::sync::mpsc::channel(settings.limits.queue_size);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        tracing::info!(target: "plugins", plugin = %settings.name, kind = %loaded.kind,
            sha256 = %&sha256[..12], sdk = loaded.analysis.sdk.as_deref().unwrap_or("unknown"),
            compile_ms = loaded.analysis.compile_time.as_millis() as u64,
            load_ms = started.elapsed().as_millis() as u64, "Plugin loaded.");
        let plugin = Arc::new(Plugin {
            settings,
            state: State::Ready(Box::new(Ready {
                loaded,
                ctx,
                kept: Mutex::new(None),
                queue,
                subscriptions,
            })),
            stats: Stats::default(),
            quarantine: Mutex::new(None),
            consecutive: AtomicU32::new(0),
            loaded_at: SystemTime::now(),
        });
        if let Some(rx) = rx {
            self.start_delivery(&plugin, rx);
        }
        plugin
    }

    /// The task that feeds a hook's queue to it, one event at a time. It ends when the
    /// plugin is dropped (reload, shutdown) and its queue closes.
    fn start_delivery(
        &self,
        plugin: &Arc<Plugin>,
        mut rx: tokio::sync::mpsc::Receiver<(Event, u64)>,
    ) {
        let Some(io) = &self.inner.io else {
            tracing::warn!(target: "plugins", plugin = %plugin.settings.name,
                "No runtime to deliver events on; the hook receives nothing.");
            return;
        };
        let weak_plugin = Arc::downgrade(plugin);
        let weak_inner: Weak<Inner> = Arc::downgrade(&self.inner);
        io.handle.spawn(async move {
            while let Some((event, time)) = rx.recv().await {
                let (Some(plugin), Some(inner)) = (weak_plugin.upgrade(), weak_inner.upgrade())
                else {
                    return;
                };
                let Ok(rt) = inner.rt() else {
                    return;
                };
                let engine = rt.engine.clone();
                let p = plugin.clone();
                let done = rt
                    .hook_pool
                    .run(move || p.deliver(&engine, &event, time))
                    .await;
                if let Err(e) = done {
                    plugin.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "plugins", plugin = %plugin.settings.name, error = %e,
                        "Event dropped.");
                }
            }
        });
    }

    /// Runs a check once. Never fails: every problem is a critical outcome saying why.
    pub async fn run_check(&self, plugin: &str, req: CheckRequest) -> CheckOutcome {
        let p = match self.inner.registry.read().get(plugin) {
            Some(p) => p.clone(),
            None => {
                return CheckOutcome::critical(format!(
                    "no WASM plugin named {plugin:?} is loaded on this agent (see plugins[] in \
                     the agent config and GET /v1/agent/plugins)"
                ))
            }
        };
        if let Err(why) = p.usable(Kind::HealthCheck) {
            return CheckOutcome::critical(why);
        }
        let rt = match self.inner.rt() {
            Ok(rt) => rt,
            Err(e) => {
                return CheckOutcome::critical(format!("WASM plugin {plugin:?} did not run: {e}"))
            }
        };
        let engine = rt.engine.clone();
        let runner = p.clone();
        match rt
            .check_pool
            .run(move || runner.call_check(&engine, &req))
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => CheckOutcome::critical(format!("WASM plugin {plugin:?} did not run: {e}")),
        }
    }

    /// Runs a check on the calling thread (benchmarks, `tribune plugin run`).
    pub fn run_check_blocking(&self, plugin: &str, req: &CheckRequest) -> CheckOutcome {
        let p = match self.inner.registry.read().get(plugin) {
            Some(p) => p.clone(),
            None => return CheckOutcome::critical(format!("no WASM plugin named {plugin:?}")),
        };
        if let Err(why) = p.usable(Kind::HealthCheck) {
            return CheckOutcome::critical(why);
        }
        match self.inner.rt() {
            Ok(rt) => p.call_check(&rt.engine, req),
            Err(e) => CheckOutcome::critical(format!("WASM plugin {plugin:?} did not run: {e}")),
        }
    }

    /// Calls a plugin once on the calling thread, without the worker threads, as the
    /// agent would (fresh store for a check, kept instance for a rewrite or an event).
    /// For benchmarks: `tribune plugin bench`.
    pub fn call_blocking(&self, plugin: &str, input: &CallInput) -> Result<(), String> {
        let p = self
            .inner
            .registry
            .read()
            .get(plugin)
            .cloned()
            .ok_or_else(|| format!("no WASM plugin named {plugin:?}"))?;
        let engine = &self.inner.rt()?.engine;
        match input {
            CallInput::Check(req) => {
                p.call_check(engine, req);
                Ok(())
            }
            CallInput::Rewrite(svc) => p.call_rewrite(engine, svc).map(|_| ()),
            CallInput::Event(ev) => {
                p.deliver(engine, ev, unix_ms());
                Ok(())
            }
        }
    }

    /// Applies every tag rewriter, in configuration order, to a service being registered.
    /// `None` when no rewriter changed anything. A rewriter that fails is skipped (the
    /// service goes on unchanged by it) and the failure is logged and counted.
    pub fn rewrite_service(&self, service: &ServiceView) -> Option<ServiceView> {
        let reg = self.inner.registry.read().clone();
        let rewriters: Vec<Arc<Plugin>> = reg
            .plugins
            .iter()
            .filter(|p| p.kind() == Some(Kind::TagRewriter))
            .cloned()
            .collect();
        if rewriters.is_empty() {
            return None;
        }
        let mut current = service.clone();
        let mut changed = false;
        for p in rewriters {
            if let Err(why) = p.usable(Kind::TagRewriter) {
                tracing::debug!(target: "plugins", plugin = %p.settings.name, reason = %why, "Rewrite skipped.");
                continue;
            }
            let result = self.inner.rt().and_then(|rt| {
                let engine = rt.engine.clone();
                let input = current.clone();
                let runner = p.clone();
                rt.rewrite_pool
                    .run_sync(move || runner.call_rewrite(&engine, &input))
                    .and_then(|r| r)
            });
            match result {
                Ok(Some(next)) => {
                    if next != current {
                        changed = true;
                        current = next;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(target: "plugins", plugin = %p.settings.name, error = %e, "Rewrite skipped.")
                }
            }
        }
        changed.then_some(current)
    }

    /// Hands an event to every subscribed hook's queue. Never blocks: a full queue drops
    /// the event, counts it, and logs (at the 1st, 10th, 100th... drop).
    pub fn emit(&self, event: Event) {
        let reg = self.inner.registry.read().clone();
        let kind = event.kind();
        let now = unix_ms();
        for p in &reg.plugins {
            let State::Ready(ready) = &p.state else {
                continue;
            };
            let Some(tx) = &ready.queue else { continue };
            if !ready.subscriptions.contains(&kind) {
                continue;
            }
            match tx.try_send((event.clone(), now)) {
                Ok(()) => {
                    p.stats.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    let n = p.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if is_power_of_ten(n) {
                        tracing::warn!(target: "plugins", plugin = %p.settings.name, event = %kind,
                            dropped = n, queue = p.settings.limits.queue_size,
                            "Event hook queue full; events dropped.");
                    }
                }
            }
        }
    }

    /// Every configured plugin with its state and counters, in configuration order.
    pub fn list(&self) -> Vec<PluginStatus> {
        let reg = self.inner.registry.read().clone();
        reg.plugins.iter().map(|p| p.status()).collect()
    }

    /// Whether any loaded plugin is a tag rewriter (a cheap test before building a view).
    pub fn has_rewriters(&self) -> bool {
        self.inner
            .registry
            .read()
            .plugins
            .iter()
            .any(|p| p.kind() == Some(Kind::TagRewriter))
    }

    /// Stops the worker threads once their current calls end (agent shutdown).
    pub fn shutdown(&self) {
        *self.inner.registry.write() = Arc::new(Registry::default());
        if let Some(rt) = self.inner.runtime.get() {
            rt.check_pool.close();
            rt.rewrite_pool.close();
            rt.hook_pool.close();
        }
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Plugin {
    fn kind(&self) -> Option<Kind> {
        match &self.state {
            State::Ready(r) => Some(r.loaded.kind),
            State::Failed { analysis, .. } => analysis.as_ref().and_then(|a| a.kind),
        }
    }

    fn sha256(&self) -> Option<&str> {
        match &self.state {
            State::Ready(r) => Some(&r.loaded.analysis.sha256),
            State::Failed { sha256, .. } => sha256.as_deref(),
        }
    }

    fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }

    /// `Ok` when the plugin can be called as `want`; else the sentence to report.
    fn usable(&self, want: Kind) -> Result<&Ready, String> {
        let name = &self.settings.name;
        let ready = match &self.state {
            State::Ready(r) => r,
            State::Failed { error, .. } => {
                return Err(format!("WASM plugin {name:?} failed to load: {error}"))
            }
        };
        if ready.loaded.kind != want {
            return Err(format!(
                "WASM plugin {name:?} is a {}, not a {want}",
                ready.loaded.kind
            ));
        }
        if let Some(why) = self.quarantine.lock().as_ref() {
            return Err(format!("WASM plugin {name:?} is quarantined: {why}"));
        }
        Ok(ready)
    }

    fn new_store(
        &self,
        engine: &Engine,
        ctx: &Arc<PluginCtx>,
        timeout: Duration,
    ) -> Store<CallState> {
        let mut store = Store::new(
            engine,
            CallState::new(ctx.clone(), Instant::now() + timeout),
        );
        if ctx.enforce {
            store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        }
        self.arm(&mut store, timeout);
        store
    }

    /// Fresh limits for the next call on `store`.
    fn arm(&self, store: &mut Store<CallState>, timeout: Duration) {
        let data = store.data_mut();
        data.deadline = Instant::now() + timeout;
        data.host_calls = 0;
        data.limit_hit = None;
        data.denied = 0;
        data.first_denial = None;
        if !data.plugin.enforce {
            return;
        }
        // Fuel is on for the engine, so this cannot fail.
        let _ = store.set_fuel(self.settings.limits.fuel);
        store.set_epoch_deadline(deadline_ticks(timeout));
        store.epoch_deadline_trap();
    }

    fn call_check(&self, engine: &Engine, req: &CheckRequest) -> CheckOutcome {
        let ready = match self.usable(Kind::HealthCheck) {
            Ok(r) => r,
            Err(why) => return CheckOutcome::critical(why),
        };
        let Pre::Check(pre) = &ready.loaded.pre else {
            return CheckOutcome::critical("not a health check");
        };
        let started = Instant::now();
        let mut store = self.new_store(engine, &ready.ctx, req.timeout);
        let wreq = bindings::types::CheckRequest {
            check_id: req.check_id.clone(),
            service_id: req.service_id.clone(),
            config: req.config_json.clone(),
            timeout_ms: u32::try_from(req.timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let result = pre
            .instantiate(&mut store)
            .and_then(|inst| inst.tribune_plugin_check().call_check(&mut store, &wreq));
        self.account(started, store.data());
        match result {
            Ok(r) => {
                self.succeeded();
                let status = match r.status {
                    bindings::types::CheckStatus::Passing => CheckStatus::Passing,
                    bindings::types::CheckStatus::Warning => CheckStatus::Warning,
                    bindings::types::CheckStatus::Critical => CheckStatus::Critical,
                };
                CheckOutcome {
                    status,
                    output: cap_output(r.output),
                }
            }
            Err(e) => {
                let f = self.classify(&e, store.data(), req.timeout, "the check's timeout");
                self.failed(&f);
                CheckOutcome::critical(f.message)
            }
        }
    }

    fn call_rewrite(
        &self,
        engine: &Engine,
        service: &ServiceView,
    ) -> Result<Option<ServiceView>, String> {
        let ready = self.usable(Kind::TagRewriter)?;
        let Pre::Rewrite(pre) = &ready.loaded.pre else {
            return Err("not a tag rewriter".into());
        };
        let timeout = self.settings.call_timeout(Kind::TagRewriter);
        let started = Instant::now();
        let mut kept = ready.kept.lock();
        if kept.is_none() {
            let mut store = self.new_store(engine, &ready.ctx, timeout);
            match pre.instantiate(&mut store) {
                Ok(inst) => *kept = Some(Kept::Rewrite(store, inst)),
                Err(e) => {
                    let f = self.classify(&e, store.data(), timeout, "limits.timeout");
                    self.account(started, store.data());
                    self.failed(&f);
                    return Err(f.message);
                }
            }
        }
        let Some(Kept::Rewrite(store, inst)) = kept.as_mut() else {
            return Err("not a tag rewriter".into());
        };
        self.arm(store, timeout);
        let result = inst
            .tribune_plugin_rewrite()
            .call_rewrite(&mut *store, &service.to_wit());
        self.account(started, store.data());
        match result {
            Ok(None) => {
                self.succeeded();
                Ok(None)
            }
            Ok(Some(labels)) => {
                self.succeeded();
                Ok(Some(self.apply_labels(service, labels)))
            }
            Err(e) => {
                let f = self.classify(&e, store.data(), timeout, "limits.timeout");
                // A trapped instance may be in any state: start afresh next time.
                *kept = None;
                self.failed(&f);
                Err(f.message)
            }
        }
    }

    fn apply_labels(&self, service: &ServiceView, labels: bindings::types::Labels) -> ServiceView {
        let mut out = service.clone();
        out.tags = dedup_tags(labels.tags);
        out.meta.clear();
        for (k, v) in labels.meta {
            if let Some(why) = meta_problem(&k, &v) {
                tracing::warn!(target: "plugins", plugin = %self.settings.name, key = %k,
                    reason = why, "Dropped a meta pair from a rewrite.");
                continue;
            }
            if out.meta.len() >= META_MAX_PAIRS && !out.meta.contains_key(&k) {
                tracing::warn!(target: "plugins", plugin = %self.settings.name, key = %k,
                    "Dropped a meta pair from a rewrite: at most 64 pairs.");
                continue;
            }
            out.meta.insert(k, v);
        }
        out
    }

    fn deliver(&self, engine: &Engine, event: &Event, time: u64) {
        let name = &self.settings.name;
        let ready = match self.usable(Kind::EventHook) {
            Ok(r) => r,
            Err(why) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "plugins", plugin = %name, reason = %why, "Event dropped.");
                return;
            }
        };
        let Pre::Hook(pre) = &ready.loaded.pre else {
            return;
        };
        let timeout = self.settings.call_timeout(Kind::EventHook);
        let started = Instant::now();
        let mut kept = ready.kept.lock();
        if kept.is_none() {
            let mut store = self.new_store(engine, &ready.ctx, timeout);
            match pre.instantiate(&mut store) {
                Ok(inst) => *kept = Some(Kept::Hook(store, inst)),
                Err(e) => {
                    let f = self.classify(&e, store.data(), timeout, "limits.timeout");
                    self.account(started, store.data());
                    self.failed(&f);
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let Some(Kept::Hook(store, inst)) = kept.as_mut() else {
            return;
        };
        self.arm(store, timeout);
        let wevent = event.to_wit(&ready.ctx.node_name, time);
        let result = inst
            .tribune_plugin_hook()
            .call_on_event(&mut *store, &wevent);
        self.account(started, store.data());
        match result {
            Ok(Ok(())) => self.succeeded(),
            Ok(Err(mut msg)) => {
                self.succeeded();
                cap_str(&mut msg, OUTPUT_CAP);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "plugins", plugin = %name, event = %event.kind(), error = %msg,
                    "Event hook reported an error.");
                *self.stats.last_error.lock() = Some(msg);
            }
            Err(e) => {
                let f = self.classify(&e, store.data(), timeout, "limits.timeout");
                *kept = None;
                self.failed(&f);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn account(&self, started: Instant, data: &CallState) {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats
            .busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if data.denied > 0 {
            self.stats
                .denied
                .fetch_add(u64::from(data.denied), Ordering::Relaxed);
        }
    }

    fn succeeded(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
    }

    fn failed(&self, f: &Failure) {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        if f.timeout {
            self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        if f.limit {
            self.stats.limit_hits.fetch_add(1, Ordering::Relaxed);
        }
        *self.stats.last_error.lock() = Some(f.message.clone());
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(target: "plugins", plugin = %self.settings.name, consecutive = n,
            error = %f.message, "Plugin call failed.");
        if n >= QUARANTINE_AFTER {
            let mut q = self.quarantine.lock();
            if q.is_none() {
                tracing::error!(target: "plugins", plugin = %self.settings.name, failures = n,
                    "Plugin quarantined until the next reload.");
                *q = Some(format!(
                    "{n} consecutive failures, the last: {}; it runs again after a reload",
                    f.message
                ));
            }
        }
    }

    /// Names the limit that ended a call.
    fn classify(
        &self,
        err: &wasmtime::Error,
        data: &CallState,
        timeout: Duration,
        timeout_name: &str,
    ) -> Failure {
        let name = &self.settings.name;
        let limits = &self.settings.limits;
        let trap = err.downcast_ref::<Trap>().copied();
        let detail = || {
            let mut s = match trap {
                Some(t) => t.to_string().trim_start_matches("wasm trap: ").to_string(),
                None => root_message(err),
            };
            let stderr = data.stderr_tail();
            if !stderr.is_empty() {
                s.push_str(&format!(" (guest stderr: {stderr})"));
            }
            s
        };
        let (message, timeout_hit, limit) = match (&data.limit_hit, trap) {
            (Some(LimitHit::HostCalls { quota }), _) => (
                format!("exceeded its host-call quota of {quota} calls per invocation (limits.host_calls)"),
                false,
                true,
            ),
            (_, Some(Trap::Interrupt)) => (
                format!(
                    "exceeded its time limit: {} ({timeout_name}) elapsed and the call was interrupted",
                    tribune_api::duration::format_go_duration(timeout)
                ),
                true,
                true,
            ),
            (_, Some(Trap::OutOfFuel)) => (
                format!(
                    "exhausted its fuel: {} units per call (limits.fuel)",
                    limits.fuel
                ),
                false,
                true,
            ),
            (Some(LimitHit::Memory { cap, wanted }), _) => (
                format!(
                    "hit its memory cap of {} (limits.memory_mb; it asked for {}) and then failed: {}",
                    mib(*cap),
                    mib(*wanted),
                    detail()
                ),
                false,
                true,
            ),
            (Some(LimitHit::Table { cap }), _) => (
                format!("hit the table limit of {cap} elements and then failed: {}", detail()),
                false,
                true,
            ),
            (None, Some(Trap::StackOverflow)) => (
                "overflowed its stack: call stack exhausted (deep recursion; the wasm stack is 512 KiB)"
                    .to_string(),
                false,
                true,
            ),
            (None, Some(Trap::MemoryOutOfBounds)) => (
                format!(
                    "trapped: {} (deep recursion overflowing the guest's own stack in linear \
                     memory ends this way)",
                    detail()
                ),
                false,
                false,
            ),
            (None, Some(_)) => (format!("trapped: {}", detail()), false, false),
            (None, None) => (format!("failed: {}", detail()), false, false),
        };
        let mut message = format!("WASM plugin {name:?} {message}");
        cap_str(&mut message, OUTPUT_CAP);
        Failure {
            message,
            timeout: timeout_hit,
            limit,
        }
    }

    fn status(&self) -> PluginStatus {
        let s = &self.stats;
        let calls = s.calls.load(Ordering::Relaxed);
        let counters = Counters {
            calls,
            failures: s.failures.load(Ordering::Relaxed),
            timeouts: s.timeouts.load(Ordering::Relaxed),
            limit_hits: s.limit_hits.load(Ordering::Relaxed),
            denied: s.denied.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            queued: s.queued.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            mean_call_micros: (s.busy_ns.load(Ordering::Relaxed) / calls.max(1)) / 1000,
        };
        let granted = {
            let g = &self.settings.grants;
            let mut out = Vec::new();
            if g.log {
                out.push("log".to_string());
            }
            let join = |v: Vec<String>| v.join(" ");
            if !g.http.is_empty() {
                out.push(format!(
                    "http({})",
                    join(g.http.iter().map(|p| p.to_string()).collect())
                ));
            }
            if !g.tcp.is_empty() {
                out.push(format!(
                    "tcp({})",
                    join(g.tcp.iter().map(|p| p.to_string()).collect())
                ));
            }
            if !g.kv_read.is_empty() {
                out.push(format!(
                    "kv-read({})",
                    join(g.kv_read.iter().map(|p| p.to_string()).collect())
                ));
            }
            out
        };
        let quarantine = self.quarantine.lock().clone();
        let (state, error) = match (&self.state, quarantine) {
            (State::Failed { error, .. }, _) => ("failed", error.clone()),
            (State::Ready(_), Some(q)) => ("quarantined", q),
            (State::Ready(_), None) => ("ready", String::new()),
        };
        let analysis = match &self.state {
            State::Ready(r) => Some(&r.loaded.analysis),
            State::Failed { analysis, .. } => analysis.as_deref(),
        };
        let (declared, version, subscriptions) = match &self.state {
            State::Ready(r) => (
                r.loaded.manifest.capabilities.summary(),
                r.loaded.manifest.version.clone(),
                r.subscriptions.iter().map(|k| k.to_string()).collect(),
            ),
            State::Failed { analysis, .. } => match analysis.as_ref().map(|a| &a.manifest) {
                Some(Ok(m)) => (m.capabilities.summary(), m.version.clone(), Vec::new()),
                _ => (Vec::new(), String::new(), Vec::new()),
            },
        };
        PluginStatus {
            name: self.settings.name.clone(),
            kind: self
                .kind()
                .or(self.settings.kind)
                .map(|k| k.to_string())
                .unwrap_or_default(),
            path: self.settings.path.display().to_string(),
            state: state.to_string(),
            error,
            sha256: self.sha256().unwrap_or_default().to_string(),
            sdk: analysis.and_then(|a| a.sdk.clone()).unwrap_or_default(),
            wit: analysis
                .and_then(|a| a.wit_version.clone())
                .unwrap_or_default(),
            version,
            declared,
            granted,
            subscriptions,
            counters,
            last_error: s.last_error.lock().clone().unwrap_or_default(),
            loaded_at_unix: self
                .loaded_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            compile_millis: analysis
                .map(|a| a.compile_time.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    }
}

/// The innermost cause of an error: a host error's own sentence, not wasmtime's wrapping.
fn root_message(err: &wasmtime::Error) -> String {
    let text = err.root_cause().to_string();
    text.lines().next().unwrap_or_default().to_string()
}

/// The 4 KiB cap on what a plugin says; a cut output says how much there was.
pub fn cap_output(mut s: String) -> String {
    if s.len() <= OUTPUT_CAP {
        return s;
    }
    let total = s.len();
    let marker_room = 48;
    cap_str(&mut s, OUTPUT_CAP - marker_room);
    let kept = s.len();
    s.push_str(&format!(" ... (truncated: {kept} of {total} bytes)"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_capped_at_4_kib_with_a_marker() {
        assert_eq!(cap_output("ok".into()), "ok");
        let big = "x".repeat(1 << 20);
        let cut = cap_output(big);
        assert!(cut.len() <= OUTPUT_CAP, "{}", cut.len());
        assert!(cut.ends_with(&format!(
            "(truncated: {} of 1048576 bytes)",
            OUTPUT_CAP - 48
        )));
    }

    #[test]
    fn drops_are_logged_at_powers_of_ten() {
        let logged: Vec<u64> = (1..=1000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(logged, [1, 10, 100, 1000]);
    }

    #[test]
    fn sizes_read_in_mib() {
        assert_eq!(mib(16 << 20), "16 MiB");
        assert_eq!(mib((16 << 20) + (1 << 19)), "16.5 MiB");
    }
}
