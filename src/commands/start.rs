//! `hako start`: release the init blocked on the exec fifo, then run poststart hooks.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::cli::Global;
use crate::container::{self, Container, Status};
use crate::hooks::{self, Kind};

pub fn run(g: &Global, id: &str) -> Result<()> {
    let mut c = Container::load(&g.root, id)?;
    start(&mut c)
}

pub fn start(c: &mut Container) -> Result<()> {
    let status = c.status();
    if status != Status::Created {
        bail!(
            "cannot start container {:?}: it is {status}, not created",
            c.record.id
        );
    }
    let fifo = c.exec_fifo();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .with_context(|| format!("open {}", fifo.display()))?;
    // The init opens its end for writing once a reader exists; wait for its byte, watching
    // that it is still alive.
    loop {
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
        let n = poll(&mut fds, PollTimeout::from(100u16)).context("poll the exec fifo")?;
        if n > 0 {
            let mut buf = [0u8; 1];
            if matches!(f.read(&mut buf), Ok(1)) {
                break;
            }
        }
        if !container::process_alive(c.record.pid, c.record.pid_start_time) {
            bail!(
                "cannot start container {:?}: its init has exited",
                c.record.id
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    crate::trace::phase("init released");
    std::fs::remove_file(&fifo).with_context(|| format!("remove {}", fifo.display()))?;
    c.record.status = Status::Running;
    c.save()?;
    if let Ok(spec) = c.spec() {
        hooks::run_all_warn(
            &spec,
            Kind::Poststart,
            &c.record.state_json(Status::Running),
        );
    }
    Ok(())
}
