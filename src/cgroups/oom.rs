//! OOM notification for `hako events`: on v1 an eventfd registered through
//! cgroup.event_control against memory.oom_control; on v2 a poll on memory.events (the kernel
//! flags the file on change) and its `oom_kill` counter.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::poll::PollFlags;
use nix::sys::eventfd::{EfdFlags, EventFd};

pub enum OomWatch {
    V1 {
        efd: EventFd,
        /// Kept open: the registration lives as long as this fd.
        _oom_control: File,
        dir: PathBuf,
    },
    V2 {
        events: File,
        kills: u64,
    },
}

/// The `oom_kill` count in memory.events text.
pub fn oom_kills(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == "oom_kill")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

impl OomWatch {
    pub fn new(dir: &Path, unified: bool) -> Result<OomWatch> {
        if unified {
            let path = dir.join("memory.events");
            let mut events = File::open(&path).with_context(|| format!("{}", path.display()))?;
            let mut text = String::new();
            events.read_to_string(&mut text).context("memory.events")?;
            return Ok(OomWatch::V2 {
                kills: oom_kills(&text),
                events,
            });
        }
        let path = dir.join("memory.oom_control");
        let oom_control = File::open(&path).with_context(|| format!("{}", path.display()))?;
        let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)
            .context("eventfd for OOM notification")?;
        let control = dir.join("cgroup.event_control");
        let line = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
        std::fs::write(&control, line).with_context(|| format!("{}", control.display()))?;
        Ok(OomWatch::V1 {
            efd,
            _oom_control: oom_control,
            dir: dir.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            OomWatch::V1 { efd, .. } => efd.as_fd(),
            OomWatch::V2 { events, .. } => events.as_fd(),
        }
    }

    pub fn poll_flags(&self) -> PollFlags {
        match self {
            OomWatch::V1 { .. } => PollFlags::POLLIN,
            OomWatch::V2 { .. } => PollFlags::POLLPRI,
        }
    }

    /// After the fd polled ready: how many OOM kills happened (v1 counts notifications; one is
    /// also sent when the cgroup is removed, which is not an OOM).
    pub fn take(&mut self) -> Result<u64> {
        match self {
            OomWatch::V1 { efd, dir, .. } => {
                let n = efd.read().context("read the OOM eventfd")?;
                Ok(if dir.exists() { n } else { 0 })
            }
            OomWatch::V2 { events, kills } => {
                let mut text = String::new();
                events.rewind().context("memory.events")?;
                events.read_to_string(&mut text).context("memory.events")?;
                let now = oom_kills(&text);
                let new = now.saturating_sub(*kills);
                *kills = now;
                Ok(new)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_oom_kills() {
        let text = "low 0\nhigh 0\nmax 4\noom 2\noom_kill 3\noom_group_kill 0\n";
        assert_eq!(oom_kills(text), 3);
        assert_eq!(oom_kills(""), 0);
    }
}
