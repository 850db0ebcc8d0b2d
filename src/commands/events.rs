//! `hako events [--stats] [--interval D] ID`: runc's event stream — a `stats` line every
//! interval and an `oom` line when the kernel OOM-kills in the container — until the container
//! stops; with --stats one `stats` line.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollTimeout};

use crate::cgroups::stats::Event;
use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::container::{self, Container, Status};

pub fn run(g: &Global, id: &str, once: bool, interval: &str) -> Result<()> {
    let interval = parse_duration(interval)?;
    let c = Container::read(&g.root, id)?;
    let status = c.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        bail!("cannot get events of container {id:?}: it is {status}");
    }
    let r = &c.record;
    let cg = Cgroup::required(r, "events")?;
    let print_stats = || -> Result<()> {
        let ev = Event {
            typ: "stats",
            id,
            data: Some(cg.stats()?),
        };
        emit(&serde_json::to_string(&ev)?)
    };
    if once {
        return print_stats();
    }
    let mut oom = cg.oom_watch()?;
    let mut next = Instant::now();
    while container::process_alive(r.pid, r.pid_start_time) {
        let now = Instant::now();
        if now >= next {
            // The container may stop between the check and the read: not an error then.
            if let Err(e) = print_stats() {
                if container::process_alive(r.pid, r.pid_start_time) {
                    return Err(e);
                }
                break;
            }
            next = now + interval;
        }
        // Wake for an OOM, the next stats line, or (at least each second) to see if it stopped.
        let wait = (next - Instant::now()).min(Duration::from_secs(1));
        let wait = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
        {
            let mut fds = [PollFd::new(oom.fd(), oom.poll_flags())];
            poll(&mut fds, wait)?;
        }
        for _ in 0..oom.take()? {
            let ev: Event<'_, ()> = Event {
                typ: "oom",
                id,
                data: None,
            };
            emit(&serde_json::to_string(&ev)?)?;
        }
    }
    Ok(())
}

/// One line on stdout, flushed at once (a reader follows the stream live).
fn emit(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("stdout")
}

/// `5s`, `500ms`, `1m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = match num.parse() {
        Ok(n) if n > 0.0 => n,
        _ => bail!("--interval: {s:?}: not a positive duration (e.g. 5s, 500ms)"),
    };
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("--interval: {s:?}: not a positive duration (e.g. 5s, 500ms)"),
    };
    // Between a millisecond (no busy loop) and ten years (a deadline the clock can hold).
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d >= Duration::from_millis(1) && d.as_secs() <= 10 * 365 * 86400 => Ok(d),
        _ => bail!("--interval: {s:?}: must be between 1ms and 10 years"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        for bad in ["99999999999999999999999h", "0.0000001ms", "1e400"] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.starts_with("--interval: "), "{err}");
        }
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        for bad in ["", "0s", "5x", "-1s", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
