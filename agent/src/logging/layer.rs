//! The `tracing` layer: decides which events anyone wants, captures them once, and hands
//! the shared record to every sink's queue. Nothing here waits or does I/O.
//!
//! Two thresholds: the sinks' (`log_level`) and the most verbose monitor's. A callsite
//! neither wants is disabled at the macro (its interest is cached as "never", and the
//! global max level hint lets `debug!` cost a compare when nobody listens); both changes
//! rebuild tracing's interest cache.

use super::record::{classify, library_threshold, now, Capture, Level, Record};
use super::sink::{Queue, SKIP_QUEUE};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// State shared by the layer, the handle and the HTTP monitor.
pub struct Shared {
    /// The sinks' threshold (a [`Level`] as u8).
    pub sink_level: AtomicU8,
    /// The most verbose monitor's threshold (0: no monitor).
    pub monitor_level: Arc<AtomicU8>,
    /// The output sinks (console, file, syslog): they take what passes `sink_level`.
    pub sinks: Vec<Arc<Queue>>,
    /// The monitor hub's queue: what a subscriber wants, and warnings and errors.
    pub monitor: Arc<Queue>,
}

impl Shared {
    fn threshold(&self, own: bool) -> (u8, u8) {
        let s = self.sink_level.load(Ordering::Relaxed);
        let m = self.monitor_level.load(Ordering::Relaxed);
        if own {
            (s, m)
        } else {
            (library_threshold(s), library_threshold(m))
        }
    }

    fn wants(&self, meta: &Metadata<'_>) -> bool {
        let level = Level::from_tracing(meta.level()) as u8;
        let (_, own) = classify(meta.target());
        let (s, m) = self.threshold(own && meta.target() != "log");
        level <= s.max(m)
    }
}

/// Span fields, kept so the events inside a span carry them (`check_id` of a check's task).
struct SpanFields(Capture);

/// The layer installed on the registry.
pub struct TribuneLayer {
    pub shared: Arc<Shared>,
}

impl<S> Layer<S> for TribuneLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.shared.wants(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.shared.wants(meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        let (s, m) = self.shared.threshold(true);
        Some(match Level::from_u8(s.max(m)) {
            None => LevelFilter::OFF,
            Some(Level::Error) => LevelFilter::ERROR,
            Some(Level::Warn) => LevelFilter::WARN,
            Some(Level::Info) => LevelFilter::INFO,
            Some(Level::Debug) => LevelFilter::DEBUG,
            Some(Level::Trace) => LevelFilter::TRACE,
        })
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut cap = Capture::new();
        attrs.record(&mut cap);
        if cap.is_empty() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(cap));
        }
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let mut cap = Capture::new();
        values.record(&mut cap);
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<SpanFields>() {
                Some(f) => f.0.merge(&cap),
                None => ext.insert(SpanFields(cap)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = Level::from_tracing(meta.level());
        let target = meta.target();
        // Events bridged from the `log` crate are libraries' (their target is a field).
        let from_log = target == "log";
        let (mut module, own) = classify(target);
        let own = own && !from_log;
        let (s, m) = self.shared.threshold(own);
        let for_sinks = level as u8 <= s;
        if !for_sinks && level as u8 > m {
            return;
        }
        super::sink::free_one_returned();
        let mut cap = Capture::new();
        event.record(&mut cap);
        let origin = if own {
            None
        } else if from_log {
            let t = cap.log_target.take().unwrap_or_else(|| "log".to_string());
            module = classify(&t).0;
            Some(std::borrow::Cow::Owned(t))
        } else {
            Some(std::borrow::Cow::Borrowed(target))
        };
        if let Some(scope) = ctx.event_scope(event) {
            // The closest span first: its fields win over an outer span's of the same name.
            for span in scope {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    cap.merge(&f.0);
                }
            }
        }
        let (secs, nanos) = now();
        let rec = Arc::new(Record::from_capture(
            cap, secs, nanos, level, module, origin, for_sinks,
        ));
        let skip = SKIP_QUEUE.with(|s| s.get());
        if for_sinks {
            for q in &self.shared.sinks {
                if q.index != skip {
                    q.push(&rec);
                }
            }
        }
        // The monitor hub takes what a subscriber wants, and keeps the recent warnings
        // and errors for the next one.
        if (level as u8 <= m || (for_sinks && level <= Level::Warn))
            && self.shared.monitor.index != skip
        {
            self.shared.monitor.push(&rec);
        }
    }
}
