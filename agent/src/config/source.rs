//! Finding and parsing config sources: `-config-file` and `-config-dir` paths (each may be a
//! file or a directory, as in Consul), JSON and HCL, and `-hcl` snippets.
//!
//! A directory contributes every `*.json` and `*.hcl` file directly inside it (not
//! recursively; symlinks followed) in lexical order of file name. Other files are skipped
//! with Consul's warning unless `-config-format` says how to read them. HCL becomes the JSON
//! shape of the HCL JSON spec: a block is an object, repeated blocks are a list.

use super::error::ConfigError;
use serde_json::{Map, Value};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// How to parse a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    Json,
    Hcl,
}

impl ConfigFormat {
    /// `json` or `hcl`, as `-config-format` takes it.
    pub fn parse(s: &str) -> Option<ConfigFormat> {
        match s {
            "json" => Some(ConfigFormat::Json),
            "hcl" => Some(ConfigFormat::Hcl),
            _ => None,
        }
    }

    fn from_path(path: &Path) -> Option<ConfigFormat> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Some(ConfigFormat::Json),
            Some("hcl") => Some(ConfigFormat::Hcl),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFormat::Json => "json",
            ConfigFormat::Hcl => "hcl",
        })
    }
}

/// One parsed source.
#[derive(Debug)]
pub(crate) struct RawSource {
    /// The file path as given (joined with its directory), or the snippet's name.
    pub name: String,
    pub value: Map<String, Value>,
}

/// Reads every path in order. Unreadable or unparsable files become errors; the rest are
/// returned so that their own problems are reported too.
pub(crate) fn read_paths(
    paths: &[PathBuf],
    format: Option<ConfigFormat>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<RawSource> {
    let mut out = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                errors.push(ConfigError::new(
                    Some(&name),
                    "",
                    None,
                    format!("cannot read config path: {e}"),
                ));
                continue;
            }
        };
        if !meta.is_dir() {
            out.extend(read_file(path, format, errors, warnings));
            continue;
        }
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(ConfigError::new(
                    Some(&name),
                    "",
                    None,
                    format!("cannot read config directory: {e}"),
                ));
                continue;
            }
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => files.push(entry.path()),
                Err(e) => errors.push(ConfigError::new(
                    Some(&name),
                    "",
                    None,
                    format!("cannot read config directory: {e}"),
                )),
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        for file in files {
            // Follow symlinks; never recurse into subdirectories.
            match fs::metadata(&file) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(_) => out.extend(read_file(&file, format, errors, warnings)),
                Err(e) => errors.push(ConfigError::new(
                    Some(&file.display().to_string()),
                    "",
                    None,
                    format!("cannot read config file: {e}"),
                )),
            }
        }
    }
    out
}

fn read_file(
    path: &Path,
    format: Option<ConfigFormat>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<RawSource> {
    let name = path.display().to_string();
    let Some(format) = format.or_else(|| ConfigFormat::from_path(path)) else {
        warnings.push(format!(
            "skipping file {name}, extension must be .hcl or .json, or config format must be set"
        ));
        return None;
    };
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            errors.push(ConfigError::new(
                Some(&name),
                "",
                None,
                format!("cannot read config file: {e}"),
            ));
            return None;
        }
    };
    match parse(&text, format) {
        Ok(value) => Some(RawSource { name, value }),
        Err(message) => {
            errors.push(ConfigError::new(Some(&name), "", None, message));
            None
        }
    }
}

/// Parses one source. Error messages carry a position but never the offending line: it may
/// hold a token or the gossip key.
pub(crate) fn parse(text: &str, format: ConfigFormat) -> Result<Map<String, Value>, String> {
    let value: Value = match format {
        ConfigFormat::Json => {
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {}", json_error(&e)))?
        }
        ConfigFormat::Hcl => hcl::from_str(text).map_err(|e| match e {
            hcl::Error::Parse(pe) => format!(
                "invalid HCL at line {}, column {}: {}",
                pe.location().line(),
                pe.location().column(),
                pe.message()
            ),
            other => format!("invalid HCL: {other}"),
        })?,
    };
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!(
            "the top level must be an object, got {}",
            super::error::type_name(&other)
        )),
    }
}

/// serde_json's message with its position; syntax errors never quote the input.
fn json_error(e: &serde_json::Error) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hcl_blocks_become_json_shapes() {
        let v = parse(
            r#"
            datacenter = "east"
            retry_join = ["a", "b"]
            ports { http = 8501 }
            service { name = "web" }
            service {
              name = "db"
              check {
                tcp = "localhost:5432"
                interval = "10s"
              }
            }
            acl {
              tokens {
                agent = "x"
              }
            }
            "#,
            ConfigFormat::Hcl,
        )
        .unwrap();
        assert_eq!(
            Value::Object(v),
            json!({
                "datacenter": "east",
                "retry_join": ["a", "b"],
                "ports": {"http": 8501},
                "service": [{"name": "web"},
                            {"name": "db", "check": {"tcp": "localhost:5432", "interval": "10s"}}],
                "acl": {"tokens": {"agent": "x"}}
            })
        );
    }

    #[test]
    fn parse_errors_do_not_quote_the_input() {
        let e = parse("encrypt = \"s3cr3tkey\n", ConfigFormat::Hcl).unwrap_err();
        assert!(e.starts_with("invalid HCL at line"), "{e}");
        assert!(!e.contains("s3cr3tkey"), "{e}");
        let e = parse("{\"encrypt\": \"s3cr3tkey\" x}", ConfigFormat::Json).unwrap_err();
        assert!(!e.contains("s3cr3tkey"), "{e}");
        let e = parse("[1]", ConfigFormat::Json).unwrap_err();
        assert_eq!(e, "the top level must be an object, got a list");
    }
}
