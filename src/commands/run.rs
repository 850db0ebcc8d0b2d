//! `hako run`: create + start, then wait for the container, forwarding signals to it. The exit
//! code is the container's (128+N when a signal N killed it).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use nix::sys::signal::SigSet;

use crate::cli::{Global, RunArgs};
use crate::linux::console;
use crate::terminal;
use crate::trace;

/// Runs the container; returns its exit code.
pub fn run(g: &Global, args: &RunArgs) -> Result<i32> {
    let mut set = SigSet::empty();
    // With a terminal and no --console-socket, `run` takes the pty master itself and relays it.
    let mut relay = None;
    if !args.detach {
        set = terminal::hold_signals()?;
        if args.create.console_socket.is_none() {
            relay = Some(UnixStream::pair().context("socketpair for the terminal")?);
        }
    }
    let (ours, theirs) = match relay {
        Some((a, b)) => (Some(a), Some(OwnedFd::from(b))),
        None => (None, None),
    };
    let super::create::Created {
        mut c,
        spec,
        cgroup,
    } = super::create::create(g, &args.create, theirs)?;
    let has_terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let pty = match ours {
        Some(sock) if has_terminal => Some(console::recv_fd(sock.as_raw_fd())?),
        _ => None,
    };
    if let Err(e) = super::start::start(&mut c, Some(&spec), cgroup.as_ref()) {
        // A failed hook has destroyed it already; an init that died before start has not.
        if c.dir.exists() {
            super::delete::destroy_known(&c, Some(&spec), cgroup.as_ref());
        }
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    let (pid, start_time) = (c.record.pid, c.record.pid_start_time);
    // The lock is not held while waiting: `hako kill/state` of this container must work.
    let id = c.record.id.clone();
    drop(c);
    let code = terminal::wait(pid, &set, pty)?;
    trace::phase("container's process exited (waited for)");
    if !args.keep {
        let c = crate::container::Container::load(&g.root, &id)?;
        trace::phase("state.json loaded");
        // The spec and cgroup are still those of the record unless someone deleted the
        // container meanwhile and made another with its id: that one is not ours to remove.
        if (c.record.pid, c.record.pid_start_time) == (pid, start_time) {
            super::delete::destroy_known(&c, Some(&spec), cgroup.as_ref());
        }
    }
    let _ = set.thread_unblock();
    Ok(code)
}
