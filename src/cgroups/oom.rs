//! OOM notification for `hako events`: on v1 an eventfd registered through
//! cgroup.event_control against memory.oom_control; on v2 a poll on memory.events (the kernel
//! flags the file on change) and its `oom_kill` counter.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::poll::PollFlags;
use nix::sys::eventfd::{EfdFlags, EventFd};

pub struct OomWatch {
    /// The counters: memory.oom_control (v1; the eventfd registration lives as long as this
    /// fd) or memory.events (v2: polls ready, POLLPRI, on change until read again).
    counters: File,
    /// v1's eventfd.
    efd: Option<EventFd>,
    unified: bool,
    kills: u64,
    under_oom: bool,
}

/// A counter in memory.events (v2) or memory.oom_control (v1) text.
pub fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The whole file from offset 0, through this fd (reading is what re-arms a v2 poll).
fn read_all(f: &File) -> std::io::Result<String> {
    let mut buf = vec![0u8; 4096];
    let n = f.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

impl OomWatch {
    pub fn new(dir: &Path, unified: bool) -> Result<OomWatch> {
        let counters = dir.join(if unified {
            "memory.events"
        } else {
            "memory.oom_control"
        });
        let file = File::open(&counters).with_context(|| format!("{}", counters.display()))?;
        let text = read_all(&file).with_context(|| format!("{}", counters.display()))?;
        let efd = if unified {
            None
        } else {
            let efd =
                EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                    .context("eventfd for OOM notification")?;
            let control = dir.join("cgroup.event_control");
            let line = format!("{} {}", efd.as_raw_fd(), file.as_raw_fd());
            std::fs::write(&control, line).with_context(|| format!("{}", control.display()))?;
            Some(efd)
        };
        Ok(OomWatch {
            counters: file,
            efd,
            unified,
            kills: field(&text, "oom_kill"),
            under_oom: false,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.efd {
            Some(efd) => efd.as_fd(),
            None => self.counters.as_fd(),
        }
    }

    pub fn poll_flags(&self) -> PollFlags {
        if self.unified {
            PollFlags::POLLPRI
        } else {
            PollFlags::POLLIN
        }
    }

    /// How many OOM events happened since the last call. The kill counter is the measure; v1
    /// notifies several times per episode and may do so before the kill is counted, so this is
    /// also called on every wake-up, not only when the fd polled ready. An OOM with the killer
    /// disabled (no kill) counts once when the cgroup enters under_oom.
    pub fn take(&mut self) -> Result<u64> {
        if let Some(efd) = &self.efd {
            // Drain the notifications (non-blocking: EAGAIN when there were none).
            let _ = efd.read();
        }
        let Ok(text) = read_all(&self.counters) else {
            // The cgroup is gone with its container: nothing more to report.
            return Ok(0);
        };
        let now = field(&text, "oom_kill");
        let mut new = now.saturating_sub(self.kills);
        self.kills = now;
        let under = field(&text, "under_oom") == 1;
        if under && !self.under_oom && new == 0 {
            new = 1;
        }
        self.under_oom = under;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_oom_kills() {
        let text = "low 0\nhigh 0\nmax 4\noom 2\noom_kill 3\noom_group_kill 0\n";
        assert_eq!(field(text, "oom_kill"), 3);
        assert_eq!(field(text, "oom"), 2);
        assert_eq!(field("", "oom_kill"), 0);
        let v1 = "oom_kill_disable 0\nunder_oom 1\noom_kill 0\n";
        assert_eq!(field(v1, "under_oom"), 1);
    }
}
