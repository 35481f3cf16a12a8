//! Where a command writes and what it reads: stdout, stderr, stdin and the environment,
//! all injected so tests run commands in-process with buffers and a made-up environment.
//!
//! Write errors on stdout/stderr are ignored, as Go's `cli.BasicUi` does: a closed pipe
//! (`tribune members | head -1`) must not turn into a second error.

use std::collections::BTreeMap;
use std::io::{Read, Write};

/// A snapshot of the environment variables a command may read.
#[derive(Clone, Debug, Default)]
pub(crate) struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The variable's value; empty counts as unset, as in Go's client.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The terminal of one command run.
pub(crate) struct Ui<'a> {
    pub out: &'a mut (dyn Write + 'a),
    pub err: &'a mut (dyn Write + 'a),
    pub stdin: &'a mut (dyn Read + 'a),
    pub env: &'a Env,
}

impl Ui<'_> {
    /// One line on stdout (Go's `Ui.Output`/`Ui.Info`).
    pub fn output(&mut self, line: impl AsRef<str>) {
        self.output_bytes(line.as_ref().as_bytes());
    }

    /// Raw bytes then a newline on stdout (a KV value need not be UTF-8).
    pub fn output_bytes(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes);
        let _ = self.out.write_all(b"\n");
        let _ = self.out.flush();
    }

    /// Bytes on stdout as they are, flushed (streams).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes);
        let _ = self.out.flush();
    }

    /// One line on stderr (Go's `Ui.Error`/`Ui.Warn`).
    pub fn error(&mut self, line: impl AsRef<str>) {
        let _ = self.err.write_all(line.as_ref().as_bytes());
        let _ = self.err.write_all(b"\n");
        let _ = self.err.flush();
    }
}
