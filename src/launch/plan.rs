//! Everything decidable from the spec, decided in the parent before clone: a bad field is
//! reported before a cgroup, namespace or mount exists. `ProcessPlan` is what `create` and
//! `exec` share (launch/finalize.rs applies it); `ContainerPlan` is create's alone.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Linux, Process, Spec, User};

use crate::linux::capabilities::{self, CapsPlan};
use crate::linux::devices::{self, DeviceNode};
use crate::linux::mounts::MountPlan;
use crate::linux::sched::{self, SchedAttr};
use crate::linux::seccomp::{self, SeccompPlan};
use crate::linux::{namespaces, rlimits, rootfs, sysctl};

/// The process's own settings, as plain data.
pub struct ProcessPlan {
    pub args: Vec<String>,
    /// The final environment (duplicates resolved: the last one of a name wins).
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub user: User,
    pub terminal: bool,
    /// (rows, columns)
    pub console_size: Option<(u16, u16)>,
    pub rlimits: Vec<rlimits::Planned>,
    pub caps: CapsPlan,
    pub no_new_privs: bool,
    pub seccomp: Option<SeccompPlan>,
    pub oom_score_adj: Option<i32>,
    pub scheduler: Option<SchedAttr>,
    pub io_priority: Option<i32>,
    pub affinity: Option<Vec<usize>>,
    pub apparmor: Option<String>,
    pub selinux_label: Option<String>,
}

/// Rootless: a hard rlimit above hako's own, which only root could set, is refused before
/// anything is made. (An oomScoreAdj below what the user may set fails at the init, naming the
/// field: the kernel's floor, oom_score_adj_min, cannot be read beforehand.)
pub fn check_rootless(p: &ProcessPlan) -> Result<()> {
    rlimits::check_unprivileged(&p.rlimits, rlimits::own_hard)
}

/// What only the container's init does: its mounts, sysctls, clocks and personality.
pub struct ContainerPlan {
    pub mounts: Vec<MountPlan>,
    pub sysctl: Vec<(PathBuf, String)>,
    /// The text for /proc/self/timens_offsets (empty: none).
    pub time_offsets: String,
    pub personality: Option<libc::c_ulong>,
    /// `linux.devices`, made in the container's /dev.
    pub devices: Vec<DeviceNode>,
}

/// Plans `process` (config.json's, or exec's) with the container's seccomp profile.
/// `extra_env` is appended (LISTEN_FDS, `exec -e`).
pub fn process(
    p: &Process,
    linux: Option<&Linux>,
    extra_env: &[String],
    bounding: &caps::CapsHashSet,
) -> Result<ProcessPlan> {
    let args = p.args().clone().unwrap_or_default();
    if args.first().is_none_or(|a| a.is_empty()) {
        bail!("config.json: process.args: must name at least the program to run");
    }
    if !p.cwd().is_absolute() {
        bail!(
            "config.json: process.cwd: {}: must be an absolute path",
            p.cwd().display()
        );
    }
    let caps = capabilities::plan(p.capabilities().as_ref(), &capabilities::supported())
        .context("config.json: process.capabilities")?;
    capabilities::check_within(&caps, bounding)?;
    let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => {
            let plan = seccomp::compile(s)?;
            seccomp::check_kernel(&plan)?;
            Some(plan)
        }
        None => None,
    };
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(extra_env.iter().cloned());
    Ok(ProcessPlan {
        args,
        env: dedup_env(env),
        cwd: p.cwd().clone(),
        user: p.user().clone(),
        terminal: p.terminal().unwrap_or(false),
        console_size: p
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16)),
        rlimits: rlimits::plan(p.rlimits().as_deref().unwrap_or_default())?,
        caps,
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        seccomp,
        oom_score_adj: p.oom_score_adj(),
        scheduler: p.scheduler().as_ref().map(sched::plan_scheduler),
        io_priority: p
            .io_priority()
            .as_ref()
            .map(sched::plan_io_priority)
            .transpose()?,
        affinity: match p.exec_cpu_affinity() {
            Some(a) => sched::plan_affinity(a)?,
            None => None,
        },
        apparmor: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
        selinux_label: p.selinux_label().clone().filter(|s| !s.is_empty()),
    })
}

/// The init's own plan: mounts only with a mount namespace (without one they would be the
/// host's).
pub fn container(spec: &Spec, has_mount_ns: bool) -> Result<ContainerPlan> {
    let linux = spec.linux().as_ref();
    let has_ns = |name: &str| {
        linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|list| list.iter().any(|n| n.typ().to_string() == name))
    };
    Ok(ContainerPlan {
        mounts: if has_mount_ns {
            rootfs::plan_mounts(spec)?
        } else {
            Vec::new()
        },
        sysctl: sysctl::plan(linux.and_then(|l| l.sysctl().as_ref()), has_ns)?,
        time_offsets: namespaces::time_offsets_text(linux)?,
        personality: linux
            .and_then(|l| l.personality().as_ref())
            .map(sched::plan_personality)
            .transpose()?,
        devices: if has_mount_ns {
            devices::configured_nodes(spec)?
        } else {
            Vec::new()
        },
    })
}

/// One entry per name, in first-seen order, holding the last value given (so `exec -e K=V`
/// overrides config.json's K).
pub fn dedup_env(env: Vec<String>) -> Vec<String> {
    let name = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    for e in env {
        match out.iter_mut().find(|o| name(o) == name(&e)) {
            Some(slot) => *slot = e,
            None => out.push(e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process_of(json: &str) -> Process {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn env_last_value_wins_in_first_place() {
        let env = dedup_env(vec!["A=1".into(), "B=2".into(), "A=3".into(), "C".into()]);
        assert_eq!(env, ["A=3", "B=2", "C"]);
    }

    #[test]
    fn bad_rlimit_is_reported_by_the_plan() {
        let p = process_of(
            r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],
                "rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":5}]}"#,
        );
        let err = process(&p, None, &[], &capabilities::supported())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("process.rlimits[0]: RLIMIT_NOFILE"), "{err}");
    }

    #[test]
    fn process_fields_become_data() {
        let p = process_of(
            r#"{"cwd":"/w","user":{"uid":1,"gid":2},"args":["sh"],"env":["X=1"],
                "terminal":true,"consoleSize":{"height":3,"width":4},"noNewPrivileges":true}"#,
        );
        let plan = process(&p, None, &["X=2".into()], &capabilities::supported()).unwrap();
        assert_eq!(plan.env, ["X=2"]);
        assert_eq!(plan.console_size, Some((3, 4)));
        assert!(plan.terminal && plan.no_new_privs && plan.seccomp.is_none());
        let p = process_of(r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":[]}"#);
        assert!(process(&p, None, &[], &capabilities::supported()).is_err());
    }
}
