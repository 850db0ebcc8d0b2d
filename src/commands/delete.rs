//! `hako delete`: kill if asked, remove the cgroup and the record, then run the poststop hooks.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::container::{self, Container, Status};
use crate::hooks::{self, Kind};
use crate::trace;

pub fn run(g: &Global, id: &str, force: bool) -> Result<()> {
    let c = match Container::load(&g.root, id) {
        Ok(c) => c,
        // runc: `delete --force` of a container that does not exist is not an error.
        Err(_) if force && container::validate_id(id).is_ok() && !g.root.join(id).exists() => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    trace::phase("state.json loaded");
    // runtime.md: deleting a container that is not stopped MUST fail and change nothing.
    match c.status() {
        Status::Stopped | Status::Creating => {}
        _ if force => {}
        status => {
            bail!("cannot delete container {id:?}: it is {status}, not stopped (--force kills it)")
        }
    }
    // Read before the record goes: the poststop hooks run after it (config.md "Poststop").
    let spec = c
        .spec_for_hooks()
        .map_err(|e| tracing::warn!("poststop hooks not run: {e:#}"))
        .ok()
        .flatten();
    trace::phase("status read (/proc), config copy loaded (if it has hooks)");
    destroy(&c, spec.as_ref());
    Ok(())
}

/// `destroy_known` with the container's cgroup opened from its record.
pub fn destroy(c: &Container, poststop: Option<&Spec>) {
    let cgroup = Cgroup::of(&c.record).ok().flatten();
    trace::phase("cgroup opened");
    destroy_known(c, poststop, cgroup.as_ref());
}

/// Undoes everything `create` made, in reverse; errors are logged, not returned, so that one
/// stuck resource does not keep the others alive. `poststop`: the spec whose poststop hooks
/// run at the end (None: none run); `cgroup`: the container's (None: it has none).
pub fn destroy_known(c: &Container, poststop: Option<&Spec>, cgroup: Option<&Cgroup>) {
    let r = &c.record;
    tracing::debug!(
        "delete {}: kill pid {}, remove cgroup {}, then the state directory",
        r.id,
        r.pid,
        r.cgroup_path.display()
    );
    if let Some(cg) = cgroup {
        // A frozen cgroup's processes cannot die: thaw first.
        if r.status == Status::Paused {
            let _ = cg.freeze(false);
        }
    }
    // A pid that is not (or no longer) ours does not become ours again: one look is enough.
    let alive = container::process_alive(r.pid, r.pid_start_time);
    if alive {
        let _ = kill(Pid::from_raw(r.pid), Signal::SIGKILL);
    }
    // Without a pid namespace of its own, the container's other processes outlive its init:
    // killed frozen, like `kill --all`, so that a fork loop cannot outrun it.
    if !r.own_pid_ns {
        if let Some(cg) = cgroup {
            if let Err(e) = super::kill::signal_all(cg, libc::SIGKILL, false) {
                tracing::warn!("{e:#}");
            }
        }
    }
    trace::phase("process killed");
    if alive {
        wait_gone(r.pid, r.pid_start_time);
    }
    trace::phase("process gone (reaped)");
    if let Some(cg) = cgroup {
        if let Err(e) = remove_cgroup(cg) {
            tracing::warn!("{e:#}");
        }
    }
    trace::phase("cgroup removed");
    if let Err(e) = c.remove_dir() {
        tracing::warn!("{e:#}");
    }
    trace::phase("state directory removed");
    if let Some(spec) = poststop {
        hooks::run_all_warn(spec, Kind::Poststop, &r.state_json(Status::Stopped));
        trace::phase("poststop hooks run");
    }
}

/// Waits (up to 10 s) until the process is gone or a zombie.
fn wait_gone(pid: i32, start: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while container::process_alive(pid, start) && Instant::now() < deadline {
        // Our own child (after `run`) must be reaped to stop being counted.
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Removes the cgroup, retrying while the last processes leave it.
fn remove_cgroup(cg: &Cgroup) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cg.remove() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
