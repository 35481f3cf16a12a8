//! Command-line flags the way Go's `flag` package reads them, because Consul's users type
//! them that way: `-flag=value`, `-flag value`, `--flag=value`, a bare `-flag` for booleans
//! (`-flag=false` to clear), `--` ends the flags, and parsing stops at the first argument that
//! is not a flag. Error texts are Go's, word for word.
//!
//! A [`FlagSet`] is a declaration (name, kind, usage); [`FlagSet::parse`] returns the values as
//! a [`Parsed`] with typed getters. Values are validated while parsing, so the getters cannot
//! fail. This module knows nothing about HTTP or any command.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// What a flag holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `-x`, `-x=true|false`; never consumes the next argument.
    Bool,
    /// Any text; the last occurrence wins.
    Str,
    /// An unsigned 64-bit integer (Go's `ParseUint(s, 0, 64)`: `0x`, `0o`, `0b` prefixes).
    Uint,
    /// A signed integer (Go's `ParseInt(s, 0, 64)`).
    Int,
    /// Repeatable text, every occurrence kept in order (Consul's `AppendSliceValue`).
    List,
    /// Repeatable `key=value` (Consul's `FlagMapValue`).
    Map,
}

/// One declared flag.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    /// The word shown in help as `-name=<placeholder>`.
    pub placeholder: &'static str,
    pub usage: &'static str,
    /// Shown under "HTTP API Options" rather than "Command Options".
    pub http: bool,
}

/// The flags one command accepts, in declaration order (help lists them sorted, like Go).
#[derive(Clone, Debug, Default)]
pub(crate) struct FlagSet {
    specs: Vec<Spec>,
}

/// Why the command line was rejected. Display is Go's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FlagError {
    /// `-h`, `-help` or `--help`: print the help, exit 0.
    Help,
    Undefined(String),
    NeedsArgument(String),
    BadSyntax(String),
    InvalidBool {
        name: String,
        value: String,
    },
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Help => f.write_str("flag: help requested"),
            FlagError::Undefined(n) => write!(f, "flag provided but not defined: -{n}"),
            FlagError::NeedsArgument(n) => write!(f, "flag needs an argument: -{n}"),
            FlagError::BadSyntax(s) => write!(f, "bad flag syntax: {s}"),
            FlagError::InvalidBool { name, value } => {
                write!(
                    f,
                    "invalid boolean value {value:?} for -{name}: parse error"
                )
            }
            FlagError::InvalidValue {
                name,
                value,
                reason,
            } => {
                write!(f, "invalid value {value:?} for flag -{name}: {reason}")
            }
        }
    }
}

impl std::error::Error for FlagError {}

impl FlagSet {
    pub fn new() -> Self {
        FlagSet::default()
    }

    fn add(mut self, spec: Spec) -> Self {
        debug_assert!(
            self.specs.iter().all(|s| s.name != spec.name),
            "flag -{} declared twice",
            spec.name
        );
        self.specs.push(spec);
        self
    }

    fn spec(
        name: &'static str,
        kind: Kind,
        placeholder: &'static str,
        usage: &'static str,
    ) -> Spec {
        Spec {
            name,
            kind,
            placeholder,
            usage,
            http: false,
        }
    }

    pub fn bool(self, name: &'static str, usage: &'static str) -> Self {
        self.add(Self::spec(name, Kind::Bool, "", usage))
    }

    pub fn string(
        self,
        name: &'static str,
        placeholder: &'static str,
        usage: &'static str,
    ) -> Self {
        self.add(Self::spec(name, Kind::Str, placeholder, usage))
    }

    pub fn uint(self, name: &'static str, usage: &'static str) -> Self {
        self.add(Self::spec(name, Kind::Uint, "uint", usage))
    }

    pub fn int(self, name: &'static str, usage: &'static str) -> Self {
        self.add(Self::spec(name, Kind::Int, "int", usage))
    }

    pub fn list(self, name: &'static str, placeholder: &'static str, usage: &'static str) -> Self {
        self.add(Self::spec(name, Kind::List, placeholder, usage))
    }

    pub fn map(self, name: &'static str, usage: &'static str) -> Self {
        self.add(Self::spec(name, Kind::Map, "key=value", usage))
    }

    /// Adds a flag listed under "HTTP API Options" in help.
    pub fn http(
        self,
        name: &'static str,
        kind: Kind,
        placeholder: &'static str,
        usage: &'static str,
    ) -> Self {
        self.add(Spec {
            name,
            kind,
            placeholder,
            usage,
            http: true,
        })
    }

    fn find(&self, name: &str) -> Option<&Spec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// Parses `args` as Go's `FlagSet.Parse` does: flags first, then everything from the
    /// first non-flag argument (or after `--`) is positional.
    pub fn parse<S: AsRef<str>>(&self, args: &[S]) -> Result<Parsed, FlagError> {
        let mut values: HashMap<&'static str, Vec<String>> = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let s = args[i].as_ref();
            if s.len() < 2 || !s.starts_with('-') {
                break;
            }
            let mut name = &s[1..];
            if let Some(rest) = name.strip_prefix('-') {
                if rest.is_empty() {
                    // "--" ends the flags and is consumed.
                    i += 1;
                    break;
                }
                name = rest;
            }
            if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
                return Err(FlagError::BadSyntax(s.to_string()));
            }
            i += 1;
            // The `=` cannot be first (checked above), so `-=x` never reaches here.
            let (name, inline) = match name.find('=') {
                Some(eq) => (&name[..eq], Some(&name[eq + 1..])),
                None => (name, None),
            };
            let Some(spec) = self.find(name) else {
                if name == "help" || name == "h" {
                    return Err(FlagError::Help);
                }
                return Err(FlagError::Undefined(name.to_string()));
            };
            let value = if spec.kind == Kind::Bool {
                match inline {
                    Some(v) => match parse_go_bool(v) {
                        Some(b) => b.to_string(),
                        None => {
                            return Err(FlagError::InvalidBool {
                                name: name.to_string(),
                                value: v.to_string(),
                            })
                        }
                    },
                    None => "true".to_string(),
                }
            } else {
                // A non-boolean flag takes the next argument whatever it looks like.
                let v = match inline {
                    Some(v) => v.to_string(),
                    None => match args.get(i) {
                        Some(next) => {
                            i += 1;
                            next.as_ref().to_string()
                        }
                        None => return Err(FlagError::NeedsArgument(name.to_string())),
                    },
                };
                validate(spec, &v)?;
                v
            };
            values.entry(spec.name).or_default().push(value);
        }
        let args = args[i..].iter().map(|a| a.as_ref().to_string()).collect();
        Ok(Parsed { values, args })
    }

    /// Help text: `text` (trimmed) then "HTTP API Options" and "Command Options" sections with
    /// every flag sorted by name, in Consul's layout (`  -name=<value>` then the usage wrapped
    /// at 72 columns and indented by five).
    pub fn usage(&self, text: &str) -> String {
        let mut out = String::new();
        out.push_str(text.trim());
        out.push_str("\n\n");
        for (title, http) in [("HTTP API Options", true), ("Command Options", false)] {
            let mut specs: Vec<&Spec> = self.specs.iter().filter(|s| s.http == http).collect();
            if specs.is_empty() {
                continue;
            }
            specs.sort_by_key(|s| s.name);
            out.push_str(title);
            out.push_str("\n\n");
            for s in specs {
                if s.kind == Kind::Bool {
                    out.push_str(&format!("  -{}\n", s.name));
                } else {
                    out.push_str(&format!("  -{}=<{}>\n", s.name, s.placeholder));
                }
                for line in wrap(s.usage, 72 - 5) {
                    out.push_str("     ");
                    out.push_str(&line);
                    out.push('\n');
                }
                out.push('\n');
            }
        }
        out.trim_end_matches('\n').to_string()
    }
}

/// Checks a non-boolean value against its kind, with Go's error texts.
fn validate(spec: &Spec, v: &str) -> Result<(), FlagError> {
    let bad = |reason: &str| FlagError::InvalidValue {
        name: spec.name.to_string(),
        value: v.to_string(),
        reason: reason.to_string(),
    };
    match spec.kind {
        Kind::Uint => parse_go_uint(v).map(|_| ()).map_err(&bad),
        Kind::Int => parse_go_int(v).map(|_| ()).map_err(&bad),
        Kind::Map if !v.contains('=') => Err(bad(&format!("Missing \"=\" value in argument: {v}"))),
        _ => Ok(()),
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: decimal, `0x`/`0o`/`0b` prefixes, a leading `0` for
/// octal, `_` between digits when a prefix is given.
fn parse_go_uint(s: &str) -> Result<u64, &'static str> {
    const PARSE: &str = "parse error";
    let lower = s.to_ascii_lowercase();
    let (digits, radix, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (d.to_string(), 16, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d.to_string(), 8, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d.to_string(), 2, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (lower[1..].to_string(), 8, true)
    } else {
        (lower, 10, false)
    };
    let digits = if prefixed {
        if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
            return Err(PARSE);
        }
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(PARSE);
    }
    u64::from_str_radix(&digits, radix).map_err(|_| "value out of range")
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn parse_go_int(s: &str) -> Result<i64, &'static str> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let magnitude = parse_go_uint(body)?;
    if neg {
        if magnitude > i64::MAX as u64 + 1 {
            return Err("value out of range");
        }
        Ok((magnitude as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(magnitude).map_err(|_| "value out of range")
    }
}

/// Greedy word wrap at `width` columns (kr/text's behaviour for ordinary prose).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// The result of a parse: flag values (validated) and the positional arguments.
#[derive(Clone, Debug, Default)]
pub(crate) struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    /// Everything after the flags.
    pub args: Vec<String>,
}

impl Parsed {
    fn last(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// A boolean flag's value; `false` when absent.
    pub fn bool(&self, name: &str) -> bool {
        self.last(name) == Some("true")
    }

    /// A string flag's last value, `None` when absent.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.last(name)
    }

    /// A string flag's last value or `default`.
    pub fn str_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.last(name).unwrap_or(default)
    }

    /// An unsigned flag's value; 0 when absent.
    pub fn uint(&self, name: &str) -> u64 {
        // Validated by `parse`, so a failure here cannot happen; 0 keeps it total.
        self.last(name)
            .and_then(|v| parse_go_uint(v).ok())
            .unwrap_or(0)
    }

    /// A signed flag's value; 0 when absent.
    pub fn int(&self, name: &str) -> i64 {
        self.last(name)
            .and_then(|v| parse_go_int(v).ok())
            .unwrap_or(0)
    }

    /// Every value of a repeatable flag, in order.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// A repeatable `key=value` flag as a map (a later key wins).
    pub fn map(&self, name: &str) -> BTreeMap<String, String> {
        self.values
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> FlagSet {
        FlagSet::new()
            .bool("detailed", "Detailed output.")
            .string("token", "value", "ACL token.")
            .uint("flags", "Flags.")
            .int("port", "Port.")
            .list("tag", "value", "Tag, repeatable.")
            .map("meta", "Meta, repeatable.")
    }

    #[test]
    fn all_value_forms() {
        let p = set()
            .parse(&[
                "-token=a",
                "--flags",
                "7",
                "-port=-3",
                "-detailed",
                "rest",
                "-token=ignored",
            ])
            .unwrap();
        assert_eq!(p.str("token"), Some("a"));
        assert_eq!(p.uint("flags"), 7);
        assert_eq!(p.int("port"), -3);
        assert!(p.bool("detailed"));
        assert_eq!(p.args, vec!["rest", "-token=ignored"]);
    }

    #[test]
    fn double_dash_token_as_in_the_seed() {
        let p = set()
            .parse(&["--token=08ad8862-f702-eb26-0276-d8255b11267e"])
            .unwrap();
        assert_eq!(p.str("token"), Some("08ad8862-f702-eb26-0276-d8255b11267e"));
        assert!(p.args.is_empty());
    }

    #[test]
    fn space_separated_value_takes_the_next_argument_even_a_dash_one() {
        let p = set().parse(&["-token", "-weird", "x"]).unwrap();
        assert_eq!(p.str("token"), Some("-weird"));
        assert_eq!(p.args, vec!["x"]);
    }

    #[test]
    fn booleans_never_consume_the_next_argument() {
        let p = set().parse(&["-detailed", "false"]).unwrap();
        assert!(p.bool("detailed"));
        assert_eq!(p.args, vec!["false"]);
        let p = set().parse(&["-detailed=false"]).unwrap();
        assert!(!p.bool("detailed"));
        let p = set().parse(&["--detailed=T"]).unwrap();
        assert!(p.bool("detailed"));
        assert_eq!(
            set().parse(&["-detailed=yes"]).unwrap_err().to_string(),
            "invalid boolean value \"yes\" for -detailed: parse error"
        );
    }

    #[test]
    fn terminators() {
        let p = set().parse(&["-detailed", "--", "-token=x"]).unwrap();
        assert_eq!(p.args, vec!["-token=x"]);
        assert_eq!(p.str("token"), None);
        // A lone "-" is positional (stdin), as in Go.
        let p = set().parse(&["-", "-detailed"]).unwrap();
        assert_eq!(p.args, vec!["-", "-detailed"]);
        assert!(!p.bool("detailed"));
    }

    #[test]
    fn repeatable_flags() {
        let p = set()
            .parse(&["-tag=a", "-tag", "b", "-meta=k=v=w", "-meta", "x="])
            .unwrap();
        assert_eq!(p.list("tag"), vec!["a", "b"]);
        let m = p.map("meta");
        assert_eq!(m.get("k").map(String::as_str), Some("v=w"));
        assert_eq!(m.get("x").map(String::as_str), Some(""));
    }

    #[test]
    fn errors_use_go_wording() {
        let e = |args: &[&str]| set().parse(args).unwrap_err().to_string();
        assert_eq!(e(&["-nope"]), "flag provided but not defined: -nope");
        assert_eq!(e(&["--nope=1"]), "flag provided but not defined: -nope");
        assert_eq!(e(&["-token"]), "flag needs an argument: -token");
        assert_eq!(e(&["---token=x"]), "bad flag syntax: ---token=x");
        assert_eq!(e(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(
            e(&["-flags=abc"]),
            "invalid value \"abc\" for flag -flags: parse error"
        );
        assert_eq!(
            e(&["-flags=-1"]),
            "invalid value \"-1\" for flag -flags: parse error"
        );
        assert_eq!(
            e(&["-flags=99999999999999999999"]),
            "invalid value \"99999999999999999999\" for flag -flags: value out of range"
        );
        assert_eq!(
            e(&["-meta=novalue"]),
            "invalid value \"novalue\" for flag -meta: Missing \"=\" value in argument: novalue"
        );
    }

    #[test]
    fn help_flags() {
        for h in ["-h", "-help", "--help", "--h"] {
            assert_eq!(set().parse(&[h]).unwrap_err(), FlagError::Help, "{h}");
        }
    }

    #[test]
    fn go_integer_syntax() {
        assert_eq!(parse_go_uint("0x1F"), Ok(31));
        assert_eq!(parse_go_uint("0o17"), Ok(15));
        assert_eq!(parse_go_uint("017"), Ok(15));
        assert_eq!(parse_go_uint("0b101"), Ok(5));
        assert_eq!(parse_go_uint("0"), Ok(0));
        assert_eq!(parse_go_uint("1_000"), Err("parse error"));
        assert_eq!(parse_go_uint("0x1_000"), Ok(4096));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_go_int("9223372036854775808"),
            Err("value out of range")
        );
    }

    #[test]
    fn usage_layout() {
        let fs = FlagSet::new()
            .http(
                "token",
                Kind::Str,
                "value",
                "ACL token to use in the request.",
            )
            .bool("detailed", "Provides detailed information about nodes.");
        assert_eq!(
            fs.usage("\nUsage: tribune members [options]\n"),
            "Usage: tribune members [options]\n\nHTTP API Options\n\n  -token=<value>\n     \
             ACL token to use in the request.\n\nCommand Options\n\n  -detailed\n     \
             Provides detailed information about nodes."
        );
    }
}
