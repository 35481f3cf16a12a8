//! Consul's merge rules over checked sources: a later scalar replaces an earlier one, lists
//! append (`retry_join`, `recursors`, ...), objects merge key by key (`ports`, `acl`,
//! `acl.tokens`, `node_meta`). The merged tree remembers which source last set each key, so
//! a problem found only after merging (`bootstrap_expect` on a client) still names its file.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where a merged value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A file or an `-hcl` snippet, by name.
    File(String),
    /// The command-line flags.
    Flags,
    /// `-dev`'s defaults.
    Dev,
}

/// All sources merged, with the origin of every key path.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    pub root: Map<String, Value>,
    pub origins: BTreeMap<String, Origin>,
}

impl Merged {
    /// Merges `src` over what is there, recording `origin` for every key it sets.
    pub(crate) fn add(&mut self, src: Map<String, Value>, origin: &Origin) {
        merge_into(&mut self.root, src, "", origin, &mut self.origins);
    }

    /// The value at a dotted path (no key of ours that is read contains a dot).
    pub(crate) fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = parts.next()?;
        let mut v = self.root.get(first)?;
        for part in parts {
            v = v.as_object()?.get(part)?;
        }
        Some(v)
    }

    /// Who last set `path` (or the nearest enclosing object).
    pub(crate) fn origin(&self, path: &str) -> Option<&Origin> {
        let mut p = path;
        loop {
            if let Some(o) = self.origins.get(p) {
                return Some(o);
            }
            p = &p[..p.rfind('.')?];
        }
    }
}

fn merge_into(
    dst: &mut Map<String, Value>,
    src: Map<String, Value>,
    path: &str,
    origin: &Origin,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (key, value) in src {
        let p = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        origins.insert(p.clone(), origin.clone());
        match (dst.get_mut(&key), value) {
            (Some(Value::Object(d)), Value::Object(s)) => merge_into(d, s, &p, origin, origins),
            (Some(Value::Array(d)), Value::Array(s)) => d.extend(s),
            // A new object: merge into an empty one so every key inside gets its origin.
            (_, Value::Object(s)) => {
                let mut fresh = Map::new();
                merge_into(&mut fresh, s, &p, origin, origins);
                dst.insert(key, Value::Object(fresh));
            }
            (_, value) => {
                dst.insert(key, value);
            }
        }
    }
}

/// The same rules without bookkeeping (repeated HCL blocks inside one file).
pub(crate) fn merge_plain(dst: &mut Map<String, Value>, src: Map<String, Value>) {
    let mut scratch = BTreeMap::new();
    merge_into(dst, src, "", &Origin::Dev, &mut scratch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn scalars_override_lists_append_objects_merge() {
        let mut m = Merged::default();
        m.add(
            obj(
                json!({"datacenter": "a", "retry_join": ["x"], "ports": {"http": 1, "dns": 2},
                       "acl": {"tokens": {"agent": "t1"}}}),
            ),
            &Origin::File("a.json".into()),
        );
        m.add(
            obj(
                json!({"datacenter": "b", "retry_join": ["y"], "ports": {"http": 3},
                       "acl": {"tokens": {"default": "t2"}}}),
            ),
            &Origin::File("b.json".into()),
        );
        assert_eq!(
            Value::Object(m.root.clone()),
            json!({"datacenter": "b", "retry_join": ["x", "y"], "ports": {"http": 3, "dns": 2},
                   "acl": {"tokens": {"agent": "t1", "default": "t2"}}})
        );
        assert_eq!(m.origin("ports.dns"), Some(&Origin::File("a.json".into())));
        assert_eq!(m.origin("ports.http"), Some(&Origin::File("b.json".into())));
        assert_eq!(m.get("acl.tokens.agent"), Some(&json!("t1")));
    }
}
