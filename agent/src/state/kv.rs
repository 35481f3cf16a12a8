//! KV writes and transactions: every KV command is a transaction of one or more operations
//! applied to an overlay and committed only if all of them succeed (`/v1/txn` atomicity).

use super::{Changes, Table, Tables};
use crate::structs::{CommandResponse, DirEntry, KvOp, KvVerb};
use std::collections::BTreeMap;
use std::time::Duration;

/// Pending writes of a transaction: `None` deletes.
type Overlay = BTreeMap<String, Option<DirEntry>>;

impl Tables {
    fn kv_view(&self, overlay: &Overlay, key: &str) -> Option<DirEntry> {
        match overlay.get(key) {
            Some(v) => v.clone(),
            None => self.kv.get(key).cloned(),
        }
    }

    fn kv_view_tree(&self, overlay: &Overlay, prefix: &str) -> Vec<DirEntry> {
        let mut merged: BTreeMap<String, DirEntry> = self
            .kv_list(prefix)
            .map(|e| (e.key.clone(), e.clone()))
            .collect();
        for (k, v) in overlay
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            match v {
                Some(e) => {
                    merged.insert(k.clone(), e.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        merged.into_values().collect()
    }

    /// Applies `ops` atomically: any failure is an error and nothing is applied (a plain KV
    /// write reads it as `ok = false`). A transaction (`txn`, even of one operation) also
    /// answers its results in operation order; a plain KV write has none.
    pub(super) fn kv_txn(
        &mut self,
        index: u64,
        ops: &[KvOp],
        txn: bool,
        resp: &mut CommandResponse,
        changes: &mut Changes,
        _delays: &mut Vec<(String, Duration)>,
    ) {
        let mut overlay = Overlay::new();
        // Per operation: a read's entry, or the key whose final state a write returns.
        let mut results: Vec<Vec<Result<DirEntry, String>>> = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            results.push(match op.verb {
                KvVerb::Set | KvVerb::Cas | KvVerb::Lock | KvVerb::Unlock => {
                    vec![Err(op.key.clone())]
                }
                _ => Vec::new(),
            });
            let current = self.kv_view(&overlay, &op.key);
            let fail = |resp: &mut CommandResponse, what: String| {
                resp.ok = false;
                resp.errors.push((i, what));
            };
            match op.verb {
                KvVerb::Set => {
                    overlay.insert(op.key.clone(), Some(write_entry(current, op, index, None)));
                }
                KvVerb::Cas => {
                    let ok = match &current {
                        None => op.index == 0,
                        Some(e) => op.index != 0 && e.modify_index == op.index,
                    };
                    if !ok {
                        fail(
                            resp,
                            format!("failed to set key {:?}, index is stale", op.key),
                        );
                        continue;
                    }
                    overlay.insert(op.key.clone(), Some(write_entry(current, op, index, None)));
                }
                KvVerb::Lock => {
                    if !self.sessions.contains_key(&op.session) {
                        fail(resp, format!("invalid session {:?}", op.session));
                        continue;
                    }
                    match &current {
                        Some(e) if !e.session.is_empty() && e.session != op.session => {
                            fail(
                                resp,
                                format!("failed to lock key {:?}, lock is already held", op.key),
                            );
                            continue;
                        }
                        _ => {}
                    }
                    let relock = current.as_ref().is_some_and(|e| e.session == op.session);
                    let mut e = write_entry(current, op, index, Some(op.session.clone()));
                    if !relock {
                        e.lock_index += 1;
                    }
                    overlay.insert(op.key.clone(), Some(e));
                }
                KvVerb::Unlock => match &current {
                    Some(e) if e.session == op.session => {
                        let e = write_entry(current.clone(), op, index, Some(String::new()));
                        overlay.insert(op.key.clone(), Some(e));
                    }
                    _ => {
                        fail(
                            resp,
                            format!("failed to unlock key {:?}, lock isn't held", op.key),
                        );
                        continue;
                    }
                },
                KvVerb::Get => match current {
                    Some(e) => results[i] = vec![Ok(e)],
                    None => fail(resp, format!("key {:?} doesn't exist", op.key)),
                },
                KvVerb::GetTree => {
                    // A tree read returns every entry under the prefix, each its own result.
                    results[i] = self
                        .kv_view_tree(&overlay, &op.key)
                        .into_iter()
                        .map(Ok)
                        .collect();
                }
                // Checks that pass answer the entry without its value, as Consul's do.
                KvVerb::CheckIndex => match current {
                    Some(mut e) if e.modify_index == op.index => {
                        e.value.clear();
                        results[i] = vec![Ok(e)];
                    }
                    _ => fail(
                        resp,
                        format!("current modify index for key {:?} doesn't match", op.key),
                    ),
                },
                KvVerb::CheckSession => match current {
                    Some(mut e) if e.session == op.session => {
                        e.value.clear();
                        results[i] = vec![Ok(e)];
                    }
                    _ => fail(
                        resp,
                        format!("lock for key {:?} isn't held by session", op.key),
                    ),
                },
                KvVerb::CheckNotExists => {
                    if current.is_some() {
                        fail(resp, format!("key {:?} exists", op.key));
                    }
                }
                KvVerb::Delete => {
                    overlay.insert(op.key.clone(), None);
                }
                KvVerb::DeleteCas => match &current {
                    Some(e) if e.modify_index == op.index => {
                        overlay.insert(op.key.clone(), None);
                    }
                    _ => fail(
                        resp,
                        format!("failed to delete key {:?}, index is stale", op.key),
                    ),
                },
                KvVerb::DeleteTree => {
                    for e in self.kv_view_tree(&overlay, &op.key) {
                        overlay.insert(e.key, None);
                    }
                }
            }
        }
        if !resp.errors.is_empty() {
            resp.entries.clear();
            return;
        }
        if txn {
            for r in results.into_iter().flatten() {
                match r {
                    Ok(e) => resp.entries.push(e),
                    Err(key) => {
                        if let Some(Some(e)) = overlay.get(&key) {
                            let mut shown = e.clone();
                            shown.value.clear();
                            resp.entries.push(shown);
                        }
                    }
                }
            }
        }
        // Commit.
        for (key, v) in overlay {
            match v {
                Some(e) => {
                    self.kv_tombstones.remove(&key);
                    self.kv.insert(key.clone(), e);
                }
                None => {
                    if self.kv.remove(&key).is_some() {
                        self.kv_tombstones.insert(key.clone(), index);
                    } else {
                        continue;
                    }
                }
            }
            changes.kv_keys.push(key);
            changes.tables.insert(Table::Kv);
        }
    }
}

/// The entry after a write, keeping create and lock indexes of the existing one.
fn write_entry(
    current: Option<DirEntry>,
    op: &KvOp,
    index: u64,
    session: Option<String>,
) -> DirEntry {
    let (create_index, lock_index, old_session) = match &current {
        Some(e) => (e.create_index, e.lock_index, e.session.clone()),
        None => (index, 0, String::new()),
    };
    DirEntry {
        key: op.key.clone(),
        value: op.value.clone(),
        flags: op.flags,
        session: session.unwrap_or(old_session),
        lock_index,
        create_index,
        modify_index: index,
    }
}
