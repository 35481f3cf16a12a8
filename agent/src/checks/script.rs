//! The script probe: `ScriptArgs` executed directly, never through a shell.
//!
//! Exit 0 is passing, 1 warning, anything else (a signal included) critical. Standard
//! output and standard error share one pipe, so the output interleaves them in the order
//! they were written; like Consul it keeps the last `max_output` bytes and says so
//! (`Captured N of M bytes\n...\n<tail>`). The script runs in its own process group; on
//! timeout (default 30 s) the whole group is killed and the result is critical with
//! `Timed out (<timeout>) running check`, followed by the output so far. A cancelled check
//! kills the group too.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tracing::warn;
use tribune_api::duration::format_go_duration;

use super::clock::{timeout_at, Clock};
use super::{io_error_text, Outcome};

#[derive(Clone, Debug)]
pub(crate) struct ScriptProbe {
    pub(crate) args: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_output: usize,
}

/// Keeps the last `cap` bytes written and counts them all (Consul's circbuf).
struct TailBuffer {
    cap: usize,
    buf: VecDeque<u8>,
    total: u64,
}

impl TailBuffer {
    fn new(cap: usize) -> TailBuffer {
        TailBuffer {
            cap: cap.max(1),
            buf: VecDeque::new(),
            total: 0,
        }
    }

    fn write(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let data = &data[data.len().saturating_sub(self.cap)..];
        self.buf.extend(data);
        let excess = self.buf.len().saturating_sub(self.cap);
        self.buf.drain(..excess);
    }

    fn render(&self) -> String {
        let bytes: Vec<u8> = self.buf.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        if self.total > self.cap as u64 {
            format!("Captured {} of {} bytes\n...\n{text}", self.cap, self.total)
        } else {
            text.into_owned()
        }
    }
}

/// The script's process group, killed on timeout and when the probe is dropped before the
/// script was reaped.
struct ProcessGroup {
    pgid: Option<i32>,
}

impl ProcessGroup {
    fn kill(&mut self) -> io::Result<()> {
        match self.pgid.take() {
            Some(pgid) => kill_process_group(pgid),
            None => Ok(()),
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[allow(unsafe_code)]
fn kill_process_group(pgid: i32) -> io::Result<()> {
    // kill(-1) would signal every process we may signal, kill(0) our own group.
    if pgid <= 1 {
        return Err(io::Error::other(format!(
            "refusing to kill process group {pgid}"
        )));
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours. A negative pid
    // addresses the process group whose leader is the script we spawned with
    // `process_group(0)` and have not reaped yet, so the group id cannot have been reused.
    let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl ScriptProbe {
    pub(crate) async fn run(&self, clock: &dyn Clock) -> Outcome {
        let deadline = clock.now() + self.timeout;
        let Some(program) = self.args.first() else {
            return Outcome::critical("exec: no command");
        };
        let (reader, writer) = match io::pipe() {
            Ok(pipe) => pipe,
            Err(err) => return Outcome::critical(format!("pipe: {}", io_error_text(&err))),
        };
        let writer_err = match writer.try_clone() {
            Ok(w) => w,
            Err(err) => return Outcome::critical(format!("pipe: {}", io_error_text(&err))),
        };
        let mut command = Command::new(program);
        command
            .args(&self.args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer_err))
            .process_group(0)
            .kill_on_drop(true);
        let spawned = command.spawn();
        // The command holds our copies of the pipe's write end; the reader sees EOF only
        // once they are closed too.
        drop(command);
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                return Outcome::critical(format!("exec: {program:?}: {}", io_error_text(&err)))
            }
        };
        let mut group = ProcessGroup {
            pgid: child.id().and_then(|pid| i32::try_from(pid).ok()),
        };
        let mut receiver = match pipe::Receiver::from_owned_fd(OwnedFd::from(reader)) {
            Ok(r) => r,
            Err(err) => return Outcome::critical(format!("pipe: {}", io_error_text(&err))),
        };

        let mut output = TailBuffer::new(self.max_output);
        let finished = timeout_at(clock, deadline, async {
            let read = async {
                let mut chunk = [0u8; 8192];
                loop {
                    match receiver.read(&mut chunk).await {
                        Ok(0) => break,
                        Ok(n) => output.write(&chunk[..n]),
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            };
            let ((), status) = tokio::join!(read, child.wait());
            status
        })
        .await;

        let status = match finished {
            Ok(status) => {
                group.pgid = None; // reaped: the id may be reused from now on
                status
            }
            Err(_) => {
                if let Err(err) = group.kill() {
                    warn!(target: "checks", error = %err, "Check script could not be killed after its timeout.");
                }
                // Wait for the exit so that two runs of one check never overlap.
                let _ = child.wait().await;
                let mut text = format!(
                    "Timed out ({}) running check",
                    format_go_duration(self.timeout)
                );
                let captured = output.render();
                if !captured.is_empty() {
                    text.push_str("\n\n");
                    text.push_str(&captured);
                }
                return Outcome::critical(text);
            }
        };
        let captured = output.render();
        match status.map(|s| s.code()) {
            Ok(Some(0)) => Outcome::passing(captured),
            Ok(Some(1)) => Outcome::warning(captured),
            Ok(_) => Outcome::critical(captured),
            Err(err) => Outcome::critical(format!("wait: {}", io_error_text(&err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::clock::{ManualClock, TokioClock};
    use crate::checks::Status;
    use std::sync::Arc;

    fn probe(script: &str) -> ScriptProbe {
        ScriptProbe {
            args: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_secs(30),
            max_output: 4096,
        }
    }

    #[tokio::test]
    async fn exit_codes_map_to_statuses() {
        assert_eq!(
            probe("echo fine").run(&TokioClock).await,
            Outcome::passing("fine\n")
        );
        assert_eq!(
            probe("echo meh; exit 1").run(&TokioClock).await,
            Outcome::warning("meh\n")
        );
        assert_eq!(
            probe("echo bad; exit 2").run(&TokioClock).await,
            Outcome::critical("bad\n")
        );
        assert_eq!(
            probe("kill -9 $$").run(&TokioClock).await,
            Outcome::critical("")
        );
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_combined_in_order() {
        let out = probe("echo one; echo two >&2; echo three")
            .run(&TokioClock)
            .await;
        assert_eq!(out, Outcome::passing("one\ntwo\nthree\n"));
    }

    #[tokio::test]
    async fn runs_without_a_shell() {
        let out = ScriptProbe {
            args: vec!["/bin/echo".into(), "$HOME".into(), "a;b".into()],
            timeout: Duration::from_secs(30),
            max_output: 4096,
        }
        .run(&TokioClock)
        .await;
        assert_eq!(out, Outcome::passing("$HOME a;b\n"));
    }

    #[tokio::test]
    async fn missing_program_is_critical() {
        let out = ScriptProbe {
            args: vec!["/nonexistent/check".into()],
            timeout: Duration::from_secs(30),
            max_output: 4096,
        }
        .run(&TokioClock)
        .await;
        assert_eq!(
            out,
            Outcome::critical("exec: \"/nonexistent/check\": no such file or directory")
        );
    }

    #[tokio::test]
    async fn output_keeps_the_tail_when_capped() {
        let mut p = probe("printf 'abcdefghij'; printf 'KLMNOP' >&2");
        p.max_output = 4;
        assert_eq!(
            p.run(&TokioClock).await,
            Outcome::passing("Captured 4 of 16 bytes\n...\nMNOP")
        );
    }

    #[tokio::test]
    async fn large_output_does_not_block_the_script() {
        let mut p = probe("head -c 1048576 /dev/zero | tr '\\0' 'z'; echo; echo end");
        p.max_output = 8;
        assert_eq!(
            p.run(&TokioClock).await,
            Outcome::passing("Captured 8 of 1048581 bytes\n...\nzzz\nend\n")
        );
    }

    /// Whether `pid` is gone (or a zombie waiting for an init that may never reap it).
    fn dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    /// The script starts `sleep` in the background and records its pid; once it has, the
    /// manual clock reaches the timeout.
    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut p = probe(&format!(
            "sleep 30 & echo $! > {0}.tmp && mv {0}.tmp {0}; echo started; wait",
            pid_file.display()
        ));
        p.timeout = Duration::from_secs(2);
        let clock = Arc::new(ManualClock::new());
        let started = std::time::Instant::now();
        let run = tokio::spawn({
            let clock = clock.clone();
            async move { p.run(&*clock).await }
        });
        while !pid_file.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the script never started"
            );
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(2));
        let out = run.await.unwrap();
        assert_eq!(out.status, Status::Critical);
        assert!(
            out.output.starts_with("Timed out (2s) running check"),
            "{}",
            out.output
        );
        let sleep_pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_string();
        // `sleep` was in the script's process group, so it died with the shell.
        while !dead(&sleep_pid) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sleep {sleep_pid} survived"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn tail_buffer_counts_everything() {
        let mut b = TailBuffer::new(5);
        b.write(b"abc");
        assert_eq!(b.render(), "abc");
        b.write(b"defgh");
        assert_eq!(b.render(), "Captured 5 of 8 bytes\n...\ndefgh");
        b.write(b"0123456789");
        assert_eq!(b.render(), "Captured 5 of 18 bytes\n...\n56789");
    }
}
