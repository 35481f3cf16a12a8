//! Allowlist patterns shared by manifests (what a plugin asks for) and grants (what the
//! operator allows): network addresses for `http` and `tcp`, key prefixes for `kv-read`.
//!
//! A target is allowed only when it matches a declared pattern AND a granted pattern, so a
//! grant of `*` still confines a plugin to what its manifest names, and a manifest of `*`
//! still confines it to what the operator grants.

use std::fmt;

/// A host pattern with an optional port: `example.com`, `*.example.com`, `*`, `10.0.0.1`,
/// `[::1]`, each optionally followed by `:port` or `:*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrPattern {
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: `a.example.com`, `a.b.example.com`, not `example.com`. Stored as
    /// `.example.com`.
    Suffix(String),
}

impl AddrPattern {
    /// An `http` pattern: the port may be omitted (any port).
    pub fn parse_http(s: &str) -> Result<AddrPattern, String> {
        Self::parse(s, false)
    }

    /// A `tcp` pattern: the port is required (`:*` for any).
    pub fn parse_tcp(s: &str) -> Result<AddrPattern, String> {
        Self::parse(s, true)
    }

    fn parse(s: &str, port_required: bool) -> Result<AddrPattern, String> {
        let text = s.trim();
        if text.is_empty() {
            return Err("expected a host pattern, not an empty string".into());
        }
        if text.contains("://") || text.contains('/') {
            return Err(format!(
                "expected a host such as \"api.example.com:8080\", not a URL ({text:?})"
            ));
        }
        let (host, port) = split_host_port(text)
            .ok_or_else(|| format!("expected host:port, such as \"127.0.0.1:6379\" ({text:?})"))?;
        let port = match port {
            None if port_required => {
                return Err(format!(
                    "a tcp grant needs a port (\"{text}:6379\", or \"{text}:*\" for any)"
                ))
            }
            None | Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{p:?} is not a port number"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(rest) = host.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(format!(
                    "{text:?}: only a leading \"*.\" wildcard is allowed"
                ));
            }
            HostPattern::Suffix(format!(".{rest}"))
        } else if host.contains('*') {
            return Err(format!(
                "{text:?}: only a leading \"*.\" wildcard is allowed"
            ));
        } else {
            HostPattern::Exact(host)
        };
        Ok(AddrPattern {
            host,
            port,
            text: text.to_string(),
        })
    }

    /// Whether `host` (as written in the URL or address, lower-cased by the caller or not)
    /// and `port` match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h.trim_start_matches('[').trim_end_matches(']') == host,
            HostPattern::Suffix(s) => host.ends_with(s.as_str()),
        }
    }
}

impl fmt::Display for AddrPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. A bare IPv6 address without brackets is
/// taken as a host without port.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        let host = &s[..end + 2];
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    match s.matches(':').count() {
        0 => Some((s, None)),
        1 => {
            let (h, p) = s.split_once(':')?;
            (!h.is_empty()).then_some((h, Some(p)))
        }
        _ => Some((s, None)),
    }
}

/// Splits `host:port` of a target (not a pattern): the port is required.
pub fn split_target(addr: &str) -> Option<(&str, u16)> {
    match split_host_port(addr)? {
        (h, Some(p)) => Some((h, p.parse().ok()?)),
        _ => None,
    }
}

/// A KV prefix. `*` or the empty string allow every key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixPattern(String);

impl PrefixPattern {
    pub fn new(s: &str) -> PrefixPattern {
        PrefixPattern(if s == "*" {
            String::new()
        } else {
            s.to_string()
        })
    }

    /// Whether `key` lies under the prefix.
    pub fn matches(&self, key: &str) -> bool {
        key.starts_with(&self.0)
    }

    /// Whether listing `prefix` stays under this prefix (`app/` allows listing `app/x`,
    /// not `ap`).
    pub fn covers(&self, prefix: &str) -> bool {
        prefix.starts_with(&self.0)
    }
}

impl fmt::Display for PrefixPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("*")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match() {
        let p = AddrPattern::parse_http("api.example.com").unwrap();
        assert!(p.matches("api.example.com", 80));
        assert!(p.matches("API.example.com", 8080));
        assert!(!p.matches("example.com", 80));
        let p = AddrPattern::parse_http("*.example.com:443").unwrap();
        assert!(p.matches("a.b.example.com", 443));
        assert!(!p.matches("example.com", 443));
        assert!(!p.matches("a.example.com", 80));
        let p = AddrPattern::parse_tcp("127.0.0.1:*").unwrap();
        assert!(p.matches("127.0.0.1", 6379));
        assert!(!p.matches("127.0.0.2", 6379));
        let p = AddrPattern::parse_tcp("[::1]:6379").unwrap();
        assert!(p.matches("[::1]", 6379));
        assert!(p.matches("::1", 6379));
        let p = AddrPattern::parse_http("*").unwrap();
        assert!(p.matches("anything", 1));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        assert!(AddrPattern::parse_http("http://x/")
            .unwrap_err()
            .contains("not a URL"));
        assert!(AddrPattern::parse_tcp("redis")
            .unwrap_err()
            .contains("needs a port"));
        assert!(AddrPattern::parse_tcp("redis:0").is_err());
        assert!(AddrPattern::parse_http("a.*.com").is_err());
        assert!(AddrPattern::parse_http("").is_err());
    }

    #[test]
    fn targets_split() {
        assert_eq!(split_target("127.0.0.1:6379"), Some(("127.0.0.1", 6379)));
        assert_eq!(split_target("[::1]:80"), Some(("[::1]", 80)));
        assert_eq!(split_target("host"), None);
        assert_eq!(split_target("host:x"), None);
    }

    #[test]
    fn prefixes() {
        let p = PrefixPattern::new("app/");
        assert!(p.matches("app/x"));
        assert!(!p.matches("ap"));
        assert!(p.covers("app/x/"));
        assert!(!p.covers("a"));
        assert!(PrefixPattern::new("*").matches("anything"));
    }
}
