//! The process's last steps, shared by the container's init and `exec`: oom score, rlimits,
//! scheduling, environment, cwd (checked), program lookup, then identity and privileges
//! (bounding set, user, capabilities, no_new_privs, seccomp), close-on-exec for every fd but
//! stdio and the preserved ones, LSM labels, and finally execve.

use std::os::fd::AsFd;

use anyhow::{Context, Result};

use super::plan::ProcessPlan;
use super::sync::{Channel, Msg};
use crate::linux::procfs::ProcFs;
use crate::linux::seccomp::{self, SeccompPlan};
use crate::linux::{capabilities, exec, fds, lsm, rlimits, sched, user};
use crate::trace;

/// Set up and ready for execve: only the last seccomp filter is still to go in.
pub struct Ready<'a> {
    program: Result<exec::Program>,
    last_seccomp: Option<&'a SeccompPlan>,
}

/// Why the program did not run.
pub enum Failed {
    /// The runtime's own step failed (the last seccomp filter).
    Setup(anyhow::Error),
    /// The program could not be found or executed: the container's failure (exit 127).
    Program(anyhow::Error),
}

/// Applies `plan` to the calling process, which is inside the container's root and
/// namespaces. With `defer_missing_program`, a program that cannot be found is reported by
/// `Ready::exec` (create follows the lifecycle and fails at start); otherwise here.
pub fn prepare<'a>(
    plan: &'a ProcessPlan,
    proc: &ProcFs,
    chan: &Channel,
    preserve_fds: u32,
    defer_missing_program: bool,
) -> Result<Ready<'a>> {
    if let Some(adj) = plan.oom_score_adj {
        proc.write("self/oom_score_adj", &adj.to_string())
            .context("config.json: process.oomScoreAdj")?;
    }
    rlimits::apply(&plan.rlimits)?;
    if let Some(s) = &plan.scheduler {
        sched::apply_scheduler(s)?;
    }
    if let Some(p) = plan.io_priority {
        sched::apply_io_priority(p)?;
    }
    if let Some(cpus) = &plan.affinity {
        sched::apply_affinity(cpus)?;
    }
    trace::phase("oom score, rlimits, scheduling");

    // Environment and program, resolved in the container's root.
    let mut env = plan.env.clone();
    set_home(&mut env, plan.user.uid())?;
    let root = exec::open_root()?;
    exec::chdir_inside_root(&root, &plan.cwd)?;
    let program = exec::find_program(&root, &plan.args[0], &env)
        .and_then(|path| exec::Program::new(&path, &plan.args, &env));
    let program = match program {
        Err(e) if !defer_missing_program => return Err(e),
        p => p,
    };
    trace::phase("HOME, cwd entered and checked, program found");

    // When the seccomp filter goes in (runc's order). Without no_new_privs the kernel wants
    // CAP_SYS_ADMIN for it, so it goes in before the switch of user; with a notify listener,
    // before the parent is told we are ready (the agent has the fd when create returns);
    // else as the very last step, so that hako itself makes no syscall under it but execve.
    let nnp = plan.no_new_privs;
    let (early, before_ready, last) = match &plan.seccomp {
        Some(p) if !nnp => (Some(p), None, None),
        Some(p) if p.listener.is_some() => (None, Some(p), None),
        p => (None, None, p.as_ref()),
    };

    // Everything read or written through the procfs handle (openat2) happens before any seccomp
    // filter goes in: a profile need not allow openat2 (runtime-tools' and older Docker ones
    // do not).
    let setgroups_allowed = may_setgroups(proc);
    lsm::apply_exec_labels(
        plan.apparmor.as_deref(),
        plan.selinux_label.as_deref(),
        proc,
    )?;

    // Identity and privileges: bounding set while still root, then user, then the other sets.
    trace::phase("LSM labels");
    capabilities::apply_bounding(&plan.caps)?;
    trace::phase("capability bounding set");
    if let Some(p) = early {
        install_seccomp(p, chan)?;
        trace::phase("seccomp filter installed (before the user switch)");
    }
    user::keep_caps(true)?;
    user::switch(&plan.user, setgroups_allowed)?;
    user::keep_caps(false)?;
    trace::phase("user and groups switched");
    capabilities::apply_sets(&plan.caps)?;
    user::set_umask(&plan.user);
    if nnp {
        nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    trace::phase("capabilities, umask, no_new_privs");
    if let Some(p) = before_ready {
        install_seccomp(p, chan)?;
        trace::phase("seccomp filter installed (notify)");
    }

    // Nothing of the caller's reaches the program but stdio and the preserved fds.
    fds::cloexec_from(3 + preserve_fds);
    trace::phase("fds close-on-exec");
    Ok(Ready {
        program,
        last_seccomp: last,
    })
}

impl Ready<'_> {
    /// Installs the last seccomp filter now (before the startContainer hooks, which then run
    /// under it as the program will, as with runc), not right before execve.
    pub fn install_seccomp_now(&mut self) -> Result<()> {
        match self.last_seccomp.take() {
            Some(plan) => seccomp::install(plan).map(drop),
            None => Ok(()),
        }
    }

    /// The last seccomp filter, then execve: returns only on failure.
    pub fn exec(self) -> Failed {
        if let Some(plan) = self.last_seccomp {
            if let Err(e) = seccomp::install(plan) {
                return Failed::Setup(e);
            }
            trace::phase("seccomp filter installed (last), execve next");
        }
        match self.program {
            Ok(program) => Failed::Program(program.exec()),
            Err(e) => Failed::Program(e),
        }
    }
}

/// Installs the filter; a notify fd goes straight to the parent, which hands it to the agent.
fn install_seccomp(plan: &SeccompPlan, chan: &Channel) -> Result<()> {
    // Encoded first: between the install and the send nothing may allocate or make another
    // syscall, which the filter could hand to an agent that has no fd yet.
    let msg = Channel::encode(&Msg::SeccompListener)?;
    if let Some(fd) = seccomp::install(plan)? {
        chan.send_with_fd(&msg, fd.as_fd())?;
    }
    Ok(())
}

/// HOME unset or empty becomes the user's home from the container's /etc/passwd (as runc).
fn set_home(env: &mut Vec<String>, uid: u32) -> Result<()> {
    env.retain(|e| e != "HOME=");
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let passwd = exec::read_in_root(&exec::open_root()?, "etc/passwd").unwrap_or_default();
        env.push(format!("HOME={}", home_of(&passwd, uid)));
    }
    Ok(())
}

/// Whether setgroups(2) is allowed (not denied in this user namespace).
fn may_setgroups(proc: &ProcFs) -> bool {
    proc.read_to_string("self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true)
}

/// The home directory of `uid` in the text of an /etc/passwd, else "/".
fn home_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2] == uid.to_string())
        .map(|f| f[5].to_string())
        .unwrap_or_else(|| "/".to_string())
}
