//! Sessions: creation against live nodes and checks, destruction with the `release` or
//! `delete` behaviour on the keys they hold.

use super::{Changes, Table, Tables};
use crate::structs::{health, Session};
use std::time::Duration;

impl Tables {
    pub(super) fn session_create(
        &mut self,
        index: u64,
        s: &Session,
        changes: &mut Changes,
    ) -> Result<(), String> {
        if !self.nodes.contains_key(&s.node) {
            return Err(format!("Missing node registration for {:?}", s.node));
        }
        for c in s.node_checks.iter().chain(s.service_checks.iter()) {
            match self.check(&s.node, c) {
                None => return Err(format!("Missing check '{c}' registration")),
                Some(chk) if chk.status == health::CRITICAL => {
                    return Err(format!("Check '{c}' is in critical state"));
                }
                Some(_) => {}
            }
        }
        let mut s = s.clone();
        s.create_index = index;
        s.modify_index = index;
        self.sessions.insert(s.id.clone(), s);
        changes.tables.insert(Table::Sessions);
        Ok(())
    }

    /// Destroys a session; returns the lock delays to enforce on the keys it held.
    pub(super) fn session_destroy(
        &mut self,
        index: u64,
        id: &str,
        changes: &mut Changes,
    ) -> Vec<(String, Duration)> {
        let Some(s) = self.sessions.remove(id) else {
            return Vec::new();
        };
        changes.tables.insert(Table::Sessions);
        let held: Vec<String> = self
            .kv
            .values()
            .filter(|e| e.session == id)
            .map(|e| e.key.clone())
            .collect();
        let mut delays = Vec::new();
        for key in held {
            if s.behavior == "delete" {
                self.kv.remove(&key);
                self.kv_tombstones.insert(key.clone(), index);
            } else if let Some(e) = self.kv.get_mut(&key) {
                e.session.clear();
                e.modify_index = index;
            }
            if s.lock_delay_ns > 0 {
                delays.push((key.clone(), Duration::from_nanos(s.lock_delay_ns)));
            }
            changes.kv_keys.push(key);
            changes.tables.insert(Table::Kv);
        }
        delays
    }

    /// Destroys sessions bound to a check that is now critical.
    pub(super) fn invalidate_sessions_on_critical(
        &mut self,
        index: u64,
        changes: &mut Changes,
    ) -> Vec<(String, Duration)> {
        let doomed: Vec<String> = self
            .sessions
            .values()
            .filter(|s| {
                s.node_checks
                    .iter()
                    .chain(s.service_checks.iter())
                    .any(|c| {
                        self.check(&s.node, c)
                            .is_some_and(|chk| chk.status == health::CRITICAL)
                    })
            })
            .map(|s| s.id.clone())
            .collect();
        let mut delays = Vec::new();
        for id in doomed {
            delays.extend(self.session_destroy(index, &id, changes));
        }
        delays
    }
}
