//! The few system calls the benchmark needs that std does not wrap: file
//! descriptor limits, CPU affinity, and kernel receive timestamps on TCP.
//!
//! Every `unsafe` block of the benchmark is here, each with its reason.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::process::Command;

/// Raises `RLIMIT_NOFILE` to at least `want` if the hard limit allows (or if
/// this process may raise the hard limit), else to the hard limit. Children
/// inherit it, so call this before spawning the agent. Returns the new
/// (soft, hard) pair.
pub fn raise_nofile(want: u64) -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_max < want {
        let higher = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // SAFETY: setrlimit only reads the struct; EPERM (no CAP_SYS_RESOURCE)
        // is handled by falling back to the current hard limit below.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &higher) } == 0 {
            return Ok((want, want));
        }
    }
    lim.rlim_cur = lim.rlim_max.min(want.max(lim.rlim_cur));
    // SAFETY: as above; the soft limit never exceeds the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit inside `set`; `cpu` is checked against
    // the set's capacity by the caller (`cpu < CPU_SETSIZE`).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set
}

/// Pins the calling thread (and threads it creates afterwards) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::other(format!("cpu {cpu} out of range")));
    }
    let set = cpu_set(cpu);
    // SAFETY: pid 0 is the calling thread; the set lives across the call.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `cmd`'s child run on `cpu` from its first instruction, like
/// `taskset -c CPU` but without timing taskset's own exec (used where that
/// would distort the figure: startup time).
pub fn pin_child(cmd: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    let set = cpu_set(cpu);
    // SAFETY: the hook runs in the forked child before exec and only calls
    // sched_setaffinity(2), which is async-signal-safe and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Lets `cmd`'s child run on every CPU this machine has online, whatever
/// affinity this process has (it pins itself to the client core).
pub fn pin_child_to_all(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: sysconf reads a system constant.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let n = usize::try_from(online)
        .unwrap_or(1)
        .clamp(1, libc::CPU_SETSIZE as usize);
    // SAFETY: as in `cpu_set`; every index is below CPU_SETSIZE (clamped above).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in 0..n {
        // SAFETY: see above.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the hook runs in the forked child before exec and only calls
    // sched_setaffinity(2), which is async-signal-safe and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Asks the kernel to SIGKILL `cmd`'s child when the spawning thread ends
/// (the benchmark runs everything from its main thread).
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec; prctl(2) is
    // async-signal-safe and neither allocates nor locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `signal` to process `pid`.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes plain integers.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Turns on `SO_TIMESTAMPNS`: every `recvmsg` on the socket then carries the
/// time (CLOCK_REALTIME) the kernel queued the data it returns. On loopback
/// that is the moment the peer's `write` ran, whatever this process's
/// scheduler was doing.
pub fn enable_rx_timestamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `on`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One non-blocking `recvmsg` into `buf`: the byte count (0 at EOF) and the
/// kernel receive timestamp in nanoseconds since the Unix epoch, if the socket
/// has [`enable_rx_timestamps`] on. `WouldBlock` when nothing is queued.
pub fn recv_timestamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<i128>)> {
    // Room for one cmsghdr carrying a timespec, 8-byte aligned.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (which points into `buf`) and at
    // `control`; all three outlive the call, and the lengths are theirs.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled,
    // bounded by `msg.msg_controllen`; the timespec is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

/// CLOCK_REALTIME now, in nanoseconds since the Unix epoch: the clock the
/// kernel's receive timestamps use.
pub fn realtime_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}
