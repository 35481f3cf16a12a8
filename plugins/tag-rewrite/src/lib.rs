//! `tag-rewrite`: relabels services at registration, before they reach the catalog.
//!
//! The seed's Prometheus job relabels `__meta_consul_tags` matching `.*,prod,.*` into
//! `env="prod"` at every scrape of every job. Done once at the source, every consumer
//! (Prometheus, DNS, consul-template) sees `env=prod` as a tag and `env: prod` in the
//! service meta.
//!
//! Plugin config (`plugins[].config`), rules applied in order, each to the tags the
//! previous rules left:
//!
//! ```json
//! {"rules": [
//!   {"match": "^(prod|staging|dev)$", "add_tags": ["env=$1"], "meta": {"env": "$1"}},
//!   {"match": "^legacy-(.+)$", "rename": "$1"},
//!   {"match": "^tmp-", "remove": true},
//!   {"service": "^web", "add_tags": ["frontend"]}
//! ]}
//! ```
//!
//! | rule key | meaning |
//! |---|---|
//! | `match` | a regex on each tag; `$1`… in templates are its groups, `$0` the tag |
//! | `service` | a regex on the service name; the rule applies only to matching services (alone: once per service, groups from the name) |
//! | `add_tags` | tags to add (templates) |
//! | `meta` | meta pairs to set (templates) |
//! | `rename` | replace the matched tag (a template) |
//! | `remove` | drop the matched tag |
//!
//! Without config, the seed's rule applies: `prod`, `staging`, `dev` and `test` tags give
//! an `env=<tag>` tag and `env: <tag>` meta.

use regex_lite::{Captures, Regex};
use serde::Deserialize;
use std::collections::BTreeMap;
use tribune_plugin_sdk::{config, Labels, Result, Service, TagRewriter};

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default, rename = "match")]
    pub tag: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub add_tags: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    #[serde(default)]
    pub rename: Option<String>,
    #[serde(default)]
    pub remove: bool,
}

pub struct Rule {
    tag: Option<Regex>,
    service: Option<Regex>,
    add_tags: Vec<String>,
    meta: BTreeMap<String, String>,
    rename: Option<String>,
    remove: bool,
}

/// The seed's relabel, as a rule.
pub fn default_rules() -> Vec<RawRule> {
    vec![RawRule {
        tag: Some("^(prod|staging|dev|test)$".into()),
        add_tags: vec!["env=$1".into()],
        meta: BTreeMap::from([("env".into(), "$1".into())]),
        ..Default::default()
    }]
}

pub fn compile(raw: &[RawRule]) -> std::result::Result<Vec<Rule>, String> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| {
            let re =
                |s: &Option<String>, what: &str| -> std::result::Result<Option<Regex>, String> {
                    s.as_deref()
                        .map(|p| Regex::new(p).map_err(|e| format!("rules[{i}].{what}: {e}")))
                        .transpose()
                };
            if r.tag.is_none() && r.service.is_none() {
                return Err(format!("rules[{i}]: needs \"match\" or \"service\""));
            }
            if r.tag.is_none() && (r.rename.is_some() || r.remove) {
                return Err(format!("rules[{i}]: rename and remove need \"match\""));
            }
            Ok(Rule {
                tag: re(&r.tag, "match")?,
                service: re(&r.service, "service")?,
                add_tags: r.add_tags.clone(),
                meta: r.meta.clone(),
                rename: r.rename.clone(),
                remove: r.remove,
            })
        })
        .collect()
}

fn expand(template: &str, caps: &Captures<'_>) -> String {
    let mut out = String::new();
    caps.expand(template, &mut out);
    out
}

/// Applies the rules; `None` when nothing changed.
pub fn apply(
    rules: &[Rule],
    name: &str,
    tags: &[String],
    meta: &[(String, String)],
) -> Option<Labels> {
    let mut tags: Vec<String> = tags.to_vec();
    let mut meta: BTreeMap<String, String> = meta.iter().cloned().collect();
    let before = (tags.clone(), meta.clone());
    for rule in rules {
        let service_caps = match &rule.service {
            Some(re) => match re.captures(name) {
                Some(c) => Some(c),
                None => continue,
            },
            None => None,
        };
        let Some(tag_re) = &rule.tag else {
            // A service-only rule: once, with the service name's groups.
            if let Some(caps) = &service_caps {
                for t in &rule.add_tags {
                    tags.push(expand(t, caps));
                }
                for (k, v) in &rule.meta {
                    meta.insert(expand(k, caps), expand(v, caps));
                }
            }
            continue;
        };
        let mut next = Vec::with_capacity(tags.len());
        let mut added = Vec::new();
        for tag in &tags {
            let Some(caps) = tag_re.captures(tag) else {
                next.push(tag.clone());
                continue;
            };
            for t in &rule.add_tags {
                added.push(expand(t, &caps));
            }
            for (k, v) in &rule.meta {
                meta.insert(expand(k, &caps), expand(v, &caps));
            }
            if rule.remove {
                continue;
            }
            match &rule.rename {
                Some(r) => next.push(expand(r, &caps)),
                None => next.push(tag.clone()),
            }
        }
        next.extend(added);
        tags = next;
    }
    let mut seen = std::collections::BTreeSet::new();
    tags.retain(|t| !t.is_empty() && seen.insert(t.clone()));
    if (tags.clone(), meta.clone()) == before {
        return None;
    }
    Some(Labels {
        tags,
        meta: meta.into_iter().collect(),
    })
}

struct Rewriter {
    rules: Vec<Rule>,
}

impl TagRewriter for Rewriter {
    fn new() -> Result<Self> {
        let cfg: Config = config::plugin_config()?;
        let raw = cfg.rules.unwrap_or_else(default_rules);
        let rules = compile(&raw)?;
        Ok(Rewriter { rules })
    }

    fn rewrite(&mut self, service: &Service) -> Result<Option<Labels>> {
        Ok(apply(
            &self.rules,
            &service.name,
            &service.tags,
            &service.meta,
        ))
    }
}

tribune_plugin_sdk::export_tag_rewriter!(Rewriter);

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_seeds_relabel_is_the_default() {
        let rules = compile(&default_rules()).unwrap();
        let out = apply(&rules, "node_exporter", &tags(&["prod", "linux"]), &[]).unwrap();
        assert_eq!(out.tags, tags(&["prod", "linux", "env=prod"]));
        assert_eq!(out.meta, vec![("env".to_string(), "prod".to_string())]);
        // Idempotent: a second pass changes nothing.
        assert!(apply(&rules, "node_exporter", &out.tags, &out.meta).is_none());
        assert!(apply(&rules, "x", &tags(&["linux"]), &[]).is_none());
    }

    #[test]
    fn general_rules_rename_remove_and_match_services() {
        let raw: Config = serde_json::from_value(serde_json::json!({"rules": [
            {"match": "^legacy-(.+)$", "rename": "$1"},
            {"match": "^tmp-", "remove": true},
            {"match": "^v(\\d+)$", "meta": {"version": "$1"}, "remove": true},
            {"service": "^web-(\\w+)$", "add_tags": ["frontend", "team=$1"]}
        ]}))
        .unwrap();
        let rules = compile(&raw.rules.unwrap()).unwrap();
        let out = apply(
            &rules,
            "web-shop",
            &tags(&["legacy-api", "tmp-x", "v3", "keep"]),
            &[("owner".into(), "ops".into())],
        )
        .unwrap();
        assert_eq!(out.tags, tags(&["api", "keep", "frontend", "team=shop"]));
        assert_eq!(
            out.meta,
            vec![
                ("owner".to_string(), "ops".to_string()),
                ("version".to_string(), "3".to_string())
            ]
        );
        let other = apply(&rules, "db", &tags(&["keep"]), &[]);
        assert!(other.is_none());
    }

    #[test]
    fn bad_rules_are_refused_with_their_index() {
        let bad = |v: serde_json::Value| {
            let raw: Vec<RawRule> = serde_json::from_value(v).unwrap();
            compile(&raw).err().unwrap()
        };
        assert!(bad(serde_json::json!([{"match": "("}])).starts_with("rules[0].match"));
        assert!(bad(serde_json::json!([{"add_tags": ["x"]}])).contains("needs"));
        assert!(
            bad(serde_json::json!([{"service": "x", "remove": true}])).contains("need \"match\"")
        );
    }
}
