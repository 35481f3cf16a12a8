//! [`Rsyslog`]: Debian's real `rsyslogd`, started as a private instance: its own config,
//! pid file, work directory and unix socket in a temporary directory, UDP and TCP inputs on
//! free loopback ports, and the seed's rule `local0.* /var/log/consul/consul.log` pointed
//! at `<dir>/var/log/consul/consul.log`. Two more rules keep every local0 message in
//! RFC 5424 form (`RSYSLOG_SyslogProtocol23Format`), so structured data can be checked,
//! and exactly as received (`%rawmsg%`), so framing can.
//!
//! The machine's `/dev/log` and system rsyslog are never touched unless a suite asks for
//! a socket path of its own choosing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::process::{self, Spawned, Workdir};
use crate::wait::wait_until;

/// How long rsyslogd may take to accept input after spawn.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running private rsyslogd. Dropping it kills the process.
#[derive(Debug)]
pub struct Rsyslog {
    program: PathBuf,
    conf: PathBuf,
    socket: PathBuf,
    udp: u16,
    tcp: u16,
    runs: u32,
    process: Option<Spawned>,
    dir: Workdir,
}

impl Rsyslog {
    /// Starts rsyslogd with its socket at `<dir>/log.sock`; returns once a probe message
    /// sent over UDP and one over TCP reached the seed's file.
    pub async fn start() -> anyhow::Result<Rsyslog> {
        Rsyslog::start_at(None).await
    }

    /// [`Rsyslog::start`] with the unix socket at `socket` (e.g. `/dev/log`).
    pub async fn start_at(socket: Option<&Path>) -> anyhow::Result<Rsyslog> {
        let program = process::find_program(
            "RSYSLOGD_BIN",
            &["rsyslogd", "/usr/sbin/rsyslogd"],
            "rsyslogd (Debian package rsyslog)",
        )?;
        let dir = Workdir::new("rsyslog")?;
        let ports = process::free_ports(2)?;
        let socket = socket
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("log.sock"));
        let mut rs = Rsyslog {
            program,
            conf: dir.path().join("rsyslog.conf"),
            socket,
            udp: ports[0],
            tcp: ports[1],
            runs: 0,
            process: None,
            dir,
        };
        std::fs::create_dir_all(rs.dir.path().join("work"))?;
        std::fs::create_dir_all(rs.dir.path().join("var/log/consul"))?;
        std::fs::write(&rs.conf, rs.config())?;
        rs.spawn().await?;
        Ok(rs)
    }

    fn config(&self) -> String {
        let d = self.dir.path().display();
        format!(
            r#"# A private rsyslogd for Tribune's tests.
global(workDirectory="{d}/work" maxMessageSize="256k")
# Debian's and Ubuntu's rsyslog.conf write files in the traditional format.
module(load="builtin:omfile" Template="RSYSLOG_TraditionalFileFormat")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" CreatePath="on")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")

# The seed's rule (/etc/rsyslog.d/consul.conf), in a temporary location:
local0.* {d}/var/log/consul/consul.log
# Every local0 message again in RFC 5424 form, structured data included (rsyslog
# cuts structured data near 19 KB there):
local0.* action(type="omfile" file="{d}/consul-5424.log" template="RSYSLOG_SyslogProtocol23Format")
# ... and exactly as received, whatever its length:
template(name="TribuneTestRaw" type="string" string="%rawmsg%\n")
local0.* action(type="omfile" file="{d}/consul-raw.log" template="TribuneTestRaw")
"#,
            socket = self.socket.display(),
            udp = self.udp,
            tcp = self.tcp,
        )
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        self.runs += 1;
        let name = if self.runs == 1 {
            "rsyslogd".to_string()
        } else {
            format!("rsyslogd-{}", self.runs)
        };
        let mut cmd = Command::new(&self.program);
        cmd.arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"));
        self.process = Some(Spawned::spawn(&name, cmd, self.dir.path())?);
        let marker = format!("rsyslog-probe-{}-{}", std::process::id(), self.runs);
        let result = wait_until(
            READY_TIMEOUT,
            "rsyslogd to file a probe sent over UDP and TCP",
            || {
                let marker = marker.clone();
                let (udp, tcp) = (self.udp, self.tcp);
                let seed = self.seed_log();
                async move {
                    let probe = |proto: &str| format!("<134>1 - - probe - - - {marker}-{proto}");
                    let u = std::net::UdpSocket::bind("127.0.0.1:0")?;
                    u.send_to(probe("udp").as_bytes(), ("127.0.0.1", udp))?;
                    let mut t = std::net::TcpStream::connect(("127.0.0.1", tcp))?;
                    let m = probe("tcp");
                    write!(t, "{} {m}", m.len())?;
                    drop(t);
                    let text = std::fs::read_to_string(&seed).unwrap_or_default();
                    if text.contains(&format!("{marker}-udp"))
                        && text.contains(&format!("{marker}-tcp"))
                    {
                        Ok(())
                    } else {
                        bail!("probe not filed yet")
                    }
                }
            },
        )
        .await;
        if let Err(e) = result {
            let tail = self.output_tail();
            bail!("{e:#}\n{tail}");
        }
        if !self.socket.exists() {
            bail!(
                "rsyslogd did not create {}\n{}",
                self.socket.display(),
                self.output_tail()
            );
        }
        Ok(())
    }

    /// The unix socket rsyslogd reads (`syslog_address = "unix://<this>"`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `udp://127.0.0.1:<port>`.
    pub fn udp_address(&self) -> String {
        format!("udp://127.0.0.1:{}", self.udp)
    }

    /// `tcp://127.0.0.1:<port>`.
    pub fn tcp_address(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.tcp)
    }

    /// The seed's `/var/log/consul/consul.log`, in the temporary directory.
    pub fn seed_log(&self) -> PathBuf {
        self.dir.path().join("var/log/consul/consul.log")
    }

    /// Every local0 message in RFC 5424 form.
    pub fn rfc5424_log(&self) -> PathBuf {
        self.dir.path().join("consul-5424.log")
    }

    /// Every local0 message exactly as received (`%rawmsg%`), one per line.
    pub fn raw_log(&self) -> PathBuf {
        self.dir.path().join("consul-raw.log")
    }

    /// The raw copy as text (empty if absent).
    pub fn read_raw_log(&self) -> String {
        std::fs::read_to_string(self.raw_log()).unwrap_or_default()
    }

    /// The seed's file as text (empty if absent).
    pub fn read_seed_log(&self) -> String {
        std::fs::read_to_string(self.seed_log()).unwrap_or_default()
    }

    /// The RFC 5424 copy as text (empty if absent).
    pub fn read_rfc5424_log(&self) -> String {
        std::fs::read_to_string(self.rfc5424_log()).unwrap_or_default()
    }

    /// The process id of the running rsyslogd.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Spawned::pid)
    }

    /// Freezes rsyslogd (SIGSTOP): it keeps its sockets but reads nothing.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGSTOP)
    }

    /// Thaws a paused rsyslogd (SIGCONT).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)
    }

    fn signal(&mut self, sig: i32) -> anyhow::Result<()> {
        match self.process.as_mut() {
            Some(p) => p.signal(sig),
            None => bail!("rsyslogd is not running"),
        }
    }

    /// Kills rsyslogd (SIGKILL), as a crash would.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut p) = self.process.take() {
            p.kill().context("kill rsyslogd")?;
        }
        Ok(())
    }

    /// Starts rsyslogd again with the same config, ports and files (after [`Rsyslog::kill`]).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.process.is_some() {
            bail!("rsyslogd is still running; kill it first");
        }
        // A killed rsyslogd leaves its socket behind; a new one replaces it.
        self.spawn().await
    }

    /// The last lines rsyslogd printed.
    pub fn output_tail(&self) -> String {
        self.process
            .as_ref()
            .map(Spawned::output_tail)
            .unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(p) = self.process.as_mut() {
            // A stopped process would ignore SIGKILL's cleanup until continued.
            let _ = p.signal(libc::SIGCONT);
        }
    }
}
