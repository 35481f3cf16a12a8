//! TCP and UDP probes.
//!
//! TCP: passing when a connection is established within the timeout, with Consul's output
//! `TCP connect <addr>: Success`; otherwise critical with a Go-style dial error.
//!
//! UDP (Consul's rule): send an empty datagram and wait for one byte. A reply or silence
//! until the timeout is passing (`UDP connect <addr>: Success`); an error, typically
//! `connection refused` from an ICMP port-unreachable, is critical.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};

use super::clock::{timeout_at, Clock};
use super::{io_error_text, Outcome};

#[derive(Clone, Debug)]
pub(crate) struct TcpProbe {
    pub(crate) addr: String,
    pub(crate) timeout: Duration,
}

/// Resolves `host:port` like Go's dialer reports it: `lookup <host>: <error>` on failure.
async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    match tokio::net::lookup_host(addr).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("lookup {addr}: no such host"))
            } else {
                Ok(addrs)
            }
        }
        Err(err) => Err(format!("lookup {addr}: {}", io_error_text(&err))),
    }
}

impl TcpProbe {
    pub(crate) async fn run(&self, clock: &dyn Clock) -> Outcome {
        let deadline = clock.now() + self.timeout;
        match timeout_at(clock, deadline, self.connect()).await {
            Ok(Ok(_stream)) => Outcome::passing(format!("TCP connect {}: Success", self.addr)),
            Ok(Err(text)) => Outcome::critical(text),
            Err(_) => Outcome::critical(format!("dial tcp {}: i/o timeout", self.addr)),
        }
    }

    async fn connect(&self) -> Result<TcpStream, String> {
        let addrs = resolve(&self.addr)
            .await
            .map_err(|e| format!("dial tcp: {e}"))?;
        let mut last = String::new();
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last = format!("dial tcp {addr}: connect: {}", io_error_text(&err)),
            }
        }
        Err(last)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct UdpProbe {
    pub(crate) addr: String,
    pub(crate) timeout: Duration,
}

impl UdpProbe {
    pub(crate) async fn run(&self, clock: &dyn Clock) -> Outcome {
        let success = || Outcome::passing(format!("UDP connect {}: Success", self.addr));
        let deadline = clock.now() + self.timeout;
        let socket = match timeout_at(clock, deadline, self.connect()).await {
            Ok(Ok(socket)) => socket,
            Ok(Err(text)) => return Outcome::critical(text),
            // Consul counts a dial timeout as success too.
            Err(_) => return success(),
        };
        let describe = |op: &str, err: &std::io::Error| {
            let local = socket
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let peer = socket
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            format!("{op} udp {local}->{peer}: {op}: {}", io_error_text(err))
        };
        if let Err(err) = socket.send(&[]).await {
            return Outcome::critical(describe("write", &err));
        }
        let mut byte = [0u8; 1];
        match timeout_at(clock, deadline, socket.recv(&mut byte)).await {
            Ok(Ok(_)) | Err(_) => success(),
            Ok(Err(err)) => Outcome::critical(describe("read", &err)),
        }
    }

    async fn connect(&self) -> Result<UdpSocket, String> {
        let addrs = resolve(&self.addr)
            .await
            .map_err(|e| format!("dial udp: {e}"))?;
        let mut last = String::new();
        for addr in addrs {
            let local: SocketAddr = if addr.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let attempt = async {
                let socket = UdpSocket::bind(local).await?;
                socket.connect(addr).await?;
                Ok::<_, std::io::Error>(socket)
            };
            match attempt.await {
                Ok(socket) => return Ok(socket),
                Err(err) => last = format!("dial udp {addr}: {}", io_error_text(&err)),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::clock::{settle, ManualClock, TokioClock};
    use crate::checks::Status;
    use std::sync::Arc;
    use tokio::net::{TcpListener, TcpSocket};

    #[tokio::test]
    async fn tcp_passes_when_listening() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let probe = TcpProbe {
            addr: addr.clone(),
            timeout: Duration::from_secs(10),
        };
        let out = probe.run(&TokioClock).await;
        assert_eq!(
            out,
            Outcome::passing(format!("TCP connect {addr}: Success"))
        );
    }

    #[tokio::test]
    async fn tcp_fails_when_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let probe = TcpProbe {
            addr: addr.clone(),
            timeout: Duration::from_secs(10),
        };
        let out = probe.run(&TokioClock).await;
        assert_eq!(out.status, Status::Critical);
        assert_eq!(
            out.output,
            format!("dial tcp {addr}: connect: connection refused")
        );
    }

    #[tokio::test]
    async fn tcp_fails_on_bad_address() {
        let probe = TcpProbe {
            addr: "no-port-here".into(),
            timeout: Duration::from_secs(10),
        };
        let out = probe.run(&TokioClock).await;
        assert_eq!(out.status, Status::Critical);
        assert!(
            out.output.starts_with("dial tcp: lookup no-port-here: "),
            "{}",
            out.output
        );
    }

    /// A listener with a full accept queue drops SYNs, so a connect hangs until the probe's
    /// timeout, which the manual clock then reaches.
    #[tokio::test]
    async fn tcp_times_out() {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Fill the queue: the first connect that does not complete at once proves it full.
        let mut fillers = Vec::new();
        for _ in 0..8 {
            let filler = tokio::time::timeout(Duration::from_millis(50), TcpStream::connect(addr));
            match filler.await {
                Ok(Ok(stream)) => fillers.push(stream),
                _ => break,
            }
        }
        let clock = Arc::new(ManualClock::new());
        let probe = TcpProbe {
            addr: addr.to_string(),
            timeout: Duration::from_secs(3),
        };
        let run = tokio::spawn({
            let clock = clock.clone();
            async move { probe.run(&*clock).await }
        });
        settle().await;
        assert!(
            !run.is_finished(),
            "the connect should hang on a full accept queue"
        );
        clock.advance(Duration::from_secs(3));
        let out = run.await.unwrap();
        assert_eq!(
            out,
            Outcome::critical(format!("dial tcp {addr}: i/o timeout"))
        );
        drop(listener);
    }

    #[tokio::test]
    async fn udp_passes_on_reply() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut buf = [0u8; 16];
            if let Ok((_, from)) = server.recv_from(&mut buf).await {
                let _ = server.send_to(b"pong", from).await;
            }
        });
        let probe = UdpProbe {
            addr: addr.clone(),
            timeout: Duration::from_secs(10),
        };
        assert_eq!(
            probe.run(&TokioClock).await,
            Outcome::passing(format!("UDP connect {addr}: Success"))
        );
    }

    #[tokio::test]
    async fn udp_passes_on_silence() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let clock = Arc::new(ManualClock::new());
        let probe = UdpProbe {
            addr: addr.clone(),
            timeout: Duration::from_secs(2),
        };
        let run = tokio::spawn({
            let clock = clock.clone();
            async move { probe.run(&*clock).await }
        });
        // Once the datagram arrived, the probe is waiting for a reply that never comes.
        let mut buf = [0u8; 1];
        server.recv_from(&mut buf).await.unwrap();
        clock.advance(Duration::from_secs(2));
        assert_eq!(
            run.await.unwrap(),
            Outcome::passing(format!("UDP connect {addr}: Success"))
        );
    }

    #[tokio::test]
    async fn udp_fails_when_refused() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap().to_string();
        drop(server);
        let probe = UdpProbe {
            addr: addr.clone(),
            timeout: Duration::from_secs(10),
        };
        let out = probe.run(&TokioClock).await;
        assert_eq!(out.status, Status::Critical);
        assert!(
            out.output.starts_with("read udp 127.0.0.1:"),
            "{}",
            out.output
        );
        assert!(
            out.output
                .ends_with(&format!("->{addr}: read: connection refused")),
            "{}",
            out.output
        );
    }
}
