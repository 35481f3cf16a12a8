//! Line formats: hclog-style text, JSON with Consul's `@` keys, and the timestamps they use.
//! Every function appends to a byte buffer; none allocates per field.
//!
//! A line is always one line: newlines and other control characters inside messages and
//! values are escaped, so a reader splitting on `\n` never splits or merges events.

use super::record::{Record, Value};
use std::io::Write as _;

/// `2026-11-25T12:00:00.123Z` (text lines; hclog's millisecond form, in UTC).
pub fn rfc3339_millis(out: &mut Vec<u8>, secs: i64, nanos: u32) {
    date_time(out, secs);
    out.push(b'.');
    digits(out, nanos / 1_000_000, 3);
    out.push(b'Z');
}

/// `2026-11-25T12:00:00.123456Z` (JSON and RFC 5424; microseconds, UTC).
pub fn rfc3339_micros(out: &mut Vec<u8>, secs: i64, nanos: u32) {
    date_time(out, secs);
    out.push(b'.');
    digits(out, nanos / 1_000, 6);
    out.push(b'Z');
}

/// `n` as exactly `width` decimal digits, zero-padded.
fn digits(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (start..start + width).rev() {
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `Nov 25 12:00:00` (RFC 3164; the day padded with a space; UTC).
pub fn rfc3164(out: &mut Vec<u8>, secs: i64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[(m - 1) as usize],
        d,
        t / 3600,
        t / 60 % 60,
        t % 60
    );
}

thread_local! {
    /// The last second formatted on this thread: sinks format many lines per second.
    static LAST_SECOND: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
}

fn date_time(out: &mut Vec<u8>, secs: i64) {
    let (cached, text) = LAST_SECOND.with(|c| c.get());
    if cached == secs {
        out.extend_from_slice(&text);
        return;
    }
    let start = out.len();
    date_time_uncached(out, secs);
    if let Ok(text) = <[u8; 19]>::try_from(&out[start..]) {
        LAST_SECOND.with(|c| c.set((secs, text)));
    }
}

fn date_time_uncached(out: &mut Vec<u8>, secs: i64) {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    );
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Appends `s` with control characters escaped (`\n`, `\t`, `\u{7f}` ...).
pub fn escape_controls(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for c in s.chars() {
        match c {
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

/// The message as text lines show it: a trailing period dropped when fields follow
/// (`Synced service: service=web`, hclog's shape).
fn text_message(rec: &Record) -> &str {
    let message = rec.message();
    if rec.has_fields() || rec.origin.is_some() {
        message.strip_suffix('.').unwrap_or(message)
    } else {
        message
    }
}

/// `[INFO]  agent: Synced service: service=web` — the text line without its timestamp
/// (what the local syslog socket receives).
pub fn text_body(out: &mut Vec<u8>, rec: &Record) {
    out.extend_from_slice(rec.level.tag().as_bytes());
    out.push(b' ');
    out.extend_from_slice(rec.module.as_bytes());
    out.extend_from_slice(b": ");
    escape_controls(out, text_message(rec));
    let mut first = true;
    for (name, value) in rec.fields() {
        out.extend_from_slice(if first { b": " } else { b" " });
        first = false;
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        text_value(out, value);
    }
    if let Some(origin) = &rec.origin {
        out.extend_from_slice(if first { b": " } else { b" " });
        out.extend_from_slice(b"origin=");
        text_value(out, Value::Str(origin));
    }
}

/// `2026-11-25T12:00:00.123Z [INFO]  agent: Synced service: service=web\n`
pub fn text_line(out: &mut Vec<u8>, rec: &Record) {
    rfc3339_millis(out, rec.secs, rec.nanos);
    out.push(b' ');
    text_body(out, rec);
    out.push(b'\n');
}

fn text_value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Str(s) => {
            let plain = !s.is_empty()
                && !s
                    .bytes()
                    .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == b'\\' || b == 0x7f);
            if plain {
                out.extend_from_slice(s.as_bytes());
            } else {
                out.push(b'"');
                for c in s.chars() {
                    match c {
                        '"' => out.extend_from_slice(b"\\\""),
                        '\\' => out.extend_from_slice(b"\\\\"),
                        c => {
                            let mut b = [0u8; 4];
                            escape_controls(out, c.encode_utf8(&mut b));
                        }
                    }
                }
                out.push(b'"');
            }
        }
        Value::I64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::U64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::F64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
    }
}

/// One JSON object per line with Consul's keys first:
/// `{"@level":"info","@message":"Synced service.","@module":"agent","@timestamp":"...","service":"web"}`
pub fn json_line(out: &mut Vec<u8>, rec: &Record) {
    out.extend_from_slice(b"{\"@level\":\"");
    out.extend_from_slice(rec.level.as_str().as_bytes());
    out.extend_from_slice(b"\",\"@message\":");
    json_str(out, rec.message());
    out.extend_from_slice(b",\"@module\":\"");
    out.extend_from_slice(rec.module.as_bytes());
    out.extend_from_slice(b"\"");
    if let Some(origin) = &rec.origin {
        out.extend_from_slice(b",\"@origin\":");
        json_str(out, origin);
    }
    out.extend_from_slice(b",\"@timestamp\":\"");
    rfc3339_micros(out, rec.secs, rec.nanos);
    out.push(b'"');
    for (name, value) in rec.fields() {
        out.push(b',');
        json_str(out, name);
        out.push(b':');
        match value {
            Value::Str(s) => json_str(out, s),
            Value::I64(n) => {
                let _ = write!(out, "{n}");
            }
            Value::U64(n) => {
                let _ = write!(out, "{n}");
            }
            Value::F64(n) if n.is_finite() => {
                let _ = write!(out, "{n}");
            }
            Value::F64(n) => json_str(out, &n.to_string()),
            Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        }
    }
    out.extend_from_slice(b"}\n");
}

/// A JSON string literal.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
    {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{:04x}", b);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::record::Level;
    use super::*;

    fn rec(message: &str, fields: Vec<(&'static str, Value)>) -> Record {
        let mut r = Record::now(Level::Info, "agent", message);
        r.secs = 1_795_608_000; // 2026-11-25T12:00:00Z
        r.nanos = 123_456_789;
        for (n, v) in fields {
            r = r.with(n, v);
        }
        r
    }

    fn s(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(s(|o| rfc3339_millis(o, 0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            s(|o| rfc3339_micros(o, 1_795_608_000, 123_456_789)),
            "2026-11-25T12:00:00.123456Z"
        );
        assert_eq!(
            s(|o| rfc3339_millis(o, 951_782_400, 0)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            s(|o| rfc3339_millis(o, 4_107_542_399, 999_999_999)),
            "2100-02-28T23:59:59.999Z"
        );
        assert_eq!(s(|o| rfc3164(o, 1_795_608_000)), "Nov 25 12:00:00");
        assert_eq!(s(|o| rfc3164(o, 1_796_170_000)), "Dec  2 00:06:40");
    }

    #[test]
    fn text_lines_look_like_hclog() {
        let r = rec(
            "Synced service.",
            vec![
                ("service", Value::Str("web")),
                ("n", Value::U64(3)),
                ("note", Value::Str("two words \"q\"")),
                ("empty", Value::Str("")),
            ],
        );
        assert_eq!(
            s(|o| text_line(o, &r)),
            "2026-11-25T12:00:00.123Z [INFO]  agent: Synced service: service=web n=3 note=\"two words \\\"q\\\"\" empty=\"\"\n"
        );
        let r = rec("Agent started.", vec![]);
        assert_eq!(
            s(|o| text_line(o, &r)),
            "2026-11-25T12:00:00.123Z [INFO]  agent: Agent started.\n"
        );
    }

    #[test]
    fn newlines_never_split_a_line() {
        let r = rec(
            "first\nsecond\r\u{1b}",
            vec![("output", Value::Str("a\nb"))],
        );
        let text = s(|o| text_line(o, &r));
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(
            text.contains("first\\nsecond\\r\\u{1b}: output=\"a\\nb\""),
            "{text}"
        );
        let json = s(|o| json_line(o, &r));
        assert_eq!(json.matches('\n').count(), 1, "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["@message"], "first\nsecond\r\u{1b}");
        assert_eq!(v["output"], "a\nb");
    }

    #[test]
    fn json_has_consuls_keys_and_typed_fields() {
        let mut r = rec(
            "Check is now critical.",
            vec![
                ("check_id", Value::Str("web")),
                ("attempt", Value::I64(-2)),
                ("ratio", Value::F64(0.5)),
                ("ok", Value::Bool(false)),
                ("check_id", Value::Str("span's")),
            ],
        );
        r.level = Level::Warn;
        r.origin = Some("openraft::core".into());
        let line = s(|o| json_line(o, &r));
        assert!(
            line.starts_with(r#"{"@level":"warn","@message":"Check is now critical.","@module":"agent","@origin":"openraft::core","@timestamp":"2026-11-25T12:00:00.123456Z","check_id":"web""#),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["attempt"], -2);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["ok"], false);
        assert_eq!(v["check_id"], "web");
    }
}
