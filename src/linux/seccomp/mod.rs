//! Seccomp: `linux.seccomp` compiled to a BPF program in the parent (pure data, no C library),
//! checked against the kernel before anything is made, and installed by the init as late as
//! the spec allows (see launch/init.rs for where).

mod bpf;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use oci_spec::runtime::{
    ContainerProcessState, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, State, SECCOMP_FD_NAME,
};
use seccompiler::{SeccompAction, SeccompCmpOp};

pub use seccompiler::sock_filter;

use bpf::{Cond, Rule, Section};
use tables::ABIS;

/// What the init installs: the program, the flags for seccomp(2), and the agent to hand a
/// notify fd to.
#[derive(Clone, Debug, PartialEq)]
pub struct SeccompPlan {
    pub program: Vec<sock_filter>,
    /// SECCOMP_FILTER_FLAG_*, NEW_LISTENER included when an action is SCMP_ACT_NOTIFY.
    pub flags: u64,
    pub listener: Option<Listener>,
    /// The spec's flags with their bits, to name the one a kernel lacks.
    flag_names: Vec<(String, u64)>,
    /// The distinct return values, to check the kernel has their actions.
    rets: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub path: PathBuf,
    pub metadata: Option<String>,
}

const FIELD: &str = "config.json: linux.seccomp";

/// The seccomp return value of an action; `errno` only where the action carries one.
fn ret_of(action: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<u32> {
    use LinuxSeccompAction as A;
    let data = || -> Result<u32> {
        let e = errno.unwrap_or(libc::EPERM as u32);
        if e > libc::SECCOMP_RET_DATA {
            bail!("{FIELD}.{field}: {e} does not fit in the 16 bits seccomp returns");
        }
        Ok(e)
    };
    if errno.is_some() && !matches!(action, A::ScmpActErrno | A::ScmpActTrace) {
        bail!(
            "{FIELD}.{field}: {action} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
        );
    }
    let known = match action {
        A::ScmpActKill | A::ScmpActKillThread => SeccompAction::KillThread,
        A::ScmpActKillProcess => SeccompAction::KillProcess,
        A::ScmpActTrap => SeccompAction::Trap,
        A::ScmpActErrno => SeccompAction::Errno(data()?),
        A::ScmpActTrace => SeccompAction::Trace(data()?),
        A::ScmpActLog => SeccompAction::Log,
        A::ScmpActAllow => SeccompAction::Allow,
        // seccompiler has no user-notification action: its return value is emitted directly.
        A::ScmpActNotify => return Ok(libc::SECCOMP_RET_USER_NOTIF),
    };
    Ok(u32::from(known))
}

fn op_of(op: LinuxSeccompOperator, value: u64, value_two: u64) -> (SeccompCmpOp, u64) {
    use LinuxSeccompOperator as O;
    match op {
        O::ScmpCmpNe => (SeccompCmpOp::Ne, value),
        O::ScmpCmpLt => (SeccompCmpOp::Lt, value),
        O::ScmpCmpLe => (SeccompCmpOp::Le, value),
        O::ScmpCmpEq => (SeccompCmpOp::Eq, value),
        O::ScmpCmpGe => (SeccompCmpOp::Ge, value),
        O::ScmpCmpGt => (SeccompCmpOp::Gt, value),
        // libseccomp's (arg & value) == valueTwo.
        O::ScmpCmpMaskedEq => (SeccompCmpOp::MaskedEq(value), value_two),
    }
}

fn flag_bit(f: LinuxSeccompFilterFlag) -> u64 {
    use LinuxSeccompFilterFlag as F;
    match f {
        F::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        F::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
        F::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        F::SeccompFilterFlagWaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    }
}

/// `linux.seccomp` → the plan. Pure: no syscalls, errors name the field.
pub fn compile(s: &LinuxSeccomp) -> Result<SeccompPlan> {
    let default = ret_of(s.default_action(), s.default_errno_ret(), "defaultErrnoRet")?;
    let mut notify = s.default_action() == LinuxSeccompAction::ScmpActNotify;
    let listed = s.architectures().clone().unwrap_or_default();
    // The native ABI is always filtered (as libseccomp does); the compat ones when listed.
    // Listed arches this kernel cannot run are left out: no syscall can arrive through them.
    let abis: Vec<_> = ABIS
        .iter()
        .enumerate()
        .filter(|(i, abi)| *i == 0 || listed.contains(&abi.arch))
        .map(|(_, abi)| *abi)
        .collect();
    let mut sections: Vec<Section> = abis
        .iter()
        .map(|abi| Section {
            abi: *abi,
            syscalls: BTreeMap::new(),
            above_known: None,
        })
        .collect();
    let mut rets = vec![default];
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("syscalls[{i}]");
        if sc.names().is_empty() {
            bail!("{FIELD}.{field}.names: must list at least one syscall");
        }
        let ret = ret_of(sc.action(), sc.errno_ret(), &format!("{field}.errnoRet"))?;
        notify |= sc.action() == LinuxSeccompAction::ScmpActNotify;
        rets.push(ret);
        let mut conds = Vec::new();
        let mut never = false;
        for (j, arg) in sc.args().iter().flatten().enumerate() {
            if arg.index() > 5 {
                bail!(
                    "{FIELD}.{field}.args[{j}].index: {} is out of range (syscall arguments are 0 to 5)",
                    arg.index()
                );
            }
            let (op, value) = op_of(arg.op(), arg.value(), arg.value_two().unwrap_or(0));
            // (arg & mask) can never equal a value with bits outside the mask.
            if let SeccompCmpOp::MaskedEq(mask) = op {
                never |= value & !mask != 0;
            }
            conds.push(Cond {
                index: arg.index() as u8,
                op,
                value,
            });
        }
        for (k, name) in sc.names().iter().enumerate() {
            if !tables::is_syscall_anywhere(name) {
                bail!("{FIELD}.{field}.names[{k}]: {name:?} is not a syscall");
            }
            if never {
                continue;
            }
            for sec in &mut sections {
                // A syscall this ABI does not have is skipped, as runc does.
                if let Some(nr) = sec.abi.number(name) {
                    sec.syscalls.entry(nr).or_default().push(Rule {
                        conds: conds.clone(),
                        ret,
                    });
                }
            }
        }
    }
    // Syscalls newer than the profile fail with ENOSYS rather than the default errno, so
    // that libc falls back to an older one (clone3 → clone), as runc arranges too.
    if s.default_action() == LinuxSeccompAction::ScmpActErrno {
        for sec in &mut sections {
            sec.above_known = Some(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        }
    }
    let listener = if notify {
        let path = s.listener_path().clone().with_context(|| {
            format!("{FIELD}.listenerPath: SCMP_ACT_NOTIFY is used, so a listener path is needed")
        })?;
        refuse_notified_sendmsg(&sections[0], default)?;
        Some(Listener {
            path,
            metadata: s.listener_metadata().clone(),
        })
    } else {
        None
    };
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        bail!("{FIELD}.listenerMetadata: set without listenerPath");
    }
    let mut flags = 0;
    let mut flag_names = Vec::new();
    for f in s.flags().iter().flatten() {
        let bit = flag_bit(*f);
        // The kernel takes WAIT_KILLABLE_RECV only with a listener; without one it means nothing.
        if bit == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV && listener.is_none() {
            continue;
        }
        flags |= bit;
        flag_names.push((f.to_string(), bit));
    }
    if listener.is_some() {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // TSYNC with a listener is refused unless a sync failure is reported as ESRCH.
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    rets.sort_unstable();
    rets.dedup();
    Ok(SeccompPlan {
        program: bpf::build(&sections, default)?,
        flags,
        listener,
        flag_names,
        rets,
    })
}

/// The init hands the notify fd to hako with sendmsg(2) right after installing the filter,
/// before any agent has it: that call must not wait for the agent.
fn refuse_notified_sendmsg(native: &Section, default: u32) -> Result<()> {
    let Some(nr) = native.abi.number("sendmsg") else {
        return Ok(());
    };
    let notify = libc::SECCOMP_RET_USER_NOTIF;
    let rules = native.syscalls.get(&nr).map(Vec::as_slice).unwrap_or(&[]);
    let unconditional = rules.iter().find(|r| r.conds.is_empty()).map(|r| r.ret);
    if rules.iter().any(|r| r.ret == notify) || unconditional.unwrap_or(default) == notify {
        bail!("{FIELD}: SCMP_ACT_NOTIFY for sendmsg is not supported: hako passes the notify fd with sendmsg(2) before the agent has it");
    }
    Ok(())
}

/// seccomp(2); the raw syscall, as libc has no wrapper.
fn seccomp(op: u32, flags: u64, args: *const libc::c_void) -> std::io::Result<i64> {
    // SAFETY: every caller passes a pointer valid for `op` (or null to probe); the kernel only
    // reads through it.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, op, flags, args) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Checks, in the parent, that this kernel has the plan's flags and actions, so the init does
/// not fail on them after `created`.
pub fn check_kernel(plan: &SeccompPlan) -> Result<()> {
    // With a null program the kernel checks the flags (EINVAL), then faults on the copy.
    let accepts = |flags: u64| {
        seccomp(libc::SECCOMP_SET_MODE_FILTER, flags, std::ptr::null())
            .err()
            .is_some_and(|e| e.raw_os_error() == Some(libc::EFAULT))
    };
    if !accepts(plan.flags) {
        let base = plan.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        for (name, bit) in &plan.flag_names {
            if !accepts(base | bit) {
                bail!("{FIELD}.flags: {name} is not supported by this kernel");
            }
        }
        bail!(
            "{FIELD}: this kernel refuses the seccomp flags {:#x}",
            plan.flags
        );
    }
    for ret in &plan.rets {
        let action = ret & libc::SECCOMP_RET_ACTION_FULL;
        let ptr = (&action as *const u32).cast();
        if seccomp(libc::SECCOMP_GET_ACTION_AVAIL, 0, ptr).is_err() {
            bail!("{FIELD}: this kernel has no seccomp action {action:#x}");
        }
    }
    Ok(())
}

/// Installs the filter on the calling thread. Returns the notify fd when the plan has a
/// listener. Needs no_new_privs or CAP_SYS_ADMIN. (seccompiler's own apply sets no_new_privs
/// itself and takes no flags, so this calls seccomp(2) directly.)
pub fn install(plan: &SeccompPlan) -> Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: plan.program.len() as u16,
        // seccompiler's sock_filter is #[repr(C)] with the kernel's fields in the kernel's order.
        filter: plan.program.as_ptr() as *mut libc::sock_filter,
    };
    let rc = seccomp(
        libc::SECCOMP_SET_MODE_FILTER,
        plan.flags,
        (&prog as *const libc::sock_fprog).cast(),
    )
    .context("install the seccomp filter (seccomp(2))")?;
    if plan.listener.is_none() {
        if rc != 0 {
            bail!("install the seccomp filter: thread {rc} could not be synchronized");
        }
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER, a non-negative return value is a new fd this process owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }))
}

/// Hands the notify fd and the container process state to the agent at `listenerPath`: one
/// connection, the JSON with the fd in the same sendmsg(2), then close (runtime-spec
/// config-linux.md, "The Container Process State").
pub fn send_to_agent(l: &Listener, pid: i32, state: State, fd: BorrowedFd) -> Result<()> {
    let what = || format!("{FIELD}.listenerPath: {}", l.path.display());
    let mut cps = ContainerProcessState::default();
    cps.set_version(state.version().clone())
        .set_fds(vec![SECCOMP_FD_NAME.to_string()])
        .set_pid(pid)
        .set_metadata(l.metadata.clone())
        .set_state(state);
    let data = serde_json::to_vec(&cps)?;
    // runc's words after the field: its tests and users look for them.
    let sock = UnixStream::connect(&l.path)
        .with_context(|| format!("{}: failed to connect with seccomp agent", what()))?;
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let mut sent = sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &[IoSlice::new(&data)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .with_context(what)?;
    // The fd went with the first call; the rest of the JSON (if any) follows alone.
    while sent < data.len() {
        sent += nix::sys::socket::send(sock.as_raw_fd(), &data[sent..], MsgFlags::MSG_NOSIGNAL)
            .with_context(what)?;
    }
    Ok(())
}

/// For `hako features`: what this build supports.
pub fn features() -> serde_json::Value {
    serde_json::json!({
        "enabled": true,
        "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
        "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
        "archs": ABIS.iter().map(|a| a.arch.to_string()).collect::<Vec<_>>(),
        "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "supportedFlags": supported_flags(),
    })
}

fn supported_flags() -> Vec<String> {
    use LinuxSeccompFilterFlag as F;
    [
        F::SeccompFilterFlagTsync,
        F::SeccompFilterFlagLog,
        F::SeccompFilterFlagSpecAllow,
        F::SeccompFilterFlagWaitKillableRecv,
    ]
    .into_iter()
    .filter(|f| {
        let mut bit = flag_bit(*f);
        if bit == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
            bit |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        }
        seccomp(libc::SECCOMP_SET_MODE_FILTER, bit, std::ptr::null())
            .err()
            .is_some_and(|e| e.raw_os_error() == Some(libc::EFAULT))
    })
    .map(|f| f.to_string())
    .collect()
}
