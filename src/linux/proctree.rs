//! The processes of a container that has no cgroup (rootless without a writable one), found
//! in /proc: with a pid namespace of its own, every process in that namespace (all of them
//! are the container's, whoever forked them); without, the init and its descendants.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

/// The container's processes (host pids), the init first.
pub fn container_pids(init: i32, own_pid_ns: bool) -> Result<Vec<i32>> {
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = ns_of(init).with_context(|| format!("/proc/{init}/ns/pid"))?;
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").context("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if own_pid_ns {
            if ns_of(pid).as_ref() == Some(&init_ns) {
                procs.push((pid, 0));
            }
        } else if let Some(ppid) = ppid_of(pid) {
            procs.push((pid, ppid));
        }
    }
    if own_pid_ns {
        let mut pids: Vec<i32> = procs.into_iter().map(|(p, _)| p).collect();
        pids.sort_by_key(|p| (*p != init, *p));
        return Ok(pids);
    }
    Ok(descendants(init, &procs))
}

/// /proc/PID/stat's fourth field (after the parenthesised name, which may hold anything).
fn ppid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and everything below it in the (pid, ppid) list, `root` first. Pure.
pub fn descendants(root: i32, procs: &[(i32, i32)]) -> Vec<i32> {
    let mut found = vec![root];
    let mut seen = BTreeSet::from([root]);
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for &(pid, ppid) in procs {
            if ppid == parent && seen.insert(pid) {
                found.push(pid);
            }
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_of_the_init_only() {
        let procs = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 11),
            (13, 10),
            (20, 1),
            (21, 20),
        ];
        assert_eq!(descendants(10, &procs), vec![10, 11, 13, 12]);
        assert_eq!(descendants(21, &procs), vec![21]);
    }

    #[test]
    fn own_process_tree_from_proc() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let pids = container_pids(me, false).unwrap();
        assert_eq!(pids[0], me);
        assert!(pids.contains(&(child.id() as i32)), "{pids:?}");
        let _ = child.kill();
        let _ = child.wait();
    }
}
