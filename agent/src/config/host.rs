//! What the config needs to know about the host: its name (the default `node_name`) and its
//! IPv4 addresses (to pick an advertise address when binding to 0.0.0.0). Read from
//! `/proc`, so no `unsafe` FFI is needed; elsewhere the caller's fallbacks apply.

use std::net::{IpAddr, Ipv4Addr};

/// The host name, from the kernel, `/etc/hostname` or `$HOSTNAME`.
pub(crate) fn hostname() -> Option<String> {
    let candidates = [
        std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
        std::fs::read_to_string("/etc/hostname").ok(),
        std::env::var("HOSTNAME").ok(),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// The host's local IPv4 addresses, from `/proc/net/fib_trie` (the kernel's local routing
/// table: every `/32 host LOCAL` entry is an address of an interface). In file order, which
/// is numeric order; loopback included.
pub(crate) fn ipv4_addresses() -> Vec<Ipv4Addr> {
    match std::fs::read_to_string("/proc/net/fib_trie") {
        Ok(text) => parse_fib_trie(&text),
        Err(_) => Vec::new(),
    }
}

fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let trimmed = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(ip) = trimmed
            .split_whitespace()
            .next()
            .unwrap_or("")
            .parse::<Ipv4Addr>()
        {
            last = Some(ip);
            continue;
        }
        if trimmed.starts_with("/32 host LOCAL") {
            if let Some(ip) = last {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

/// Picks the address to advertise when bound to an unspecified address: like Consul, a
/// private IPv4 address first (RFC 1918 or shared 100.64/10), then any other routable IPv4,
/// else 127.0.0.1. Returns a warning when the choice was ambiguous or fell back.
pub(crate) fn pick_advertise(host: &[Ipv4Addr]) -> (IpAddr, Option<String>) {
    let usable: Vec<Ipv4Addr> = host
        .iter()
        .copied()
        .filter(|ip| !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified())
        .collect();
    let private: Vec<Ipv4Addr> = usable.iter().copied().filter(is_private).collect();
    if let Some(first) = private.first() {
        let warning = (private.len() > 1).then(|| {
            format!(
                "multiple private IPv4 addresses found ({}); advertising {first}; set \
                 advertise_addr (-advertise) or bind_addr (-bind) to choose",
                join(&private)
            )
        });
        return (IpAddr::V4(*first), warning);
    }
    if let Some(first) = usable.first() {
        return (IpAddr::V4(*first), None);
    }
    (
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(
            "no non-loopback IPv4 address found; advertising 127.0.0.1; set advertise_addr \
             (-advertise) so other agents can reach this one"
                .to_string(),
        ),
    )
}

fn is_private(ip: &Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1]))
}

fn join(ips: &[Ipv4Addr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIB: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.0.0/24 2 0 2
        |-- 10.0.0.0
           /24 link UNICAST
        |-- 10.0.0.7
           /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 10.0.0.7
           /32 host LOCAL
        |-- 192.168.1.153
           /32 host LOCAL
";

    #[test]
    fn reads_local_addresses_from_fib_trie() {
        assert_eq!(
            parse_fib_trie(FIB),
            vec![
                Ipv4Addr::new(10, 0, 0, 7),
                Ipv4Addr::new(127, 0, 0, 1),
                Ipv4Addr::new(192, 168, 1, 153)
            ]
        );
    }

    #[test]
    fn prefers_a_private_address() {
        let (ip, warning) = pick_advertise(&[
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(8, 8, 8, 8),
            Ipv4Addr::new(192, 168, 1, 153),
        ]);
        assert_eq!(ip, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 153)));
        assert!(warning.is_none());
        let (ip, warning) = pick_advertise(&[Ipv4Addr::new(127, 0, 0, 1)]);
        assert_eq!(ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(warning.is_some());
        let (_, warning) =
            pick_advertise(&[Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
        assert!(warning.unwrap().contains("multiple private"));
    }
}
