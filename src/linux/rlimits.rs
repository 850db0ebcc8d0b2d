//! `process.rlimits` with setrlimit(2); errors name the limit.

use anyhow::{bail, Result};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

pub type Resource = libc::__rlimit_resource_t;

/// (resource, soft, hard, name) of one limit.
pub type Planned = (Resource, u64, u64, String);

/// One `Planned` for each configured limit. Pure.
pub fn plan(rlimits: &[PosixRlimit]) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    for (i, r) in rlimits.iter().enumerate() {
        let name = name_of(r.typ());
        if r.soft() > r.hard() {
            bail!(
                "config.json: process.rlimits[{i}]: {name}: soft limit {} is above hard limit {}",
                r.soft(),
                r.hard()
            );
        }
        out.push((resource(r.typ()), r.soft(), r.hard(), name.to_string()));
    }
    Ok(out)
}

pub fn name_of(t: PosixRlimitType) -> &'static str {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => "RLIMIT_CPU",
        RlimitFsize => "RLIMIT_FSIZE",
        RlimitData => "RLIMIT_DATA",
        RlimitStack => "RLIMIT_STACK",
        RlimitCore => "RLIMIT_CORE",
        RlimitRss => "RLIMIT_RSS",
        RlimitNproc => "RLIMIT_NPROC",
        RlimitNofile => "RLIMIT_NOFILE",
        RlimitMemlock => "RLIMIT_MEMLOCK",
        RlimitAs => "RLIMIT_AS",
        RlimitLocks => "RLIMIT_LOCKS",
        RlimitSigpending => "RLIMIT_SIGPENDING",
        RlimitMsgqueue => "RLIMIT_MSGQUEUE",
        RlimitNice => "RLIMIT_NICE",
        RlimitRtprio => "RLIMIT_RTPRIO",
        RlimitRttime => "RLIMIT_RTTIME",
    }
}

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Rootless, a hard limit cannot go above the caller's own (that takes CAP_SYS_RESOURCE in the
/// initial user namespace): refused before anything is made, naming the limit.
pub fn check_unprivileged(plan: &[Planned], own_hard: impl Fn(Resource) -> u64) -> Result<()> {
    for (res, _, hard, name) in plan {
        let own = own_hard(*res);
        if *hard > own {
            bail!(
                "config.json: process.rlimits: {name}: hard limit {hard} is above hako's own \
                 ({own}), which only root can raise (running rootless)"
            );
        }
    }
    Ok(())
}

/// The calling process's hard limit of `res`.
pub fn own_hard(res: Resource) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is valid writable memory for the call.
    match unsafe { libc::getrlimit(res, &mut lim) } {
        0 => lim.rlim_max,
        _ => u64::MAX,
    }
}

/// Applies the planned limits to the calling process.
pub fn apply(plan: &[Planned]) -> Result<()> {
    for (res, soft, hard, name) in plan {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        // SAFETY: lim is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(*res, &lim) } != 0 {
            bail!(
                "config.json: process.rlimits: {name} (soft {soft}, hard {hard}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_above_hard_is_named() {
        let r: PosixRlimit =
            serde_json::from_str(r#"{"type":"RLIMIT_NOFILE","soft":2048,"hard":1024}"#).unwrap();
        let err = plan(&[r]).unwrap_err().to_string();
        assert!(
            err.contains("RLIMIT_NOFILE") && err.contains("rlimits[0]"),
            "{err}"
        );
    }

    #[test]
    fn rootless_cannot_raise_a_hard_limit() {
        let r: PosixRlimit =
            serde_json::from_str(r#"{"type":"RLIMIT_NOFILE","soft":10,"hard":4096}"#).unwrap();
        let p = plan(&[r]).unwrap();
        check_unprivileged(&p, |_| 4096).unwrap();
        let err = check_unprivileged(&p, |_| 1024).unwrap_err().to_string();
        assert!(err.contains("RLIMIT_NOFILE: hard limit 4096 is above hako's own (1024)"));
    }

    #[test]
    fn plan_maps_resources() {
        let r: PosixRlimit =
            serde_json::from_str(r#"{"type":"RLIMIT_CORE","soft":1,"hard":2}"#).unwrap();
        let p = plan(&[r]).unwrap();
        assert_eq!(p[0].0, libc::RLIMIT_CORE);
        assert_eq!((p[0].1, p[0].2), (1, 2));
    }
}
