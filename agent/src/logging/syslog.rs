//! Syslog: our own encoders and transports, so that no write ever happens on a caller's
//! thread and a stopped daemon costs nothing but the lines it misses.
//!
//! Formats: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [tribune@32473 ...] MSG`, the
//! event's fields as structured data, MSGID the subsystem) for collectors, and for a local
//! socket what syslog(3) writes (`<PRI>Mmm dd hh:mm:ss tag[pid]: msg`), because rsyslog's
//! and journald's `/dev/log` parsers take nothing else (rsyslog files an RFC 5424 line
//! received there under the tag `1`). Transports: a unix datagram socket, UDP paced to
//! `syslog_udp_rate`, and TCP with RFC 6587 octet-counting framing (`LEN SP MSG`), so a
//! line of any length is one message. A lost TCP connection is retried every 200 ms;
//! meanwhile records wait in the sink's queue, and a frame cut by the failure is sent
//! again whole on the new connection.

use super::format;
use super::record::{Record, Value};
use super::redact::Redactor;
use super::sink::{Outcome, Sink};
use crate::config::{SyslogAddress, SyslogFormat};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The structured-data ID of our fields (32473 is the example enterprise number of
/// RFC 5612; Tribune has none of its own).
pub const SD_ID: &str = "tribune@32473";
/// Sockets tried, in order, when no `syslog_address` is set (Go's log/syslog list).
const LOCAL_SOCKETS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];
/// Largest datagram sent (UDP's limit is 65507; the rest of a longer line is cut).
const MAX_DATAGRAM: usize = 65_000;
/// Largest TCP message (octet counting has no limit; this only bounds memory).
const MAX_FRAME: usize = 1 << 20;
/// TCP bytes written at once, and kept while the collector is away.
const TCP_FLUSH_AT: usize = 64 * 1024;
const TCP_BACKLOG: usize = 4 << 20;
/// Between two connection attempts (well under the 1 s reconnect goal).
const RETRY: Duration = Duration::from_millis(200);
/// A blocked write returns after this, so housekeeping and shutdown go on.
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How far UDP may run ahead of its pace (a burst the collector's buffer absorbs).
const UDP_BURST: Duration = Duration::from_millis(1);

/// Everything the sink needs from the configuration.
#[derive(Clone, Debug)]
pub struct SyslogOptions {
    pub address: Option<SyslogAddress>,
    /// Facility name (`LOCAL0`).
    pub facility: String,
    pub tag: String,
    pub format: SyslogFormat,
    /// UDP messages per second (0: unpaced).
    pub udp_rate: u32,
    pub hostname: String,
}

/// The facility code of a name (`LOCAL0` = 16); unknown names are `LOCAL0`.
pub fn facility_code(name: &str) -> u8 {
    const NAMES: [&str; 12] = [
        "KERN", "USER", "MAIL", "DAEMON", "AUTH", "SYSLOG", "LPR", "NEWS", "UUCP", "CRON",
        "AUTHPRIV", "FTP",
    ];
    let upper = name.to_ascii_uppercase();
    if let Some(i) = NAMES.iter().position(|n| *n == upper) {
        return i as u8;
    }
    match upper
        .strip_prefix("LOCAL")
        .and_then(|d| d.parse::<u8>().ok())
    {
        Some(n) if n <= 7 => 16 + n,
        _ => 16,
    }
}

/// The machine's host name as syslog wants it (printable ASCII, no spaces), or `-`.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if h.is_empty() {
        "-".into()
    } else {
        h
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Rfc5424,
    /// syslog(3)'s local form: no host name.
    Local3164,
    /// RFC 3164 with the host name, for a remote collector.
    Remote3164,
}

/// Encodes records into syslog messages (no framing).
#[derive(Clone, Debug)]
pub struct Encoder {
    wire: Wire,
    facility: u8,
    tag: String,
    hostname: String,
    pid: u32,
}

impl Encoder {
    fn new(opts: &SyslogOptions, local: bool) -> Encoder {
        let wire = match (opts.format, local) {
            (SyslogFormat::Rfc5424, _) | (SyslogFormat::Auto, false) => Wire::Rfc5424,
            (SyslogFormat::Rfc3164, false) => Wire::Remote3164,
            (SyslogFormat::Rfc3164, true) | (SyslogFormat::Auto, true) => Wire::Local3164,
        };
        Encoder {
            wire,
            facility: facility_code(&opts.facility),
            tag: opts.tag.clone(),
            hostname: opts.hostname.clone(),
            pid: std::process::id(),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>, rec: &Record) {
        let pri = self.facility as u32 * 8 + rec.level.syslog_severity() as u32;
        match self.wire {
            Wire::Rfc5424 => {
                use std::io::Write as _;
                let _ = write!(out, "<{pri}>1 ");
                format::rfc3339_micros(out, rec.secs, rec.nanos);
                let _ = write!(
                    out,
                    " {} {} {} {} ",
                    self.hostname, self.tag, self.pid, rec.module
                );
                structured_data(out, rec);
                if !rec.message().is_empty() {
                    out.push(b' ');
                    format::escape_controls(out, rec.message());
                }
            }
            Wire::Local3164 | Wire::Remote3164 => {
                use std::io::Write as _;
                let _ = write!(out, "<{pri}>");
                format::rfc3164(out, rec.secs);
                if self.wire == Wire::Remote3164 {
                    out.push(b' ');
                    out.extend_from_slice(self.hostname.as_bytes());
                }
                let _ = write!(out, " {}[{}]: ", self.tag, self.pid);
                format::text_body(out, rec);
            }
        }
    }
}

/// `[tribune@32473 level="info" origin="..." field="value" ...]`
fn structured_data(out: &mut Vec<u8>, rec: &Record) {
    out.push(b'[');
    out.extend_from_slice(SD_ID.as_bytes());
    out.extend_from_slice(b" level=\"");
    out.extend_from_slice(rec.level.as_str().as_bytes());
    out.push(b'"');
    if let Some(origin) = &rec.origin {
        sd_param(out, "origin", origin);
    }
    for (name, value) in rec.fields() {
        if name == "level" || name == "origin" {
            continue;
        }
        match value {
            Value::Str(s) => sd_param(out, name, s),
            Value::I64(n) => sd_param(out, name, &n.to_string()),
            Value::U64(n) => sd_param(out, name, &n.to_string()),
            Value::F64(n) => sd_param(out, name, &n.to_string()),
            Value::Bool(b) => sd_param(out, name, if b { "true" } else { "false" }),
        }
    }
    out.push(b']');
}

/// One `name="value"`: the name cut to RFC 5424's 32 allowed characters, the value with
/// `"`, `\` and `]` escaped and control characters spelled out.
fn sd_param(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    let mut n = 0;
    for b in name.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'=' | b']' | b'"') && n < 32 {
            out.push(b);
            n += 1;
        }
    }
    if n == 0 {
        out.push(b'_');
    }
    out.extend_from_slice(b"=\"");
    for c in value.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push(b'\\');
                out.push(c as u8);
            }
            c => {
                let mut b = [0u8; 4];
                format::escape_controls(out, c.encode_utf8(&mut b));
            }
        }
    }
    out.push(b'"');
}

/// Cuts `line` to at most `max` bytes on a character boundary.
fn truncate(line: &mut Vec<u8>, max: usize) {
    if line.len() <= max {
        return;
    }
    let mut end = max;
    // Back up over UTF-8 continuation bytes.
    while end > 0 && (line[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    line.truncate(end);
}

/// Spaces UDP datagrams to at most `rate` per second.
struct Pacer {
    interval: Option<Duration>,
    /// When the next datagram is due.
    next: Instant,
}

impl Pacer {
    fn new(rate: u32) -> Pacer {
        Pacer {
            interval: (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64)),
            next: Instant::now(),
        }
    }

    fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let mut now = Instant::now();
        if self.next > now + UDP_BURST {
            std::thread::sleep(self.next - now);
            now = Instant::now();
        }
        // After an idle spell (or a sleep that overslept) at most one burst is sent at
        // once: the schedule never runs more than `UDP_BURST` behind the clock.
        let earliest = now.checked_sub(UDP_BURST).unwrap_or(now);
        self.next = self.next.max(earliest) + interval;
    }
}

enum Conn {
    Down,
    Unix(UnixDatagram),
    Udp(UdpSocket, Pacer),
    Tcp(TcpStream),
}

/// The syslog sink.
pub struct SyslogSink {
    opts: SyslogOptions,
    enc: Encoder,
    conn: Conn,
    /// TCP: framed messages not yet written.
    out: Vec<u8>,
    line: Vec<u8>,
    next_connect: Instant,
    /// Whether the loss of the connection has been reported.
    down_reported: bool,
    ever_connected: bool,
}

impl SyslogSink {
    pub fn new(opts: SyslogOptions) -> SyslogSink {
        let local = matches!(opts.address, None | Some(SyslogAddress::Unix(_)));
        SyslogSink {
            enc: Encoder::new(&opts, local),
            opts,
            conn: Conn::Down,
            out: Vec::new(),
            line: Vec::with_capacity(512),
            next_connect: Instant::now(),
            down_reported: false,
            ever_connected: false,
        }
    }

    fn describe(&self) -> String {
        match &self.opts.address {
            Some(a) => a.to_string(),
            None => format!("the local syslog socket ({})", LOCAL_SOCKETS.join(", ")),
        }
    }

    fn connect(&mut self) -> bool {
        let result = match &self.opts.address {
            None => connect_unix(LOCAL_SOCKETS.iter().map(PathBuf::from)),
            Some(SyslogAddress::Unix(p)) => connect_unix(std::iter::once(p.clone())),
            Some(SyslogAddress::Udp(a)) => {
                connect_udp(a).map(|s| Conn::Udp(s, Pacer::new(self.opts.udp_rate)))
            }
            Some(SyslogAddress::Tcp(a)) => connect_tcp(a).map(Conn::Tcp),
        };
        match result {
            Ok(conn) => {
                self.conn = conn;
                if self.down_reported {
                    tracing::info!(target: "agent", address = %self.describe(), "Reconnected to syslog.");
                } else if !self.ever_connected {
                    tracing::debug!(target: "agent", address = %self.describe(), "Logging to syslog.");
                }
                self.ever_connected = true;
                self.down_reported = false;
                true
            }
            Err(e) => {
                self.next_connect = Instant::now() + RETRY;
                if !self.down_reported {
                    self.down_reported = true;
                    tracing::warn!(target: "agent", address = %self.describe(), error = %e,
                        "Cannot reach syslog; holding log lines and retrying every 200ms.");
                }
                false
            }
        }
    }

    fn disconnect(&mut self, e: &std::io::Error) {
        self.conn = Conn::Down;
        self.next_connect = Instant::now();
        if !self.down_reported {
            self.down_reported = true;
            tracing::warn!(target: "agent", address = %self.describe(), error = %e,
                "Lost the connection to syslog; holding log lines and reconnecting.");
        }
    }

    /// TCP: writes buffered frames; on a broken connection keeps every frame not wholly
    /// written, to send again.
    fn flush_tcp(&mut self) {
        let Conn::Tcp(stream) = &mut self.conn else {
            return;
        };
        let mut written = 0;
        let mut broken = None;
        while written < self.out.len() {
            match stream.write(&self.out[written..]) {
                Ok(0) => {
                    broken = Some(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // The collector is slow: the stream stays mid-frame and goes on later.
                    break;
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        match broken {
            None => {
                self.out.drain(..written);
            }
            Some(e) => {
                let keep_from = complete_frames(&self.out, written);
                self.out.drain(..keep_from);
                self.disconnect(&e);
            }
        }
    }

    /// TCP: notices a collector that closed the connection while we had nothing to say,
    /// so the next line goes to a new connection instead of into the void.
    fn check_tcp_alive(&mut self) {
        let Conn::Tcp(stream) = &mut self.conn else {
            return;
        };
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let mut buf = [0u8; 256];
        let result = stream.read(&mut buf);
        let _ = stream.set_nonblocking(false);
        match result {
            Ok(0) => self.disconnect(&std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => self.disconnect(&e),
            // A collector has nothing to tell us; ignore what it sends.
            Ok(_) => {}
        }
    }
}

/// The offset up to which `buf` holds frames written completely, given `written` bytes
/// went out.
fn complete_frames(buf: &[u8], written: usize) -> usize {
    let mut pos = 0;
    while pos < buf.len() {
        let Some(sp) = buf[pos..].iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&buf[pos..pos + sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        let end = pos + sp + 1 + len;
        if end > written {
            break;
        }
        pos = end;
    }
    pos
}

fn connect_unix(paths: impl Iterator<Item = PathBuf>) -> std::io::Result<Conn> {
    let mut last = std::io::Error::from(std::io::ErrorKind::NotFound);
    for p in paths {
        let sock = UnixDatagram::unbound()?;
        match sock.connect(&p) {
            Ok(()) => {
                sock.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok(Conn::Unix(sock));
            }
            Err(e) => last = std::io::Error::new(e.kind(), format!("{}: {e}", p.display())),
        }
    }
    Err(last)
}

fn resolve(addr: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolves to no address"),
        ));
    }
    Ok(addrs)
}

fn connect_udp(addr: &str) -> std::io::Result<UdpSocket> {
    let target = resolve(addr)?[0];
    let local: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    } else {
        "[::]:0".parse().map_err(std::io::Error::other)?
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(target)?;
    Ok(sock)
}

fn connect_tcp(addr: &str) -> std::io::Result<TcpStream> {
    let mut last = None;
    for a in resolve(addr)? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)))
}

fn is_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | NotFound
            | NotConnected
            | ConnectionReset
            | BrokenPipe
            | AddrNotAvailable
    )
}

impl Sink for SyslogSink {
    fn name(&self) -> &'static str {
        "syslog"
    }

    fn write(&mut self, rec: &Arc<Record>, redactor: &Redactor) -> Outcome {
        if matches!(self.conn, Conn::Down)
            && (Instant::now() < self.next_connect || !self.connect())
        {
            return Outcome::Busy;
        }
        if matches!(self.conn, Conn::Tcp(_)) && self.out.len() >= TCP_BACKLOG {
            self.flush_tcp();
            if self.out.len() >= TCP_BACKLOG || matches!(self.conn, Conn::Down) {
                return Outcome::Busy;
            }
        }
        self.line.clear();
        self.enc.encode(&mut self.line, rec);
        redactor.scrub_record(rec, &mut self.line);
        match &mut self.conn {
            Conn::Down => Outcome::Busy,
            Conn::Unix(sock) => {
                truncate(&mut self.line, MAX_DATAGRAM);
                match sock.send(&self.line) {
                    Ok(_) => Outcome::Written,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        Outcome::Busy
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                        truncate(&mut self.line, 2048);
                        match sock.send(&self.line) {
                            Ok(_) => Outcome::Written,
                            Err(_) => Outcome::Dropped,
                        }
                    }
                    Err(e) if is_gone(&e) => {
                        self.disconnect(&e);
                        Outcome::Busy
                    }
                    Err(_) => Outcome::Dropped,
                }
            }
            Conn::Udp(sock, pacer) => {
                truncate(&mut self.line, MAX_DATAGRAM);
                pacer.wait();
                match sock.send(&self.line) {
                    Ok(_) => Outcome::Written,
                    // UDP keeps nothing: a datagram the collector refused is lost.
                    Err(_) => Outcome::Dropped,
                }
            }
            Conn::Tcp(_) => {
                truncate(&mut self.line, MAX_FRAME);
                use std::io::Write as _;
                let _ = write!(self.out, "{} ", self.line.len());
                self.out.extend_from_slice(&self.line);
                if self.out.len() >= TCP_FLUSH_AT {
                    self.flush_tcp();
                }
                Outcome::Written
            }
        }
    }

    fn flush(&mut self) {
        self.flush_tcp();
    }

    fn tick(&mut self) {
        if matches!(self.conn, Conn::Down) && Instant::now() >= self.next_connect {
            self.connect();
        }
        if self.out.is_empty() {
            self.check_tcp_alive();
        } else {
            self.flush_tcp();
        }
    }

    fn close(&mut self) {
        self.flush_tcp();
        if let Conn::Tcp(s) = &self.conn {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::Level;
    use super::*;
    use std::borrow::Cow;

    fn opts(address: Option<SyslogAddress>, format: SyslogFormat) -> SyslogOptions {
        SyslogOptions {
            address,
            facility: "LOCAL0".into(),
            tag: "tribune".into(),
            format,
            udp_rate: 0,
            hostname: "node1".into(),
        }
    }

    fn rec_with(message: &str) -> Record {
        let mut r = Record::now(Level::Warn, "checks", message)
            .with("check_id", Value::Str("web"))
            .with("output", Value::Str("a \"b\" ]c\\ \nd"))
            .with("n", Value::U64(2));
        r.secs = 1_795_608_000;
        r.nanos = 5_000;
        r
    }

    fn rec() -> Record {
        rec_with("Check is now critical.")
    }

    fn encode(o: &SyslogOptions, local: bool, r: &Record) -> String {
        let mut v = Vec::new();
        Encoder::new(o, local).encode(&mut v, r);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn facilities() {
        assert_eq!(facility_code("LOCAL0"), 16);
        assert_eq!(facility_code("local7"), 23);
        assert_eq!(facility_code("daemon"), 3);
        assert_eq!(facility_code("AUTHPRIV"), 10);
        assert_eq!(facility_code("KERN"), 0);
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let pid = std::process::id();
        let o = opts(Some(SyslogAddress::Tcp("h:1".into())), SyslogFormat::Auto);
        assert_eq!(
            encode(&o, false, &rec()),
            format!(
                "<132>1 2026-11-25T12:00:00.000005Z node1 tribune {pid} checks \
                 [tribune@32473 level=\"warn\" check_id=\"web\" output=\"a \\\"b\\\" \\]c\\\\ \\nd\" n=\"2\"] \
                 Check is now critical."
            )
        );
        let mut r = Record::now(Level::Trace, "checks", "");
        r.secs = 1_795_608_000;
        r.nanos = 5_000;
        r.origin = Some(Cow::Borrowed("openraft::core"));
        assert_eq!(
            encode(&o, false, &r),
            format!("<135>1 2026-11-25T12:00:00.000005Z node1 tribune {pid} checks [tribune@32473 level=\"trace\" origin=\"openraft::core\"]")
        );
    }

    #[test]
    fn local_socket_gets_what_syslog3_writes() {
        let pid = std::process::id();
        let o = opts(None, SyslogFormat::Auto);
        assert_eq!(
            encode(&o, true, &rec()),
            format!("<132>Nov 25 12:00:00 tribune[{pid}]: [WARN]  checks: Check is now critical: check_id=web output=\"a \\\"b\\\" ]c\\\\ \\nd\" n=2")
        );
        let o = opts(
            Some(SyslogAddress::Udp("h:1".into())),
            SyslogFormat::Rfc3164,
        );
        assert!(encode(&o, false, &rec()).starts_with(&format!(
            "<132>Nov 25 12:00:00 node1 tribune[{pid}]: [WARN]  checks:"
        )));
        let o = opts(None, SyslogFormat::Rfc5424);
        assert!(encode(&o, true, &rec()).starts_with("<132>1 "));
    }

    #[test]
    fn truncation_respects_characters() {
        let mut v = "aé".as_bytes().to_vec();
        truncate(&mut v, 2);
        assert_eq!(v, b"a");
        let mut v = b"abc".to_vec();
        truncate(&mut v, 5);
        assert_eq!(v, b"abc");
    }

    #[test]
    fn frames_cut_by_a_failure_are_resent_whole() {
        let buf = b"3 abc5 hello2 xy";
        assert_eq!(complete_frames(buf, 0), 0);
        assert_eq!(complete_frames(buf, 4), 0);
        assert_eq!(complete_frames(buf, 5), 5);
        assert_eq!(complete_frames(buf, 9), 5);
        assert_eq!(complete_frames(buf, 12), 12);
        assert_eq!(complete_frames(buf, buf.len()), buf.len());
    }

    #[test]
    fn udp_is_paced() {
        let mut p = Pacer::new(10_000);
        let t = Instant::now();
        for _ in 0..2_000 {
            p.wait();
        }
        let el = t.elapsed();
        assert!(
            el >= Duration::from_millis(190),
            "2000 at 10k/s took {el:?}"
        );
    }

    /// A TCP collector that goes away and comes back on the same port: nothing written
    /// before the loss is sent twice in a broken frame, and lines sent after the return
    /// arrive.
    #[test]
    fn tcp_reconnects_and_frames_stay_whole() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut sink = SyslogSink::new(opts(
            Some(SyslogAddress::Tcp(addr.to_string())),
            SyslogFormat::Auto,
        ));
        let r = Redactor::new(Vec::<String>::new());
        let first = Arc::new(rec_with("one token=abc"));
        assert_eq!(sink.write(&first, &r), Outcome::Written);
        sink.flush();
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 4096];
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = conn.read(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (len, msg) = got.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len(), "{got}");
        assert!(msg.contains("one token=<hidden>"), "{got}");
        drop(conn);
        drop(listener);
        // The idle check notices the close; the next line waits for a new collector.
        std::thread::sleep(Duration::from_millis(50));
        sink.tick();
        assert!(
            matches!(sink.conn, Conn::Down),
            "the closed connection was noticed"
        );
        let second = Arc::new(rec_with("two"));
        assert_eq!(sink.write(&second, &r), Outcome::Busy);
        let listener = std::net::TcpListener::bind(addr).unwrap();
        std::thread::sleep(RETRY);
        assert_eq!(sink.write(&second, &r), Outcome::Written);
        sink.flush();
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = conn.read(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(got.ends_with("two"), "{got}");
        assert!(!got.contains("one"), "{got}");
    }
}
