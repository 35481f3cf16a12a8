//! Fine-grained watches: one channel per service name, node, KV key and KV prefix, plus one per
//! table. A write fires only the channels of what it touched, so a blocking query on service
//! `web` never wakes for a change to `db` (Consul wakes both: compat §17 row 1).

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio::sync::watch;

/// The tables that have a whole-table watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    Nodes,
    /// The `/v1/catalog/services` list: any service added, changed or removed.
    Services,
    Checks,
    Kv,
    Sessions,
}

const TABLES: usize = 5;

impl Table {
    fn slot(self) -> usize {
        self as usize
    }
}

/// What a blocking query waits on: the narrowest thing covering its result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WatchKey {
    /// Instances of one service, their checks and their nodes.
    Service(String),
    /// One node, its services and checks.
    Node(String),
    /// One KV key.
    KvKey(String),
    /// Every KV key under a prefix.
    KvPrefix(String),
    Table(Table),
}

/// What one applied command touched.
#[derive(Debug, Default)]
pub struct Changes {
    pub services: HashSet<String>,
    pub nodes: HashSet<String>,
    pub kv_keys: Vec<String>,
    pub tables: HashSet<Table>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.nodes.is_empty()
            && self.kv_keys.is_empty()
            && self.tables.is_empty()
    }
}

#[derive(Default)]
struct Maps {
    services: HashMap<String, watch::Sender<u64>>,
    nodes: HashMap<String, watch::Sender<u64>>,
    kv_keys: HashMap<String, watch::Sender<u64>>,
    kv_prefixes: BTreeMap<String, watch::Sender<u64>>,
    /// Entries since the last sweep of channels nobody listens to.
    since_sweep: usize,
}

/// The registry of watch channels. Channels are created on first subscription and swept
/// when nobody holds a receiver any more.
pub struct Watches {
    maps: Mutex<Maps>,
    tables: [watch::Sender<u64>; TABLES],
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            maps: Mutex::new(Maps::default()),
            tables: std::array::from_fn(|_| watch::channel(0).0),
        }
    }
}

fn subscribe_in(map: &mut HashMap<String, watch::Sender<u64>>, key: &str) -> watch::Receiver<u64> {
    match map.get(key) {
        Some(tx) => tx.subscribe(),
        None => {
            let (tx, rx) = watch::channel(0);
            map.insert(key.to_string(), tx);
            rx
        }
    }
}

impl Watches {
    /// A receiver that changes when anything under `key` changes. Subscribe *before* reading
    /// the data, so a write between the read and the wait is not missed.
    pub fn subscribe(&self, key: &WatchKey) -> watch::Receiver<u64> {
        if let WatchKey::Table(t) = key {
            return self.tables[t.slot()].subscribe();
        }
        let mut m = self.maps.lock();
        m.since_sweep += 1;
        if m.since_sweep > 4096 {
            m.since_sweep = 0;
            m.services.retain(|_, tx| tx.receiver_count() > 0);
            m.nodes.retain(|_, tx| tx.receiver_count() > 0);
            m.kv_keys.retain(|_, tx| tx.receiver_count() > 0);
            m.kv_prefixes.retain(|_, tx| tx.receiver_count() > 0);
        }
        match key {
            WatchKey::Service(s) => subscribe_in(&mut m.services, s),
            WatchKey::Node(n) => subscribe_in(&mut m.nodes, n),
            WatchKey::KvKey(k) => subscribe_in(&mut m.kv_keys, k),
            WatchKey::KvPrefix(p) => match m.kv_prefixes.get(p) {
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = watch::channel(0);
                    m.kv_prefixes.insert(p.clone(), tx);
                    rx
                }
            },
            WatchKey::Table(_) => unreachable!("tables are handled above"),
        }
    }

    /// Wakes the watchers of everything in `changes`.
    pub fn fire(&self, changes: &Changes, index: u64) {
        for t in &changes.tables {
            self.tables[t.slot()].send_replace(index);
        }
        if changes.services.is_empty() && changes.nodes.is_empty() && changes.kv_keys.is_empty() {
            return;
        }
        let m = self.maps.lock();
        for s in &changes.services {
            if let Some(tx) = m.services.get(s) {
                tx.send_replace(index);
            }
        }
        for n in &changes.nodes {
            if let Some(tx) = m.nodes.get(n) {
                tx.send_replace(index);
            }
        }
        for k in &changes.kv_keys {
            if let Some(tx) = m.kv_keys.get(k) {
                tx.send_replace(index);
            }
            if m.kv_prefixes.is_empty() {
                continue;
            }
            // Every prefix of the key, including "" and the key itself.
            for (i, _) in k.char_indices().chain(std::iter::once((k.len(), ' '))) {
                if let Some(tx) = m.kv_prefixes.get(&k[..i]) {
                    tx.send_replace(index);
                }
            }
        }
    }

    /// Wakes every watcher (snapshot restore).
    pub fn fire_all(&self, index: u64) {
        for t in &self.tables {
            t.send_replace(index);
        }
        let m = self.maps.lock();
        for tx in m
            .services
            .values()
            .chain(m.nodes.values())
            .chain(m.kv_keys.values())
            .chain(m.kv_prefixes.values())
        {
            tx.send_replace(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_only_what_changed() {
        let w = Watches::default();
        let web = w.subscribe(&WatchKey::Service("web".into()));
        let db = w.subscribe(&WatchKey::Service("db".into()));
        let pre = w.subscribe(&WatchKey::KvPrefix("app/".into()));
        let other = w.subscribe(&WatchKey::KvPrefix("other/".into()));
        let mut c = Changes::default();
        c.services.insert("web".into());
        c.kv_keys.push("app/x/y".into());
        w.fire(&c, 7);
        assert!(web.has_changed().unwrap());
        assert_eq!(*web.borrow(), 7);
        assert!(!db.has_changed().unwrap());
        assert!(pre.has_changed().unwrap());
        assert!(!other.has_changed().unwrap());
    }
}
