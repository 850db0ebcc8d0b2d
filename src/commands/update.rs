//! `hako update [-r FILE|-] [flags] ID`: change a live container's limits, and keep the
//! container's copy of config.json in step (events, and later updates, read it).

use std::io::Read;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::cgroups::update::{overlay, parse_bytes};
use crate::cgroups::Cgroup;
use crate::cli::{Global, UpdateArgs};
use crate::container::{Container, Status};

pub fn run(g: &Global, a: &UpdateArgs) -> Result<()> {
    let c = Container::load(&g.root, &a.id)?;
    let status = c.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        bail!("cannot update container {:?}: it is {status}", a.id);
    }
    let new = match &a.resources {
        Some(file) => read_resources(file)?,
        None => from_flags(a)?,
    };
    let mut spec = c.spec()?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let merged = overlay(&linux.resources().clone().unwrap_or_default(), &new);
    let r = &c.record;
    Cgroup::required(r, "update")?.update(&merged)?;
    linux.set_resources(Some(merged));
    spec.set_linux(Some(linux));
    save_spec(&c, &spec)
}

fn read_resources(file: &std::path::Path) -> Result<LinuxResources> {
    let origin = file.display().to_string();
    let mut text = String::new();
    if origin == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("--resources -: read stdin")?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("--resources {origin}"))?;
    }
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("--resources {origin}: {}: {}", e.path(), e.inner()))
}

/// The flags as a partial `linux.resources`.
fn from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut v = json!({});
    let sizes = [
        ("--memory", &a.memory, "limit"),
        ("--memory-reservation", &a.memory_reservation, "reservation"),
        ("--memory-swap", &a.memory_swap, "swap"),
        ("--kernel-memory", &a.kernel_memory, "kernel"),
        ("--kernel-memory-tcp", &a.kernel_memory_tcp, "kernelTCP"),
    ];
    for (flag, value, key) in sizes {
        if let Some(s) = value {
            v["memory"][key] = json!(parse_bytes(flag, s)?);
        }
    }
    let cpu: [(&str, Option<Value>); 8] = [
        ("shares", a.cpu_share.map(Value::from)),
        ("quota", a.cpu_quota.map(Value::from)),
        ("period", a.cpu_period.map(Value::from)),
        ("burst", a.cpu_burst.map(Value::from)),
        ("realtimeRuntime", a.cpu_rt_runtime.map(Value::from)),
        ("realtimePeriod", a.cpu_rt_period.map(Value::from)),
        ("cpus", a.cpuset_cpus.clone().map(Value::from)),
        ("mems", a.cpuset_mems.clone().map(Value::from)),
    ];
    for (key, value) in cpu {
        if let Some(value) = value {
            v["cpu"][key] = value;
        }
    }
    if let Some(w) = a.blkio_weight {
        v["blockIO"]["weight"] = json!(w);
    }
    if let Some(p) = a.pids_limit {
        v["pids"]["limit"] = json!(p);
    }
    serde_json::from_value(v).context("update flags")
}

/// Writes the container's config copy atomically.
fn save_spec(c: &Container, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let path = c.config_copy();
    let tmp = c.dir.join(".config.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(spec)?)
        .with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("{}", path.display()))
}
