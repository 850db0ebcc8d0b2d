//! `hako spec [--rootless] [-b DIR]`: a default config.json like runc's.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// runc's default: oci-spec's default with a terminal and `sh`, and a cgroup namespace only on
/// a cgroup v2 host (`cgroupns`), as runc decides it (runc 1.1.5 through 1.3; Docker and podman
/// also default to the host's cgroup namespace on v1).
pub fn default_spec(rootless: bool, cgroupns: bool) -> Spec {
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_version("1.3.0".to_string());
    spec.set_hostname(Some("hako".to_string()));
    if let Some(mut p) = spec.process().clone() {
        p.set_terminal(Some(true));
        p.set_args(Some(vec!["sh".to_string()]));
        spec.set_process(Some(p));
    }
    if !cgroupns {
        if let Some(mut linux) = spec.linux().clone() {
            if let Some(ns) = linux.namespaces() {
                let ns = ns.iter().filter(|n| n.typ() != LinuxNamespaceType::Cgroup);
                linux.set_namespaces(Some(ns.cloned().collect()));
            }
            spec.set_linux(Some(linux));
        }
    }
    spec
}

/// Whether /sys/fs/cgroup is a cgroup v2 hierarchy (a unified host).
fn cgroup2_unified() -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

pub fn run(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{}: already exists; remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&default_spec(rootless, cgroup2_unified()))?;
    std::fs::write(&path, text + "\n").with_context(|| format!("{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_round_trips_and_is_runc_like() {
        let text = serde_json::to_string(&default_spec(false, true)).unwrap();
        let spec = crate::bundle::parse_config(&text, "config.json").unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.args().as_ref().unwrap(), &vec!["sh".to_string()]);
        assert!(spec
            .linux()
            .as_ref()
            .unwrap()
            .masked_paths()
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m == "/proc/kcore"));
    }

    #[test]
    fn a_cgroup_namespace_only_on_cgroup_v2() {
        let has = |cgroupns| {
            default_spec(false, cgroupns)
                .linux()
                .as_ref()
                .unwrap()
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .any(|n| n.typ() == LinuxNamespaceType::Cgroup)
        };
        assert!(has(true));
        assert!(!has(false));
    }
}
