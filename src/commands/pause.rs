//! `hako pause ID`: freeze every process of a running (or created) container.

use anyhow::{bail, Result};

use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::container::{Container, Status};

pub fn run(g: &Global, id: &str) -> Result<()> {
    let mut c = Container::load(&g.root, id)?;
    let status = c.status();
    if !matches!(status, Status::Running | Status::Created) {
        bail!("cannot pause container {id:?}: it is {status}, not running");
    }
    let r = &c.record;
    Cgroup::required(r, "pause")?.freeze(true)?;
    c.record.status = Status::Paused;
    c.save()
}
