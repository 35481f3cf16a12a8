//! The execution machinery: the one [`Engine`] (pooling allocator, epoch interruption,
//! fuel, compilation cache on disk), the per-call store state with its limits, the epoch
//! ticker, and the pool of threads plugin code runs on.
//!
//! Plugin code runs synchronously on a small pool of dedicated threads with a lower CPU
//! priority (nice 10): a plugin spinning until its deadline competes for CPU, but the
//! agent's own threads (HTTP, Raft heartbeats, gossip) win whenever they need it.

use super::bindings::types::HostError;
use super::capability::PluginCtx;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::StoreContextMut;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the engine's epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// The output a plugin may return (check output, error texts), bytes.
pub const OUTPUT_CAP: usize = 4096;
/// Bytes of guest stderr kept per call.
const STDERR_CAP: usize = 2048;
/// Table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 200_000;
/// Pooling allocator: instance slots shared by every plugin (a check call holds one for
/// microseconds; kept rewriter and hook instances hold one each).
const POOL_COMPONENT_INSTANCES: u32 = 256;
/// Core instances, memories and tables in the pool. Language runtimes (Python, JS) are
/// components of several core modules, so these are larger than the component count.
const POOL_CORE_INSTANCES: u32 = 2048;
const POOL_MEMORIES: u32 = 512;
const POOL_TABLES: u32 = 2048;

/// Engine-wide settings, from the agent.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Where compiled components are cached (content hash → machine code).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Fuel and epoch interruption (off only in benchmarks).
    pub enforce_limits: bool,
}

/// Bytes of dirtied linear memory reset by hand (and kept resident) per pooled slot.
const KEEP_RESIDENT: usize = 192 << 10;

/// Builds the engine: pooling allocator when the host allows it (falls back to on-demand
/// allocation with a warning), epoch interruption, fuel, and the disk cache.
pub fn engine(opts: &EngineOptions) -> Result<(Engine, bool), String> {
    let mut cfg = base_config(opts)?;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_COMPONENT_INSTANCES)
        .total_core_instances(POOL_CORE_INSTANCES)
        .total_memories(POOL_MEMORIES)
        .total_tables(POOL_TABLES)
        .total_stacks(0)
        .max_memory_size((super::settings::MAX_MEMORY_MB as usize) << 20)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_memories_per_module(1)
        .max_tables_per_module(8)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_unused_warm_slots(16)
        // After a call, reset up to this many bytes of the pages the guest dirtied by
        // hand and keep them resident: the next call on the slot takes no page fault, and
        // no `madvise` (with its TLB shootdown across the agent's threads) is needed. With
        // PAGEMAP_SCAN (Linux 6.7+) those are the pages really touched, wherever they are
        // (a Rust guest's stack top sits at 1 MiB); without it, the lowest addresses. An
        // idle slot stays under 256 KiB either way.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(16 << 10);
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&cfg) {
        Ok(engine) => Ok((engine, true)),
        Err(e) => {
            tracing::warn!(target: "plugins", error = %e,
                "The pooling allocator is unavailable here; instantiating on demand instead.");
            let cfg = base_config(opts)?;
            Engine::new(&cfg)
                .map(|e| (e, false))
                .map_err(|e| format!("cannot create the WebAssembly engine: {e}"))
        }
    }
}

fn base_config(opts: &EngineOptions) -> Result<Config, String> {
    let cache_dir: Option<&Path> = opts.cache_dir.as_deref();
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(opts.enforce_limits)
        .consume_fuel(opts.enforce_limits)
        .max_wasm_stack(512 << 10)
        .parallel_compilation(true);
    if let Some(dir) = cache_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the plugin cache {}: {e}", dir.display()))?;
        let mut cc = wasmtime::CacheConfig::new();
        cc.with_directory(dir);
        let cache = wasmtime::Cache::new(cc)
            .map_err(|e| format!("cannot use the plugin cache {}: {e}", dir.display()))?;
        cfg.cache(Some(cache));
    }
    Ok(cfg)
}

/// The WASI clocks package linked (wasmtime-wasi's p2 version).
const WASI_MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces WASI's clock subscriptions with ones that never wait past the call's
/// deadline. A guest sleeping (`std::thread::sleep`, `time.sleep`, `setTimeout`) waits
/// inside a host call, where the epoch cannot interrupt it; clamped, the wait ends at the
/// deadline and the epoch check traps as soon as the guest runs again.
pub fn clamp_clock_waits(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::clocks::WasiClocksView;
    use wasmtime_wasi::p2::bindings::sync::clocks::monotonic_clock::Host;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(WASI_MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, CallState>, (nanos,): (u64,)| {
            let left = store.data().wait_budget_nanos();
            let mut view = store.data_mut().clocks();
            Ok((view.subscribe_duration(nanos.min(left))?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, CallState>, (when,): (u64,)| {
            let left = store.data().wait_budget_nanos();
            let mut view = store.data_mut().clocks();
            let latest = view.now()?.saturating_add(left);
            Ok((view.subscribe_instant(when.min(latest))?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(target: "plugins", error = %e,
                "Could not start the epoch thread; plugin calls will only stop on fuel.");
        }
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Epoch ticks for a deadline `d` from now: rounded up, plus one because the current tick
/// may be about to end.
pub fn deadline_ticks(d: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    (d.as_nanos().div_ceil(tick) as u64).max(1) + 1
}

/// Which limit ended a call, recorded by the host as it enforces it so the output can
/// name it even when the guest turns the refusal into a trap of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitHit {
    Memory { cap: u64, wanted: u64 },
    Table { cap: usize },
    HostCalls { quota: u32 },
}

/// Per-call store state: WASI (empty: no files, no environment, no sockets, output
/// discarded), the plugin's context, and the counters its limits read.
pub struct CallState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub plugin: Arc<PluginCtx>,
    pub deadline: Instant,
    pub host_calls: u32,
    pub limit_hit: Option<LimitHit>,
    /// Bytes of linear memory held by the instance (all memories).
    pub memory: u64,
    /// Capability refusals during the call (texts kept for the first one).
    pub denied: u32,
    pub first_denial: Option<String>,
    /// The guest's stderr (a panic message, say), kept to name the cause of a trap.
    stderr: MemoryOutputPipe,
}

impl CallState {
    pub fn new(plugin: Arc<PluginCtx>, deadline: Instant) -> CallState {
        let stderr = MemoryOutputPipe::new(STDERR_CAP);
        CallState {
            wasi: sandbox_wasi(stderr.clone()),
            table: ResourceTable::new(),
            plugin,
            deadline,
            host_calls: 0,
            limit_hit: None,
            memory: 0,
            denied: 0,
            first_denial: None,
            stderr,
        }
    }

    /// What the guest wrote to stderr (a panic message, say), on one line, without
    /// Rust's advice about backtraces.
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let mut line = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect::<Vec<_>>()
            .join(" / ");
        super::capability::cap_str(&mut line, 400);
        line
    }

    /// Counts one host call; past the quota the call traps.
    pub fn host_call(&mut self) -> wasmtime::Result<()> {
        self.host_calls += 1;
        let quota = self.plugin.limits.host_calls;
        if self.host_calls > quota {
            self.limit_hit = Some(LimitHit::HostCalls { quota });
            return Err(wasmtime::Error::msg(format!(
                "host-call quota of {quota} calls per invocation exceeded"
            )));
        }
        Ok(())
    }

    /// How long a WASI clock wait may last: what remains of the call, plus one epoch tick
    /// so the wait ends after the deadline has passed and the epoch check fires.
    pub fn wait_budget_nanos(&self) -> u64 {
        (self.remaining() + EPOCH_TICK).as_nanos() as u64
    }

    /// What remains before the call's deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Records a refusal and returns the error the guest sees.
    pub fn deny(&mut self, why: String) -> HostError {
        self.denied += 1;
        tracing::debug!(target: "plugins", plugin = %self.plugin.name, reason = %why, "Capability denied.");
        if self.first_denial.is_none() {
            self.first_denial = Some(why.clone());
        }
        HostError::Denied(why)
    }
}

/// The WASI context of every call: nothing to read, stdout discarded, stderr kept in a
/// small buffer, no environment, no network.
fn sandbox_wasi(stderr: MemoryOutputPipe) -> WasiCtx {
    let mut b = WasiCtx::builder();
    b.stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    b.build()
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime::ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let cap = self.plugin.limits.memory_bytes;
        let grow = desired.saturating_sub(current) as u64;
        let wanted = self.memory.saturating_add(grow);
        if wanted > cap {
            self.limit_hit = Some(LimitHit::Memory { cap, wanted });
            return Ok(false);
        }
        self.memory = wanted;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.limit_hit = Some(LimitHit::Table {
                cap: MAX_TABLE_ELEMENTS,
            });
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

pub type Job = Box<dyn FnOnce() + Send>;

/// Threads that run plugin code, at a lower CPU priority than the agent.
pub struct WorkerPool {
    tx: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
}

impl WorkerPool {
    pub fn new(size: usize) -> WorkerPool {
        let size = size.max(1);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..size {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("plugin-{i}"))
                // Wasm stack (512 KiB max) plus the host's frames, with room to spare.
                .stack_size(4 << 20)
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = {
                            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                            rx.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(target: "plugins", error = %e, "Could not start a plugin worker thread.");
            }
        }
        WorkerPool {
            tx: Mutex::new(Some(tx)),
        }
    }

    /// Queues a job; `Err` once the pool is closed.
    pub fn submit(&self, job: Job) -> Result<(), String> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref() {
            Some(tx) => tx
                .send(job)
                .map_err(|_| "the plugin workers have stopped".to_string()),
            None => Err("the plugin host is shutting down".into()),
        }
    }

    /// Runs `f` on a worker and waits for its result without blocking the caller's thread.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, String> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            let _ = done.send(f());
        }))?;
        rx.await
            .map_err(|_| "the plugin worker ended the call abruptly".to_string())
    }

    /// Runs `f` on a worker and waits on this thread (the registration path is
    /// synchronous). Inside the multi-threaded runtime the wait tells Tokio it blocks.
    pub fn run_sync<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, String> {
        let (done, rx) = std::sync::mpsc::channel();
        self.submit(Box::new(move || {
            let _ = done.send(f());
        }))?;
        let wait = move || {
            rx.recv()
                .map_err(|_| "the plugin worker ended the call abruptly".to_string())
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    /// Lets the workers finish what they hold and exit.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// nice 10 for the calling thread: on Linux a "process" priority of `who = 0` is the
/// calling thread's own. Failure only leaves the thread at the agent's priority.
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: setpriority reads its three integer arguments and touches no memory.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_ticks_round_up_and_add_one() {
        assert_eq!(deadline_ticks(Duration::ZERO), 2);
        assert_eq!(deadline_ticks(EPOCH_TICK), 2);
        assert_eq!(
            deadline_ticks(EPOCH_TICK * 10 + Duration::from_nanos(1)),
            12
        );
    }

    #[tokio::test]
    async fn the_pool_runs_jobs_off_the_caller() {
        let pool = WorkerPool::new(2);
        let caller = std::thread::current().id();
        let ran_on = pool.run(|| std::thread::current().id()).await.unwrap();
        assert_ne!(ran_on, caller);
        pool.close();
        assert!(pool.run(|| ()).await.is_err());
    }
}
