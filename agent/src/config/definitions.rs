//! Service and check definitions in config files (compat §14.2): `service`/`services`,
//! `check`/`checks`, and the `check`/`checks` inside a service.
//!
//! Unlike the rest of the file these keys bind the way Consul's HTTP API does: snake_case,
//! CamelCase and PascalCase spellings all work. Unknown keys are still errors here (a file
//! is ours, not an old client's request). Known keys are those of the wire types in
//! `tribune_api::types`, read from serde itself so the two lists cannot drift; each key is
//! decoded alone first so that every bad field gets its own error naming its path, and only
//! then is the whole definition decoded with `tribune_api::decode::from_value`.

use super::error::{render_value, HIDDEN};
use super::schema::{closest, index, join, Located, Walk};
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;
use tribune_api::decode::{from_value, normalize_key};
use tribune_api::parse_go_duration;
use tribune_api::types::{CheckDefinition, ServiceAddress, ServiceDefinition, Weights};

/// Consul keys Tribune accepts in a service definition but does not implement.
const SERVICE_IGNORED: &[&str] = &["locality"];
/// Consul keys Tribune accepts in a check definition but does not implement.
const CHECK_IGNORED: &[&str] = &["h2pingusetls", "osservice"];
/// Check keys holding Go duration strings.
const CHECK_DURATIONS: &[&str] = &[
    "interval",
    "timeout",
    "ttl",
    "deregistercriticalserviceafter",
];
/// Statuses a check may start in.
const CHECK_STATUSES: &[&str] = &["passing", "warning", "critical"];

/// The struct field names serde knows for `T` (renames and aliases included).
fn serde_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Capture;
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field capture")
        }
    }
    impl std::error::Error for Fields {}
    impl de::Error for Fields {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }
    impl<'de> de::Deserializer<'de> for Capture {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    match T::deserialize(Capture) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

/// Normalised known keys of a definition type, with the spelling to suggest for each.
struct KnownKeys {
    normalized: BTreeSet<String>,
    /// snake_case spellings, for "did you mean".
    suggestions: Vec<String>,
}

impl KnownKeys {
    fn of<T: DeserializeOwned>() -> KnownKeys {
        let fields = serde_fields::<T>();
        KnownKeys {
            normalized: fields.iter().map(|f| normalize_key(f)).collect(),
            suggestions: fields.iter().map(|f| snake_case(f)).collect(),
        }
    }

    fn contains(&self, normalized: &str) -> bool {
        self.normalized.contains(normalized)
    }

    fn suggestions(&self) -> Vec<&str> {
        self.suggestions.iter().map(String::as_str).collect()
    }
}

/// `EnableTagOverride` → `enable_tag_override`, `HTTP` → `http`, `TLSSkipVerify` →
/// `tls_skip_verify`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev_lower = chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev_lower || (next_lower && chars[i - 1].is_uppercase()) {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn service_keys() -> &'static KnownKeys {
    static KEYS: OnceLock<KnownKeys> = OnceLock::new();
    KEYS.get_or_init(KnownKeys::of::<ServiceDefinition>)
}

fn check_keys() -> &'static KnownKeys {
    static KEYS: OnceLock<KnownKeys> = OnceLock::new();
    KEYS.get_or_init(KnownKeys::of::<CheckDefinition>)
}

fn weights_keys() -> &'static KnownKeys {
    static KEYS: OnceLock<KnownKeys> = OnceLock::new();
    KEYS.get_or_init(KnownKeys::of::<Weights>)
}

fn service_address_keys() -> &'static KnownKeys {
    static KEYS: OnceLock<KnownKeys> = OnceLock::new();
    KEYS.get_or_init(KnownKeys::of::<ServiceAddress>)
}

/// serde's "invalid type: string \"x\", expected i64" → "expected an integer".
fn decode_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let Some(at) = msg.find(", expected ") else {
        return msg;
    };
    let expected = &msg[at + ", expected ".len()..];
    let plain = match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "an integer"
        }
        "f32" | "f64" => "a number",
        "a sequence" => "a list",
        "a map" => "an object",
        e if e.starts_with("struct ") => "an object",
        e => e,
    };
    format!("expected {plain}")
}

/// Items of a `service`/`services`/`check`/`checks` value with their paths: an object is one
/// definition, a list is several (repeated HCL blocks arrive as a list too).
fn items<'v>(walk: &mut Walk<'_>, v: &'v Value, p: &str, what: &str) -> Vec<(String, &'v Value)> {
    match v {
        Value::Object(_) => vec![(p.to_string(), v)],
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, x)| (index(p, i), x))
            .collect(),
        other => {
            walk.type_error(
                p,
                other,
                false,
                &format!("expected {what} object or a list of them"),
            );
            Vec::new()
        }
    }
}

impl Walk<'_> {
    /// `service` / `services` at the top level.
    pub(crate) fn services(&mut self, v: &Value, p: &str) {
        for (ip, item) in items(self, v, p, "a service") {
            if let Some(def) = self.service(item, &ip) {
                self.out.services.push(Located {
                    file: self.file.map(str::to_string),
                    path: ip,
                    item: def,
                });
            }
        }
    }

    /// `check` / `checks` at the top level (standalone checks).
    pub(crate) fn checks(&mut self, v: &Value, p: &str) {
        for (ip, item) in items(self, v, p, "a check") {
            if let Some(def) = self.check(item, &ip, true) {
                self.out.checks.push(Located {
                    file: self.file.map(str::to_string),
                    path: ip,
                    item: def,
                });
            }
        }
    }

    fn service(&mut self, v: &Value, p: &str) -> Option<ServiceDefinition> {
        let Some(map) = v.as_object() else {
            self.type_error(p, v, false, "expected a service object");
            return None;
        };
        let before = self.errors.len();
        let mut clean = Map::new();
        let mut token = None;
        let mut check = None;
        let mut checks = Vec::new();
        for (key, value) in map {
            let kp = join(p, key);
            let norm = normalize_key(key);
            if value.is_null() {
                continue;
            }
            match norm.as_str() {
                "token" => token = self.secret_string(value, &kp),
                "check" => {
                    // One check, or repeated HCL `check { }` blocks.
                    for (cp, item) in items(self, value, &kp, "a check") {
                        let def = self.check(item, &cp, false);
                        if value.is_object() {
                            check = def;
                        } else {
                            checks.extend(def);
                        }
                    }
                }
                "checks" => {
                    for (cp, item) in items(self, value, &kp, "a check") {
                        checks.extend(self.check(item, &cp, false));
                    }
                }
                "weights" => {
                    if self.known_keys(value, &kp, weights_keys()) {
                        self.probe::<ServiceDefinition>(&mut clean, key, value, &kp);
                    }
                }
                "taggedaddresses" => {
                    if let Some(addrs) = value.as_object() {
                        for (name, addr) in addrs {
                            self.known_keys(addr, &join(&kp, name), service_address_keys());
                        }
                    }
                    self.probe::<ServiceDefinition>(&mut clean, key, value, &kp);
                }
                n if SERVICE_IGNORED.contains(&n) => {
                    self.warn(format!("'{kp}': not supported by Tribune; ignored"));
                }
                n if service_keys().contains(n) => {
                    self.probe::<ServiceDefinition>(&mut clean, key, value, &kp);
                }
                _ => self.unknown(&kp, key, &service_keys().suggestions()),
            }
        }
        if self.errors.len() != before {
            return None;
        }
        let mut def: ServiceDefinition = match from_value(Value::Object(clean)) {
            Ok(def) => def,
            Err(e) => {
                self.error(p, None, decode_message(&e));
                return None;
            }
        };
        def.token = token.unwrap_or_default();
        def.check = check;
        def.checks = checks;
        if def.name.is_empty() {
            self.error(&join(p, "name"), None, "missing service name");
            return None;
        }
        Some(def)
    }

    fn check(&mut self, v: &Value, p: &str, standalone: bool) -> Option<CheckDefinition> {
        let Some(map) = v.as_object() else {
            self.type_error(p, v, false, "expected a check object");
            return None;
        };
        let before = self.errors.len();
        let mut clean = Map::new();
        let mut token = None;
        let mut script_paths = Vec::new();
        for (key, value) in map {
            let kp = join(p, key);
            let norm = normalize_key(key);
            if value.is_null() {
                continue;
            }
            match norm.as_str() {
                "token" => token = self.secret_string(value, &kp),
                "script" => self.error(
                    &kp,
                    None,
                    "the \"script\" check field was removed in Consul 1.0; use \"args\": [\"/bin/sh\", \"-c\", \"...\"] instead",
                ),
                n if CHECK_DURATIONS.contains(&n) => match value.as_str() {
                    Some(s) if parse_go_duration(s).is_ok() => {
                        clean.insert(key.clone(), value.clone());
                    }
                    Some(_) => self.bad(&kp, value, false, "expected a duration such as \"10s\""),
                    None => self.type_error(
                        &kp,
                        value,
                        false,
                        "expected a duration string such as \"10s\"",
                    ),
                },
                n if CHECK_IGNORED.contains(&n) => {
                    self.warn(format!("'{kp}': not supported by Tribune; ignored"));
                }
                n if check_keys().contains(n) => {
                    if matches!(n, "args" | "scriptargs")
                        && value.as_array().is_some_and(|a| !a.is_empty())
                    {
                        script_paths.push(kp.clone());
                    }
                    self.probe::<CheckDefinition>(&mut clean, key, value, &kp);
                }
                _ => self.unknown(&kp, key, &check_keys().suggestions()),
            }
        }
        if self.errors.len() != before {
            return None;
        }
        let mut def: CheckDefinition = match from_value(Value::Object(clean)) {
            Ok(def) => def,
            Err(e) => {
                self.error(p, None, decode_message(&e));
                return None;
            }
        };
        def.token = token.unwrap_or_default();
        if let Err(message) = validate_check(&def, standalone) {
            self.error(p, None, message);
            return None;
        }
        for path in script_paths {
            self.out.script_checks.push(Located {
                file: self.file.map(str::to_string),
                path,
                item: (),
            });
        }
        Some(def)
    }

    /// A token: a string, never shown.
    fn secret_string(&mut self, v: &Value, p: &str) -> Option<String> {
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.type_error(p, v, true, "expected a string");
                None
            }
        }
    }

    /// Decodes `{key: value}` alone as `T` so a bad field is reported under its own path;
    /// keeps it in `clean` when it decodes.
    fn probe<T: DeserializeOwned>(
        &mut self,
        clean: &mut Map<String, Value>,
        key: &str,
        value: &Value,
        p: &str,
    ) {
        let mut one = Map::new();
        one.insert(key.to_string(), value.clone());
        match from_value::<T>(Value::Object(one)) {
            Ok(_) => {
                clean.insert(key.to_string(), value.clone());
            }
            Err(e) => {
                // Check headers often carry credentials (`Authorization`).
                let shown = if normalize_key(key) == "header" {
                    HIDDEN.to_string()
                } else {
                    render_value(value)
                };
                self.error(p, Some(shown), decode_message(&e));
            }
        }
    }

    /// Checks an object's keys against a definition type (case-insensitively).
    fn known_keys(&mut self, v: &Value, p: &str, known: &KnownKeys) -> bool {
        let Some(map) = v.as_object() else {
            // The probe reports the type error.
            return true;
        };
        let mut ok = true;
        for key in map.keys() {
            if !known.contains(&normalize_key(key)) {
                let kp = join(p, key);
                let mut message = format!("invalid config key {kp}");
                if let Some(best) = closest(key, &known.suggestions()) {
                    message.push_str(&format!(" (did you mean \"{best}\"?)"));
                }
                self.error(&kp, None, message);
                ok = false;
            }
        }
        ok
    }
}

/// Consul's `CheckType.Validate`, plus the standalone-check name rule.
fn validate_check(c: &CheckDefinition, standalone: bool) -> Result<(), String> {
    let positive = |d: &Option<tribune_api::GoDuration>| d.is_some_and(|d| !d.is_zero());
    let interval_check = !c.script_args.is_empty()
        || !c.http.is_empty()
        || !c.tcp.is_empty()
        || !c.udp.is_empty()
        || !c.grpc.is_empty()
        || !c.h2ping.is_empty()
        || !c.docker_container_id.is_empty()
        || c.wasm.is_some();
    let alias = !c.alias_node.is_empty() || !c.alias_service.is_empty();
    if standalone && c.name.is_empty() {
        return Err("missing check name".into());
    }
    if !c.status.is_empty() && !CHECK_STATUSES.contains(&c.status.as_str()) {
        return Err("Status for checks must 'passing', 'warning', 'critical'".into());
    }
    if positive(&c.interval) && positive(&c.ttl) {
        return Err("Interval and TTL cannot both be specified".into());
    }
    if interval_check && !positive(&c.interval) {
        return Err(
            "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP, gRPC, Docker or WASM checks"
                .into(),
        );
    }
    if !interval_check && !alias && !positive(&c.ttl) {
        return Err("TTL must be > 0 for TTL checks (or give the check a type: args, http, tcp, udp, grpc, h2ping, alias_node/alias_service or wasm)".into());
    }
    if c.output_max_size < 0 {
        return Err("output_max_size must be positive".into());
    }
    if c.failures_before_warning > 0
        && c.failures_before_critical > 0
        && c.failures_before_warning > c.failures_before_critical
    {
        return Err("FailuresBeforeWarning can't be higher than FailuresBeforeCritical".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::ConfigError;
    use crate::config::schema::walk_source;
    use serde_json::json;
    use std::time::Duration;

    fn walk(v: Value) -> (super::super::schema::Walked, Vec<ConfigError>, Vec<String>) {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let map = v.as_object().cloned().unwrap();
        let w = walk_source(Some("svc.json"), &map, &mut errors, &mut warnings);
        (w, errors, warnings)
    }

    #[test]
    fn serde_fields_include_renames_and_aliases() {
        let fields = serde_fields::<CheckDefinition>();
        assert!(fields.contains(&"ID"));
        assert!(fields.contains(&"checkid"));
        assert!(fields.contains(&"args"));
        assert!(fields.contains(&"HTTP"));
        assert!(serde_fields::<ServiceDefinition>().contains(&"EnableTagOverride"));
    }

    #[test]
    fn snake_case_spellings() {
        assert_eq!(snake_case("EnableTagOverride"), "enable_tag_override");
        assert_eq!(snake_case("HTTP"), "http");
        assert_eq!(snake_case("TLSSkipVerify"), "tls_skip_verify");
        assert_eq!(snake_case("ServiceID"), "service_id");
        assert_eq!(snake_case("GRPCUseTLS"), "grpc_use_tls");
    }

    #[test]
    fn any_case_binds() {
        let (w, errors, _) = walk(json!({"services": [
            {"Name": "a", "EnableTagOverride": true, "Port": 1},
            {"name": "b", "enable_tag_override": true, "port": 2,
             "checks": [{"TTL": "30s"}, {"http": "http://x", "Interval": "5s", "tls_skip_verify": true}]}
        ]}));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(w.services.len(), 2);
        assert!(w.services[0].item.enable_tag_override);
        let b = &w.services[1].item;
        assert_eq!(b.checks.len(), 2);
        assert_eq!(b.checks[0].ttl.unwrap().0, Duration::from_secs(30));
        assert!(b.checks[1].tls_skip_verify);
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let (_, errors, _) = walk(json!({"service": {
            "name": "web", "port": "eighty", "tagz": [], "weights": {"passing": 1, "critical": 2},
            "check": {"http": "http://x", "interval": 10, "token": 5}
        }}));
        let mut keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "service.check.interval",
                "service.check.token",
                "service.port",
                "service.tagz",
                "service.weights.critical"
            ],
            "{errors:#?}"
        );
        let port = errors.iter().find(|e| e.key == "service.port").unwrap();
        assert_eq!(port.message, "expected an integer");
        let token = errors
            .iter()
            .find(|e| e.key == "service.check.token")
            .unwrap();
        assert_eq!(token.value.as_deref(), Some(HIDDEN));
        let tagz = errors.iter().find(|e| e.key == "service.tagz").unwrap();
        assert!(
            tagz.message.contains("did you mean \"tags\""),
            "{}",
            tagz.message
        );
    }

    #[test]
    fn check_rules() {
        let (_, errors, _) = walk(json!({"checks": [
            {"name": "a", "http": "http://x"},
            {"name": "b", "ttl": "10s", "interval": "10s", "http": "http://x"},
            {"name": "c"},
            {"http": "http://x", "interval": "1s"},
            {"name": "e", "script": "echo hi", "interval": "1s"},
            {"name": "f", "ttl": "1s", "status": "ok"}
        ]}));
        let msgs: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect();
        assert_eq!(msgs.len(), 6, "{msgs:#?}");
        assert!(msgs[0].starts_with("checks[0]: Interval must be > 0"));
        assert!(msgs[1].starts_with("checks[1]: Interval and TTL cannot both be specified"));
        assert!(msgs[2].starts_with("checks[2]: TTL must be > 0"));
        assert!(msgs[3].starts_with("checks[3]: missing check name"));
        assert!(msgs[4].starts_with("checks[4].script: the \"script\" check field was removed"));
        assert!(msgs[5].starts_with("checks[5]: Status for checks must"));
    }

    #[test]
    fn hcl_repeated_check_blocks_become_checks() {
        let (w, errors, _) = walk(json!({"service": {"name": "w", "check": [
            {"ttl": "1s"}, {"tcp": "localhost:1", "interval": "1s"}
        ]}}));
        assert!(errors.is_empty(), "{errors:?}");
        let s = &w.services[0].item;
        assert!(s.check.is_none());
        assert_eq!(s.checks.len(), 2);
    }

    #[test]
    fn script_checks_are_located() {
        let (w, errors, _) = walk(json!({"service": {"name": "w", "checks": [
            {"args": ["/bin/true"], "interval": "10s"}
        ]}}));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(w.script_checks[0].path, "service.checks[0].args");
        assert_eq!(w.services[0].item.checks[0].script_args, vec!["/bin/true"]);
    }
}
