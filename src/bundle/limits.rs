//! Bounds on the config.json values that size an allocation, a loop or a wait in hako. Checked
//! when the config is loaded, in the parent, before anything is made: no config can make the
//! init panic (capacity or instant overflow) or spin, and each error names its field. The
//! bounds are the kernel's own where it has one, else far above any real config.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxIdMapping, Spec};

/// config.json itself (a Docker-sized seccomp profile is about 30 KiB).
pub const MAX_CONFIG_BYTES: u64 = 32 << 20;
/// Entries of any list whose entries each cost a syscall or more: mounts, paths, devices,
/// hooks, sysctl keys, seccomp rules and their arguments, ...
pub const MAX_ENTRIES: usize = 4096;
/// Names across all `linux.seccomp.syscalls[]`.
pub const MAX_SYSCALL_NAMES: usize = 65536;
/// Lines of one uid_map or gid_map (user_namespaces(7), since Linux 4.15).
pub const MAX_ID_MAPPINGS: usize = 340;
/// NGROUPS_MAX.
pub const MAX_GROUPS: usize = 65536;
/// What the kernel copies of a sysctl value or a mount's data: a page.
pub const MAX_PAGE: usize = 4096;
/// A hook's timeout in seconds (a deadline further away overflows the clock).
pub const MAX_HOOK_TIMEOUT: i64 = i32::MAX as i64;

fn count(field: &str, n: usize, max: usize) -> Result<()> {
    if n > max {
        bail!("config.json: {field}: {n} entries: at most {max} are allowed");
    }
    Ok(())
}

/// Every bound of this module, in config order.
pub fn check(spec: &Spec) -> Result<()> {
    check_process(spec)?;
    check_mounts(spec)?;
    check_hooks(spec)?;
    check_linux(spec)
}

fn check_process(spec: &Spec) -> Result<()> {
    let Some(p) = spec.process() else {
        return Ok(());
    };
    if let Some(b) = p.console_size() {
        for (name, v) in [("height", b.height()), ("width", b.width())] {
            if v > u64::from(u16::MAX) {
                bail!(
                    "config.json: process.consoleSize.{name}: {v} is above {}",
                    u16::MAX
                );
            }
        }
    }
    let groups = p.user().additional_gids().as_ref().map_or(0, Vec::len);
    count("process.user.additionalGids", groups, MAX_GROUPS)?;
    let rlimits = p.rlimits().as_deref().unwrap_or_default();
    count("process.rlimits", rlimits.len(), MAX_ENTRIES)?;
    // runtime-spec: a type listed twice is an error.
    for (i, r) in rlimits.iter().enumerate() {
        if rlimits[..i].iter().any(|o| o.typ() == r.typ()) {
            bail!(
                "config.json: process.rlimits[{i}].type: {} is listed twice",
                crate::linux::rlimits::name_of(r.typ())
            );
        }
    }
    if let Some(a) = p.exec_cpu_affinity() {
        crate::linux::sched::plan_affinity(a)?;
    }
    Ok(())
}

fn check_mounts(spec: &Spec) -> Result<()> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    count("mounts", mounts.len(), MAX_ENTRIES)?;
    for (i, m) in mounts.iter().enumerate() {
        let options = m.options().as_deref().unwrap_or_default();
        let len: usize = options.iter().map(|o| o.len() + 1).sum();
        if len > MAX_PAGE {
            bail!("config.json: mounts[{i}].options: {len} bytes: at most {MAX_PAGE} are allowed");
        }
        id_mappings(&format!("mounts[{i}].uidMappings"), m.uid_mappings())?;
        id_mappings(&format!("mounts[{i}].gidMappings"), m.gid_mappings())?;
    }
    Ok(())
}

fn check_hooks(spec: &Spec) -> Result<()> {
    for kind in crate::hooks::Kind::ALL {
        let hooks = crate::hooks::of(spec, kind);
        count(&format!("hooks.{}", kind.name()), hooks.len(), MAX_ENTRIES)?;
        for (i, h) in hooks.iter().enumerate() {
            if let Some(t) = h.timeout().filter(|t| *t > MAX_HOOK_TIMEOUT) {
                bail!(
                    "config.json: hooks.{}[{i}].timeout: {t}: at most {MAX_HOOK_TIMEOUT} seconds",
                    kind.name()
                );
            }
        }
    }
    Ok(())
}

fn check_linux(spec: &Spec) -> Result<()> {
    let Some(l) = spec.linux() else {
        return Ok(());
    };
    id_mappings("linux.uidMappings", l.uid_mappings())?;
    id_mappings("linux.gidMappings", l.gid_mappings())?;
    for (field, n) in [
        (
            "linux.namespaces",
            l.namespaces().as_ref().map_or(0, Vec::len),
        ),
        ("linux.devices", l.devices().as_ref().map_or(0, Vec::len)),
        (
            "linux.maskedPaths",
            l.masked_paths().as_ref().map_or(0, Vec::len),
        ),
        (
            "linux.readonlyPaths",
            l.readonly_paths().as_ref().map_or(0, Vec::len),
        ),
        ("linux.sysctl", l.sysctl().as_ref().map_or(0, |m| m.len())),
    ] {
        count(field, n, MAX_ENTRIES)?;
    }
    for (key, value) in l.sysctl().iter().flatten() {
        if value.len() > MAX_PAGE {
            bail!(
                "config.json: linux.sysctl.{key}: a value of {} bytes: at most {MAX_PAGE} are allowed",
                value.len()
            );
        }
    }
    for (clock, o) in l.time_offsets().iter().flatten() {
        if o.nanosecs().is_some_and(|n| n >= 1_000_000_000) {
            bail!("config.json: linux.timeOffsets.{clock}.nanosecs: must be below 1000000000");
        }
    }
    if let Some(r) = l.resources() {
        for (field, n) in [
            (
                "linux.resources.devices",
                r.devices().as_ref().map_or(0, Vec::len),
            ),
            (
                "linux.resources.hugepageLimits",
                r.hugepage_limits().as_ref().map_or(0, Vec::len),
            ),
        ] {
            count(field, n, MAX_ENTRIES)?;
        }
    }
    if let Some(s) = l.seccomp() {
        let rules = s.syscalls().as_deref().unwrap_or_default();
        count("linux.seccomp.syscalls", rules.len(), MAX_ENTRIES)?;
        let names: usize = rules.iter().map(|r| r.names().len()).sum();
        if names > MAX_SYSCALL_NAMES {
            bail!(
                "config.json: linux.seccomp.syscalls: {names} names: at most {MAX_SYSCALL_NAMES} are allowed"
            );
        }
        for (i, r) in rules.iter().enumerate() {
            let args = r.args().as_ref().map_or(0, Vec::len);
            count(
                &format!("linux.seccomp.syscalls[{i}].args"),
                args,
                MAX_ENTRIES,
            )?;
        }
    }
    Ok(())
}

/// At most the kernel's number of lines, each non-empty and within the 32-bit id space
/// (the kernel refuses a range that wraps, and id 4294967295 is "no id").
fn id_mappings(field: &str, maps: &Option<Vec<LinuxIdMapping>>) -> Result<()> {
    let maps = maps.as_deref().unwrap_or_default();
    count(field, maps.len(), MAX_ID_MAPPINGS)?;
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            bail!("config.json: {field}[{i}].size: must be at least 1");
        }
        for (name, start) in [("containerID", m.container_id()), ("hostID", m.host_id())] {
            if u64::from(start) + u64::from(m.size()) > u64::from(u32::MAX) {
                bail!(
                    "config.json: {field}[{i}]: {name} {start} + size {} is beyond the 32-bit id range",
                    m.size()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        let spec: Spec = serde_json::from_str(json).unwrap();
        format!("{:#}", check(&spec).unwrap_err())
    }

    #[test]
    fn each_bound_names_its_field() {
        let maps = |n: usize, m: &str| {
            format!(
                r#"{{"linux":{{"uidMappings":[{}]}}}}"#,
                vec![m; n].join(",")
            )
        };
        let one = r#"{"containerID":0,"hostID":0,"size":1}"#;
        assert!(err(&maps(341, one)).starts_with("config.json: linux.uidMappings: 341 entries"));
        let wide = r#"{"containerID":1,"hostID":0,"size":4294967295}"#;
        assert!(err(&maps(1, wide)).contains("linux.uidMappings[0]: containerID 1 + size"));
        let empty = r#"{"containerID":0,"hostID":0,"size":0}"#;
        assert!(err(&maps(1, empty)).contains("linux.uidMappings[0].size"));
        let hook = r#"{"hooks":{"poststart":[{"path":"/x","timeout":9223372036854775807}]}}"#;
        assert!(err(hook).starts_with("config.json: hooks.poststart[0].timeout: "));
        let size = r#"{"process":{"cwd":"/","user":{"uid":0,"gid":0},"consoleSize":{"height":70000,"width":1}}}"#;
        assert!(err(size).starts_with("config.json: process.consoleSize.height: 70000"));
        let rl = r#"{"process":{"cwd":"/","user":{"uid":0,"gid":0},"rlimits":[
            {"type":"RLIMIT_CORE","soft":1,"hard":1},{"type":"RLIMIT_CORE","soft":1,"hard":1}]}}"#;
        assert!(err(rl).starts_with("config.json: process.rlimits[1].type: RLIMIT_CORE"));
        let ns = r#"{"linux":{"timeOffsets":{"monotonic":{"secs":1,"nanosecs":1000000000}}}}"#;
        assert!(err(ns).contains("linux.timeOffsets.monotonic.nanosecs"));
        let long = format!(
            r#"{{"linux":{{"sysctl":{{"net.a":"{}"}}}}}}"#,
            "1".repeat(5000)
        );
        assert!(err(&long).starts_with("config.json: linux.sysctl.net.a: a value of 5000 bytes"));
        let cpus = r#"{"process":{"cwd":"/","user":{"uid":0,"gid":0},
            "execCPUAffinity":{"initial":"0-18446744073709551615"}}}"#;
        assert!(err(cpus).starts_with("config.json: process.execCPUAffinity.initial: cpu "));
        let ok = r#"{"linux":{"uidMappings":[{"containerID":0,"hostID":4294967294,"size":1}]}}"#;
        check(&serde_json::from_str(ok).unwrap()).unwrap();
    }
}
