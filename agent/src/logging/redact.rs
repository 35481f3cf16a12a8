//! Secrets out of log lines: every formatted line passes through [`Redactor::scrub`] on
//! its sink's thread before it is written anywhere.
//!
//! Two rules: the configured secrets (ACL tokens, the gossip key, service tokens) are
//! replaced wherever they occur, and a value that follows a secret-looking key is replaced
//! whatever it is: `token=...` in a query string or a `key=value` pair, `"Token":"..."` or
//! `"SecretID":"..."` in JSON, `token="..."` in syslog structured data,
//! `X-Consul-Token: ...` and `Bearer ...` in headers. Replacing is `<hidden>`, as Consul
//! prints a hidden token in its request log.

use super::record::{Record, Value, HIDDEN};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// Keys whose value is hidden. Matched ASCII-case-insensitively.
const KEYS: &[&str] = &[
    "token",
    "secretid",
    "secret_id",
    "secret",
    "password",
    "passwd",
    "encrypt",
    "gossip_key",
];
const BEARER: &str = "bearer ";

/// Configured secrets shorter than this are not searched for: a short string would hide
/// innocent text and cannot be a real token or key.
const MIN_SECRET_LEN: usize = 8;

/// Hides secrets in formatted lines. Cheap to clone (shared automatons).
#[derive(Clone)]
pub struct Redactor {
    /// Keys and `bearer `; pattern ids below `KEYS.len()` are keys.
    keys: std::sync::Arc<AhoCorasick>,
    secrets: Option<std::sync::Arc<AhoCorasick>>,
}

impl Redactor {
    /// A redactor that also hides each of `secrets` (empty and short ones are skipped).
    pub fn new<I, S>(secrets: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = KEYS.iter().map(|s| s.to_string()).collect();
        patterns.push(BEARER.to_string());
        // Invariant: the patterns are a handful of short literals, far below any limit.
        let keys = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .expect("a few literal patterns always build");
        let mut list: Vec<String> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_string())
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        list.sort();
        list.dedup();
        let secrets = if list.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&list)
                .ok()
                .map(std::sync::Arc::new)
        };
        Redactor {
            keys: std::sync::Arc::new(keys),
            secrets,
        }
    }

    /// Hides the secrets of `rec` in `line`, its formatted form: a record whose message,
    /// field names and values hold nothing to hide (known after the first sink looked)
    /// is left as is. Field names count: `xtoken=abc` in a text line is hidden whole.
    pub fn scrub_record(&self, rec: &Record, line: &mut Vec<u8>) {
        let clean = *rec.clean.get_or_init(|| {
            let mut text = std::iter::once(rec.message())
                .chain(rec.origin.as_deref())
                .chain(rec.fields().flat_map(|(name, v)| {
                    let value = match v {
                        Value::Str(s) => Some(s),
                        _ => None,
                    };
                    std::iter::once(name).chain(value)
                }));
            !text.any(|t| self.may_hide(t.as_bytes()))
        });
        if !clean {
            self.scrub(line);
        }
    }

    fn may_hide(&self, text: &[u8]) -> bool {
        self.keys.is_match(text) || self.secrets.as_ref().is_some_and(|s| s.is_match(text))
    }

    /// Hides every secret in `line` in place.
    pub fn scrub(&self, line: &mut Vec<u8>) {
        if let Some(secrets) = &self.secrets {
            if secrets.is_match(line.as_slice()) {
                let mut out = Vec::with_capacity(line.len());
                secrets.replace_all_with_bytes(line, &mut out, |_, _, dst| {
                    dst.extend_from_slice(HIDDEN.as_bytes());
                    true
                });
                *line = out;
            }
        }
        if !self.keys.is_match(line.as_slice()) {
            return;
        }
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for m in self.keys.find_iter(line.as_slice()) {
            let is_bearer = m.pattern().as_usize() == KEYS.len();
            let found = if is_bearer {
                value_after_bearer(line, m.end())
            } else {
                value_after_key(line, m.end())
            };
            if let Some(span) = found {
                spans.push(span);
            }
        }
        if spans.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(line.len());
        let mut at = 0;
        for (start, end) in spans {
            if start < at {
                continue;
            }
            out.extend_from_slice(&line[at..start]);
            out.extend_from_slice(HIDDEN.as_bytes());
            at = end;
        }
        out.extend_from_slice(&line[at..]);
        *line = out;
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Ends a bare (unquoted) value.
fn ends_value(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'&' | b'"' | b'\'' | b',' | b';' | b'}' | b']' | b')' | b'>' | b'<' | b'\\'
        )
}

/// The span of the value after a key ending at `end`, if the key ends a word and is
/// followed by `=` or `:` (optionally after a closing quote, with spaces around).
fn value_after_key(line: &[u8], end: usize) -> Option<(usize, usize)> {
    // `token` inside `tokens` or `acl_token_ttl` is not the key; `acl_token` and
    // `X-Consul-Token` are (the key may end a longer name).
    if line.get(end).copied().is_some_and(is_word) {
        return None;
    }
    let mut i = end;
    let mut quoted_key = false;
    if matches!(line.get(i), Some(b'"') | Some(b'\'')) {
        quoted_key = true;
        i += 1;
    }
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    let colon = line.get(i) == Some(&b':');
    match line.get(i) {
        Some(b'=') | Some(b':') => i += 1,
        // A JSON key escaped inside a JSON string: `\"token\":\"...\"`.
        Some(b'\\') if line.get(i + 1) == Some(&b'"') && !quoted_key => {
            i += 2;
            if line.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
            if line.get(i) == Some(&b'\\') && line.get(i + 1) == Some(&b'"') {
                i += 2;
                let s = i;
                while i < line.len() && !(line[i] == b'\\' && line.get(i + 1) == Some(&b'"')) {
                    i += 1;
                }
                return nonempty(line, s, i);
            }
            return None;
        }
        _ => return None,
    }
    // `token: abc` (a header, JSON) has its value after spaces; `token= x` is empty.
    while colon && line.get(i) == Some(&b' ') {
        i += 1;
    }
    if let Some(&q) = line.get(i).filter(|b| **b == b'"' || **b == b'\'') {
        // A quoted value runs to the closing quote, skipping escaped ones.
        i += 1;
        let s = i;
        while i < line.len() && line[i] != q {
            if line[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        return nonempty(line, s, i.min(line.len()));
    }
    let s = i;
    while i < line.len() && !ends_value(line[i]) {
        i += 1;
    }
    nonempty(line, s, i)
}

fn value_after_bearer(line: &[u8], end: usize) -> Option<(usize, usize)> {
    let mut i = end;
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    let s = i;
    while i < line.len() && !ends_value(line[i]) {
        i += 1;
    }
    nonempty(line, s, i)
}

/// A non-empty span that is not already `<hidden>`.
fn nonempty(line: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    if e <= s || &line[s..e] == HIDDEN.as_bytes() {
        None
    } else {
        Some((s, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::record::Level;

    fn scrub(r: &Redactor, s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        r.scrub(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn token_query_parameters_and_pairs() {
        let r = Redactor::new(Vec::<String>::new());
        assert_eq!(
            scrub(&r, "GET /v1/kv/a?token=abc-123&dc=dc1 from=1.2.3.4"),
            "GET /v1/kv/a?token=<hidden>&dc=dc1 from=1.2.3.4"
        );
        assert_eq!(
            scrub(&r, "url=/v1/agent/monitor?TOKEN=s3cr3t"),
            "url=/v1/agent/monitor?TOKEN=<hidden>"
        );
        assert_eq!(
            scrub(&r, "acl_token=x1 tokens=3 token_ttl=30s"),
            "acl_token=<hidden> tokens=3 token_ttl=30s"
        );
        assert_eq!(scrub(&r, "token= and token="), "token= and token=");
        assert_eq!(scrub(&r, "token=<hidden>"), "token=<hidden>");
    }

    #[test]
    fn json_headers_and_structured_data() {
        let r = Redactor::new(Vec::<String>::new());
        assert_eq!(
            scrub(&r, r#"{"Token":"abc","SecretID": "def","Name":"x"}"#),
            r#"{"Token":"<hidden>","SecretID": "<hidden>","Name":"x"}"#
        );
        assert_eq!(
            scrub(&r, r#"{"output":"body {\"token\":\"abc\"} end"}"#),
            r#"{"output":"body {\"token\":\"<hidden>\"} end"}"#
        );
        assert_eq!(
            scrub(&r, "X-Consul-Token: abc-def, Authorization: Bearer xyz"),
            "X-Consul-Token: <hidden>, Authorization: Bearer <hidden>"
        );
        assert_eq!(
            scrub(&r, r#"[tribune@32473 token="a\"b" check="web"]"#),
            r#"[tribune@32473 token="<hidden>" check="web"]"#
        );
    }

    #[test]
    fn configured_secrets_anywhere() {
        let key = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
        let tok = "08ad8862-f702-eb26-0276-d8255b11267e";
        let r = Redactor::new([key, tok, "short", ""]);
        assert_eq!(
            scrub(&r, &format!("output: got {tok} and {key}; short stays")),
            "output: got <hidden> and <hidden>; short stays"
        );
    }

    #[test]
    fn records_are_scrubbed_by_message_field_names_and_values() {
        let r = Redactor::new(["0123456789-secret"]);
        let line = |rec: &Record| {
            let mut out = Vec::new();
            super::super::format::text_body(&mut out, rec);
            r.scrub_record(rec, &mut out);
            String::from_utf8(out).unwrap()
        };
        let clean =
            Record::now(Level::Info, "agent", "Synced service.").with("service", Value::Str("web"));
        assert_eq!(line(&clean), "[INFO]  agent: Synced service: service=web");
        assert_eq!(clean.clean.get(), Some(&true));
        // A name no capture rule hides, but the line's key pattern does.
        let named =
            Record::now(Level::Info, "http", "Request.").with("xtoken", Value::Str("abc123"));
        assert_eq!(line(&named), "[INFO]  http: Request: xtoken=<hidden>");
        let valued = Record::now(Level::Info, "http", "Request.")
            .with("url", Value::Str("/v1/kv/a?token=abc123"));
        assert_eq!(
            line(&valued),
            r#"[INFO]  http: Request: url="/v1/kv/a?token=<hidden>""#
        );
        let configured = Record::now(Level::Info, "agent", "has 0123456789-secret in it");
        assert_eq!(line(&configured), "[INFO]  agent: has <hidden> in it");
    }

    #[test]
    fn innocent_lines_are_untouched() {
        let r = Redactor::new(["0123456789"]);
        for s in [
            "Synced service: service=web",
            "Tokenizer started",
            r#"{"@message":"secrets are hidden","count":3}"#,
            "password",
        ] {
            assert_eq!(scrub(&r, s), s);
        }
    }
}
