//! The live log for `tribune monitor` and `GET /v1/agent/monitor`: a hub that is one more
//! sink, keeping the agent's last warnings and errors and fanning new lines out to
//! subscribers, each at its own level and format. Without subscribers it sees only
//! warnings and errors, so it costs nothing on the busy path.
//!
//! A subscriber may ask for a more verbose level than the agent's `log_level`; while it is
//! connected the layer captures events at that level for it alone. A subscriber that reads
//! too slowly loses lines (its channel is bounded) and is told how many in-stream, as
//! Consul does; it never slows the agent.

use super::format;
use super::record::{Level, Record};
use super::redact::Redactor;
use super::sink::{Outcome, SharedRedactor, Sink};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Recent warnings and errors replayed to a new subscriber: what went wrong lately is
/// the first thing an operator who attaches wants to see.
const HISTORY: usize = 512;
/// Lines a subscriber may have unread before it starts losing them.
const SUBSCRIBER_BUFFER: usize = 4096;

struct Sub {
    id: u64,
    level: u8,
    json: bool,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    dropped: u64,
}

#[derive(Default)]
struct Inner {
    subs: Vec<Sub>,
    history: VecDeque<Arc<Record>>,
    next_id: u64,
}

/// The subscribers and the recent history.
pub struct Hub {
    inner: Mutex<Inner>,
    /// The most verbose subscriber's level (0: none), read by the layer on every event.
    level: Arc<AtomicU8>,
    redactor: SharedRedactor,
}

impl Hub {
    pub fn new(level: Arc<AtomicU8>, redactor: SharedRedactor) -> Hub {
        Hub {
            inner: Mutex::new(Inner::default()),
            level,
            redactor,
        }
    }

    /// Adds a subscriber: it first receives the recent lines at its level, then the live
    /// ones. Dropping the [`Subscription`] removes it.
    pub fn subscribe(self: &Arc<Self>, level: Level, json: bool) -> Subscription {
        let (tx, rx) = tokio::sync::mpsc::channel(SUBSCRIBER_BUFFER);
        let redactor = self.redactor.current();
        let id;
        let changed;
        {
            let mut inner = self.inner.lock();
            id = inner.next_id;
            inner.next_id += 1;
            for rec in &inner.history {
                if rec.passes(level as u8) {
                    let _ = tx.try_send(render(rec, json, &redactor));
                }
            }
            inner.subs.push(Sub {
                id,
                level: level as u8,
                json,
                tx,
                dropped: 0,
            });
            changed = self.update_level(&inner);
        }
        if changed {
            tracing::callsite::rebuild_interest_cache();
        }
        Subscription {
            rx,
            _guard: Guard {
                hub: self.clone(),
                id,
            },
        }
    }

    fn remove(&self, id: u64) {
        let changed = {
            let mut inner = self.inner.lock();
            inner.subs.retain(|s| s.id != id);
            self.update_level(&inner)
        };
        if changed {
            tracing::callsite::rebuild_interest_cache();
        }
    }

    /// Stores the most verbose level; true if it changed.
    fn update_level(&self, inner: &Inner) -> bool {
        let max = inner.subs.iter().map(|s| s.level).max().unwrap_or(0);
        self.level.swap(max, Ordering::AcqRel) != max
    }

    #[cfg(test)]
    fn subscribers(&self) -> usize {
        self.inner.lock().subs.len()
    }

    fn dispatch(&self, rec: &Arc<Record>, redactor: &Redactor) {
        let mut closed = false;
        {
            let mut inner = self.inner.lock();
            if rec.for_sinks && rec.level <= Level::Warn {
                if inner.history.len() >= HISTORY {
                    inner.history.pop_front();
                }
                inner.history.push_back(rec.clone());
            }
            let mut text: Option<Bytes> = None;
            let mut json: Option<Bytes> = None;
            inner.subs.retain_mut(|sub| {
                if !rec.passes(sub.level) {
                    return true;
                }
                if sub.dropped > 0 {
                    let notice = Record::now(
                        Level::Warn,
                        "agent",
                        &format!(
                            "Monitor dropped {} log lines: the client reads too slowly.",
                            sub.dropped
                        ),
                    );
                    match sub.tx.try_send(render(&notice, sub.json, redactor)) {
                        Ok(()) => sub.dropped = 0,
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                            sub.dropped += 1;
                            return true;
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                            closed = true;
                            return false;
                        }
                    }
                }
                let slot = if sub.json { &mut json } else { &mut text };
                let line = slot
                    .get_or_insert_with(|| render(rec, sub.json, redactor))
                    .clone();
                match sub.tx.try_send(line) {
                    Ok(()) => true,
                    Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                        sub.dropped += 1;
                        true
                    }
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                        closed = true;
                        false
                    }
                }
            });
            if closed {
                closed = self.update_level(&inner);
            }
        }
        if closed {
            tracing::callsite::rebuild_interest_cache();
        }
    }
}

fn render(rec: &Record, json: bool, redactor: &Redactor) -> Bytes {
    let mut line = Vec::with_capacity(256);
    if json {
        format::json_line(&mut line, rec);
    } else {
        format::text_line(&mut line, rec);
    }
    redactor.scrub_record(rec, &mut line);
    Bytes::from(line)
}

/// A live log stream; each item is one line with its `\n`.
pub struct Subscription {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    _guard: Guard,
}

impl Subscription {
    /// The next line, waiting for it.
    pub async fn next(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// The next line if one is ready.
    pub fn try_next(&mut self) -> Option<Bytes> {
        self.rx.try_recv().ok()
    }
}

struct Guard {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

/// The hub as a sink: the layer hands it every record a sink or a subscriber wants.
pub struct MonitorSink(pub Arc<Hub>);

impl Sink for MonitorSink {
    fn name(&self) -> &'static str {
        "monitor"
    }

    fn write(&mut self, rec: &Arc<Record>, redactor: &Redactor) -> Outcome {
        self.0.dispatch(rec, redactor);
        Outcome::Written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Arc<Hub> {
        Arc::new(Hub::new(
            Arc::new(AtomicU8::new(0)),
            SharedRedactor::new(Redactor::new(["supersecret-token"])),
        ))
    }

    fn rec(level: Level, msg: &str, for_sinks: bool) -> Arc<Record> {
        let mut r = Record::now(level, "agent", msg);
        r.for_sinks = for_sinks;
        Arc::new(r)
    }

    #[test]
    fn subscribers_get_history_then_live_lines_at_their_level() {
        let h = hub();
        let red = Redactor::new(["supersecret-token"]);
        h.dispatch(&rec(Level::Warn, "old warning", true), &red);
        h.dispatch(&rec(Level::Info, "old info is not kept", true), &red);
        h.dispatch(
            &rec(Level::Debug, "old debug for a past monitor", false),
            &red,
        );
        let mut sub = h.subscribe(Level::Debug, false);
        assert_eq!(h.level.load(Ordering::Relaxed), Level::Debug as u8);
        let mut json = h.subscribe(Level::Warn, true);
        h.dispatch(
            &rec(Level::Debug, "new debug with supersecret-token", false),
            &red,
        );
        h.dispatch(&rec(Level::Warn, "new warn", true), &red);
        let lines: Vec<String> = std::iter::from_fn(|| sub.try_next())
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("[WARN]  agent: old warning"), "{lines:?}");
        assert!(
            lines[1].contains("[DEBUG] agent: new debug with <hidden>"),
            "{lines:?}"
        );
        assert!(lines[2].contains("[WARN]  agent: new warn"), "{lines:?}");
        let old = String::from_utf8(json.try_next().unwrap().to_vec()).unwrap();
        assert!(old.contains(r#""@message":"old warning""#), "{old}");
        let j = String::from_utf8(json.try_next().unwrap().to_vec()).unwrap();
        assert!(
            j.starts_with(r#"{"@level":"warn","@message":"new warn""#),
            "{j}"
        );
        assert!(json.try_next().is_none());
        drop(sub);
        assert_eq!(h.level.load(Ordering::Relaxed), Level::Warn as u8);
        drop(json);
        assert_eq!(h.level.load(Ordering::Relaxed), 0);
        assert_eq!(h.subscribers(), 0);
    }

    #[test]
    fn a_slow_subscriber_loses_lines_and_is_told() {
        let h = hub();
        let red = Redactor::new(Vec::<String>::new());
        let mut sub = h.subscribe(Level::Info, false);
        for n in 0..SUBSCRIBER_BUFFER + 10 {
            h.dispatch(&rec(Level::Info, &format!("line {n}"), true), &red);
        }
        let mut got = 0;
        while sub.try_next().is_some() {
            got += 1;
        }
        assert_eq!(got, SUBSCRIBER_BUFFER);
        h.dispatch(&rec(Level::Info, "after", true), &red);
        let notice = String::from_utf8(sub.try_next().unwrap().to_vec()).unwrap();
        assert!(notice.contains("Monitor dropped 10 log lines"), "{notice}");
        let after = String::from_utf8(sub.try_next().unwrap().to_vec()).unwrap();
        assert!(after.contains("after"), "{after}");
    }
}
