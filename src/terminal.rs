//! Waiting for a container's process as its parent: signals forwarded to it, and with a pty
//! whose master hako holds (`run -t` / `exec -t` without --console-socket), the terminal
//! relayed — our stdin to it, its output to our stdout, window size changes.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::linux::console;

/// Signals relayed to the container instead of dying of them.
const FORWARDED: [Signal; 17] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGURG,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
];

/// Becomes the reaper of the process even when it is a grandchild (a pid namespace's pid 1),
/// and holds the forwarded signals and SIGCHLD from before the clone so none is lost (the
/// child unblocks its own). Returns the held set for `wait`.
pub fn hold_signals() -> Result<SigSet> {
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set.thread_block().context("block signals")?;
    Ok(set)
}

/// Waits for `pid`, forwarding signals to it and, with a pty, relaying our
/// stdin to it and its output to our stdout.
pub fn wait(pid: i32, set: &SigSet, pty: Option<OwnedFd>) -> Result<i32> {
    // Non-blocking: a SIGCHLD of a process reaped already (an intermediate one) must not leave
    // the loop waiting on the signalfd instead of relaying.
    let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
    let signals = SignalFd::with_flags(set, flags).context("signalfd")?;
    let _raw = pty.as_ref().and_then(|_| console::raw_mode(0));
    if let Some(m) = &pty {
        console::copy_winsize(0, m.as_raw_fd());
    }
    let mut master_open = pty.is_some();
    let mut stdin_open = pty.is_some();
    loop {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let (Some(m), true) = (&pty, master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        let stdin = std::io::stdin();
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => other.context("poll")?,
        };
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0] {
            while let Some(info) = signals.read_signal().context("read signalfd")? {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match sig {
                    Signal::SIGCHLD => {
                        if let Some(code) = reap(pid) {
                            if let Some(m) = &pty {
                                drain(m);
                            }
                            return Ok(code);
                        }
                    }
                    Signal::SIGWINCH if pty.is_some() => {
                        console::copy_winsize(0, pty.as_ref().map_or(0, |m| m.as_raw_fd()))
                    }
                    _ => {
                        let _ = kill(Pid::from_raw(pid), sig);
                    }
                }
            }
        }
        let mut next = 1;
        if let (Some(m), true) = (&pty, master_open) {
            if ready[next] && !copy(m.as_raw_fd(), 1) {
                master_open = false;
            }
            next += 1;
        }
        if stdin_open && ready.get(next).copied().unwrap_or(false) {
            if let Some(m) = &pty {
                stdin_open = copy(0, m.as_raw_fd());
            }
        }
    }
}

/// Reaps exited children; the container's pid 1 decides the exit code (128+N for signal N).
fn reap(pid: i32) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Some(code),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => return Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// One read from `from` written to `to`; false at end of file or error (EIO: the pty's other
/// side has closed).
fn copy(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            // SAFETY: `to` is an open fd (our stdout or the pty master) for the whole loop.
            let out = unsafe { std::os::fd::BorrowedFd::borrow_raw(to) };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                match nix::unistd::write(out, rest) {
                    Ok(w) => rest = &rest[w..],
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

/// What the container wrote before it exited, still buffered in the pty.
fn drain(master: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while copy(master.as_raw_fd(), 1) {}
}
