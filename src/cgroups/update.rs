//! `hako update`: runc's rules for which keys change on a live container, and its size syntax.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxResources};

/// A size as runc's update flags take it: bytes, or a number with a binary unit (`64M`, `1g`,
/// `512KiB`, `1.5G`); `-1` means unlimited.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim_start().to_ascii_lowercase();
    let u = unit.strip_suffix('b').unwrap_or(&unit);
    let shift = match u.strip_suffix('i').unwrap_or(u) {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => bail!("{flag}: {s:?}: not a size (bytes, or a number with k, m, g, t or p)"),
    };
    let value: f64 = match num.parse() {
        Ok(v) if !num.is_empty() => v,
        _ => bail!("{flag}: {s:?}: not a size (bytes, or a number with k, m, g, t or p)"),
    };
    let bytes = value * (1u64 << shift) as f64;
    if bytes >= i64::MAX as f64 {
        bail!("{flag}: {s:?}: too large");
    }
    Ok(bytes as i64)
}

/// `current` with the keys runc's update changes taken from `new` where set: memory limit,
/// reservation, swap and kernel limits; every cpu key; the block I/O weight; the pids limit;
/// `unified`. Everything else (devices, hugepages, network, ...) stays as created.
pub fn overlay(current: &LinuxResources, new: &LinuxResources) -> LinuxResources {
    let mut out = current.clone();
    if let Some(n) = new.memory() {
        let mut m = out.memory().unwrap_or_default();
        if n.limit().is_some() {
            m.set_limit(n.limit());
        }
        if n.reservation().is_some() {
            m.set_reservation(n.reservation());
        }
        if n.swap().is_some() {
            m.set_swap(n.swap());
        } else if n.limit() == Some(-1) && m.swap().is_some() {
            // runc: an unlimited memory without a swap value lifts the swap limit too (v1's
            // memory+swap limit may not stay below the memory limit).
            m.set_swap(Some(-1));
        }
        if n.kernel().is_some() {
            m.set_kernel(n.kernel());
        }
        if n.kernel_tcp().is_some() {
            m.set_kernel_tcp(n.kernel_tcp());
        }
        out.set_memory(Some(m));
    }
    if let Some(n) = new.cpu() {
        let mut c = out.cpu().clone().unwrap_or_default();
        macro_rules! take {
            ($($get:ident => $set:ident),*) => {$(
                if n.$get().is_some() {
                    c.$set(n.$get().clone());
                }
            )*};
        }
        take!(shares => set_shares, quota => set_quota, period => set_period,
              burst => set_burst, idle => set_idle, realtime_runtime => set_realtime_runtime,
              realtime_period => set_realtime_period, cpus => set_cpus, mems => set_mems);
        out.set_cpu(Some(c));
    }
    if let Some(w) = new.block_io().as_ref().and_then(|b| b.weight()) {
        let mut b = out.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        out.set_block_io(Some(b));
    }
    if let Some(p) = new.pids() {
        out.set_pids(Some(*p));
    }
    if let Some(u) = new.unified() {
        let mut merged = out.unified().clone().unwrap_or_default();
        merged.extend(u.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.set_unified(Some(merged));
    }
    out
}

/// The part of `r` an update applies to a live container: the device rules are left alone
/// (rewriting them would deny every device for a moment), as are the keys update never changes.
pub fn live_subset(r: &LinuxResources) -> LinuxResources {
    let mut out = LinuxResources::default();
    out.set_memory(*r.memory());
    out.set_cpu(r.cpu().clone());
    out.set_pids(*r.pids());
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        out.set_block_io(Some(b));
    }
    out.set_unified(r.unified().clone());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sizes() {
        let p = |s| parse_bytes("--memory", s);
        assert_eq!(p("67108864").unwrap(), 64 << 20);
        assert_eq!(p("64M").unwrap(), 64 << 20);
        assert_eq!(p("64m").unwrap(), 64 << 20);
        assert_eq!(p("64MB").unwrap(), 64 << 20);
        assert_eq!(p("64MiB").unwrap(), 64 << 20);
        assert_eq!(p("1g").unwrap(), 1 << 30);
        assert_eq!(p("1.5k").unwrap(), 1536);
        assert_eq!(p("-1").unwrap(), -1);
        assert_eq!(p("100b").unwrap(), 100);
        for bad in ["", "M", "64X", "64Mx", "-5", "1.2.3k", "64 MBB"] {
            let err = p(bad).unwrap_err().to_string();
            assert!(err.starts_with("--memory: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn overlay_changes_only_given_keys() {
        let cur = res(r#"{"memory":{"limit":100,"swap":200,"swappiness":10},
            "cpu":{"shares":512,"cpus":"0"},"devices":[{"allow":false,"access":"rwm"}],
            "blockIO":{"weight":100,"leafWeight":50},"pids":{"limit":10}}"#);
        let new = res(
            r#"{"memory":{"limit":64},"cpu":{"quota":5000},"blockIO":{"weight":300},
            "pids":{"limit":20},"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#,
        );
        let out = overlay(&cur, &new);
        let m = out.memory().unwrap();
        assert_eq!(
            (m.limit(), m.swap(), m.swappiness()),
            (Some(64), Some(200), Some(10))
        );
        let c = out.cpu().clone().unwrap();
        assert_eq!((c.shares(), c.quota()), (Some(512), Some(5000)));
        assert_eq!(c.cpus().as_deref(), Some("0"));
        let b = out.block_io().clone().unwrap();
        assert_eq!((b.weight(), b.leaf_weight()), (Some(300), Some(50)));
        assert_eq!(out.pids().as_ref().unwrap().limit(), 20);
        assert_eq!(out.devices(), cur.devices());
        // Not something update changes.
        assert!(out.hugepage_limits().is_none());
    }

    #[test]
    fn unlimited_memory_lifts_a_swap_limit_unless_swap_is_given() {
        let cur = res(r#"{"memory":{"limit":50000000,"swap":96468992}}"#);
        let swap = |new: &str| overlay(&cur, &res(new)).memory().unwrap().swap();
        assert_eq!(swap(r#"{"memory":{"limit":-1}}"#), Some(-1));
        assert_eq!(
            swap(r#"{"memory":{"limit":-1,"swap":200000000}}"#),
            Some(200000000)
        );
        assert_eq!(swap(r#"{"memory":{"limit":60000000}}"#), Some(96468992));
        // No swap limit to lift: none is made up.
        let cur = res(r#"{"memory":{"limit":50000000}}"#);
        let out = overlay(&cur, &res(r#"{"memory":{"limit":-1}}"#));
        assert_eq!(out.memory().unwrap().swap(), None);
    }

    #[test]
    fn live_subset_leaves_devices_alone() {
        let r = res(
            r#"{"memory":{"limit":1},"devices":[{"allow":false,"access":"rwm"}],
            "blockIO":{"weight":10,"leafWeight":5},"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#,
        );
        let s = live_subset(&r);
        assert!(s.devices().is_none() && s.hugepage_limits().is_none());
        assert_eq!(s.memory(), r.memory());
        let b = s.block_io().clone().unwrap();
        assert_eq!((b.weight(), b.leaf_weight()), (Some(10), None));
    }
}
