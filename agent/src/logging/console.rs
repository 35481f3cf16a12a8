//! The console sink: text or JSON lines on stderr, where the startup banner goes too.
//! Written from its own thread, so a terminal or a journald that stops reading costs the
//! agent nothing but the lines it misses.

use super::format;
use super::record::Record;
use super::redact::Redactor;
use super::sink::{Outcome, Sink};
use std::io::Write;
use std::sync::Arc;

const FLUSH_AT: usize = 32 * 1024;

pub struct ConsoleSink {
    json: bool,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl ConsoleSink {
    pub fn new(json: bool) -> ConsoleSink {
        ConsoleSink {
            json,
            out: Vec::with_capacity(FLUSH_AT * 2),
            line: Vec::with_capacity(512),
        }
    }
}

impl Sink for ConsoleSink {
    fn name(&self) -> &'static str {
        "console"
    }

    fn write(&mut self, rec: &Arc<Record>, redactor: &Redactor) -> Outcome {
        self.line.clear();
        if self.json {
            format::json_line(&mut self.line, rec);
        } else {
            format::text_line(&mut self.line, rec);
        }
        redactor.scrub_record(rec, &mut self.line);
        self.out.extend_from_slice(&self.line);
        if self.out.len() >= FLUSH_AT {
            self.flush();
        }
        Outcome::Written
    }

    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        // A closed or broken stderr loses the lines; there is nowhere to report it.
        let _ = std::io::stderr().lock().write_all(&self.out);
        self.out.clear();
    }
}
