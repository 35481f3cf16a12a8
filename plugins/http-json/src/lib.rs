//! `http-json`: fetches a URL and checks one value of the JSON it returns.
//!
//! Check config (`"wasm": {"plugin": "http-json", "config": {...}}`):
//!
//! | key | meaning |
//! |---|---|
//! | `url` | `http://host:port/path` (required; the host must be granted) |
//! | `method` | default `GET` |
//! | `headers` | object of request headers |
//! | `status` | expected HTTP status; default: any 2xx |
//! | `path` | where to look in the JSON: `a.b[0].c` (default: the whole document) |
//! | `expect` | a JSON value the found value must equal (else critical) |
//! | `warning`, `critical` | numeric thresholds: the value at or above them is warning or critical |
//! | `below` | `true` turns the thresholds around (at or below is bad, e.g. free disk) |
//!
//! Without `expect` or thresholds the check passes when the path exists.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tribune_plugin_sdk::{http, CheckRequest, CheckResult, HealthCheck, Result};

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub expect: Option<Value>,
    #[serde(default)]
    pub warning: Option<f64>,
    #[serde(default)]
    pub critical: Option<f64>,
    #[serde(default)]
    pub below: bool,
}

/// One step of a path: a key or an index.
#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `a.b[0].c` → steps; `""` is the whole document.
fn parse_path(path: &str) -> std::result::Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unclosed [ in path {path:?}"))?;
            let n = r[..end]
                .parse::<usize>()
                .map_err(|_| format!("bad index {:?} in path {path:?}", &r[..end]))?;
            steps.push(Step::Index(n));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("unexpected {rest:?} in path {path:?}"));
        }
    }
    Ok(steps)
}

fn lookup<'a>(doc: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let mut v = doc;
    for s in steps {
        v = match s {
            Step::Key(k) => v.get(k)?,
            Step::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

/// Judges a response body against the config (the part that needs no network).
pub fn judge(cfg: &Config, status: u16, body: &[u8]) -> CheckResult {
    let status_ok = match cfg.status {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    if !status_ok {
        let want = cfg
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "2xx".into());
        let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
        return CheckResult::critical(format!(
            "{} {}: HTTP {status}, expected {want}: {snippet}",
            cfg.method.as_deref().unwrap_or("GET"),
            cfg.url
        ));
    }
    let doc: Value = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => {
            return CheckResult::critical(format!("HTTP {status}, but the body is not JSON: {e}"))
        }
    };
    let steps = match parse_path(&cfg.path) {
        Ok(s) => s,
        Err(e) => return CheckResult::critical(e),
    };
    let shown_path = if cfg.path.is_empty() {
        "the document"
    } else {
        &cfg.path
    };
    let Some(found) = lookup(&doc, &steps) else {
        return CheckResult::critical(format!("HTTP {status}, but {shown_path} is missing"));
    };
    if let Some(expect) = &cfg.expect {
        return if found == expect {
            CheckResult::passing(format!("HTTP {status}, {shown_path} = {found}"))
        } else {
            CheckResult::critical(format!(
                "HTTP {status}, {shown_path} = {found}, expected {expect}"
            ))
        };
    }
    if cfg.warning.is_some() || cfg.critical.is_some() {
        let Some(n) = found.as_f64() else {
            return CheckResult::critical(format!(
                "HTTP {status}, {shown_path} = {found}, which is not a number"
            ));
        };
        let bad = |limit: f64| if cfg.below { n <= limit } else { n >= limit };
        let cmp = if cfg.below { "<=" } else { ">=" };
        if let Some(c) = cfg.critical.filter(|c| bad(*c)) {
            return CheckResult::critical(format!(
                "HTTP {status}, {shown_path} = {n} {cmp} critical threshold {c}"
            ));
        }
        if let Some(w) = cfg.warning.filter(|w| bad(*w)) {
            return CheckResult::warning(format!(
                "HTTP {status}, {shown_path} = {n} {cmp} warning threshold {w}"
            ));
        }
        return CheckResult::passing(format!("HTTP {status}, {shown_path} = {n}"));
    }
    CheckResult::passing(format!("HTTP {status}, {shown_path} = {found}"))
}

#[derive(Default)]
struct HttpJson;

impl HealthCheck for HttpJson {
    fn check(&mut self, request: CheckRequest) -> Result<CheckResult> {
        let cfg: Config = request.config()?;
        if cfg.url.is_empty() {
            return Ok(CheckResult::critical("config.url is required"));
        }
        let mut req = http::Request::new(cfg.method.as_deref().unwrap_or("GET"), &cfg.url)
            .header("accept", "application/json");
        for (k, v) in &cfg.headers {
            req = req.header(k, v);
        }
        let resp = req.send()?;
        Ok(judge(&cfg, resp.status, &resp.body))
    }
}

tribune_plugin_sdk::export_health_check!(HttpJson);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tribune_plugin_sdk::CheckStatus;

    fn cfg(v: Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("a.b[0][2].c").unwrap(),
            vec![
                Step::Key("a".into()),
                Step::Key("b".into()),
                Step::Index(0),
                Step::Index(2),
                Step::Key("c".into())
            ]
        );
        assert_eq!(parse_path("").unwrap(), vec![]);
        assert!(parse_path("a[x]").is_err());
        assert!(parse_path("a[0").is_err());
    }

    #[test]
    fn expected_values_decide() {
        let c = cfg(json!({"url": "http://x/", "path": "status", "expect": "ok"}));
        let r = judge(&c, 200, br#"{"status": "ok"}"#);
        assert_eq!(r.status, CheckStatus::Passing, "{}", r.output);
        let r = judge(&c, 200, br#"{"status": "degraded"}"#);
        assert_eq!(r.status, CheckStatus::Critical);
        assert!(r.output.contains("expected \"ok\""), "{}", r.output);
        let r = judge(&c, 200, br#"{}"#);
        assert!(r.output.contains("status is missing"), "{}", r.output);
        let r = judge(&c, 503, br#"{"status": "ok"}"#);
        assert!(r.output.contains("HTTP 503, expected 2xx"), "{}", r.output);
        let r = judge(&c, 200, b"<html>");
        assert!(r.output.contains("not JSON"), "{}", r.output);
    }

    #[test]
    fn thresholds_grade_numbers() {
        let c =
            cfg(json!({"url": "u", "path": "db.latency_ms[0]", "warning": 100, "critical": 500}));
        let body = |n: i64| serde_json::to_vec(&json!({"db": {"latency_ms": [n]}})).unwrap();
        assert_eq!(judge(&c, 200, &body(20)).status, CheckStatus::Passing);
        assert_eq!(judge(&c, 200, &body(100)).status, CheckStatus::Warning);
        assert_eq!(judge(&c, 200, &body(900)).status, CheckStatus::Critical);
        let free =
            cfg(json!({"url": "u", "path": "free", "warning": 20, "critical": 5, "below": true}));
        let r = judge(&free, 200, br#"{"free": 10}"#);
        assert_eq!(r.status, CheckStatus::Warning);
        assert!(r.output.contains("<= warning threshold 20"), "{}", r.output);
        let r = judge(&c, 200, br#"{"db": {"latency_ms": ["slow"]}}"#);
        assert!(r.output.contains("not a number"), "{}", r.output);
    }

    #[test]
    fn a_specific_status_can_be_expected() {
        let c = cfg(json!({"url": "u", "status": 429}));
        assert_eq!(judge(&c, 429, b"{}").status, CheckStatus::Passing);
        assert_eq!(judge(&c, 200, b"{}").status, CheckStatus::Critical);
    }
}
