//! The state store: an in-memory indexed database of nodes, services, checks, KV entries and
//! sessions, written only by the Raft FSM ([`Store::apply`]) and snapshotted by it.
//!
//! Owns: the tables, the per-resource Raft indexes that blocking queries report, and the
//! watch channels they wait on. Knows only [`crate::structs`]: no config, no I/O, no Raft.
//!
//! Every service name, node and KV key carries the index of the last change that could
//! alter a query about it, so `X-Consul-Index` is narrow and monotonic.

mod catalog;
mod kv;
mod session;
mod watch;

pub use watch::{Changes, Table, WatchKey, Watches};

use crate::structs::{Command, CommandResponse, DirEntry};
use parking_lot::{RwLock, RwLockReadGuard};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use crate::structs::{Check, Node, Service, Session};

/// The tables. Read through [`Store::read`]; written only by [`Store::apply`].
#[derive(Default, Serialize, Deserialize)]
pub struct Tables {
    /// Index of the last applied command.
    pub last_index: u64,
    nodes: BTreeMap<String, Node>,
    /// Keyed by (node, service ID): the catalog's natural order.
    services: BTreeMap<(String, String), Service>,
    /// Keyed by (node, check ID).
    checks: BTreeMap<(String, String), Check>,
    kv: BTreeMap<String, DirEntry>,
    /// Deleted keys and the index of their deletion, so prefix indexes never go backwards.
    kv_tombstones: BTreeMap<String, u64>,
    sessions: BTreeMap<String, Session>,
    table_index: BTreeMap<String, u64>,
    service_index: BTreeMap<String, u64>,
    node_index: BTreeMap<String, u64>,
    /// Derived: service name → instances. Rebuilt after a snapshot restore.
    #[serde(skip)]
    by_name: HashMap<String, BTreeSet<(String, String)>>,
}

/// The store: tables behind a read-write lock plus the watch registry.
#[derive(Default)]
pub struct Store {
    tables: RwLock<Tables>,
    watches: Watches,
    /// KV keys that may not be re-acquired until the instant (a session's lock delay).
    /// In memory only, like Consul's.
    lock_delays: parking_lot::Mutex<HashMap<String, Instant>>,
}

/// Failure to decode a snapshot.
#[derive(Debug, thiserror::Error)]
#[error("state snapshot: {0}")]
pub struct SnapshotError(String);

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Runs `f` with the tables under the read lock. Keep `f` short and synchronous.
    pub fn read<R>(&self, f: impl FnOnce(&Tables) -> R) -> R {
        f(&self.tables.read())
    }

    /// The read guard, for callers that need several reads consistent with each other.
    pub fn tables(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read()
    }

    pub fn watches(&self) -> &Watches {
        &self.watches
    }

    /// Subscribes to `key`; subscribe before reading so no change is missed.
    pub fn watch(&self, key: &WatchKey) -> tokio::sync::watch::Receiver<u64> {
        self.watches.subscribe(key)
    }

    pub fn last_index(&self) -> u64 {
        self.tables.read().last_index
    }

    /// Applies one committed command at `index`. Deterministic: same input, same tables.
    pub fn apply(&self, index: u64, cmd: &Command) -> CommandResponse {
        let mut changes = Changes::default();
        let resp = {
            let mut t = self.tables.write();
            let resp = self.apply_locked(&mut t, index, cmd, &mut changes);
            t.finish(index, &changes);
            resp
        };
        self.watches.fire(&changes, index);
        resp
    }

    /// Applies the commands of one batched Raft entry, in order, all at `index`: readers see
    /// all of them or none, and each watcher wakes once.
    pub fn apply_batch(&self, index: u64, cmds: &[Command]) -> Vec<CommandResponse> {
        let mut changes = Changes::default();
        let out = {
            let mut t = self.tables.write();
            let out = cmds
                .iter()
                .map(|cmd| self.apply_locked(&mut t, index, cmd, &mut changes))
                .collect();
            t.finish(index, &changes);
            out
        };
        self.watches.fire(&changes, index);
        out
    }

    fn apply_locked(
        &self,
        t: &mut Tables,
        index: u64,
        cmd: &Command,
        changes: &mut Changes,
    ) -> CommandResponse {
        let mut resp = CommandResponse {
            index,
            ok: true,
            ..Default::default()
        };
        match cmd {
            Command::Noop => {}
            Command::Register(req) => {
                if let Err(e) = t.register(index, req, changes) {
                    resp.ok = false;
                    resp.errors.push((0, e));
                }
            }
            Command::Deregister(req) => {
                let delays = t.deregister(index, req, changes);
                self.add_lock_delays(delays);
            }
            Command::Kv(op) => {
                let mut delays = Vec::new();
                t.kv_txn(
                    index,
                    std::slice::from_ref(op),
                    false,
                    &mut resp,
                    changes,
                    &mut delays,
                )
            }
            Command::Txn(ops) => {
                let mut delays = Vec::new();
                t.kv_txn(index, ops, true, &mut resp, changes, &mut delays)
            }
            Command::SessionCreate(s) => {
                if let Err(e) = t.session_create(index, s, changes) {
                    resp.ok = false;
                    resp.errors.push((0, e));
                }
            }
            Command::SessionDestroy { id } => {
                let delays = t.session_destroy(index, id, changes);
                self.add_lock_delays(delays);
            }
            Command::Batch(cmds) => {
                // Never nested by the proposer; applied in order if it ever is.
                for c in cmds {
                    resp.ok &= self.apply_locked(t, index, c, changes).ok;
                }
            }
        }
        if matches!(cmd, Command::Register(_)) {
            // A check that turned critical invalidates the sessions bound to it.
            let delays = t.invalidate_sessions_on_critical(index, changes);
            self.add_lock_delays(delays);
        }
        resp
    }

    fn add_lock_delays(&self, delays: Vec<(String, std::time::Duration)>) {
        if delays.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut m = self.lock_delays.lock();
        m.retain(|_, until| *until > now);
        for (key, d) in delays {
            m.insert(key, now + d);
        }
    }

    /// Whether `key` is inside a lock delay (an acquire must then fail).
    pub fn in_lock_delay(&self, key: &str) -> bool {
        self.lock_delays
            .lock()
            .get(key)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Serializes the tables (with a version byte) for a Raft snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        let t = self.tables.read();
        // Plain types: postcard only fails on allocation failure.
        postcard::to_extend(&*t, vec![crate::structs::LOG_VERSION]).unwrap_or_default()
    }

    /// Replaces the tables with a snapshot and wakes every watcher.
    pub fn restore(&self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let mut fresh: Tables = match bytes.split_first() {
            Some((&crate::structs::LOG_VERSION, rest)) => {
                postcard::from_bytes(rest).map_err(|e| SnapshotError(e.to_string()))?
            }
            Some((v, _)) => return Err(SnapshotError(format!("unsupported version {v}"))),
            None => Tables::default(),
        };
        fresh.rebuild_derived();
        let index = fresh.last_index;
        *self.tables.write() = fresh;
        self.watches.fire_all(index);
        Ok(())
    }
}

impl Tables {
    /// Records that the commands applied at `index` made `changes`.
    fn finish(&mut self, index: u64, changes: &Changes) {
        self.last_index = self.last_index.max(index);
        for table in &changes.tables {
            self.table_index.insert(format!("{table:?}"), index);
        }
    }

    fn rebuild_derived(&mut self) {
        self.by_name.clear();
        for (k, s) in &self.services {
            self.by_name
                .entry(s.service.clone())
                .or_default()
                .insert(k.clone());
        }
    }

    /// The index of the last change to a whole table (never 0 once anything was written).
    pub fn table_index(&self, table: Table) -> u64 {
        self.table_index
            .get(&format!("{table:?}"))
            .copied()
            .unwrap_or(0)
    }

    /// The index of the last change affecting queries about service `name`.
    pub fn service_index(&self, name: &str) -> u64 {
        self.service_index.get(name).copied().unwrap_or(0)
    }

    /// The index of the last change to node `name`, its services or checks.
    pub fn node_index(&self, name: &str) -> u64 {
        self.node_index.get(name).copied().unwrap_or(0)
    }

    // ---- catalog reads ----

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Every service instance, in (node, ID) order.
    pub fn all_services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// Instances of service `name` in (node, ID) order.
    pub fn service_instances(&self, name: &str) -> Vec<&Service> {
        match self.by_name.get(name) {
            Some(keys) => keys.iter().filter_map(|k| self.services.get(k)).collect(),
            None => Vec::new(),
        }
    }

    /// Services on node `name`, by ID.
    pub fn node_services<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services
            .range((node.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == node)
            .map(|(_, s)| s)
    }

    /// Every check on node `name` (node-level and service-level), by check ID.
    pub fn node_checks<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
        self.checks
            .range((node.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == node)
            .map(|(_, c)| c)
    }

    /// The checks relevant to one instance: node-level checks plus the service's own.
    pub fn instance_checks<'a>(&'a self, node: &'a str, service_id: &str) -> Vec<&'a Check> {
        self.node_checks(node)
            .filter(|c| c.service_id.is_empty() || c.service_id == service_id)
            .collect()
    }

    pub fn all_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.values()
    }

    pub fn check(&self, node: &str, check_id: &str) -> Option<&Check> {
        self.checks.get(&(node.to_string(), check_id.to_string()))
    }

    pub fn service(&self, node: &str, id: &str) -> Option<&Service> {
        self.services.get(&(node.to_string(), id.to_string()))
    }

    // ---- KV reads ----

    pub fn kv_get(&self, key: &str) -> Option<&DirEntry> {
        self.kv.get(key)
    }

    /// Entries whose key starts with `prefix`, sorted by key.
    pub fn kv_list<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a DirEntry> + 'a {
        self.kv
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
    }

    /// The index for a single-key read: the entry's, else its tombstone's.
    pub fn kv_key_index(&self, key: &str) -> u64 {
        match self.kv.get(key) {
            Some(e) => e.modify_index,
            None => self.kv_tombstones.get(key).copied().unwrap_or(0),
        }
    }

    /// The index for a prefix read: the highest among live entries and tombstones under it.
    pub fn kv_prefix_index(&self, prefix: &str) -> u64 {
        let live = self
            .kv_list(prefix)
            .map(|e| e.modify_index)
            .max()
            .unwrap_or(0);
        let dead = self
            .kv_tombstones
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(0);
        live.max(dead)
    }

    // ---- session reads ----

    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Bumps the indexes of a service name.
    fn touch_service(&mut self, name: &str, index: u64, changes: &mut Changes) {
        self.service_index.insert(name.to_string(), index);
        changes.services.insert(name.to_string());
    }

    /// Bumps a node and every service on it (their health results include node data).
    fn touch_node(&mut self, node: &str, index: u64, changes: &mut Changes) {
        self.node_index.insert(node.to_string(), index);
        changes.nodes.insert(node.to_string());
        let names: Vec<String> = self
            .node_services(node)
            .map(|s| s.service.clone())
            .collect();
        for n in names {
            self.touch_service(&n, index, changes);
        }
    }
}

#[cfg(test)]
mod tests;
