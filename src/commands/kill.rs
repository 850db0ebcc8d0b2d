//! `hako kill [--all] ID [SIGNAL]`.

use std::str::FromStr;

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::container::{Container, Status};

/// A signal by name (`KILL`, `SIGKILL`, any case) or number (`9`, and realtime ones); 0 only
/// checks that the process exists, as kill(2) and runc allow.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if n >= 0 && n <= libc::SIGRTMAX() {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match Signal::from_str(&name) {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("invalid signal {s:?}"),
    }
}

fn send(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: kill(2) with a plain pid and signal number.
    if unsafe { libc::kill(pid, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!("kill {pid}: {e}");
    }
    Ok(())
}

/// runc's text for signalling a container whose init is gone; containerd's shim matches it.
const NOT_RUNNING: &str = "container not running";

pub fn run(g: &Global, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let c = Container::read(&g.root, id)?;
    let status = c.status();
    let r = &c.record;
    if all {
        // Also on a stopped container: without a pid namespace of its own, processes the init
        // left behind are still in its cgroup (runc allows it too).
        return match Cgroup::of(r)? {
            Some(cg) => signal_all(&cg, sig, status == Status::Paused),
            // Rootless without a cgroup: nothing to freeze; the processes /proc shows.
            None if status == Status::Stopped => Ok(()),
            None => {
                for pid in crate::linux::proctree::container_pids(r.pid, r.own_pid_ns)? {
                    let _ = send(pid, sig);
                }
                Ok(())
            }
        };
    }
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        bail!("{NOT_RUNNING}");
    }
    send(r.pid, sig)?;
    // A frozen process dies only once thawed (runc thaws a paused container it SIGKILLs).
    if status == Status::Paused && sig == libc::SIGKILL {
        if let Some(cg) = Cgroup::of(r)? {
            cg.freeze(false)?;
        }
    }
    Ok(())
}

/// Signals every process of the cgroup with the cgroup frozen, so that none can fork a child
/// the list misses (a fork loop would outrun a plain walk over cgroup.procs).
pub fn signal_all(cg: &Cgroup, sig: i32, paused: bool) -> Result<()> {
    // Freezing a cgroup that is gone would make its directory again.
    if !cg.exists() {
        return Ok(());
    }
    if let Err(e) = cg.freeze(true) {
        tracing::warn!("kill --all: {e:#}: signalling without freezing");
    }
    let pids = cg.pids();
    for pid in pids.iter().flatten() {
        let _ = send(*pid, sig);
    }
    // A paused container stays paused, but a SIGKILL is delivered only once thawed.
    if !paused || sig == libc::SIGKILL {
        cg.freeze(false)?;
    }
    pids.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_spellings() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("35").unwrap(), 35);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert!(parse_signal("-1").is_err());
        assert!(parse_signal("999").is_err());
    }
}
