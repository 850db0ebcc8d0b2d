//! Scheduling and execution domain of the process: `process.scheduler` (sched_setattr),
//! `process.ioPriority` (ioprio_set), `process.execCPUAffinity` and `linux.personality`.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    ExecCPUAffinity, IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler,
};

/// struct sched_attr (sched_setattr(2)), version 1 (56 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// `process.scheduler` → sched_attr. Pure.
pub fn plan_scheduler(s: &Scheduler) -> SchedAttr {
    use LinuxSchedulerPolicy::*;
    let policy = match s.policy() {
        SchedOther => 0,
        SchedFifo => 1,
        SchedRr => 2,
        SchedBatch => 3,
        SchedIso => 4,
        SchedIdle => 5,
        SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        util_min: 0,
        util_max: 0,
    }
}

pub fn apply_scheduler(attr: &SchedAttr) -> Result<()> {
    // SAFETY: attr points to a sched_attr of the size it declares; pid 0 is the caller.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("config.json: process.scheduler: sched_setattr");
    }
    Ok(())
}

/// `process.ioPriority` → the ioprio value (class << 13 | level). Pure.
pub fn plan_io_priority(p: &LinuxIOPriority) -> Result<i32> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = p.priority();
    if !(0..=7).contains(&level) {
        bail!("config.json: process.ioPriority.priority: {level} is not in 0..7");
    }
    Ok((class << 13) | level as i32)
}

pub fn apply_io_priority(ioprio: i32) -> Result<()> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    // SAFETY: ioprio_set takes plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, ioprio) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("config.json: process.ioPriority: ioprio_set");
    }
    Ok(())
}

/// `linux.personality` → the persona value. Pure.
pub fn plan_personality(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    if let Some(flags) = p.flags() {
        if !flags.is_empty() {
            bail!("config.json: linux.personality.flags: no flags are supported ({flags:?})");
        }
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    })
}

pub fn apply_personality(persona: libc::c_ulong) -> Result<()> {
    // SAFETY: personality(2) takes a plain integer.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(std::io::Error::last_os_error()).context("config.json: linux.personality");
    }
    Ok(())
}

/// The cpus sched_setaffinity(2) takes here: a cpu_set_t's (CPU_SETSIZE).
pub const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

/// A cpu list like "0-3,7" → the cpus, each below MAX_CPUS (so a huge range sizes nothing).
/// Pure.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || anyhow::anyhow!("{part:?} is not a cpu or range");
        let cpu = |s: &str| -> Result<usize> {
            let n: u64 = s.trim().parse().map_err(|_| bad())?;
            if n >= MAX_CPUS as u64 {
                bail!("cpu {n} is above {}", MAX_CPUS - 1);
            }
            Ok(n as usize)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (cpu(a)?, cpu(b)?);
                if a > b {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(cpu(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The cpus the program runs on: `final`, else `initial` (the init joins its cgroup before it
/// runs anything, so both apply to the same process here). Both are checked.
pub fn plan_affinity(a: &ExecCPUAffinity) -> Result<Option<Vec<usize>>> {
    let parse = |name: &str, list: &Option<String>| {
        list.as_deref()
            .map(|l| {
                parse_cpu_list(l)
                    .with_context(|| format!("config.json: process.execCPUAffinity.{name}"))
            })
            .transpose()
    };
    let initial = parse("initial", a.initial())?;
    let last = parse("final", a.cpu_affinity_final())?;
    Ok(last.or(initial))
}

pub fn apply_affinity(cpus: &[usize]) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c)
            .context("config.json: process.execCPUAffinity: cpu out of range")?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .context("config.json: process.execCPUAffinity: sched_setaffinity")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert_eq!(parse_cpu_list("3,1-2,2").unwrap(), vec![1, 2, 3]);
        let err = parse_cpu_list("0-18446744073709551615").unwrap_err();
        assert_eq!(err.to_string(), "cpu 18446744073709551615 is above 1023");
        assert!(parse_cpu_list("0-99999999999999999999").is_err());
        let a: ExecCPUAffinity =
            serde_json::from_str(r#"{"initial":"0-18446744073709551615","final":"0"}"#).unwrap();
        let err = format!("{:#}", plan_affinity(&a).unwrap_err());
        assert!(
            err.starts_with("config.json: process.execCPUAffinity.initial: cpu "),
            "{err}"
        );
    }

    #[test]
    fn io_priority_value() {
        let p: LinuxIOPriority =
            serde_json::from_str(r#"{"class":"IOPRIO_CLASS_IDLE","priority":4}"#).unwrap();
        assert_eq!(plan_io_priority(&p).unwrap(), (3 << 13) | 4);
        let p: LinuxIOPriority =
            serde_json::from_str(r#"{"class":"IOPRIO_CLASS_BE","priority":9}"#).unwrap();
        assert!(plan_io_priority(&p)
            .unwrap_err()
            .to_string()
            .contains("ioPriority.priority"));
    }

    #[test]
    fn scheduler_attr() {
        let s: Scheduler = serde_json::from_str(
            r#"{"policy":"SCHED_BATCH","nice":5,"flags":["SCHED_RESET_ON_FORK"]}"#,
        )
        .unwrap();
        let a = plan_scheduler(&s);
        assert_eq!((a.policy, a.nice, a.flags, a.size), (3, 5, 1, 56));
    }

    #[test]
    fn personality_values() {
        let p: LinuxPersonality = serde_json::from_str(r#"{"domain":"LINUX32"}"#).unwrap();
        assert_eq!(plan_personality(&p).unwrap(), 8);
    }
}
