//! [`Lab`]: network namespaces joined by a bridge, so a suite can cut one node off the
//! others (a real partition: packets are lost, nothing answers "refused").
//!
//! Only loopback-range addresses are used, and nothing changes in the namespace the tests
//! run in: every interface lives in namespaces the lab creates and deletes.
//!
//! ```text
//!                       hub namespace (the test's HTTP client runs here)
//!        lo: 127.0.3.1 ──────────────┬──────────────┬──────────────┐
//!        br0 (bridge, no address)    │              │              │
//!         │        │        │        vm0            vm1            vm2   (management links)
//!        vb0      vb1      vb2        │              │              │
//!         │        │        │       mgmt0          mgmt0          mgmt0  127.0.2.<n>
//!        eth0     eth0     eth0     node 0         node 1         node 2
//!     127.0.0.2 127.0.0.3 127.0.0.4   (each its own namespace)
//! ```
//!
//! Node `i`'s cluster address is `127.0.0.<i+2>` (the seed's layout, so agents can use the
//! seed's fixed ports: every namespace has its own port space) and its management address
//! `127.0.2.<i+2>`, where the test reaches its HTTP API. [`Lab::isolate`] takes node `i`'s
//! bridge-side veth down: its gossip and RPC traffic is lost while the test still talks to
//! it. Each namespace has its own `lo` with 127.0.0.1 alone; `route_localnet` lets
//! 127.0.0.0/8 packets cross the veths.
//!
//! Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and `ip` from iproute2. The processes of a
//! node are started with `ip netns exec`; the test's own sockets enter the hub through
//! [`Lab::enter_hub`] on a dedicated thread ([`Lab::run_in_hub`]).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

/// Prefix of every namespace a lab creates (`trib-<pid>-<n>-hub`, `...-node0`, ...).
const PREFIX: &str = "trib-";

/// The hub's address on its `lo`, the source of the test's connections to nodes.
pub const HUB_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 1);

/// Network namespaces for `n` nodes and a hub; removed on drop.
#[derive(Debug)]
pub struct Lab {
    name: String,
    hub: String,
    nodes: Vec<String>,
}

impl Lab {
    /// Creates the hub and `n` (at most 200) node namespaces, wired as in the module docs.
    /// Namespaces left behind by test processes that no longer exist are removed first.
    pub fn create(n: usize) -> anyhow::Result<Lab> {
        if n == 0 || n > 200 {
            bail!("a lab has 1 to 200 nodes, not {n}");
        }
        remove_stale();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{seq}", std::process::id());
        let mut lab = Lab {
            hub: format!("{name}-hub"),
            nodes: Vec::new(),
            name,
        };
        // On error, `lab` drops and removes what was created so far.
        ip(&["netns", "add", &lab.hub])?;
        lab.prepare(&lab.hub.clone(), &[])?;
        lab.in_ns(
            &lab.hub.clone(),
            &format!(
                "ip addr add {HUB_ADDR}/32 dev lo && ip link add br0 type bridge && \
                 ip link set br0 up"
            ),
        )?;
        for i in 0..n {
            let ns = format!("{}-node{i}", lab.name);
            ip(&["netns", "add", &ns])?;
            lab.nodes.push(ns.clone());
            let hub = lab.hub.clone();
            for (hub_side, node_side) in [(format!("vb{i}"), "eth0"), (format!("vm{i}"), "mgmt0")] {
                ip(&[
                    "-n", &hub, "link", "add", &hub_side, "type", "veth", "peer", "name",
                    node_side, "netns", &ns,
                ])?;
            }
            let (addr, mgmt) = (lab.addr(i), lab.mgmt_addr(i));
            lab.prepare(&ns, &["eth0", "mgmt0"])?;
            lab.in_ns(
                &ns,
                &format!(
                    "ip addr add {addr}/24 dev eth0 && ip link set eth0 up && \
                     ip addr add {mgmt}/32 dev mgmt0 && ip link set mgmt0 up && \
                     ip route add {HUB_ADDR}/32 dev mgmt0 src {mgmt}"
                ),
            )?;
            lab.in_ns(
                &hub,
                &format!(
                    "echo 1 > /proc/sys/net/ipv4/conf/vm{i}/route_localnet && \
                     ip link set vb{i} master br0 && ip link set vb{i} up && \
                     ip link set vm{i} up && ip route add {mgmt}/32 dev vm{i} src {HUB_ADDR}"
                ),
            )?;
        }
        Ok(lab)
    }

    /// Loopback with 127.0.0.1 alone (so the rest of 127.0.0.0/8 is routed, not local) and
    /// `route_localnet` everywhere (so 127.0.0.0/8 may leave through a veth).
    fn prepare(&self, ns: &str, devs: &[&str]) -> anyhow::Result<()> {
        let mut script = String::from(
            "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && \
             echo 1 > /proc/sys/net/ipv4/conf/default/route_localnet && \
             ip link set lo up && ip addr del 127.0.0.1/8 dev lo && \
             ip addr add 127.0.0.1/32 dev lo",
        );
        for d in devs {
            script.push_str(&format!(
                " && echo 1 > /proc/sys/net/ipv4/conf/{d}/route_localnet"
            ));
        }
        self.in_ns(ns, &script)
    }

    fn in_ns(&self, ns: &str, script: &str) -> anyhow::Result<()> {
        run(Command::new("ip").args(["netns", "exec", ns, "sh", "-ec", script]))
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the lab has no nodes (never: [`Lab::create`] refuses 0).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s cluster address, `127.0.0.<i+2>`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, i as u8 + 2)
    }

    /// Node `i`'s management address, `127.0.2.<i+2>`, reachable from the hub even while
    /// the node is isolated.
    pub fn mgmt_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 2, i as u8 + 2)
    }

    /// Node `i`'s namespace name.
    pub fn namespace(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// `ip netns exec <node i> <program>`: a command that runs inside node `i`.
    pub fn command(&self, i: usize, program: impl Into<PathBuf>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.nodes[i]])
            .arg(program.into());
        cmd
    }

    /// Cuts node `i` off the bridge: its cluster traffic is lost in both directions.
    pub fn isolate(&self, i: usize) -> anyhow::Result<()> {
        ip(&["-n", &self.hub, "link", "set", &format!("vb{i}"), "down"])
    }

    /// Reconnects node `i` to the bridge.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        ip(&["-n", &self.hub, "link", "set", &format!("vb{i}"), "up"])
    }

    /// Moves the calling thread into the hub namespace: sockets it creates afterwards, and
    /// processes (and threads) it starts, live there. Only for a thread the caller owns.
    pub fn enter_hub(&self) -> anyhow::Result<()> {
        enter(&self.hub)
    }

    /// Runs `body` on a new (scoped) thread inside the hub namespace, with a current-thread
    /// tokio runtime, so every socket and child process of the body is in the hub; returns
    /// its result. A panic in the body is resumed here.
    pub fn run_in_hub<F, Fut>(&self, body: F) -> anyhow::Result<()>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("netns-hub".into())
                .spawn_scoped(scope, move || -> anyhow::Result<()> {
                    enter(&self.hub)?;
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("build a tokio runtime")?;
                    rt.block_on(body())
                })
                .context("spawn the hub thread")?;
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.hub)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Moves the calling thread into network namespace `ns` (a name under /var/run/netns).
#[allow(unsafe_code)]
fn enter(ns: &str) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let path = format!("/var/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
    // SAFETY: setns(2) on an open descriptor of a network namespace; it changes only the
    // calling thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns into {path}"));
    }
    Ok(())
}

/// Deletes `trib-<pid>-...` namespaces whose test process is gone.
fn remove_stale() {
    let Ok(dir) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| {
        format!(
            "run {shown} (network namespaces need `ip` from iproute2; {})",
            crate::INSTALL_HINT
        )
    })?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}: {} (network namespaces need root: CAP_SYS_ADMIN and \
             CAP_NET_ADMIN)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
