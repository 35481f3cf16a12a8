//! The services and checks this agent owns, and anti-entropy that keeps the catalog in step.
//!
//! Owns: the agent's local view (services and checks registered over HTTP or from config
//! files), its persistence in `data_dir/agent-state.json` (only API-registered entries: config
//! entries are re-read from the files), check results from [`crate::checks`], maintenance
//! mode, and the user-event buffer. The local view is authoritative for this node: a sync
//! makes the catalog match it (Consul's anti-entropy, `agent/local` + `agent/ae`).
//! Must not touch: HTTP, config parsing.

use crate::checks::{self, CheckError, CheckUpdate, Runner, RunnerOptions, Status};
use crate::rpc::{RpcError, Server};
use crate::structs::{
    self, health, msg, Check, Command, DeregisterRequest, RegisterRequest, Service,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tribune_api::types::{CheckDefinition, ServiceDefinition, UserEvent};

/// Where a registration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// The HTTP API: persisted in `data_dir`.
    Api,
    /// A config file: re-read on reload, never persisted.
    Config,
}

/// Why a local change was refused. Display texts are Consul's.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    Invalid(String),
    #[error("{}", msg::unknown_service(.0))]
    UnknownService(String),
    #[error("{}", msg::unknown_check(.0))]
    UnknownCheck(String),
    #[error("{}", msg::no_ttl(.0))]
    NoTtl(String),
    #[error("{0}")]
    Check(#[from] CheckError),
}

struct LocalService {
    service: Service,
    def: ServiceDefinition,
    token: String,
    source: Source,
    in_sync: bool,
}

struct LocalCheck {
    check: Check,
    def: CheckDefinition,
    token: String,
    source: Source,
    in_sync: bool,
    /// When the check became critical (for `deregister_critical_service_after`).
    critical_since: Option<Instant>,
    /// When an output-only change was last synced (rate limited by `check_update_interval`).
    output_synced: Instant,
}

#[derive(Default)]
struct State {
    services: BTreeMap<String, LocalService>,
    checks: BTreeMap<String, LocalCheck>,
    /// Removed locally, still to be removed from the catalog.
    gone_services: BTreeSet<String>,
    gone_checks: BTreeSet<String>,
    node_in_sync: bool,
}

/// This node's identity as registered in the catalog.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node_name: String,
    pub node_id: String,
    pub datacenter: String,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
}

/// Tunables of the local agent.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    pub data_dir: Option<PathBuf>,
    pub checks: RunnerOptions,
    pub check_update_interval: Duration,
}

/// The agent's own services and checks.
pub struct LocalAgent {
    node: NodeInfo,
    opts: LocalOptions,
    state: Mutex<State>,
    runner: Runner,
    rpc: Arc<Server>,
    sync: Notify,
    events: EventBuffer,
    /// Held from taking the snapshot to renaming the file, so concurrent registrations
    /// neither share the temporary file nor let an older snapshot overwrite a newer one.
    persist_lock: Mutex<()>,
    /// The WASM plugin host: tag rewriters and event hooks (`set_plugins`).
    plugins: Mutex<Option<crate::plugins::Plugins>>,
}

/// The on-disk shape of API-registered entries (versioned).
#[derive(Serialize, Deserialize, Default)]
struct Persisted {
    version: u32,
    services: Vec<PersistedService>,
    checks: Vec<PersistedCheck>,
}

#[derive(Serialize, Deserialize)]
struct PersistedService {
    def: ServiceDefinition,
    token: String,
}

#[derive(Serialize, Deserialize)]
struct PersistedCheck {
    def: CheckDefinition,
    token: String,
    /// TTL checks keep their state across a restart.
    status: String,
    output: String,
}

const STATE_FILE: &str = "agent-state.json";

impl LocalAgent {
    /// Creates the local agent; `updates` receives check results for [`LocalAgent::apply_check_update`].
    pub fn new(
        node: NodeInfo,
        opts: LocalOptions,
        rpc: Arc<Server>,
        updates: tokio::sync::mpsc::UnboundedSender<CheckUpdate>,
    ) -> LocalAgent {
        let runner = Runner::new(opts.checks.clone(), updates);
        LocalAgent {
            node,
            opts,
            state: Mutex::new(State::default()),
            runner,
            rpc,
            sync: Notify::new(),
            events: EventBuffer::default(),
            persist_lock: Mutex::new(()),
            plugins: Mutex::new(None),
        }
    }

    pub fn node(&self) -> &NodeInfo {
        &self.node
    }

    pub fn events(&self) -> &EventBuffer {
        &self.events
    }

    /// Hands the WASM plugin host to local state: `wasm` checks run on it, tag rewriters
    /// see every service registered from now on, event hooks hear what happens here.
    pub fn set_plugins(&self, plugins: crate::plugins::Plugins) {
        self.runner.set_plugins(plugins.clone());
        *self.events.plugins.lock() = Some(plugins.clone());
        *self.plugins.lock() = Some(plugins);
    }

    /// The plugin host, if the agent has one.
    pub fn plugins(&self) -> Option<crate::plugins::Plugins> {
        self.plugins.lock().clone()
    }

    /// Loads the services and checks registered over the API before the last shutdown.
    pub fn load_persisted(&self) -> Result<usize, String> {
        let Some(dir) = &self.opts.data_dir else {
            return Ok(0);
        };
        let path = dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let p: Persisted =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut n = 0;
        for s in p.services {
            if let Err(e) = self.add_service(s.def, &s.token, Source::Api, false) {
                tracing::warn!(target: "agent", error = %e, "Dropped a persisted service that no longer validates.");
            } else {
                n += 1;
            }
        }
        for c in p.checks {
            let id = check_id_of(&c.def);
            if is_maintenance_check(&id) {
                // Maintenance survives a restart (Consul persists it); it has no check type, so
                // it is restored as maintenance rather than validated as a check definition.
                if c.def.service_id.is_empty() {
                    self.set_node_maintenance(true, &c.def.notes);
                } else if let Err(e) =
                    self.set_service_maintenance(&c.def.service_id, true, &c.def.notes)
                {
                    tracing::warn!(target: "agent", error = %e, "Dropped the maintenance mode of a service that is gone.");
                    continue;
                }
                n += 1;
                continue;
            }
            if !self.state.lock().checks.contains_key(&id) {
                if let Err(e) = self.add_check(c.def, &c.token, Source::Api) {
                    tracing::warn!(target: "agent", error = %e, "Dropped a persisted check that no longer validates.");
                    continue;
                }
            }
            if let Ok(status) = c.status.parse::<Status>() {
                let mut st = self.state.lock();
                if let Some(lc) = st.checks.get_mut(&id) {
                    if lc.check.check_type == "ttl" {
                        lc.check.status = status.as_str().to_string();
                        lc.check.output = c.output;
                    }
                }
            }
            n += 1;
        }
        Ok(n)
    }

    fn persist(&self) {
        let Some(dir) = &self.opts.data_dir else {
            return;
        };
        let _writing = self.persist_lock.lock();
        let p = {
            let st = self.state.lock();
            Persisted {
                version: 1,
                services: st
                    .services
                    .values()
                    .filter(|s| s.source == Source::Api)
                    .map(|s| PersistedService {
                        def: s.def.clone(),
                        token: s.token.clone(),
                    })
                    .collect(),
                checks: st
                    .checks
                    .values()
                    .filter(|c| c.source == Source::Api)
                    .map(|c| PersistedCheck {
                        def: c.def.clone(),
                        token: c.token.clone(),
                        status: c.check.status.clone(),
                        output: c.check.output.clone(),
                    })
                    .collect(),
            }
        };
        let bytes = match serde_json::to_vec(&p) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(target: "agent", error = %e, "Could not encode the local state.");
                return;
            }
        };
        if let Err(e) = crate::raft::write_atomic(dir, STATE_FILE, &bytes) {
            tracing::error!(target: "agent", error = %e, "Could not persist the local state.");
        }
    }

    /// Registers (or replaces) a service and its checks.
    pub fn add_service(
        &self,
        mut def: ServiceDefinition,
        token: &str,
        source: Source,
        replace_existing_checks: bool,
    ) -> Result<(), LocalError> {
        if def.name.is_empty() {
            return Err(LocalError::Invalid(msg::MISSING_SERVICE_NAME.into()));
        }
        if def.id.is_empty() {
            def.id = def.name.clone();
        }
        validate_service(&def)?;
        let weights = def.weights.clone().unwrap_or_default();
        let mut service = Service {
            node: self.node.node_name.clone(),
            kind: def.kind.clone(),
            id: def.id.clone(),
            service: def.name.clone(),
            tags: def.tags.clone(),
            address: def.address.clone(),
            tagged_addresses: def
                .tagged_addresses
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        structs::ServiceAddr {
                            address: v.address.clone(),
                            port: v.port,
                        },
                    )
                })
                .collect(),
            meta: def.meta.clone(),
            port: def.port,
            weights_passing: weights.passing,
            weights_warning: weights.warning,
            enable_tag_override: def.enable_tag_override,
            create_index: 0,
            modify_index: 0,
        };
        // Tag rewriters (WASM plugins) relabel the service before anything stores it.
        if let Some(p) = self.plugins() {
            p.rewrite_catalog_service(&mut service);
        }
        // Service checks: IDs `service:<id>` or `service:<id>:<n>`.
        let defs: Vec<CheckDefinition> =
            def.check.iter().chain(def.checks.iter()).cloned().collect();
        let many = defs.len() > 1;
        let mut prepared = Vec::new();
        for (i, mut c) in defs.into_iter().enumerate() {
            // Consul refuses the whole registration, with this text and no `Invalid check:`.
            if !c.status.is_empty() && !health::is_valid(&c.status) {
                return Err(LocalError::Invalid(msg::BAD_CHECK_STATUS.into()));
            }
            if c.id.is_empty() {
                c.id = if many {
                    format!("service:{}:{}", def.id, i + 1)
                } else {
                    format!("service:{}", def.id)
                };
            }
            if c.name.is_empty() {
                c.name = format!("Service '{}' check", def.name);
            }
            c.service_id = def.id.clone();
            let ctype =
                checks::validate(&c, &self.opts.checks, source == Source::Config).map_err(|e| {
                    match e {
                        CheckError::Invalid(m) => {
                            LocalError::Invalid(format!("Invalid check: {m}"))
                        }
                        other => LocalError::Check(other),
                    }
                })?;
            prepared.push((c, ctype));
        }
        let mut stored_def = def.clone();
        stored_def.check = None;
        stored_def.checks = prepared.iter().map(|(c, _)| c.clone()).collect();
        {
            let mut st = self.state.lock();
            let mut keep = BTreeSet::new();
            for (c, _) in &prepared {
                keep.insert(c.id.clone());
            }
            if replace_existing_checks {
                let stale: Vec<String> = st
                    .checks
                    .iter()
                    .filter(|(id, c)| c.check.service_id == def.id && !keep.contains(*id))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in stale {
                    st.checks.remove(&id);
                    st.gone_checks.insert(id.clone());
                    self.runner.remove(&id);
                }
            }
            st.gone_services.remove(&def.id);
            st.services.insert(
                def.id.clone(),
                LocalService {
                    service: service.clone(),
                    def: stored_def,
                    token: token.to_string(),
                    source,
                    in_sync: false,
                },
            );
            for (c, ctype) in prepared {
                self.insert_check(&mut st, c, ctype, token, source, Some(&service));
            }
        }
        if source == Source::Api {
            self.persist();
        }
        self.sync.notify_one();
        if let Some(p) = self.plugins() {
            p.service_registered(&service);
        }
        Ok(())
    }

    fn insert_check(
        &self,
        st: &mut State,
        def: CheckDefinition,
        ctype: checks::CheckType,
        token: &str,
        source: Source,
        service: Option<&Service>,
    ) {
        let status = checks::initial_status(&def);
        let check = Check {
            node: self.node.node_name.clone(),
            check_id: def.id.clone(),
            name: def.name.clone(),
            status: status.as_str().to_string(),
            notes: def.notes.clone(),
            output: String::new(),
            service_id: def.service_id.clone(),
            service_name: service.map(|s| s.service.clone()).unwrap_or_default(),
            service_tags: service.map(|s| s.tags.clone()).unwrap_or_default(),
            check_type: ctype.type_str().to_string(),
            definition: crate::http::check_def(&def),
            create_index: 0,
            modify_index: 0,
        };
        // Keep the current status across a re-registration of the same check.
        let previous = st
            .checks
            .get(&def.id)
            .map(|c| (c.check.status.clone(), c.check.output.clone()));
        let mut lc = LocalCheck {
            critical_since: (status == Status::Critical).then(Instant::now),
            check,
            def: def.clone(),
            token: token.to_string(),
            source,
            in_sync: false,
            output_synced: Instant::now(),
        };
        if let Some((s, o)) = previous {
            if def.status.is_empty() {
                lc.check.status = s;
                lc.check.output = o;
            }
        }
        st.gone_checks.remove(&def.id);
        st.checks.insert(def.id.clone(), lc);
        if let Err(e) = self.runner.add(&def.id, &def, source == Source::Config) {
            tracing::warn!(target: "checks", check = %def.id, error = %e, "Could not start the check.");
        }
    }

    /// Removes a service and its checks.
    pub fn remove_service(&self, id: &str) -> Result<(), LocalError> {
        let source = {
            let mut st = self.state.lock();
            let Some(s) = st.services.remove(id) else {
                return Err(LocalError::UnknownService(id.to_string()));
            };
            st.gone_services.insert(id.to_string());
            let ids: Vec<String> = st
                .checks
                .iter()
                .filter(|(_, c)| c.check.service_id == id)
                .map(|(k, _)| k.clone())
                .collect();
            for cid in ids {
                st.checks.remove(&cid);
                self.runner.remove(&cid);
            }
            if let Some(p) = self.plugins() {
                p.service_deregistered(&s.service);
            }
            s.source
        };
        if source == Source::Api {
            self.persist();
        }
        self.sync.notify_one();
        Ok(())
    }

    /// Registers a standalone check (or one bound to a local service by `ServiceID`).
    pub fn add_check(
        &self,
        mut def: CheckDefinition,
        token: &str,
        source: Source,
    ) -> Result<(), LocalError> {
        if def.name.is_empty() {
            return Err(LocalError::Invalid("Missing check name".into()));
        }
        if def.id.is_empty() {
            def.id = def.name.clone();
        }
        let ctype = checks::validate(&def, &self.opts.checks, source == Source::Config).map_err(
            |e| match e {
                CheckError::Invalid(m) => LocalError::Invalid(m),
                other => LocalError::Check(other),
            },
        )?;
        {
            let mut st = self.state.lock();
            let service = if def.service_id.is_empty() {
                None
            } else {
                match st.services.get(&def.service_id) {
                    Some(s) => Some(s.service.clone()),
                    None => {
                        return Err(LocalError::Invalid(format!(
                            "ServiceID {:?} does not exist",
                            def.service_id
                        )));
                    }
                }
            };
            self.insert_check(&mut st, def, ctype, token, source, service.as_ref());
        }
        if source == Source::Api {
            self.persist();
        }
        self.sync.notify_one();
        Ok(())
    }

    pub fn remove_check(&self, id: &str) -> Result<(), LocalError> {
        let source = {
            let mut st = self.state.lock();
            let Some(c) = st.checks.remove(id) else {
                return Err(LocalError::UnknownCheck(id.to_string()));
            };
            st.gone_checks.insert(id.to_string());
            c.source
        };
        self.runner.remove(id);
        if source == Source::Api {
            self.persist();
        }
        self.sync.notify_one();
        Ok(())
    }

    /// `pass`/`warn`/`fail`/`update` of a TTL check.
    pub fn update_ttl(&self, id: &str, status: Status, output: &str) -> Result<(), LocalError> {
        {
            let st = self.state.lock();
            match st.checks.get(id) {
                Some(c) if c.check.check_type == "ttl" => {}
                _ => return Err(LocalError::NoTtl(id.to_string())),
            }
        }
        self.runner
            .update_ttl(id, status, output)
            .map_err(|_| LocalError::NoTtl(id.to_string()))?;
        // Apply now (the runner's copy of this update arrives later and is then a no-op), so a
        // read right after `pass` sees it. Same cap as the runner, so the two are identical.
        let output = checks::cap_ttl_output(output, self.opts.checks.output_max_size);
        self.apply_check_update(CheckUpdate {
            check_id: id.to_string(),
            status,
            output,
        });
        Ok(())
    }

    /// Records a check result; status changes are synced at once, output-only changes at most
    /// once per `check_update_interval` (Consul's protection of Raft).
    pub fn apply_check_update(&self, u: CheckUpdate) {
        let mut notify = false;
        let mut persist = false;
        {
            let mut st = self.state.lock();
            let Some(c) = st.checks.get_mut(&u.check_id) else {
                return;
            };
            let status = u.status.as_str();
            let status_changed = c.check.status != status;
            let output_changed = c.check.output != u.output;
            if !status_changed && !output_changed {
                return;
            }
            let previous_status = c.check.status.clone();
            if status_changed {
                tracing::info!(target: "checks", check = %u.check_id, status, "Check status changed.");
                c.critical_since = (u.status == Status::Critical).then(Instant::now);
                c.in_sync = false;
                notify = true;
            } else if c.output_synced.elapsed() >= self.opts.check_update_interval {
                c.in_sync = false;
                notify = true;
            }
            c.check.status = status.to_string();
            c.check.output = u.output;
            if status_changed {
                if let Some(p) = self.plugins() {
                    p.check_status_changed(&c.check, &previous_status);
                }
            }
            if c.source == Source::Api && c.check.check_type == "ttl" {
                persist = true;
            }
        }
        if persist {
            self.persist();
        }
        if notify {
            self.sync.notify_one();
        }
    }

    /// Node maintenance: a critical `_node_maintenance` check while enabled.
    pub fn set_node_maintenance(&self, enable: bool, reason: &str) {
        let notes = if reason.is_empty() {
            msg::DEFAULT_MAINT_REASON
        } else {
            reason
        };
        self.set_maintenance_check(msg::NODE_MAINT_ID, msg::NODE_MAINT_NAME, "", enable, notes);
    }

    /// Service maintenance: a critical `_service_maintenance:<id>` check while enabled.
    pub fn set_service_maintenance(
        &self,
        id: &str,
        enable: bool,
        reason: &str,
    ) -> Result<(), LocalError> {
        if !self.state.lock().services.contains_key(id) {
            return Err(LocalError::UnknownService(id.to_string()));
        }
        let notes = if reason.is_empty() {
            msg::DEFAULT_SERVICE_MAINT_REASON
        } else {
            reason
        };
        let check_id = format!("{}{id}", msg::SERVICE_MAINT_PREFIX);
        self.set_maintenance_check(&check_id, msg::SERVICE_MAINT_NAME, id, enable, notes);
        Ok(())
    }

    fn set_maintenance_check(
        &self,
        check_id: &str,
        name: &str,
        service_id: &str,
        enable: bool,
        notes: &str,
    ) {
        {
            let mut st = self.state.lock();
            if enable {
                let service = st.services.get(service_id).map(|s| s.service.clone());
                let check = Check {
                    node: self.node.node_name.clone(),
                    check_id: check_id.to_string(),
                    name: name.to_string(),
                    status: health::CRITICAL.to_string(),
                    notes: notes.to_string(),
                    service_id: service_id.to_string(),
                    service_name: service
                        .as_ref()
                        .map(|s| s.service.clone())
                        .unwrap_or_default(),
                    service_tags: service.map(|s| s.tags).unwrap_or_default(),
                    // Consul reports maintenance checks with an empty `Type` (compat §7.3).
                    check_type: String::new(),
                    ..Default::default()
                };
                // Persisted like any API check; `load_persisted` recognises it by its ID.
                let def = CheckDefinition {
                    id: check_id.to_string(),
                    name: name.to_string(),
                    notes: notes.to_string(),
                    service_id: service_id.to_string(),
                    ..Default::default()
                };
                st.gone_checks.remove(check_id);
                st.checks.insert(
                    check_id.to_string(),
                    LocalCheck {
                        check,
                        def,
                        token: String::new(),
                        source: Source::Api,
                        in_sync: false,
                        critical_since: None,
                        output_synced: Instant::now(),
                    },
                );
            } else if st.checks.remove(check_id).is_some() {
                st.gone_checks.insert(check_id.to_string());
            } else {
                return;
            }
        }
        self.persist();
        self.sync.notify_one();
    }

    /// This agent's services, by ID.
    pub fn services(&self) -> Vec<Service> {
        self.state
            .lock()
            .services
            .values()
            .map(|s| s.service.clone())
            .collect()
    }

    pub fn service(&self, id: &str) -> Option<Service> {
        self.state
            .lock()
            .services
            .get(id)
            .map(|s| s.service.clone())
    }

    /// This agent's checks, by ID.
    pub fn checks(&self) -> Vec<Check> {
        self.state
            .lock()
            .checks
            .values()
            .map(|c| c.check.clone())
            .collect()
    }

    /// Replaces every config-file service and check with `services` and `checks` (reload).
    pub fn replace_config_entries(
        &self,
        services: &[ServiceDefinition],
        checks: &[CheckDefinition],
    ) -> Vec<LocalError> {
        let (old_services, old_checks): (Vec<String>, Vec<String>) = {
            let st = self.state.lock();
            (
                st.services
                    .iter()
                    .filter(|(_, s)| s.source == Source::Config)
                    .map(|(k, _)| k.clone())
                    .collect(),
                st.checks
                    .iter()
                    .filter(|(_, c)| c.source == Source::Config && c.check.service_id.is_empty())
                    .map(|(k, _)| k.clone())
                    .collect(),
            )
        };
        let new_service_ids: BTreeSet<String> = services
            .iter()
            .map(|s| {
                if s.id.is_empty() {
                    s.name.clone()
                } else {
                    s.id.clone()
                }
            })
            .collect();
        let new_check_ids: BTreeSet<String> = checks.iter().map(check_id_of).collect();
        for id in old_services
            .iter()
            .filter(|id| !new_service_ids.contains(*id))
        {
            let _ = self.remove_service(id);
        }
        for id in old_checks.iter().filter(|id| !new_check_ids.contains(*id)) {
            let _ = self.remove_check(id);
        }
        let mut errors = Vec::new();
        for s in services {
            let token = s.token.clone();
            if let Err(e) = self.add_service(s.clone(), &token, Source::Config, true) {
                errors.push(e);
            }
        }
        for c in checks {
            let token = c.token.clone();
            if let Err(e) = self.add_check(c.clone(), &token, Source::Config) {
                errors.push(e);
            }
        }
        errors
    }

    /// Services whose critical checks outlived `deregister_critical_service_after`.
    fn reap_critical(&self) {
        let doomed: Vec<(String, String)> = {
            let st = self.state.lock();
            st.checks
                .values()
                .filter(|c| !c.check.service_id.is_empty())
                .filter_map(|c| {
                    let after = c.def.deregister_critical_service_after?.0;
                    let since = c.critical_since?;
                    (c.check.status == health::CRITICAL && since.elapsed() >= after)
                        .then(|| (c.check.service_id.clone(), c.check.check_id.clone()))
                })
                .collect()
        };
        for (service, check) in doomed {
            tracing::info!(target: "agent", service = %service, check = %check, "Deregistering a service whose check was critical too long.");
            let _ = self.remove_service(&service);
        }
    }

    /// Runs anti-entropy until `shutdown`: a sync on every local change, a full sync (which
    /// also repairs what others changed in the catalog) every `interval`.
    pub async fn run_sync(
        self: Arc<Self>,
        interval: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut next_full = tokio::time::Instant::now();
        loop {
            let full = tokio::time::Instant::now() >= next_full;
            let result = if full {
                self.sync_full().await
            } else {
                self.sync_changes().await
            };
            match result {
                Ok(()) if full => {
                    let jitter = Duration::from_millis(
                        rand::random::<u64>() % (interval.as_millis() as u64 / 4 + 1),
                    );
                    next_full = tokio::time::Instant::now() + interval + jitter;
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(target: "agent", error = %e, "Anti-entropy sync failed; retrying.");
                    next_full = tokio::time::Instant::now() + Duration::from_secs(1);
                }
            }
            self.reap_critical();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.sync.notified() => {}
                _ = tokio::time::sleep_until(next_full.min(tokio::time::Instant::now() + Duration::from_secs(5))) => {}
            }
        }
    }

    /// Wakes anti-entropy now.
    pub fn trigger_sync(&self) {
        self.sync.notify_one();
    }

    /// This node as a catalog row.
    pub fn node_record(&self) -> structs::Node {
        structs::Node {
            id: self.node.node_id.clone(),
            node: self.node.node_name.clone(),
            address: self.node.address.clone(),
            datacenter: self.node.datacenter.clone(),
            tagged_addresses: self.node.tagged_addresses.clone(),
            meta: self.node.meta.clone(),
            create_index: 0,
            modify_index: 0,
        }
    }

    /// Compares the catalog's view of this node with the local one and marks differences.
    pub async fn sync_full(&self) -> Result<(), RpcError> {
        let node_name = self.node.node_name.clone();
        let crate::rpc::NodeState {
            node,
            services,
            checks,
        } = self.rpc.node_state(&node_name).await?;
        {
            let mut st = self.state.lock();
            let want = self.node_record();
            st.node_in_sync = node.is_some_and(|n| {
                n.address == want.address
                    && n.tagged_addresses == want.tagged_addresses
                    && n.meta == want.meta
                    && n.id == want.id
            });
            for svc in &services {
                match st.services.get_mut(&svc.id) {
                    None if svc.id != "consul" => {
                        st.gone_services.insert(svc.id.clone());
                    }
                    None => {}
                    Some(local) => {
                        if local.service.enable_tag_override {
                            local.service.tags = svc.tags.clone();
                        }
                        let mut a = local.service.clone();
                        let mut b = svc.clone();
                        (
                            a.create_index,
                            a.modify_index,
                            b.create_index,
                            b.modify_index,
                        ) = (0, 0, 0, 0);
                        local.in_sync = a == b;
                    }
                }
            }
            let in_catalog: BTreeSet<&str> = services.iter().map(|s| s.id.as_str()).collect();
            for (id, s) in st.services.iter_mut() {
                if !in_catalog.contains(id.as_str()) {
                    s.in_sync = false;
                }
            }
            for c in &checks {
                match st.checks.get_mut(&c.check_id) {
                    None if c.check_id != msg::SERF_CHECK_ID => {
                        st.gone_checks.insert(c.check_id.clone());
                    }
                    None => {}
                    Some(local) => {
                        let mut a = local.check.clone();
                        a.service_name = c.service_name.clone();
                        a.service_tags = c.service_tags.clone();
                        (a.create_index, a.modify_index) = (c.create_index, c.modify_index);
                        local.in_sync = a == *c;
                    }
                }
            }
            let in_catalog: BTreeSet<&str> = checks.iter().map(|c| c.check_id.as_str()).collect();
            for (id, c) in st.checks.iter_mut() {
                if !in_catalog.contains(id.as_str()) {
                    c.in_sync = false;
                }
            }
        }
        self.sync_changes().await
    }

    /// Pushes every out-of-sync entry to the catalog.
    pub async fn sync_changes(&self) -> Result<(), RpcError> {
        let node_name = self.node.node_name.clone();
        let (node_dirty, gone_services, gone_checks, services, node_checks) = {
            let st = self.state.lock();
            let services: Vec<(Service, Vec<Check>)> = st
                .services
                .values()
                .filter(|s| {
                    !s.in_sync
                        || st
                            .checks
                            .values()
                            .any(|c| c.check.service_id == s.service.id && !c.in_sync)
                })
                .map(|s| {
                    let checks = st
                        .checks
                        .values()
                        .filter(|c| c.check.service_id == s.service.id)
                        .map(|c| c.check.clone())
                        .collect();
                    (s.service.clone(), checks)
                })
                .collect();
            let node_checks: Vec<Check> = st
                .checks
                .values()
                .filter(|c| c.check.service_id.is_empty() && !c.in_sync)
                .map(|c| c.check.clone())
                .collect();
            (
                !st.node_in_sync,
                st.gone_services.iter().cloned().collect::<Vec<_>>(),
                st.gone_checks.iter().cloned().collect::<Vec<_>>(),
                services,
                node_checks,
            )
        };
        if node_dirty {
            let cmd = Command::Register(RegisterRequest {
                node: self.node_record(),
                skip_node_update: false,
                service: None,
                checks: Vec::new(),
            });
            self.rpc.apply(cmd).await?;
            self.state.lock().node_in_sync = true;
            tracing::debug!(target: "agent", node = %node_name, "Synced node info.");
        }
        for id in gone_services {
            let cmd = Command::Deregister(DeregisterRequest {
                node: node_name.clone(),
                service_id: Some(id.clone()),
                check_id: None,
            });
            self.rpc.apply(cmd).await?;
            self.state.lock().gone_services.remove(&id);
            tracing::info!(target: "agent", service = %id, "Deregistered service.");
        }
        for id in gone_checks {
            let cmd = Command::Deregister(DeregisterRequest {
                node: node_name.clone(),
                service_id: None,
                check_id: Some(id.clone()),
            });
            self.rpc.apply(cmd).await?;
            self.state.lock().gone_checks.remove(&id);
            tracing::debug!(target: "agent", check = %id, "Deregistered check.");
        }
        for (svc, checks) in services {
            let cmd = Command::Register(RegisterRequest {
                node: self.node_record(),
                skip_node_update: true,
                service: Some(svc.clone()),
                checks: checks.clone(),
            });
            let r = self.rpc.apply(cmd).await?;
            if let Some((_, e)) = r.errors.first() {
                tracing::warn!(target: "agent", service = %svc.id, error = %e, "The catalog refused a service.");
                continue;
            }
            let mut st = self.state.lock();
            if let Some(l) = st.services.get_mut(&svc.id) {
                if l.service == svc {
                    l.in_sync = true;
                }
            }
            for c in &checks {
                mark_check_synced(&mut st, c);
            }
            tracing::info!(target: "agent", service = %svc.id, "Synced service.");
        }
        if !node_checks.is_empty() {
            let cmd = Command::Register(RegisterRequest {
                node: self.node_record(),
                skip_node_update: true,
                service: None,
                checks: node_checks.clone(),
            });
            self.rpc.apply(cmd).await?;
            let mut st = self.state.lock();
            for c in &node_checks {
                mark_check_synced(&mut st, c);
            }
        }
        Ok(())
    }
}

fn mark_check_synced(st: &mut State, c: &Check) {
    if let Some(l) = st.checks.get_mut(&c.check_id) {
        if l.check == *c {
            l.in_sync = true;
            l.output_synced = Instant::now();
        }
    }
}

/// `_node_maintenance` or `_service_maintenance:<id>`.
fn is_maintenance_check(id: &str) -> bool {
    id == msg::NODE_MAINT_ID || id.starts_with(msg::SERVICE_MAINT_PREFIX)
}

fn check_id_of(def: &CheckDefinition) -> String {
    if def.id.is_empty() {
        def.name.clone()
    } else {
        def.id.clone()
    }
}

/// Consul's service validation (compat §5.2).
fn validate_service(def: &ServiceDefinition) -> Result<(), LocalError> {
    let bad_addr = |a: &str| {
        a.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
    };
    if bad_addr(&def.address) || def.tagged_addresses.values().any(|t| bad_addr(&t.address)) {
        return Err(LocalError::Invalid(msg::INVALID_SERVICE_ADDRESS.into()));
    }
    if def.meta.len() > 64 {
        return Err(LocalError::Invalid(
            "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs"
                .into(),
        ));
    }
    for (k, v) in &def.meta {
        if k.is_empty()
            || k.len() > 128
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(LocalError::Invalid(format!(
                "Invalid Service Meta: Key {k:?} is invalid: keys must be 1-128 characters of letters, digits, '_' and '-'"
            )));
        }
        if k.starts_with("consul-") {
            return Err(LocalError::Invalid(format!(
                "Invalid Service Meta: Key {k:?} is reserved for internal use"
            )));
        }
        if v.len() > 512 {
            return Err(LocalError::Invalid(format!(
                "Invalid Service Meta: Value for key {k:?} is too long (limit: 512 characters)"
            )));
        }
    }
    if let Some(w) = &def.weights {
        if !(1..=65535).contains(&w.passing) || !(0..=65535).contains(&w.warning) {
            return Err(LocalError::Invalid(format!(
                "Invalid Weights: Passing must be between 1 and 65535 and Warning between 0 and 65535 (got {}/{})",
                w.passing, w.warning
            )));
        }
    }
    Ok(())
}

/// The last 256 user events this agent received, with Consul's non-monotonic list index.
pub struct EventBuffer {
    ring: Mutex<VecDeque<UserEvent>>,
    index: tokio::sync::watch::Sender<u64>,
    ltime: AtomicU64,
    /// Event hooks hear every event pushed here.
    plugins: Mutex<Option<crate::plugins::Plugins>>,
}

impl Default for EventBuffer {
    fn default() -> Self {
        EventBuffer {
            ring: Mutex::new(VecDeque::new()),
            index: tokio::sync::watch::channel(1).0,
            ltime: AtomicU64::new(0),
            plugins: Mutex::new(None),
        }
    }
}

const EVENT_RING: usize = 256;

impl EventBuffer {
    /// Records an event and wakes list watchers.
    pub fn push(&self, mut ev: UserEvent) -> UserEvent {
        ev.ltime = self.ltime.fetch_add(1, Ordering::Relaxed) + 1;
        let idx = event_index(&ev.id);
        {
            let mut r = self.ring.lock();
            if r.len() == EVENT_RING {
                r.pop_front();
            }
            r.push_back(ev.clone());
        }
        self.index.send_replace(idx);
        if let Some(p) = self.plugins.lock().as_ref() {
            p.user_event(&ev);
        }
        ev
    }

    pub fn list(&self) -> (u64, Vec<UserEvent>) {
        let r = self.ring.lock();
        let idx = r.back().map_or(1, |e| event_index(&e.id));
        (idx, r.iter().cloned().collect())
    }

    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.index.subscribe()
    }
}

/// XOR of the two 64-bit halves of the event's UUID (Consul's event-list index), never 0.
pub fn event_index(id: &str) -> u64 {
    match uuid::Uuid::parse_str(id) {
        Ok(u) => {
            let v = u.as_u128();
            ((v >> 64) as u64 ^ v as u64).max(1)
        }
        Err(_) => 1,
    }
}

impl LocalAgent {
    /// Stops every running check (shutdown).
    pub fn stop_checks(&self) {
        self.runner.stop_all();
    }
}
