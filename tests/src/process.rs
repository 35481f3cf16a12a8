//! Spawning the real programs a suite needs.
//!
//! Owns: picking free loopback ports, finding binaries, temporary working
//! directories, and [`Spawned`], the guard that kills its child on drop and
//! keeps the child's stdout and stderr in files so a failure can show them.
//! Knows nothing of HTTP or of what the programs are.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{bail, Context};

/// Lines of a child's output shown in failure messages.
const TAIL_LINES: usize = 40;

/// Picks `n` distinct loopback ports that are free for both TCP and UDP.
///
/// All sockets stay bound until every port is chosen, so the ports differ;
/// they are released on return, which leaves a short window in which another
/// process could take one. That is the accepted price of never using fixed
/// ports.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n * 20 {
        if ports.len() == n {
            break;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        // DNS and gossip use UDP on the same port numbers as their TCP side.
        let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) else {
            continue;
        };
        held.push((tcp, udp));
        ports.push(port);
    }
    if ports.len() != n {
        bail!("could not find {n} free loopback ports");
    }
    Ok(ports)
}

/// Picks one free loopback port (see [`free_ports`]).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// Finds a third-party program: the path in `env_var` if that is set, else the
/// first of `candidates` that exists (absolute paths, or names searched in
/// `PATH`). The error tells how to install it.
pub fn find_program(env_var: &str, candidates: &[&str], what: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{env_var}={} does not name a file ({what})", path.display());
    }
    for candidate in candidates {
        let candidate = Path::new(candidate);
        if candidate.is_absolute() {
            if candidate.is_file() {
                return Ok(candidate.to_path_buf());
            }
            continue;
        }
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        if let Some(found) = std::env::split_paths(&path_var)
            .map(|dir| dir.join(candidate))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    bail!(
        "{what} is not installed (looked for {}; or set {env_var}): {}",
        candidates.join(", "),
        crate::INSTALL_HINT
    )
}

/// Finds the `tribune` binary: `TRIBUNE_BIN`, else `tribune` in the cargo
/// profile directory that holds this test executable (`<target>/debug/deps/x`
/// → `<target>/debug/tribune`).
pub fn tribune_bin() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("TRIBUNE_BIN").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("TRIBUNE_BIN={} does not name a file", path.display());
    }
    let exe = std::env::current_exe().context("locate the test executable")?;
    if let Some(found) = exe
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("tribune"))
        .find(|p| p.is_file())
    {
        return Ok(found);
    }
    bail!(
        "the tribune binary was not found next to {}: run the suites with scripts/test.sh, \
         or build it first (`cargo build -p tribune-agent --bin tribune`) or set TRIBUNE_BIN",
        exe.display()
    )
}

/// A temporary directory that is removed on drop, unless a test is panicking
/// and `TRIBUNE_TEST_KEEP` is set, in which case it is kept and its path printed.
#[derive(Debug)]
pub struct Workdir(Option<tempfile::TempDir>);

impl Workdir {
    /// Creates `/tmp/tribune-test-<what>-XXXX`.
    pub fn new(what: &str) -> anyhow::Result<Workdir> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tribune-test-{what}-"))
            .tempdir()
            .context("create a temporary directory")?;
        Ok(Workdir(Some(dir)))
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        match &self.0 {
            Some(dir) => dir.path(),
            // Only `drop` takes the TempDir out, and nothing runs after it.
            None => Path::new("/nonexistent"),
        }
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("TRIBUNE_TEST_KEEP").is_some() {
            if let Some(dir) = self.0.take() {
                eprintln!("kept {} (TRIBUNE_TEST_KEEP is set)", dir.keep().display());
            }
        }
    }
}

/// A running child process. Dropping it kills the process (SIGKILL) and reaps
/// it; if the current thread is panicking, the tail of its output is printed
/// first, so a failing test shows what each program said.
#[derive(Debug)]
pub struct Spawned {
    name: String,
    command: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Spawned {
    /// Starts `cmd` with stdin closed and stdout/stderr going to
    /// `<log_dir>/<name>.stdout` and `.stderr`. The child also gets SIGKILL if
    /// the thread that started it dies (for a test binary killed by a timeout),
    /// so start processes from the test body, not from a `spawn_blocking` task.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> anyhow::Result<Spawned> {
        let stdout = log_dir.join(format!("{name}.stdout"));
        let stderr = log_dir.join(format!("{name}.stderr"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(&stdout).context("create stdout file")?)
            .stderr(File::create(&stderr).context("create stderr file")?);
        die_with_parent(&mut cmd);
        let command = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {name}: {command}"))?;
        Ok(Spawned {
            name: name.to_owned(),
            command,
            child,
            stdout,
            stderr,
        })
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command line, as `Debug` prints a `Command`.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process with SIGKILL and reaps it (no-op if it already ended).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if self.exited().is_none() {
            self.child
                .kill()
                .with_context(|| format!("kill {} (pid {})", self.name, self.pid()))?;
        }
        self.child
            .wait()
            .with_context(|| format!("reap {} (pid {})", self.name, self.pid()))?;
        Ok(())
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process if it still runs.
    pub fn signal(&mut self, signal: i32) -> anyhow::Result<()> {
        if self.exited().is_some() {
            bail!("{} (pid {}) has already exited", self.name, self.pid());
        }
        send_signal(self.child.id(), signal)
            .with_context(|| format!("send signal {signal} to {} (pid {})", self.name, self.pid()))
    }

    /// Waits up to `timeout` for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: std::time::Duration) -> anyhow::Result<ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if std::time::Instant::now() >= deadline {
                bail!(
                    "{} (pid {}) did not exit within {timeout:?}\n{}",
                    self.name,
                    self.pid(),
                    self.output_tail()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Fails with the exit status and the output tail if the process has ended.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.exited() {
            None => Ok(()),
            Some(status) => bail!(
                "{} (pid {}) exited early with {status}; command: {}\n{}",
                self.name,
                self.pid(),
                self.command,
                self.output_tail()
            ),
        }
    }

    /// The last lines of stderr and stdout, labelled, for failure messages.
    pub fn output_tail(&self) -> String {
        let mut out = String::new();
        for (label, path) in [("stderr", &self.stderr), ("stdout", &self.stdout)] {
            let tail = tail_lines(path, TAIL_LINES);
            if !tail.is_empty() {
                out.push_str(&format!(
                    "--- {} {label} ({}), last lines ---\n{tail}\n",
                    self.name,
                    path.display()
                ));
            }
        }
        if out.is_empty() {
            out = format!("--- {} wrote nothing to stdout or stderr ---\n", self.name);
        }
        out
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprint!("{}", self.output_tail());
        }
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a file, lossily decoded; empty if unreadable.
fn tail_lines(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// kill(2) on a child this harness spawned and has not reaped yet (so the pid
/// cannot have been reused).
#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to SIGKILL the child when the spawning thread ends, so no
/// program outlives a test binary that was itself killed.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec; it only calls
    // prctl(2), which is async-signal-safe, and neither allocates nor locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(5).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5, "{ports:?}");
    }

    #[test]
    fn spawned_is_killed_on_drop_and_keeps_output() {
        let dir = Workdir::new("unit").unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello; echo oops >&2; exec sleep 600"]);
        let mut child = Spawned::spawn("sleeper", cmd, dir.path()).unwrap();
        let pid = child.pid();
        // The echo lines land before `sleep` starts; poll briefly for them.
        for _ in 0..100 {
            if child.output_tail().contains("hello") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.ensure_running().unwrap();
        let tail = child.output_tail();
        assert!(tail.contains("hello") && tail.contains("oops"), "{tail}");
        drop(child);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists after drop"
        );
    }

    #[test]
    fn early_exit_is_reported_with_output() {
        let dir = Workdir::new("unit").unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'unknown flag -x' >&2; exit 3"]);
        let mut child = Spawned::spawn("failing", cmd, dir.path()).unwrap();
        let status = child.child.wait().unwrap();
        assert_eq!(status.code(), Some(3));
        let err = child.ensure_running().unwrap_err().to_string();
        assert!(
            err.contains("exited early") && err.contains("unknown flag -x"),
            "{err}"
        );
    }

    #[test]
    fn missing_program_names_the_install_script() {
        let err = find_program(
            "TRIBUNE_TEST_NO_SUCH_VAR",
            &["/nonexistent/prog", "no-such-program-here"],
            "a test program",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("scripts/install-test-deps.sh"), "{err}");
    }
}
