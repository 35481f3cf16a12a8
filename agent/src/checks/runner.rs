//! The runner: one Tokio task per check, reporting through an unbounded channel.
//!
//! - Interval checks (HTTP, TCP, UDP, gRPC, script) first run after a stagger drawn in
//!   `[0, interval)`, then `interval` after each run ends, as Consul's. Intervals under 1 s
//!   are raised to 1 s with a warning. Every result passes through flap damping.
//! - TTL checks run a timer that `update_ttl` resets; on expiry the check turns critical
//!   with `TTL expired` (plus the last output), once, until the next update. TTL updates are
//!   the application's word and skip flap damping, as in Consul.
//! - Alias checks are accepted but not run yet: they report critical once, with an output
//!   saying so. WASM checks run on the plugin host (`set_plugins`) like interval checks;
//!   without a host they report critical once.
//!
//! An update is emitted only when the status or the output differs from the previous
//! update for that check. Emission happens under the runner's lock and only for the
//! current registration of a check, so once `remove`, `stop_all` or a replacing `add`
//! returns, nothing more arrives for the old registration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};
use tribune_api::duration::format_go_duration;
use tribune_api::types::CheckDefinition;

use super::clock::{Clock, TokioClock};
use super::damping::{Damper, Verdict};
use super::grpc::GrpcProbe;
use super::http::HttpProbe;
use super::script::ScriptProbe;
use super::tcp::{TcpProbe, UdpProbe};
use super::{
    truncate_at_boundary, validate, CheckError, CheckType, CheckUpdate, Outcome, RunnerOptions,
    Status, DEFAULT_OUTPUT_MAX_SIZE,
};

/// Consul's floor on check intervals (it protects the host from fork bombs).
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default timeout of HTTP, TCP, UDP and gRPC probes.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default timeout of script checks.
pub(crate) const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) const TTL_EXPIRED: &str = "TTL expired";
pub(crate) const ALIAS_UNSUPPORTED: &str = "Alias checks are not supported by this agent yet";
pub(crate) const WASM_UNSUPPORTED: &str = "WASM plugin checks are not supported by this agent yet";
pub(crate) const TCP_TLS_UNSUPPORTED: &str =
    "TCP+TLS checks (TCPUseTLS) are not supported by this agent (built without TLS)";
pub(crate) const GRPC_TLS_UNSUPPORTED: &str =
    "gRPC checks over TLS (GRPCUseTLS) are not supported by this agent (built without TLS)";

/// Runs checks and reports their results. Cheap to clone; every clone drives the same
/// checks. Dropping the last clone stops them all.
///
/// `add` spawns Tokio tasks, so it must be called inside a Tokio runtime.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    opts: RunnerOptions,
    updates: UnboundedSender<CheckUpdate>,
    clock: Arc<dyn Clock>,
    stagger: fn(Duration) -> Duration,
    tracker: TaskTracker,
    state: Mutex<State>,
    /// The WASM plugin host, once the agent sets one (`wasm` checks report
    /// `WASM_UNSUPPORTED` until then).
    plugins: Mutex<Option<crate::plugins::Plugins>>,
}

#[derive(Default)]
struct State {
    checks: HashMap<String, Entry>,
    next_generation: u64,
}

struct Entry {
    /// Tells a registration from the one it replaced, so a stale task never reports.
    generation: u64,
    cancel: CancellationToken,
    ttl: Option<TtlEntry>,
    last_sent: Option<(Status, String)>,
}

struct TtlEntry {
    ttl: Duration,
    max_output: usize,
    /// `None` once expired, until the next update.
    deadline: Option<Instant>,
    last_output: String,
    wake: Arc<Notify>,
}

/// How a check runs once validated.
pub(crate) enum Plan {
    Interval {
        interval: Duration,
        damper: Damper,
        probe: Probe,
    },
    Ttl {
        ttl: Duration,
        max_output: usize,
    },
    /// Reported once, never re-run.
    Fixed(Outcome),
}

pub(crate) enum Probe {
    Http(Box<HttpProbe>),
    Tcp(TcpProbe),
    Udp(UdpProbe),
    Grpc(GrpcProbe),
    Script(ScriptProbe),
    Wasm(Box<crate::plugins::CheckProbe>),
    /// Says on `started` that it runs, then returns queued outcomes in order, then never
    /// returns again.
    #[cfg(test)]
    Scripted {
        queue: std::collections::VecDeque<Outcome>,
        started: tokio::sync::mpsc::UnboundedSender<()>,
    },
}

impl Probe {
    async fn run(&mut self, clock: &dyn Clock) -> Outcome {
        match self {
            Probe::Http(p) => p.run(clock).await,
            Probe::Tcp(p) => p.run(clock).await,
            Probe::Udp(p) => p.run(clock).await,
            Probe::Grpc(p) => p.run(clock).await,
            Probe::Script(p) => p.run(clock).await,
            Probe::Wasm(p) => {
                let o = p.run().await;
                let status = match o.status {
                    crate::plugins::CheckStatus::Passing => Status::Passing,
                    crate::plugins::CheckStatus::Warning => Status::Warning,
                    crate::plugins::CheckStatus::Critical => Status::Critical,
                };
                Outcome {
                    status,
                    output: o.output,
                }
            }
            #[cfg(test)]
            Probe::Scripted { queue, started } => {
                let _ = started.send(());
                let next = queue.pop_front();
                match next {
                    Some(outcome) => outcome,
                    None => std::future::pending().await,
                }
            }
        }
    }
}

/// Consul's `lib.RandomStagger`: uniform in `[0, interval)`.
pub(crate) fn random_stagger(interval: Duration) -> Duration {
    use rand::Rng;
    if interval.is_zero() {
        return Duration::ZERO;
    }
    rand::thread_rng().gen_range(Duration::ZERO..interval)
}

/// The agent's cap, lowered (never raised) by the check's own `OutputMaxSize`.
pub(crate) fn effective_max_output(agent: usize, check: i64) -> usize {
    let agent = if agent == 0 {
        DEFAULT_OUTPUT_MAX_SIZE
    } else {
        agent
    };
    match usize::try_from(check) {
        Ok(check) if check > 0 && check < agent => check,
        _ => agent,
    }
}

/// Consul's truncation of TTL outputs.
/// The output a TTL update keeps (Consul's cap); the local state applies the same rule.
pub(crate) fn cap_ttl_output(output: &str, max: usize) -> String {
    if output.len() <= max {
        return output.to_string();
    }
    let kept = truncate_at_boundary(output, max);
    format!(
        "{kept} ... (captured {} of {} bytes)",
        kept.len(),
        output.len()
    )
}

fn ttl_expired_output(last_output: &str) -> String {
    if last_output.is_empty() {
        TTL_EXPIRED.to_string()
    } else {
        format!("{TTL_EXPIRED} (last output before timeout follows): {last_output}")
    }
}

/// Turns a validated definition into a plan.
pub(crate) fn plan(
    check_id: &str,
    kind: CheckType,
    def: &CheckDefinition,
    opts: &RunnerOptions,
) -> Plan {
    let max_output = effective_max_output(opts.output_max_size, def.output_max_size);
    let timeout = |default: Duration| match def.timeout {
        Some(t) if !t.is_zero() => t.0,
        _ => default,
    };
    let interval = || {
        let configured = def.interval.map(|d| d.0).unwrap_or_default();
        if configured < MIN_INTERVAL {
            warn!(
                target: "checks",
                check_id,
                interval = %format_go_duration(configured),
                minimum = %format_go_duration(MIN_INTERVAL),
                "Check interval is below the minimum; using the minimum."
            );
            MIN_INTERVAL
        } else {
            configured
        }
    };
    let every = |probe: Probe| Plan::Interval {
        interval: interval(),
        damper: Damper::new(
            def.success_before_passing,
            def.failures_before_warning,
            def.failures_before_critical,
        ),
        probe,
    };
    match kind {
        CheckType::Ttl => Plan::Ttl {
            ttl: def.ttl.map(|d| d.0).unwrap_or_default(),
            max_output,
        },
        CheckType::Http => {
            let probe = HttpProbe::new(def, timeout(DEFAULT_TIMEOUT), max_output);
            every(Probe::Http(Box::new(probe)))
        }
        CheckType::Tcp if def.tcp_use_tls => Plan::Fixed(Outcome::critical(TCP_TLS_UNSUPPORTED)),
        CheckType::Tcp => every(Probe::Tcp(TcpProbe {
            addr: def.tcp.clone(),
            timeout: timeout(DEFAULT_TIMEOUT),
        })),
        CheckType::Udp => every(Probe::Udp(UdpProbe {
            addr: def.udp.clone(),
            timeout: timeout(DEFAULT_TIMEOUT),
        })),
        CheckType::Grpc if def.grpc_use_tls => Plan::Fixed(Outcome::critical(GRPC_TLS_UNSUPPORTED)),
        CheckType::Grpc => every(Probe::Grpc(GrpcProbe::new(
            &def.grpc,
            timeout(DEFAULT_TIMEOUT),
        ))),
        CheckType::Script => every(Probe::Script(ScriptProbe {
            args: def.script_args.clone(),
            timeout: timeout(DEFAULT_SCRIPT_TIMEOUT),
            max_output,
        })),
        CheckType::Alias => Plan::Fixed(Outcome::critical(ALIAS_UNSUPPORTED)),
        CheckType::Wasm => Plan::Fixed(Outcome::critical(WASM_UNSUPPORTED)),
    }
}

/// A `wasm` check on the plugin host: an interval check like HTTP and TCP (same floor,
/// same flap damping), timed out by the host at the check's `timeout`.
fn wasm_plan(
    check_id: &str,
    def: &CheckDefinition,
    opts: &RunnerOptions,
    host: crate::plugins::Plugins,
) -> Plan {
    let Some(wasm) = &def.wasm else {
        return Plan::Fixed(Outcome::critical(WASM_UNSUPPORTED));
    };
    let timeout = match def.timeout {
        Some(t) if !t.is_zero() => t.0,
        _ => DEFAULT_TIMEOUT,
    };
    let max_output = effective_max_output(opts.output_max_size, def.output_max_size);
    let probe = match crate::plugins::CheckProbe::new(
        host,
        check_id,
        &def.service_id,
        wasm,
        timeout,
        max_output,
    ) {
        Ok(p) => p,
        Err(msg) => return Plan::Fixed(Outcome::critical(msg)),
    };
    let configured = def.interval.map(|d| d.0).unwrap_or_default();
    let interval = if configured < MIN_INTERVAL {
        warn!(
            target: "checks",
            check_id,
            interval = %format_go_duration(configured),
            minimum = %format_go_duration(MIN_INTERVAL),
            "Check interval is below the minimum; using the minimum."
        );
        MIN_INTERVAL
    } else {
        configured
    };
    Plan::Interval {
        interval,
        damper: Damper::new(
            def.success_before_passing,
            def.failures_before_warning,
            def.failures_before_critical,
        ),
        probe: Probe::Wasm(Box::new(probe)),
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; should one, the map is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `outcome` if the registration is still current and it differs from the last
    /// update sent for the check.
    fn emit_locked(&self, state: &mut State, check_id: &str, generation: u64, outcome: Outcome) {
        let Some(entry) = state.checks.get_mut(check_id) else {
            return;
        };
        if entry.generation != generation {
            return;
        }
        let previous = entry.last_sent.as_ref().map(|(s, _)| *s);
        if let Some((status, output)) = &entry.last_sent {
            if *status == outcome.status && *output == outcome.output {
                return;
            }
        }
        match (previous, outcome.status) {
            (Some(before), now) if before == now => {
                debug!(target: "checks", check_id, status = %now, "Check output changed.");
            }
            (_, Status::Passing) => info!(target: "checks", check_id, "Check is now passing."),
            (_, Status::Warning) => {
                warn!(target: "checks", check_id, output = %outcome.output, "Check is now warning.")
            }
            (_, Status::Critical) => {
                warn!(target: "checks", check_id, output = %outcome.output, "Check is now critical.")
            }
        }
        entry.last_sent = Some((outcome.status, outcome.output.clone()));
        let update = CheckUpdate {
            check_id: check_id.to_string(),
            status: outcome.status,
            output: outcome.output,
        };
        if self.updates.send(update).is_err() {
            debug!(target: "checks", check_id, "Check update dropped: nobody is listening.");
        }
    }

    fn emit(&self, check_id: &str, generation: u64, outcome: Outcome) {
        let mut state = self.lock();
        self.emit_locked(&mut state, check_id, generation, outcome);
    }

    /// The TTL deadline of the current registration; `Err` once it is gone.
    fn ttl_deadline(&self, check_id: &str, generation: u64) -> Result<Option<Instant>, ()> {
        let state = self.lock();
        match state.checks.get(check_id) {
            Some(entry) if entry.generation == generation => {
                Ok(entry.ttl.as_ref().and_then(|t| t.deadline))
            }
            _ => Err(()),
        }
    }

    fn expire_ttl(&self, check_id: &str, generation: u64) {
        let mut state = self.lock();
        let Some(entry) = state.checks.get_mut(check_id) else {
            return;
        };
        if entry.generation != generation {
            return;
        }
        let Some(ttl) = entry.ttl.as_mut() else {
            return;
        };
        // An update may have moved the deadline while this task was waking up.
        if ttl.deadline.is_none_or(|d| d > self.clock.now()) {
            return;
        }
        ttl.deadline = None;
        let output = ttl_expired_output(&ttl.last_output);
        warn!(target: "checks", check_id, ttl = %format_go_duration(ttl.ttl), "Check missed its TTL.");
        self.emit_locked(&mut state, check_id, generation, Outcome::critical(output));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for entry in state.checks.values() {
            entry.cancel.cancel();
        }
    }
}

async fn sleep_until_some(clock: &dyn Clock, deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => clock.sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What an interval task needs besides the runner.
struct IntervalTask {
    check_id: String,
    generation: u64,
    /// When the first run is due, fixed at registration.
    first_run: Instant,
    interval: Duration,
    damper: Damper,
    probe: Probe,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
}

async fn interval_loop(inner: Weak<Inner>, task: IntervalTask) {
    let IntervalTask {
        check_id,
        generation,
        first_run,
        interval,
        mut damper,
        mut probe,
        clock,
        cancel,
    } = task;
    let mut next = first_run;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = clock.sleep_until(next) => {}
        }
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            outcome = probe.run(&*clock) => outcome,
        };
        match damper.observe(outcome) {
            Verdict::Report(outcome) => {
                let Some(inner) = inner.upgrade() else { return };
                inner.emit(&check_id, generation, outcome);
            }
            Verdict::Hold {
                successes,
                failures,
            } => {
                debug!(target: "checks", successes, failures, "Check result held back by flap damping.");
            }
        }
        next = clock.now() + interval;
    }
}

async fn ttl_loop(
    inner: Weak<Inner>,
    check_id: String,
    generation: u64,
    wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    loop {
        let deadline = {
            let Some(inner) = inner.upgrade() else { return };
            match inner.ttl_deadline(&check_id, generation) {
                Ok(deadline) => deadline,
                Err(()) => return,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            // An update moved the deadline: read it again.
            _ = wake.notified() => {}
            _ = sleep_until_some(&*clock, deadline) => {
                let Some(inner) = inner.upgrade() else { return };
                inner.expire_ttl(&check_id, generation);
            }
        }
    }
}

impl Runner {
    /// A runner reporting to `updates`, on Tokio's clock, staggering first runs at random
    /// like Consul.
    pub fn new(opts: RunnerOptions, updates: UnboundedSender<CheckUpdate>) -> Runner {
        Runner::with_clock(opts, updates, Arc::new(TokioClock), random_stagger)
    }

    /// Like [`Runner::new`] on the given clock, with the first-run delay of each interval
    /// check chosen by `stagger(interval)` (which must stay below `interval`). Tests pass a
    /// [`ManualClock`](super::ManualClock) and `|_| Duration::ZERO`.
    pub fn with_clock(
        opts: RunnerOptions,
        updates: UnboundedSender<CheckUpdate>,
        clock: Arc<dyn Clock>,
        stagger: fn(Duration) -> Duration,
    ) -> Runner {
        Runner {
            inner: Arc::new(Inner {
                opts,
                updates,
                clock,
                stagger,
                tracker: TaskTracker::new(),
                state: Mutex::new(State::default()),
                plugins: Mutex::new(None),
            }),
        }
    }

    /// Gives the runner the plugin host that runs `wasm` checks registered from now on.
    pub fn set_plugins(&self, plugins: crate::plugins::Plugins) {
        *self
            .inner
            .plugins
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(plugins);
    }

    /// Starts (or restarts with a new definition) the check; replaces an existing one with
    /// the same id. Validates first (see [`validate`]); nothing changes on error.
    pub fn add(
        &self,
        check_id: &str,
        def: &CheckDefinition,
        from_config: bool,
    ) -> Result<CheckType, CheckError> {
        let kind = validate(def, &self.inner.opts, from_config)?;
        let host = self
            .inner
            .plugins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let plan = match (kind, host) {
            (CheckType::Wasm, Some(host)) => wasm_plan(check_id, def, &self.inner.opts, host),
            _ => plan(check_id, kind, def, &self.inner.opts),
        };
        self.start(check_id, kind, plan);
        Ok(kind)
    }

    fn start(&self, check_id: &str, kind: CheckType, plan: Plan) {
        let inner = &self.inner;
        let mut state = inner.lock();
        state.next_generation += 1;
        let generation = state.next_generation;
        let cancel = CancellationToken::new();
        let ttl = match &plan {
            Plan::Ttl { ttl, max_output } => Some(TtlEntry {
                ttl: *ttl,
                max_output: *max_output,
                deadline: Some(inner.clock.now() + *ttl),
                last_output: String::new(),
                wake: Arc::new(Notify::new()),
            }),
            _ => None,
        };
        let wake = ttl.as_ref().map(|t| t.wake.clone());
        let entry = Entry {
            generation,
            cancel: cancel.clone(),
            ttl,
            last_sent: None,
        };
        if let Some(old) = state.checks.insert(check_id.to_string(), entry) {
            old.cancel.cancel();
            debug!(target: "checks", check_id, "Stopped the previous registration of the check.");
        }
        info!(target: "checks", check_id, kind = kind.type_str(), "Started check.");

        let span = tracing::info_span!(target: "checks", "check", check_id, kind = kind.type_str());
        let weak = Arc::downgrade(inner);
        let id = check_id.to_string();
        match plan {
            Plan::Fixed(outcome) => inner.emit_locked(&mut state, check_id, generation, outcome),
            Plan::Interval {
                interval,
                damper,
                probe,
            } => {
                let task = IntervalTask {
                    check_id: id,
                    generation,
                    first_run: inner.clock.now() + (inner.stagger)(interval),
                    interval,
                    damper,
                    probe,
                    clock: inner.clock.clone(),
                    cancel,
                };
                inner
                    .tracker
                    .spawn(interval_loop(weak, task).instrument(span));
            }
            Plan::Ttl { .. } => {
                if let Some(wake) = wake {
                    let task = ttl_loop(weak, id, generation, wake, inner.clock.clone(), cancel);
                    inner.tracker.spawn(task.instrument(span));
                }
            }
        }
    }

    /// Stops the check; nothing more is reported for it. Unknown ids are ignored.
    pub fn remove(&self, check_id: &str) {
        let removed = self.inner.lock().checks.remove(check_id);
        if let Some(entry) = removed {
            entry.cancel.cancel();
            info!(target: "checks", check_id, "Stopped check.");
        }
    }

    /// Sets a TTL check's status and output (`pass`/`warn`/`fail`/`update`), restarts its
    /// TTL and emits the update if it changed anything. Output longer than the cap is cut
    /// as Consul does: `<head> ... (captured N of M bytes)`.
    pub fn update_ttl(
        &self,
        check_id: &str,
        status: Status,
        output: &str,
    ) -> Result<(), CheckError> {
        let inner = &self.inner;
        let mut state = inner.lock();
        let no_ttl = || CheckError::NoTtl(check_id.to_string());
        let entry = state.checks.get_mut(check_id).ok_or_else(no_ttl)?;
        let generation = entry.generation;
        let ttl = entry.ttl.as_mut().ok_or_else(no_ttl)?;
        let output = cap_ttl_output(output, ttl.max_output);
        ttl.last_output = output.clone();
        ttl.deadline = Some(inner.clock.now() + ttl.ttl);
        ttl.wake.notify_one();
        inner.emit_locked(&mut state, check_id, generation, Outcome { status, output });
        Ok(())
    }

    /// Stops every check.
    pub fn stop_all(&self) {
        let drained: Vec<(String, Entry)> = self.inner.lock().checks.drain().collect();
        for (_, entry) in &drained {
            entry.cancel.cancel();
        }
        if !drained.is_empty() {
            info!(target: "checks", count = drained.len(), "Stopped all checks.");
        }
    }

    /// Stops every check and waits until their tasks have ended (script processes killed
    /// and reaped). For the agent's ordered shutdown.
    pub async fn shutdown(&self) {
        self.stop_all();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        self.inner.tracker.reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::clock::{settle, ManualClock};
    use crate::checks::testutil::raw_http_server;
    use std::collections::VecDeque;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
    use tribune_api::duration::GoDuration;

    fn secs(s: u64) -> Option<GoDuration> {
        Some(GoDuration(Duration::from_secs(s)))
    }

    /// A safety net so that a broken test fails instead of hanging; never reached when green.
    async fn soon<T>(rx: &mut UnboundedReceiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("nothing arrived")
            .expect("channel closed")
    }

    struct Harness {
        runner: Runner,
        rx: UnboundedReceiver<CheckUpdate>,
        clock: Arc<ManualClock>,
    }

    fn harness_with(opts: RunnerOptions) -> Harness {
        let (tx, rx) = unbounded_channel();
        let clock = Arc::new(ManualClock::new());
        let runner = Runner::with_clock(opts, tx, clock.clone(), |_| Duration::ZERO);
        Harness { runner, rx, clock }
    }

    fn harness() -> Harness {
        harness_with(RunnerOptions::default())
    }

    impl Harness {
        fn drain(&mut self) -> Vec<CheckUpdate> {
            std::iter::from_fn(|| self.rx.try_recv().ok()).collect()
        }

        /// Moves the clock and lets every task it woke finish its work.
        async fn advance(&self, secs: u64) {
            self.clock.advance(Duration::from_secs(secs));
            settle().await;
        }

        /// Starts a check whose probe returns `outcomes` in order; the receiver hears of
        /// each run as it starts.
        fn scripted(
            &self,
            id: &str,
            interval: u64,
            damper: Damper,
            outcomes: Vec<Outcome>,
        ) -> UnboundedReceiver<()> {
            let (started, runs) = unbounded_channel();
            let probe = Probe::Scripted {
                queue: VecDeque::from(outcomes),
                started,
            };
            let plan = Plan::Interval {
                interval: Duration::from_secs(interval),
                damper,
                probe,
            };
            self.runner.start(id, CheckType::Http, plan);
            runs
        }

        /// Drives a scripted check through `runs` runs, one interval apart, and returns
        /// what each run emitted.
        async fn per_run(
            &mut self,
            started: &mut UnboundedReceiver<()>,
            interval: u64,
            runs: usize,
        ) -> Vec<Vec<(Status, String)>> {
            let mut emitted = Vec::new();
            for run in 0..runs {
                if run > 0 {
                    self.clock.advance(Duration::from_secs(interval));
                }
                soon(started).await;
                settle().await;
                emitted.push(
                    self.drain()
                        .into_iter()
                        .map(|u| (u.status, u.output))
                        .collect(),
                );
            }
            emitted
        }
    }

    fn update(id: &str, status: Status, output: &str) -> CheckUpdate {
        CheckUpdate {
            check_id: id.to_string(),
            status,
            output: output.to_string(),
        }
    }

    fn sent(status: Status, output: &str) -> Vec<(Status, String)> {
        vec![(status, output.to_string())]
    }

    #[tokio::test]
    async fn flap_damping_transitions_through_the_runner() {
        let mut h = harness();
        let (ok, down) = (Outcome::passing("ok"), Outcome::critical("down"));
        let mut started = h.scripted(
            "web",
            10,
            Damper::new(2, 1, 3),
            vec![
                ok.clone(),
                ok.clone(),
                down.clone(),
                down.clone(),
                down.clone(),
                down.clone(),
                ok.clone(),
                ok.clone(),
                ok.clone(),
            ],
        );
        let emitted = h.per_run(&mut started, 10, 9).await;
        assert_eq!(
            emitted,
            vec![
                sent(Status::Passing, "ok"),    // t=0  first result: reported at once
                vec![],                         // t=10 unchanged: nothing sent
                sent(Status::Warning, "down"),  // t=20 1 failure >= FailuresBeforeWarning
                vec![],                         // t=30 still warning, same output
                sent(Status::Critical, "down"), // t=40 3 failures: critical
                vec![],                         // t=50 unchanged
                vec![],                         // t=60 1 success < SuccessBeforePassing: held
                sent(Status::Passing, "ok"),    // t=70 2 successes: passing
                vec![],                         // t=80 unchanged
            ]
        );
    }

    #[tokio::test]
    async fn failures_before_critical_alone_skips_warning() {
        let mut h = harness();
        let (ok, down) = (Outcome::passing("ok"), Outcome::critical("down"));
        let mut started = h.scripted(
            "db",
            5,
            Damper::new(0, 0, 2),
            vec![
                ok.clone(),
                down.clone(),
                ok.clone(),
                down.clone(),
                down.clone(),
                ok.clone(),
            ],
        );
        let emitted = h.per_run(&mut started, 5, 6).await;
        assert_eq!(
            emitted,
            vec![
                sent(Status::Passing, "ok"),
                vec![], // one failure: held
                vec![], // success, unchanged
                vec![], // one failure: held
                sent(Status::Critical, "down"),
                sent(Status::Passing, "ok"),
            ]
        );
    }

    #[tokio::test]
    async fn output_only_changes_are_emitted() {
        let mut h = harness();
        let outcomes = vec![
            Outcome::passing("a"),
            Outcome::passing("a"),
            Outcome::passing("b"),
        ];
        let mut started = h.scripted("web", 10, Damper::new(0, 0, 0), outcomes);
        let emitted = h.per_run(&mut started, 10, 3).await;
        assert_eq!(
            emitted,
            vec![
                sent(Status::Passing, "a"),
                vec![],
                sent(Status::Passing, "b")
            ]
        );
    }

    #[tokio::test]
    async fn runs_are_an_interval_apart() {
        let h = harness();
        let mut started = h.scripted(
            "web",
            10,
            Damper::new(0, 0, 0),
            vec![Outcome::passing("x"); 5],
        );
        soon(&mut started).await;
        h.advance(9).await;
        assert!(
            started.try_recv().is_err(),
            "ran before the interval was up"
        );
        h.advance(1).await;
        soon(&mut started).await;
    }

    #[tokio::test]
    async fn first_run_is_staggered_within_the_interval() {
        let (tx, _rx) = unbounded_channel();
        let clock = Arc::new(ManualClock::new());
        let runner =
            Runner::with_clock(RunnerOptions::default(), tx, clock.clone(), random_stagger);
        let h = Harness {
            runner,
            rx: unbounded_channel().1,
            clock,
        };
        let mut started = h.scripted("a", 30, Damper::new(0, 0, 0), vec![Outcome::passing("x")]);
        h.clock
            .advance(Duration::from_secs(30) - Duration::from_nanos(1));
        soon(&mut started).await;
        for _ in 0..1000 {
            assert!(random_stagger(Duration::from_secs(2)) < Duration::from_secs(2));
        }
        assert_eq!(random_stagger(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn interval_below_minimum_is_raised() {
        let def = CheckDefinition {
            tcp: "127.0.0.1:1".into(),
            interval: Some(GoDuration(Duration::from_millis(100))),
            ..Default::default()
        };
        match plan("t", CheckType::Tcp, &def, &RunnerOptions::default()) {
            Plan::Interval { interval, .. } => assert_eq!(interval, MIN_INTERVAL),
            _ => panic!("expected an interval plan"),
        }
        let def = CheckDefinition {
            interval: secs(15),
            ..def
        };
        match plan("t", CheckType::Tcp, &def, &RunnerOptions::default()) {
            Plan::Interval { interval, .. } => assert_eq!(interval, Duration::from_secs(15)),
            _ => panic!("expected an interval plan"),
        }
    }

    #[test]
    fn timeouts_default_like_consul() {
        let tcp = CheckDefinition {
            tcp: "x:1".into(),
            interval: secs(10),
            ..Default::default()
        };
        match plan("t", CheckType::Tcp, &tcp, &RunnerOptions::default()) {
            Plan::Interval {
                probe: Probe::Tcp(p),
                ..
            } => assert_eq!(p.timeout, DEFAULT_TIMEOUT),
            _ => panic!("expected a TCP probe"),
        }
        let script = CheckDefinition {
            script_args: vec!["true".into()],
            interval: secs(10),
            output_max_size: 100,
            ..Default::default()
        };
        match plan("s", CheckType::Script, &script, &RunnerOptions::default()) {
            Plan::Interval {
                probe: Probe::Script(p),
                ..
            } => {
                assert_eq!(p.timeout, DEFAULT_SCRIPT_TIMEOUT);
                assert_eq!(p.max_output, 100);
            }
            _ => panic!("expected a script probe"),
        }
        let script = CheckDefinition {
            timeout: secs(3),
            ..script
        };
        match plan("s", CheckType::Script, &script, &RunnerOptions::default()) {
            Plan::Interval {
                probe: Probe::Script(p),
                ..
            } => {
                assert_eq!(p.timeout, Duration::from_secs(3))
            }
            _ => panic!("expected a script probe"),
        }
    }

    #[test]
    fn output_cap_is_lowered_never_raised_by_the_check() {
        assert_eq!(effective_max_output(0, 0), 4096);
        assert_eq!(effective_max_output(4096, 100), 100);
        assert_eq!(effective_max_output(100, 4096), 100);
        assert_eq!(effective_max_output(100, -1), 100);
    }

    fn ttl_def(ttl: u64) -> CheckDefinition {
        CheckDefinition {
            name: "app".into(),
            ttl: secs(ttl),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn ttl_expires_without_output() {
        let mut h = harness();
        assert_eq!(
            h.runner.add("app", &ttl_def(30), false).unwrap(),
            CheckType::Ttl
        );
        h.advance(29).await;
        assert_eq!(h.drain(), vec![]);
        h.advance(1).await;
        assert_eq!(
            h.drain(),
            vec![update("app", Status::Critical, "TTL expired")]
        );
        // Expired once; nothing more until the next update.
        h.advance(3600).await;
        assert_eq!(h.drain(), vec![]);
    }

    #[tokio::test]
    async fn ttl_expiry_carries_the_last_output() {
        let mut h = harness();
        h.runner.add("app", &ttl_def(30), false).unwrap();
        h.runner
            .update_ttl("app", Status::Passing, "all good")
            .unwrap();
        assert_eq!(h.drain(), vec![update("app", Status::Passing, "all good")]);
        h.advance(30).await;
        assert_eq!(
            h.drain(),
            vec![update(
                "app",
                Status::Critical,
                "TTL expired (last output before timeout follows): all good"
            )]
        );
        // A later update brings it back and re-arms the timer; an empty output is not
        // quoted on the next expiry.
        h.runner.update_ttl("app", Status::Warning, "").unwrap();
        assert_eq!(h.drain(), vec![update("app", Status::Warning, "")]);
        h.advance(29).await;
        assert_eq!(h.drain(), vec![]);
        h.advance(1).await;
        assert_eq!(
            h.drain(),
            vec![update("app", Status::Critical, "TTL expired")]
        );
    }

    #[tokio::test]
    async fn ttl_update_resets_the_timer() {
        let mut h = harness();
        h.runner.add("app", &ttl_def(30), false).unwrap();
        h.advance(20).await;
        h.runner.update_ttl("app", Status::Passing, "ok").unwrap();
        assert_eq!(h.drain(), vec![update("app", Status::Passing, "ok")]);
        h.advance(20).await; // t=40, past the first TTL
        assert_eq!(h.drain(), vec![]);
        // Same status and output: the timer restarts but nothing is sent.
        h.runner.update_ttl("app", Status::Passing, "ok").unwrap();
        assert_eq!(h.drain(), vec![]);
        h.advance(29).await;
        assert_eq!(h.drain(), vec![]);
        h.advance(1).await; // t=70
        assert_eq!(
            h.drain(),
            vec![update(
                "app",
                Status::Critical,
                "TTL expired (last output before timeout follows): ok"
            )]
        );
    }

    #[tokio::test]
    async fn ttl_output_is_capped_like_consul() {
        let mut h = harness_with(RunnerOptions {
            output_max_size: 10,
            ..Default::default()
        });
        h.runner.add("app", &ttl_def(30), false).unwrap();
        h.runner
            .update_ttl("app", Status::Passing, "0123456789abcdef")
            .unwrap();
        let u = h.drain().pop().unwrap();
        assert_eq!(u.output, "0123456789 ... (captured 10 of 16 bytes)");
    }

    #[tokio::test]
    async fn update_ttl_needs_a_ttl_check() {
        let h = harness();
        let err = h
            .runner
            .update_ttl("nope", Status::Passing, "")
            .unwrap_err();
        assert_eq!(err, CheckError::NoTtl("nope".into()));
        assert_eq!(
            err.to_string(),
            "CheckID \"nope\" does not have associated TTL"
        );
        let tcp = CheckDefinition {
            tcp: "127.0.0.1:1".into(),
            interval: secs(10),
            ..Default::default()
        };
        h.runner.add("tcp", &tcp, false).unwrap();
        assert_eq!(
            h.runner.update_ttl("tcp", Status::Passing, ""),
            Err(CheckError::NoTtl("tcp".into()))
        );
    }

    #[tokio::test]
    async fn removed_checks_go_quiet() {
        let mut h = harness();
        h.runner.add("app", &ttl_def(30), false).unwrap();
        let mut started = h.scripted(
            "web",
            10,
            Damper::new(0, 0, 0),
            vec![Outcome::passing("x"); 100],
        );
        soon(&mut started).await;
        assert_eq!(h.drain(), vec![update("web", Status::Passing, "x")]);
        h.runner.remove("app");
        h.runner.remove("web");
        h.runner.remove("never-there");
        assert!(h.runner.update_ttl("app", Status::Passing, "").is_err());
        h.advance(3600).await;
        assert_eq!(h.drain(), vec![]);
        assert!(started.try_recv().is_err(), "a removed check ran again");
    }

    #[tokio::test]
    async fn adding_again_replaces_the_check() {
        let mut h = harness();
        h.runner.add("app", &ttl_def(30), false).unwrap();
        h.advance(10).await;
        h.runner.add("app", &ttl_def(100), false).unwrap();
        h.advance(20).await; // the old TTL would have expired now
        assert_eq!(h.drain(), vec![]);
        h.advance(79).await;
        assert_eq!(h.drain(), vec![]);
        h.advance(1).await; // t=110
        assert_eq!(
            h.drain(),
            vec![update("app", Status::Critical, "TTL expired")]
        );
    }

    #[tokio::test]
    async fn stop_all_and_shutdown_end_every_task() {
        let mut h = harness();
        h.runner.add("a", &ttl_def(30), false).unwrap();
        h.runner.add("b", &ttl_def(40), false).unwrap();
        let _started = h.scripted("c", 10, Damper::new(0, 0, 0), vec![]);
        h.runner.shutdown().await;
        assert!(h.runner.update_ttl("a", Status::Passing, "").is_err());
        h.advance(3600).await;
        assert_eq!(h.drain(), vec![]);
        // The runner still works afterwards.
        h.runner.add("a", &ttl_def(5), false).unwrap();
        h.advance(5).await;
        assert_eq!(
            h.drain(),
            vec![update("a", Status::Critical, "TTL expired")]
        );
        h.runner.add("a", &ttl_def(5), false).unwrap();
        h.runner.stop_all();
        h.advance(3600).await;
        assert_eq!(h.drain(), vec![]);
    }

    #[tokio::test]
    async fn dropping_the_runner_stops_everything() {
        let Harness {
            runner,
            mut rx,
            clock,
        } = harness();
        runner.add("a", &ttl_def(30), false).unwrap();
        drop(runner);
        clock.advance(Duration::from_secs(3600));
        // The sender lived in the runner: the channel closes without a TTL expiry.
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn alias_wasm_and_tls_report_not_supported() {
        let mut h = harness();
        let alias = CheckDefinition {
            alias_service: "web".into(),
            ..Default::default()
        };
        assert_eq!(h.runner.add("al", &alias, false).unwrap(), CheckType::Alias);
        let wasm = CheckDefinition {
            wasm: Some(serde_json::json!({"plugin": "p"})),
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(h.runner.add("w", &wasm, false).unwrap(), CheckType::Wasm);
        let tls = CheckDefinition {
            tcp: "127.0.0.1:1".into(),
            tcp_use_tls: true,
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(h.runner.add("tls", &tls, false).unwrap(), CheckType::Tcp);
        let grpc_tls = CheckDefinition {
            grpc: "127.0.0.1:1".into(),
            grpc_use_tls: true,
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(
            h.runner.add("gtls", &grpc_tls, false).unwrap(),
            CheckType::Grpc
        );
        assert_eq!(
            h.drain(),
            vec![
                update("al", Status::Critical, ALIAS_UNSUPPORTED),
                update("w", Status::Critical, WASM_UNSUPPORTED),
                update("tls", Status::Critical, TCP_TLS_UNSUPPORTED),
                update("gtls", Status::Critical, GRPC_TLS_UNSUPPORTED),
            ]
        );
        h.advance(3600).await;
        assert_eq!(h.drain(), vec![]);
    }

    #[tokio::test]
    async fn add_refuses_invalid_definitions() {
        let h = harness();
        let script = CheckDefinition {
            script_args: vec!["/bin/true".into()],
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(
            h.runner.add("s", &script, false),
            Err(CheckError::ScriptsDisabled)
        );
        assert_eq!(
            h.runner.add("s", &script, true),
            Err(CheckError::LocalScriptsDisabled)
        );
        assert!(matches!(
            h.runner.add("x", &CheckDefinition::default(), true),
            Err(CheckError::Invalid(_))
        ));
        assert!(h.runner.update_ttl("x", Status::Passing, "").is_err());
    }

    #[tokio::test]
    async fn http_check_end_to_end() {
        let server = raw_http_server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec(),
        )
        .await;
        let url = format!("{}/health", server.base);
        let mut h = harness();
        let def = CheckDefinition {
            http: url.clone(),
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(h.runner.add("web", &def, false).unwrap(), CheckType::Http);
        let u = soon(&mut h.rx).await;
        assert_eq!(
            u,
            update(
                "web",
                Status::Passing,
                &format!("HTTP GET {url}: 200 OK Output: ok")
            )
        );
        h.runner.shutdown().await;
    }

    #[tokio::test]
    async fn script_check_end_to_end() {
        let mut h = harness_with(RunnerOptions {
            enable_local_script_checks: true,
            ..Default::default()
        });
        let def = CheckDefinition {
            script_args: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo degraded; exit 1".into(),
            ],
            interval: secs(10),
            ..Default::default()
        };
        assert_eq!(h.runner.add("s", &def, true).unwrap(), CheckType::Script);
        assert_eq!(
            soon(&mut h.rx).await,
            update("s", Status::Warning, "degraded\n")
        );
        h.runner.shutdown().await;
    }
}
