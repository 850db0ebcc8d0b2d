//! `hako start`: release the init blocked on the exec fifo, wait until it has executed the
//! program (its startContainer hooks ran), then run the poststart hooks.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use oci_spec::runtime::Spec;

use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::container::{self, Container, Status};
use crate::hooks::{self, Kind};
use crate::trace;

pub fn run(g: &Global, id: &str) -> Result<()> {
    let mut c = Container::load(&g.root, id)?;
    trace::phase("state.json loaded");
    let status = c.status();
    if status != Status::Created {
        bail!(
            "cannot start container {:?}: it is {status}, not created",
            c.record.id
        );
    }
    let spec = c.spec_for_hooks()?;
    trace::phase("status read (/proc), config copy loaded (if it has hooks)");
    start(&mut c, spec.as_ref(), None)
}

/// Starts a container found `created` (by `run` from its own create, under the lock held since:
/// an init that died meanwhile is seen by `released`). When a startContainer or poststart hook
/// fails (or the program cannot be executed), the container is stopped and destroyed, poststop
/// hooks included (runtime.md lifecycle steps 7 and 9 continue at step 12), and the error
/// returned. `spec`: the container's, None when it has no hooks; `cgroup`: the container's,
/// when already open.
pub fn start(c: &mut Container, spec: Option<&Spec>, cgroup: Option<&Cgroup>) -> Result<()> {
    let fifo = c.exec_fifo();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .with_context(|| format!("open {}", fifo.display()))?;
    trace::phase("exec fifo opened");
    released(c, &f)?;
    trace::phase("init released (its byte read from the fifo)");
    tracing::debug!(
        "start {}: init released from the exec fifo (startContainer hooks, then execve)",
        c.record.id
    );
    if let Err(e) = executed(f) {
        destroy(c, spec, cgroup);
        return Err(e);
    }
    trace::phase("program executed (the fifo closed at the init's execve)");
    match std::fs::remove_file(&fifo) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove {}", fifo.display()))
        }
        _ => {}
    }
    tracing::debug!("start {}: process executed", c.record.id);
    // Not saved: "running" is read from the live process and the fifo's absence
    // (Container::status), and each save is two metadata writes on the state's disk.
    c.record.status = Status::Running;
    trace::phase("exec fifo removed (running)");
    let state = c.record.state_json(Status::Running);
    if let Some(Err(e)) = spec.map(|s| hooks::run_all(s, Kind::Poststart, &state, None)) {
        destroy(c, spec, cgroup);
        return Err(e);
    }
    trace::phase("poststart hooks run");
    Ok(())
}

fn destroy(c: &Container, spec: Option<&Spec>, cgroup: Option<&Cgroup>) {
    match cgroup {
        Some(cg) => super::delete::destroy_known(c, spec, Some(cg)),
        None => super::delete::destroy(c, spec),
    }
}

/// Waits for the init's first byte: it has opened the fifo and goes on to startContainer hooks
/// and execve. Watches meanwhile that it is still alive and was not released by an earlier
/// `start` that did not finish: the init stamps the fifo only after writing its byte, so once
/// the stamp is seen, a byte meant for us is already there to read.
fn released(c: &Container, mut f: &File) -> Result<()> {
    loop {
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(100u16)).context("poll the exec fifo")?;
        let stamped = !container::fifo_waiting(&c.exec_fifo());
        let mut buf = [0u8; 1];
        if matches!(f.read(&mut buf), Ok(1)) {
            return Ok(());
        }
        if stamped {
            bail!(
                "cannot start container {:?}: it has already been started",
                c.record.id
            );
        }
        if !container::process_alive(c.record.pid, c.record.pid_start_time) {
            bail!(
                "cannot start container {:?}: its init has exited",
                c.record.id
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads the fifo to its end: the init's write end closes at execve (close-on-exec) or when it
/// exits; anything written before is the reason the program did not run.
fn executed(mut f: File) -> Result<()> {
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty())).context("exec fifo")?;
    let mut why = Vec::new();
    f.read_to_end(&mut why).context("read the exec fifo")?;
    if !why.is_empty() {
        bail!("{}", String::from_utf8_lossy(&why));
    }
    Ok(())
}
