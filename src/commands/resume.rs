//! `hako resume ID`: thaw a paused container.

use anyhow::{bail, Result};

use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::container::{self, Container, Status};

pub fn run(g: &Global, id: &str) -> Result<()> {
    let mut c = Container::load(&g.root, id)?;
    let status = c.status();
    if status != Status::Paused {
        bail!("cannot resume container {id:?}: it is {status}, not paused");
    }
    let r = &c.record;
    Cgroup::required(r, "resume")?.freeze(false)?;
    // Back to what it was: a container paused before `start` still waits on its exec fifo.
    c.record.status = if container::fifo_waiting(&c.exec_fifo()) {
        Status::Created
    } else {
        Status::Running
    };
    c.save()
}
