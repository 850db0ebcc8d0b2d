//! `linux.sysctl`: only keys a container's namespaces isolate, written under /proc/sys after the
//! mounts.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::procfs::ProcFs;

/// Which namespace isolates the key, or None when it is not namespaced. Pure.
pub fn namespace_of(key: &str) -> Option<&'static str> {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    if IPC.contains(&key) || key == "kernel.shm_rmid_forced" || key.starts_with("fs.mqueue.") {
        Some("ipc")
    } else if key.starts_with("net.") {
        Some("net")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some("uts")
    } else {
        None
    }
}

/// Checks every key and returns (path under /proc/sys, value) pairs in key order.
pub fn plan(
    sysctl: Option<&std::collections::HashMap<String, String>>,
    has_ns: impl Fn(&str) -> bool,
) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let Some(map) = sysctl else { return Ok(out) };
    let mut keys: Vec<_> = map.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("config.json: linux.sysctl.{key}");
        if key.contains("..") || key.contains('/') && key.contains('.') {
            bail!("{field}: not a sysctl name");
        }
        match namespace_of(key) {
            None => bail!("{field}: not namespaced: it would change the host"),
            Some(ns) if !has_ns(ns) => {
                bail!("{field}: needs a {ns} namespace of the container's own")
            }
            Some(_) => {}
        }
        out.push((
            PathBuf::from("/proc/sys").join(key.replace('.', "/")),
            map[key].clone(),
        ));
    }
    Ok(out)
}

/// Writes through the verified procfs handle: a mount or symlink the container's rootfs put
/// over /proc/sys cannot redirect the write.
pub fn apply(proc: &ProcFs, plan: &[(PathBuf, String)]) -> Result<()> {
    for (path, value) in plan {
        let rel = path.strip_prefix("/proc").unwrap_or(path);
        proc.write(&rel.to_string_lossy(), value)
            .with_context(|| format!("linux.sysctl: write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_checked() {
        let map: std::collections::HashMap<_, _> =
            [("net.ipv4.ip_forward".to_string(), "1".to_string())]
                .into_iter()
                .collect();
        let p = plan(Some(&map), |ns| ns == "net").unwrap();
        assert_eq!(p[0].0, PathBuf::from("/proc/sys/net/ipv4/ip_forward"));
        let err = plan(Some(&map), |_| false).unwrap_err().to_string();
        assert!(
            err.contains("linux.sysctl.net.ipv4.ip_forward") && err.contains("net namespace"),
            "{err}"
        );
        let host: std::collections::HashMap<_, _> =
            [("vm.swappiness".to_string(), "1".to_string())]
                .into_iter()
                .collect();
        assert!(plan(Some(&host), |_| true)
            .unwrap_err()
            .to_string()
            .contains("not namespaced"));
    }
}
