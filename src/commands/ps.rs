//! `hako ps [-f json] ID [ps args]`: ps(1)'s output (default `-ef`) cut to the container's
//! processes, or their host pids as a JSON list.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cgroups::Cgroup;
use crate::cli::{Global, ListFormat};
use crate::container::Container;

pub fn run(g: &Global, id: &str, format: ListFormat, args: &[String]) -> Result<()> {
    let c = Container::read(&g.root, id)?;
    let r = &c.record;
    // Without a cgroup (rootless), the container's pid namespace or its init's process tree.
    let pids = match Cgroup::of(r)? {
        Some(cg) => cg.pids()?,
        None if c.status() == crate::container::Status::Stopped => Vec::new(),
        None => crate::linux::proctree::container_pids(r.pid, r.own_pid_ns)?,
    };
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.to_vec()
    };
    let out = Command::new("ps").args(&args).output().context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    print!("{}", filter(&String::from_utf8_lossy(&out.stdout), &pids)?);
    Ok(())
}

/// The header and the lines whose PID column is one of `pids`.
pub fn filter(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps: its output has no PID column (add -o pid or use -f json)");
    };
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_container_lines() {
        let text = "UID PID PPID C STIME TTY TIME CMD\n\
                    root 1 0 0 08:00 ? 00:00:01 /sbin/init\n\
                    root 2710 1 0 08:53 ? 00:00:00 sleep 1000\n\
                    root 27100 1 0 08:53 ? 00:00:00 other\n";
        let out = filter(text, &[2710]).unwrap();
        assert_eq!(
            out,
            "UID PID PPID C STIME TTY TIME CMD\nroot 2710 1 0 08:53 ? 00:00:00 sleep 1000\n"
        );
        assert!(filter("USER COMMAND\nx y\n", &[1]).is_err());
    }
}
