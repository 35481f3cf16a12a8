//! Configuration errors: one [`ConfigError`] per problem, all of them collected into
//! [`ConfigErrors`] so an operator fixes every typo in one round.
//!
//! Secrets never reach an error: callers pass [`HIDDEN`] as the value of a secret key, and
//! [`render_value`] is the only way a JSON value becomes error text.

use serde_json::Value;
use std::fmt;

/// What an error or a `Debug` print shows instead of a secret.
pub const HIDDEN: &str = "<hidden>";

/// Longest rendering of an offending value before it is cut (a whole `services` array in an
/// error line helps nobody).
const MAX_VALUE_LEN: usize = 80;

/// One problem in the configuration, naming where it is and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `-hcl` snippet) the problem is in; `None` for command-line flags and for
    /// problems of the merged result that no single file owns.
    pub file: Option<String>,
    /// The key path (`ports.http`, `services[0].check.interval`), or the flag (`-http-port`).
    pub key: String,
    /// The offending value as the user wrote it, or `<hidden>` for a secret.
    pub value: Option<String>,
    /// What is wrong, lowercase, e.g. `expected an integer`.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(
        file: Option<&str>,
        key: impl Into<String>,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.map(str::to_string),
            key: key.into(),
            value,
            message: message.into(),
        }
    }

    /// Whether the message already names the key (Consul's `invalid config key x`, Go's
    /// `flag provided but not defined: -x`), so Display does not repeat it.
    fn message_names_key(&self) -> bool {
        self.message.starts_with("invalid config key ") || self.message.starts_with("flag ")
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if !self.key.is_empty() && !self.message_names_key() {
            if self.key.starts_with('-') {
                write!(f, "flag {}: ", self.key)?;
            } else {
                write!(f, "key \"{}\": ", self.key)?;
            }
        }
        if let Some(value) = &self.value {
            write!(f, "invalid value \"{value}\": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, in source order. Display prints one per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(v: Vec<ConfigError>) -> Self {
        ConfigErrors(v)
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The text an error shows for a value: strings as written, anything else as compact JSON,
/// cut to a readable length. Secrets must not be passed here; use [`HIDDEN`].
pub(crate) fn render_value(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(text)
}

fn truncate(text: String) -> String {
    if text.chars().count() <= MAX_VALUE_LEN {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_VALUE_LEN).collect();
    cut.push_str("...");
    cut
}

/// A JSON type name for "got X" in messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_key_and_value() {
        let e = ConfigError::new(
            Some("config.json"),
            "ports.http",
            Some("abc".into()),
            "expected an integer",
        );
        assert_eq!(
            e.to_string(),
            r#"config.json: key "ports.http": invalid value "abc": expected an integer"#
        );
    }

    #[test]
    fn display_does_not_repeat_a_named_key() {
        let e = ConfigError::new(
            Some("a.hcl"),
            "acl.tokns",
            None,
            "invalid config key acl.tokns",
        );
        assert_eq!(e.to_string(), "a.hcl: invalid config key acl.tokns");
        let e = ConfigError::new(None, "-http-port", Some("x".into()), "expected an integer");
        assert_eq!(
            e.to_string(),
            r#"flag -http-port: invalid value "x": expected an integer"#
        );
    }

    #[test]
    fn errors_print_one_per_line() {
        let errs = ConfigErrors(vec![
            ConfigError::new(Some("a"), "x", None, "one"),
            ConfigError::new(None, "", None, "two"),
        ]);
        assert_eq!(errs.to_string(), "a: key \"x\": one\ntwo");
    }

    #[test]
    fn long_values_are_cut() {
        let v = Value::String("x".repeat(200));
        assert_eq!(render_value(&v).len(), MAX_VALUE_LEN + 3);
    }
}
