//! The init's plans, made once in the parent when the config is loaded: the init makes them
//! again (it has only a copy of the spec), but a value they refuse is reported by `create`
//! before any process, cgroup or mount exists, and never first inside the init.

use anyhow::Result;
use oci_spec::runtime::Spec;

use crate::linux::{devices, namespaces, rlimits, rootfs, sched, sysctl};

/// Runs every pure plan function the init runs, dropping the plans.
pub fn check(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let ns = namespaces::plan(linux)?;
    namespaces::time_offsets_text(linux)?;
    let has_ns = |name: &str| {
        linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|list| list.iter().any(|n| n.typ().to_string() == name))
    };
    sysctl::plan(linux.and_then(|l| l.sysctl().as_ref()), has_ns)?;
    // Without a mount namespace the init makes no mounts (create warns).
    if ns.has_mount_ns {
        rootfs::plan_mounts(spec)?;
        devices::configured_nodes(spec)?;
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        sched::plan_personality(p)?;
    }
    if let Some(process) = spec.process() {
        rlimits::plan(process.rlimits().as_deref().unwrap_or_default())?;
        if let Some(p) = process.io_priority() {
            sched::plan_io_priority(p)?;
        }
        if let Some(a) = process.exec_cpu_affinity() {
            sched::plan_affinity(a)?;
        }
    }
    Ok(())
}
