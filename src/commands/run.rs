//! `hako run`: create + start, then wait for the container, forwarding signals to it. The exit
//! code is the container's (128+N when a signal N killed it).

use anyhow::{Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cli::{Global, RunArgs};

/// Signals `run` relays to the container instead of dying of them.
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

/// Runs the container; returns its exit code.
pub fn run(g: &Global, args: &RunArgs) -> Result<i32> {
    let mut set = SigSet::empty();
    if !args.detach {
        // Become the reaper of the container's pid 1 even when it is a grandchild, and hold
        // signals from before the clone so none is lost (the init unblocks its own).
        nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
        for s in FORWARDED {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        set.thread_block().context("block signals")?;
    }
    let mut c = super::create::create(g, &args.create)?;
    if let Err(e) = super::start::start(&mut c) {
        // A failed hook has destroyed it already; an init that died before start has not.
        if c.dir.exists() {
            super::delete::destroy(&c, true);
        }
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    let pid = c.record.pid;
    // The lock is not held while waiting: `hako kill/state` of this container must work.
    let id = c.record.id.clone();
    drop(c);
    let code = wait(pid, &set)?;
    if !args.keep {
        let c = crate::container::Container::load(&g.root, &id)?;
        super::delete::destroy(&c, true);
    }
    let _ = set.thread_unblock();
    Ok(code)
}

fn wait(pid: i32, set: &SigSet) -> Result<i32> {
    loop {
        let sig = set.wait().context("sigwait")?;
        if sig != Signal::SIGCHLD {
            let _ = kill(Pid::from_raw(pid), sig);
            continue;
        }
        // Reap every child that exited; the container's pid 1 decides the exit code.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(code),
                Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => return Ok(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
