//! Query-string parameters shared by every endpoint (compat §1.9, §2).

use super::error::ApiError;
use crate::filter::Filter;
use crate::rpc::Consistency;
use crate::structs::msg;
use std::time::Duration;

/// The parsed query string. Repeated parameters (`tag`, `node-meta`) keep every value.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        let pairs = match raw {
            Some(q) => form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            None => Vec::new(),
        };
        Params { pairs }
    }

    /// Present at all (Consul's presence-only booleans: `stale`, `recurse`, `keys`, `raw`...).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Go's `strconv.ParseBool`, with an empty value meaning true.
    pub fn parse_bool(&self, name: &str) -> Option<Result<bool, ()>> {
        self.get(name).map(|v| match v {
            "" | "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            _ => Err(()),
        })
    }

    /// A stable key of every parameter that shapes a result, for the response cache.
    pub fn cache_key(&self) -> String {
        let mut parts: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "index" | "wait" | "token" | "stale" | "consistent" | "cached"
                )
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.sort();
        parts.join("&")
    }
}

/// Options of a blocking-capable read.
#[derive(Debug)]
pub struct QueryOptions {
    pub index: u64,
    pub wait: Duration,
    pub consistency: Consistency,
    pub filter: Option<Filter>,
    pub pretty: bool,
}

/// Limits of blocking waits (`default_query_time`, `max_query_time`).
#[derive(Clone, Copy, Debug)]
pub struct WaitLimits {
    pub default: Duration,
    pub max: Duration,
}

impl QueryOptions {
    pub fn parse(p: &Params, limits: WaitLimits) -> Result<QueryOptions, ApiError> {
        let stale = p.has("stale");
        let consistent = p.has("consistent");
        if stale && consistent {
            return Err(ApiError::bad_request(msg::STALE_AND_CONSISTENT));
        }
        if p.has("cached") && consistent {
            return Err(ApiError::bad_request(msg::CACHED_AND_CONSISTENT));
        }
        let index = match p.get("index") {
            None | Some("") => 0,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(msg::INVALID_INDEX))?,
        };
        let wait = match p.get("wait") {
            None | Some("") => limits.default,
            Some(v) => tribune_api::parse_go_duration(v)
                .map_err(|_| ApiError::bad_request(msg::INVALID_WAIT))?,
        };
        let wait = if wait.is_zero() {
            limits.default
        } else {
            wait.min(limits.max)
        };
        let filter = match p.get("filter") {
            None | Some("") => None,
            Some(expr) => Some(Filter::parse(expr).map_err(|e| {
                ApiError::bad_request(format!(
                    "Failed to create boolean expression evaluator: {e}"
                ))
            })?),
        };
        let consistency = if consistent {
            Consistency::Consistent
        } else if stale {
            Consistency::Stale
        } else {
            Consistency::Default
        };
        Ok(QueryOptions {
            index,
            wait,
            consistency,
            filter,
            pretty: p.has("pretty"),
        })
    }

    /// The wait plus Consul's jitter of up to wait/16, so clients' `wait + margin` budgets hold.
    pub fn wait_with_jitter(&self) -> Duration {
        let jitter_max = self.wait.as_millis() as u64 / 16;
        if jitter_max == 0 {
            return self.wait;
        }
        self.wait + Duration::from_millis(rand::random::<u64>() % jitter_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WaitLimits = WaitLimits {
        default: Duration::from_secs(300),
        max: Duration::from_secs(600),
    };

    #[test]
    fn parses_blocking_options() {
        let p = Params::parse(Some("index=12&wait=120000ms&stale="));
        let q = QueryOptions::parse(&p, LIMITS).unwrap();
        assert_eq!(q.index, 12);
        assert_eq!(q.wait, Duration::from_secs(120));
        assert_eq!(q.consistency, Consistency::Stale);
        let j = q.wait_with_jitter();
        assert!(j >= q.wait && j < q.wait + q.wait / 16);
        let q = QueryOptions::parse(&Params::parse(Some("wait=1h")), LIMITS).unwrap();
        assert_eq!(q.wait, Duration::from_secs(600), "capped at max_query_time");
    }

    #[test]
    fn rejects_bad_options_with_consul_text() {
        let e = |q: &str| {
            QueryOptions::parse(&Params::parse(Some(q)), LIMITS)
                .unwrap_err()
                .message
        };
        assert_eq!(e("index=x"), "Invalid index");
        assert_eq!(e("wait=forever"), "Invalid wait time");
        assert_eq!(e("stale&consistent"), msg::STALE_AND_CONSISTENT);
        assert!(
            e("filter=Port%20%3D%3D").starts_with("Failed to create boolean expression evaluator")
        );
    }

    #[test]
    fn repeated_and_bool_params() {
        let p = Params::parse(Some("tag=a&tag=b&passing=False&x"));
        assert_eq!(p.all("tag").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(p.parse_bool("passing"), Some(Ok(false)));
        assert!(p.has("x"));
        assert_eq!(p.cache_key(), "passing=False&tag=a&tag=b&x=");
    }
}
