//! `tcp-banner`: connects over TCP and checks what the server says.
//!
//! Check config (`"wasm": {"plugin": "tcp-banner", "config": {...}}`):
//!
//! | key | meaning |
//! |---|---|
//! | `address` | `host:port` (required; must be granted) |
//! | `protocol` | `redis` (PING → `+PONG`), `mysql` (reads the handshake), `smtp` / `ftp` (a `220` banner), or `raw` (default) |
//! | `send` | `raw`: bytes to send first (`\r\n` escapes are understood) |
//! | `expect` | `raw`: text the answer must contain (default: any answer) |
//! | `timeout_ms` | default: what remains of the check's timeout |

use serde::Deserialize;
use tribune_plugin_sdk::{tcp, CheckRequest, CheckResult, HealthCheck, Result};

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub address: String,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub send: String,
    #[serde(default)]
    pub expect: String,
    #[serde(default)]
    pub timeout_ms: u32,
}

/// What to send and when to stop reading, per protocol.
pub struct Exchange {
    pub send: Vec<u8>,
    pub until: Vec<u8>,
    pub max: u32,
}

pub fn exchange_for(cfg: &Config) -> std::result::Result<Exchange, String> {
    Ok(match cfg.protocol.as_deref().unwrap_or("raw") {
        "redis" => Exchange {
            send: b"PING\r\n".to_vec(),
            until: b"\r\n".to_vec(),
            max: 512,
        },
        // The server speaks first: one packet, up to the end of the version string.
        "mysql" => Exchange {
            send: Vec::new(),
            until: Vec::new(),
            max: 128,
        },
        "smtp" | "ftp" => Exchange {
            send: Vec::new(),
            until: b"\r\n".to_vec(),
            max: 512,
        },
        "raw" => Exchange {
            send: unescape(&cfg.send).into_bytes(),
            until: if cfg.expect.is_empty() {
                Vec::new()
            } else {
                unescape(&cfg.expect).into_bytes()
            },
            max: 4096,
        },
        other => {
            return Err(format!(
                "unknown protocol {other:?}: expected redis, mysql, smtp, ftp or raw"
            ))
        }
    })
}

/// `\r`, `\n`, `\t`, `\\` in config strings.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// Judges what the server answered.
pub fn judge(cfg: &Config, answer: &[u8]) -> CheckResult {
    let addr = &cfg.address;
    match cfg.protocol.as_deref().unwrap_or("raw") {
        "redis" => {
            if answer.starts_with(b"+PONG") {
                CheckResult::passing(format!("redis at {addr}: PONG"))
            } else if answer.starts_with(b"-NOAUTH") {
                CheckResult::warning(format!(
                    "redis at {addr} answers but needs AUTH: {}",
                    printable(answer)
                ))
            } else if answer.starts_with(b"-LOADING") {
                CheckResult::warning(format!("redis at {addr} is loading its dataset"))
            } else {
                CheckResult::critical(format!(
                    "redis at {addr}: unexpected answer {:?}",
                    printable(answer)
                ))
            }
        }
        "mysql" => mysql_handshake(addr, answer),
        "smtp" | "ftp" => {
            let proto = cfg.protocol.as_deref().unwrap_or("smtp");
            if answer.starts_with(b"220") {
                CheckResult::passing(format!("{proto} at {addr}: {}", printable(answer)))
            } else {
                CheckResult::critical(format!(
                    "{proto} at {addr}: no 220 greeting: {:?}",
                    printable(answer)
                ))
            }
        }
        _ => {
            let expect = unescape(&cfg.expect);
            let text = String::from_utf8_lossy(answer);
            if answer.is_empty() && !cfg.expect.is_empty() {
                CheckResult::critical(format!("{addr}: connected, but nothing came back"))
            } else if text.contains(&expect) {
                CheckResult::passing(format!("{addr}: {}", printable(answer)))
            } else {
                CheckResult::critical(format!(
                    "{addr}: expected {expect:?}, got {:?}",
                    printable(answer)
                ))
            }
        }
    }
}

/// MySQL's initial handshake: 3-byte length, sequence id, then protocol version 10 and a
/// NUL-terminated server version; or an error packet (0xff, code, message).
fn mysql_handshake(addr: &str, p: &[u8]) -> CheckResult {
    if p.len() < 5 {
        return CheckResult::critical(format!(
            "mysql at {addr}: short handshake ({} bytes)",
            p.len()
        ));
    }
    let payload = &p[4..];
    match payload[0] {
        0x0a => {
            let version = payload[1..]
                .iter()
                .take_while(|b| **b != 0)
                .map(|b| *b as char)
                .collect::<String>();
            CheckResult::passing(format!("mysql at {addr}: server {version} (protocol 10)"))
        }
        0xff if payload.len() >= 3 => {
            let code = u16::from_le_bytes([payload[1], payload[2]]);
            let msg = printable(&payload[3..]);
            CheckResult::critical(format!("mysql at {addr} refused us: error {code}: {msg}"))
        }
        v => CheckResult::critical(format!("mysql at {addr}: unexpected protocol version {v}")),
    }
}

#[derive(Default)]
struct TcpBanner;

impl HealthCheck for TcpBanner {
    fn check(&mut self, request: CheckRequest) -> Result<CheckResult> {
        let cfg: Config = request.config()?;
        if cfg.address.is_empty() {
            return Ok(CheckResult::critical("config.address is required"));
        }
        let ex = match exchange_for(&cfg) {
            Ok(e) => e,
            Err(e) => return Ok(CheckResult::critical(e)),
        };
        let answer = tcp::exchange(&cfg.address, &ex.send, &ex.until, ex.max, cfg.timeout_ms)?;
        Ok(judge(&cfg, &answer))
    }
}

tribune_plugin_sdk::export_health_check!(TcpBanner);

#[cfg(test)]
mod tests {
    use super::*;
    use tribune_plugin_sdk::CheckStatus;

    fn cfg(protocol: &str) -> Config {
        Config {
            address: "127.0.0.1:1".into(),
            protocol: Some(protocol.into()),
            ..Default::default()
        }
    }

    #[test]
    fn redis_answers_are_graded() {
        assert_eq!(
            judge(&cfg("redis"), b"+PONG\r\n").status,
            CheckStatus::Passing
        );
        assert_eq!(
            judge(&cfg("redis"), b"-NOAUTH Authentication required.\r\n").status,
            CheckStatus::Warning
        );
        assert_eq!(
            judge(&cfg("redis"), b"HTTP/1.1 400").status,
            CheckStatus::Critical
        );
        assert_eq!(exchange_for(&cfg("redis")).unwrap().send, b"PING\r\n");
    }

    #[test]
    fn mysql_handshakes_are_read() {
        let mut hs = vec![0x4a, 0, 0, 0, 0x0a];
        hs.extend_from_slice(b"8.0.36\0rest");
        let r = judge(&cfg("mysql"), &hs);
        assert_eq!(r.status, CheckStatus::Passing);
        assert!(r.output.contains("server 8.0.36"), "{}", r.output);
        let mut err = vec![0x30, 0, 0, 0, 0xff, 0x6a, 0x04];
        err.extend_from_slice(b"Host 'x' is not allowed to connect");
        let r = judge(&cfg("mysql"), &err);
        assert_eq!(r.status, CheckStatus::Critical);
        assert!(r.output.contains("error 1130"), "{}", r.output);
        assert_eq!(judge(&cfg("mysql"), b"\x01").status, CheckStatus::Critical);
    }

    #[test]
    fn raw_exchanges_use_escapes() {
        let c = Config {
            address: "a:1".into(),
            send: "HELLO\\r\\n".into(),
            expect: "OK".into(),
            ..Default::default()
        };
        let ex = exchange_for(&c).unwrap();
        assert_eq!(ex.send, b"HELLO\r\n");
        assert_eq!(judge(&c, b"+OK ready").status, CheckStatus::Passing);
        assert_eq!(judge(&c, b"NO").status, CheckStatus::Critical);
        assert_eq!(
            judge(&cfg("smtp"), b"220 mail ESMTP\r\n").status,
            CheckStatus::Passing
        );
        assert!(exchange_for(&cfg("gopher")).is_err());
    }
}
