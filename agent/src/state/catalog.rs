//! Catalog writes: register and deregister nodes, services and checks.

use super::{Changes, Table, Tables};
use crate::structs::{health, DeregisterRequest, RegisterRequest};
use std::time::Duration;

impl Tables {
    pub(super) fn register(
        &mut self,
        index: u64,
        req: &RegisterRequest,
        changes: &mut Changes,
    ) -> Result<(), String> {
        let node_name = req.node.node.clone();
        if node_name.is_empty() {
            return Err(crate::structs::msg::MUST_PROVIDE_NODE.to_string());
        }
        // Validate before touching anything: a register is all or nothing.
        for c in &req.checks {
            if !c.service_id.is_empty() {
                let known = self
                    .services
                    .contains_key(&(node_name.clone(), c.service_id.clone()))
                    || req.service.as_ref().is_some_and(|s| s.id == c.service_id);
                if !known {
                    return Err(format!(
                        "Unknown service ID {:?} for check ID {:?}",
                        c.service_id, c.check_id
                    ));
                }
            }
        }

        // Node.
        let existing = self.nodes.get(&node_name).cloned();
        let node_changed = match &existing {
            Some(_) if req.skip_node_update => false,
            Some(n) => {
                n.address != req.node.address
                    || n.id != req.node.id
                    || n.tagged_addresses != req.node.tagged_addresses
                    || n.meta != req.node.meta
                    || n.datacenter != req.node.datacenter
            }
            None => true,
        };
        if node_changed {
            let mut n = req.node.clone();
            n.create_index = existing.as_ref().map_or(index, |e| e.create_index);
            n.modify_index = index;
            self.nodes.insert(node_name.clone(), n);
            changes.tables.insert(Table::Nodes);
            self.touch_node(&node_name, index, changes);
        }

        // Service.
        if let Some(svc) = &req.service {
            let key = (node_name.clone(), svc.id.clone());
            let old = self.services.get(&key).cloned();
            let mut s = svc.clone();
            s.node = node_name.clone();
            let same = old.as_ref().is_some_and(|o| {
                let mut o = o.clone();
                o.create_index = 0;
                o.modify_index = 0;
                let mut n = s.clone();
                n.create_index = 0;
                n.modify_index = 0;
                o == n
            });
            if !same {
                s.create_index = old.as_ref().map_or(index, |o| o.create_index);
                s.modify_index = index;
                if let Some(o) = &old {
                    if o.service != s.service {
                        if let Some(set) = self.by_name.get_mut(&o.service) {
                            set.remove(&key);
                            if set.is_empty() {
                                self.by_name.remove(&o.service);
                            }
                        }
                        let old_name = o.service.clone();
                        self.touch_service(&old_name, index, changes);
                    }
                }
                self.by_name
                    .entry(s.service.clone())
                    .or_default()
                    .insert(key.clone());
                // Checks of this service carry its name and tags.
                for c in self.checks.values_mut() {
                    if c.node == node_name && c.service_id == s.id {
                        c.service_name = s.service.clone();
                        c.service_tags = s.tags.clone();
                    }
                }
                let name = s.service.clone();
                self.services.insert(key, s);
                changes.tables.insert(Table::Services);
                self.touch_service(&name, index, changes);
                self.node_index.insert(node_name.clone(), index);
                changes.nodes.insert(node_name.clone());
            }
        }

        // Checks.
        for c in &req.checks {
            let key = (node_name.clone(), c.check_id.clone());
            let old = self.checks.get(&key).cloned();
            let mut n = c.clone();
            n.node = node_name.clone();
            if !health::is_valid(&n.status) {
                n.status = health::CRITICAL.to_string();
            }
            if !n.service_id.is_empty() {
                if let Some(s) = self
                    .services
                    .get(&(node_name.clone(), n.service_id.clone()))
                {
                    n.service_name = s.service.clone();
                    n.service_tags = s.tags.clone();
                }
            }
            let same = old.as_ref().is_some_and(|o| {
                let mut o = o.clone();
                o.create_index = 0;
                o.modify_index = 0;
                let mut m = n.clone();
                m.create_index = 0;
                m.modify_index = 0;
                o == m
            });
            if same {
                continue;
            }
            n.create_index = old.as_ref().map_or(index, |o| o.create_index);
            n.modify_index = index;
            let service_name = n.service_name.clone();
            let node_level = n.service_id.is_empty();
            self.checks.insert(key, n);
            changes.tables.insert(Table::Checks);
            if node_level {
                self.touch_node(&node_name, index, changes);
            } else {
                self.touch_service(&service_name, index, changes);
                self.node_index.insert(node_name.clone(), index);
                changes.nodes.insert(node_name.clone());
            }
        }
        Ok(())
    }

    /// Removes a check, a service or a whole node; returns the lock delays of the sessions
    /// this invalidated (like any session invalidation, compat §8.2).
    pub(super) fn deregister(
        &mut self,
        index: u64,
        req: &DeregisterRequest,
        changes: &mut Changes,
    ) -> Vec<(String, Duration)> {
        let mut delays = Vec::new();
        let node = req.node.clone();
        if let Some(check_id) = &req.check_id {
            if let Some(c) = self.checks.remove(&(node.clone(), check_id.clone())) {
                changes.tables.insert(Table::Checks);
                if c.service_id.is_empty() {
                    self.touch_node(&node, index, changes);
                } else {
                    self.touch_service(&c.service_name, index, changes);
                    self.node_index.insert(node.clone(), index);
                    changes.nodes.insert(node.clone());
                }
                delays.extend(self.destroy_sessions_bound_to(index, &node, check_id, changes));
            }
            return delays;
        }
        if let Some(service_id) = &req.service_id {
            delays.extend(self.remove_service(index, &node, service_id, changes));
            return delays;
        }
        // The whole node.
        if self.nodes.remove(&node).is_none() {
            return delays;
        }
        let ids: Vec<String> = self.node_services(&node).map(|s| s.id.clone()).collect();
        for id in ids {
            delays.extend(self.remove_service(index, &node, &id, changes));
        }
        let check_ids: Vec<String> = self
            .node_checks(&node)
            .map(|c| c.check_id.clone())
            .collect();
        for id in check_ids {
            self.checks.remove(&(node.clone(), id));
            changes.tables.insert(Table::Checks);
        }
        let sessions: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.node == node)
            .map(|s| s.id.clone())
            .collect();
        for id in sessions {
            delays.extend(self.session_destroy(index, &id, changes));
        }
        changes.tables.insert(Table::Nodes);
        self.touch_node(&node, index, changes);
        delays
    }

    fn remove_service(
        &mut self,
        index: u64,
        node: &str,
        id: &str,
        changes: &mut Changes,
    ) -> Vec<(String, Duration)> {
        let mut delays = Vec::new();
        let key = (node.to_string(), id.to_string());
        let Some(s) = self.services.remove(&key) else {
            return delays;
        };
        if let Some(set) = self.by_name.get_mut(&s.service) {
            set.remove(&key);
            if set.is_empty() {
                self.by_name.remove(&s.service);
            }
        }
        let check_ids: Vec<String> = self
            .node_checks(node)
            .filter(|c| c.service_id == id)
            .map(|c| c.check_id.clone())
            .collect();
        for cid in check_ids {
            self.checks.remove(&(node.to_string(), cid.clone()));
            changes.tables.insert(Table::Checks);
            delays.extend(self.destroy_sessions_bound_to(index, node, &cid, changes));
        }
        changes.tables.insert(Table::Services);
        self.touch_service(&s.service, index, changes);
        self.node_index.insert(node.to_string(), index);
        changes.nodes.insert(node.to_string());
        delays
    }

    fn destroy_sessions_bound_to(
        &mut self,
        index: u64,
        node: &str,
        check_id: &str,
        changes: &mut Changes,
    ) -> Vec<(String, Duration)> {
        let ids: Vec<String> = self
            .sessions
            .values()
            .filter(|s| {
                s.node == node
                    && (s.node_checks.iter().any(|c| c == check_id)
                        || s.service_checks.iter().any(|c| c == check_id))
            })
            .map(|s| s.id.clone())
            .collect();
        let mut delays = Vec::new();
        for id in ids {
            delays.extend(self.session_destroy(index, &id, changes));
        }
        delays
    }
}
