//! Capabilities: the five sets of `process.capabilities`, via the caps crate.

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// The five sets as the caps crate spells them. Pure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapsPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(set: &Option<Capabilities>, supported: &CapsHashSet) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap =
            Capability::from_str(&name).with_context(|| format!("unknown capability {name}"))?;
        // A capability this kernel does not know is left out, as runc does.
        if supported.contains(&cap) {
            out.insert(cap);
        }
    }
    Ok(out)
}

/// `process.capabilities` → sets; absent means the process gets none.
pub fn plan(caps: Option<&LinuxCapabilities>, supported: &CapsHashSet) -> Result<CapsPlan> {
    let Some(c) = caps else {
        return Ok(CapsPlan::default());
    };
    let mut p = CapsPlan {
        bounding: convert(c.bounding(), supported)?,
        effective: convert(c.effective(), supported)?,
        inheritable: convert(c.inheritable(), supported)?,
        permitted: convert(c.permitted(), supported)?,
        ambient: convert(c.ambient(), supported)?,
    };
    for cap in unraisable_ambient(&p) {
        // `runc spec` writes ambient caps with no inheritable set; runc warns and runs.
        tracing::warn!(
            "can't raise ambient capability {cap}: not in both the permitted and inheritable sets"
        );
        p.ambient.remove(&cap);
    }
    Ok(p)
}

/// Ambient capabilities the kernel would refuse: each must also be permitted and inheritable.
fn unraisable_ambient(p: &CapsPlan) -> Vec<Capability> {
    let mut out: Vec<Capability> = p
        .ambient
        .iter()
        .filter(|c| !p.permitted.contains(c) || !p.inheritable.contains(c))
        .copied()
        .collect();
    out.sort_by_key(|c| c.to_string());
    out
}

/// The capabilities this kernel knows and the caller's bounding set, from one probe of each
/// capability (PR_CAPBSET_READ: 1 in the set, 0 not, EINVAL unknown to this kernel), made once
/// per process: the init, a clone of the parent, inherits the answer instead of probing again
/// on its way to execve. hako reads both before it drops anything from its bounding set.
fn probed() -> &'static (CapsHashSet, CapsHashSet) {
    static ONCE: std::sync::OnceLock<(CapsHashSet, CapsHashSet)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let (mut supported, mut bounding) = (CapsHashSet::new(), CapsHashSet::new());
        for cap in caps::all() {
            // SAFETY: PR_CAPBSET_READ takes a capability number and reads nothing else.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap.index() as libc::c_ulong) };
            if rc >= 0 {
                supported.insert(cap);
            }
            if rc == 1 {
                bounding.insert(cap);
            }
        }
        (supported, bounding)
    })
}

pub fn supported() -> CapsHashSet {
    probed().0.clone()
}

/// The caller's own bounding set: no process it starts can hold more.
pub fn own_bounding() -> Result<CapsHashSet> {
    Ok(probed().1.clone())
}

/// Every capability the config asks for must be in `available` (the caller's bounding set);
/// otherwise capset(2) would fail later with a bare EPERM.
pub fn check_within(p: &CapsPlan, available: &CapsHashSet) -> Result<()> {
    for (set, caps) in [
        ("bounding", &p.bounding),
        ("effective", &p.effective),
        ("inheritable", &p.inheritable),
        ("permitted", &p.permitted),
        ("ambient", &p.ambient),
    ] {
        let mut missing: Vec<String> = caps.difference(available).map(|c| c.to_string()).collect();
        if !missing.is_empty() {
            missing.sort();
            bail!(
                "config.json: process.capabilities.{set}: {} not in the bounding set hako runs with, so no container it starts can have {}",
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" }
            );
        }
    }
    Ok(())
}

/// Drops what is not in the bounding set (while we still have CAP_SETPCAP).
pub fn apply_bounding(p: &CapsPlan) -> Result<()> {
    for cap in supported() {
        if !p.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("drop {cap} from the bounding set"))?;
        }
    }
    Ok(())
}

/// Sets effective, permitted, inheritable and ambient, after the switch of user.
pub fn apply_sets(p: &CapsPlan) -> Result<()> {
    // Each capset(2) must keep effective within permitted: narrow effective before permitted.
    caps::set(None, CapSet::Inheritable, &p.inheritable).context("set inheritable capabilities")?;
    caps::set(None, CapSet::Effective, &p.effective).context("set effective capabilities")?;
    caps::set(None, CapSet::Permitted, &p.permitted).context("set permitted capabilities")?;
    // The plan holds only ambient capabilities that are permitted and inheritable.
    caps::clear(None, CapSet::Ambient).context("clear ambient capabilities")?;
    for cap in &p.ambient {
        caps::raise(None, CapSet::Ambient, *cap).with_context(|| format!("raise ambient {cap}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_caps_plan() {
        let spec = oci_spec::runtime::Spec::default();
        let c = spec.process().as_ref().unwrap().capabilities().as_ref();
        let p = plan(c, &supported()).unwrap();
        assert!(p.bounding.contains(&Capability::CAP_AUDIT_WRITE));
        assert!(p.effective.contains(&Capability::CAP_KILL));
        assert!(!p.effective.contains(&Capability::CAP_SYS_ADMIN));
    }

    #[test]
    fn caps_outside_the_callers_bounding_set_are_named() {
        let c: LinuxCapabilities =
            serde_json::from_str(r#"{"inheritable":["CAP_SYS_RESOURCE","CAP_KILL"]}"#).unwrap();
        let p = plan(Some(&c), &supported()).unwrap();
        let only_kill: CapsHashSet = [Capability::CAP_KILL].into_iter().collect();
        let err = check_within(&p, &only_kill).unwrap_err().to_string();
        assert!(
            err.contains("capabilities.inheritable: CAP_SYS_RESOURCE not in the bounding set"),
            "{err}"
        );
        assert!(check_within(&p, &supported()).is_ok());
    }

    #[test]
    fn ambient_without_inheritable_is_dropped() {
        // What `runc spec` writes: ambient, no inheritable.
        let text = r#"{"bounding":["CAP_KILL"],"permitted":["CAP_KILL","CAP_CHOWN"],
            "effective":["CAP_KILL"],"inheritable":["CAP_CHOWN"],"ambient":["CAP_KILL","CAP_CHOWN"]}"#;
        let c: LinuxCapabilities = serde_json::from_str(text).unwrap();
        let p = plan(Some(&c), &supported()).unwrap();
        let only_chown: CapsHashSet = [Capability::CAP_CHOWN].into_iter().collect();
        assert_eq!(p.ambient, only_chown);
    }

    #[test]
    fn unsupported_caps_are_left_out() {
        let text = r#"{"bounding":["CAP_SYS_ADMIN","CAP_CHOWN"]}"#;
        let c: LinuxCapabilities = serde_json::from_str(text).unwrap();
        let only_chown: CapsHashSet = [Capability::CAP_CHOWN].into_iter().collect();
        let p = plan(Some(&c), &only_chown).unwrap();
        assert_eq!(p.bounding, only_chown);
    }
}
