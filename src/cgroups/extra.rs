//! The resource keys libcgroups 0.7 passes over without a word: on v1 `memory.useHierarchy`,
//! `blockIO.leafWeight` and the per-device weights; `rdma` on both. Planned as plain
//! (key, controller, file, value) writes, then written. Also the scale of a v2
//! `blockIO.weight`, which the Cgroup writes itself.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use oci_spec::runtime::LinuxResources;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub key: String,
    pub controller: &'static str,
    /// Candidates: the first that exists is written.
    pub files: Vec<&'static str>,
    pub value: String,
    /// Skip the write when the file already holds this value (files that refuse rewrites).
    pub only_if_different: bool,
}

fn write(key: String, controller: &'static str, files: &[&'static str], value: String) -> Write {
    Write {
        key,
        controller,
        files: files.to_vec(),
        value,
        only_if_different: false,
    }
}

pub fn plan(r: &LinuxResources, unified: bool) -> Vec<Write> {
    let mut out = Vec::new();
    if !unified {
        if let Some(h) = r.memory().as_ref().and_then(|m| m.use_hierarchy()) {
            let mut w = write(
                "linux.resources.memory.useHierarchy".into(),
                "memory",
                &["memory.use_hierarchy"],
                u8::from(h).to_string(),
            );
            // Recent kernels are always hierarchical: they accept 1 and refuse 0.
            w.only_if_different = true;
            out.push(w);
        }
        if let Some(b) = r.block_io() {
            if let Some(w) = b.leaf_weight() {
                let key = "linux.resources.blockIO.leafWeight".into();
                out.push(write(key, "blkio", &["blkio.leaf_weight"], w.to_string()));
            }
            for (i, d) in b.weight_device().iter().flatten().enumerate() {
                let dev = format!("{}:{}", d.major(), d.minor());
                let key = |f: &str| format!("linux.resources.blockIO.weightDevice[{i}].{f}");
                if let Some(w) = d.weight() {
                    let files = ["blkio.weight_device", "blkio.bfq.weight_device"];
                    out.push(write(key("weight"), "blkio", &files, format!("{dev} {w}")));
                }
                if let Some(w) = d.leaf_weight() {
                    let files = ["blkio.leaf_weight_device"];
                    out.push(write(
                        key("leafWeight"),
                        "blkio",
                        &files,
                        format!("{dev} {w}"),
                    ));
                }
            }
        }
    }
    let mut rdma: Vec<_> = r.rdma().iter().flatten().collect();
    rdma.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, limit) in rdma {
        let mut line = dev.clone();
        if let Some(h) = limit.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = limit.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line != *dev {
            let key = format!("linux.resources.rdma.{dev}");
            out.push(write(key, "rdma", &["rdma.max"], line));
        }
    }
    out
}

/// On v2, `memory.swap` equal to `memory.limit` means no swap: memory.swap.max is 0.
/// (libcgroups writes swap - limit and skips a 0, leaving swap unlimited.)
pub fn v2_swap_off(r: &LinuxResources) -> Option<Write> {
    let m = r.memory().as_ref()?;
    let (limit, swap) = (m.limit()?, m.swap()?);
    (limit > 0 && swap == limit).then(|| {
        let key = "linux.resources.memory.swap".to_string();
        write(key, "memory", &["memory.swap.max"], "0".to_string())
    })
}

/// A cgroup v1 blkio weight (10..=1000) on io.weight's scale (1..=10000), linearly, as runc.
pub fn io_weight_from_blkio(weight: u16) -> u64 {
    1 + u64::from(weight.saturating_sub(10)) * 9999 / 990
}

/// Writes the planned values; `dir_of` gives a controller's directory for the cgroup.
pub fn apply(writes: &[Write], dir_of: impl Fn(&str) -> Option<PathBuf>) -> Result<()> {
    for w in writes {
        let dir = dir_of(w.controller)
            .ok_or_else(|| anyhow!("config.json: {}: no {} controller", w.key, w.controller))?;
        let file = w
            .files
            .iter()
            .map(|f| dir.join(f))
            .find(|f| f.exists())
            .unwrap_or_else(|| dir.join(w.files[0]));
        if w.only_if_different {
            let current = std::fs::read_to_string(&file).unwrap_or_default();
            if current.trim() == w.value {
                continue;
            }
        }
        std::fs::write(&file, &w.value).map_err(|e| {
            anyhow!(
                "config.json: {}: write {:?} to {}: {e}",
                w.key,
                w.value,
                file.display()
            )
        })?;
    }
    Ok(())
}

/// `cpu.period` and `cpu.quota` on v1, in runc's order: the period first, unless the kernel
/// refuses it with EINVAL (the old quota over the new period would exceed a parent's limit) and
/// a quota follows; then the quota, then that period again. libcgroups writes the period and
/// fails there. 0 means unset, as for libcgroups.
pub fn write_v1_cfs(dir: &Path, period: Option<u64>, quota: Option<i64>) -> Result<()> {
    let write = |key: &str, file: &str, value: String| {
        let path = dir.join(file);
        std::fs::write(&path, &value).map_err(|e| {
            let err = anyhow!(
                "config.json: linux.resources.cpu.{key}: write {value:?} to {}: {e}",
                path.display()
            );
            (e.raw_os_error(), err)
        })
    };
    let quota = quota.filter(|q| *q != 0);
    let mut retry_period = None;
    if let Some(p) = period.filter(|p| *p != 0) {
        match write("period", "cpu.cfs_period_us", p.to_string()) {
            Err((Some(libc::EINVAL), _)) if quota.is_some() => retry_period = Some(p),
            Err((_, e)) => return Err(e),
            Ok(()) => {}
        }
    }
    if let Some(q) = quota {
        write("quota", "cpu.cfs_quota_us", q.to_string()).map_err(|(_, e)| e)?;
    }
    if let Some(p) = retry_period {
        write("period", "cpu.cfs_period_us", p.to_string()).map_err(|(_, e)| e)?;
    }
    Ok(())
}

/// A v1 kernel memory limit the kernel took without applying (Linux 5.16 on): `read_back` is
/// what memory.kmem.limit_in_bytes says afterwards. runtime-spec lets runtimes ignore this
/// deprecated key, so it is a warning, not an error.
pub fn kernel_memory_ignored(requested: i64, read_back: &str) -> bool {
    let page = 4096;
    let Ok(actual) = read_back.trim().parse::<i64>() else {
        return false;
    };
    if requested < 0 {
        return actual < i64::MAX - page;
    }
    actual != requested / page * page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v1_blkio_weights_and_hierarchy() {
        let r = res(r#"{"memory":{"useHierarchy":true},
            "blockIO":{"weight":500,"leafWeight":300,
                       "weightDevice":[{"major":8,"minor":0,"weight":500,"leafWeight":300}]}}"#);
        let w = plan(&r, false);
        let got: Vec<(&str, &str, &str)> = w
            .iter()
            .map(|w| (w.key.as_str(), w.files[0], w.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "linux.resources.memory.useHierarchy",
                    "memory.use_hierarchy",
                    "1"
                ),
                (
                    "linux.resources.blockIO.leafWeight",
                    "blkio.leaf_weight",
                    "300"
                ),
                (
                    "linux.resources.blockIO.weightDevice[0].weight",
                    "blkio.weight_device",
                    "8:0 500"
                ),
                (
                    "linux.resources.blockIO.weightDevice[0].leafWeight",
                    "blkio.leaf_weight_device",
                    "8:0 300"
                ),
            ]
        );
        assert!(w[0].only_if_different);
        // libcgroups' v2 io controller handles these itself.
        assert!(plan(&r, true).is_empty());
    }

    #[test]
    fn v2_swap_equal_to_the_limit_is_no_swap() {
        let w = v2_swap_off(&res(r#"{"memory":{"limit":1048576,"swap":1048576}}"#)).unwrap();
        assert_eq!((w.files[0], w.value.as_str()), ("memory.swap.max", "0"));
        assert!(v2_swap_off(&res(r#"{"memory":{"limit":1048576,"swap":2097152}}"#)).is_none());
        assert!(v2_swap_off(&res(r#"{"memory":{"limit":-1,"swap":-1}}"#)).is_none());
    }

    #[test]
    fn io_weight_scale() {
        assert_eq!(io_weight_from_blkio(10), 1);
        assert_eq!(io_weight_from_blkio(500), 4950);
        assert_eq!(io_weight_from_blkio(1000), 10000);
    }

    #[test]
    fn rdma_lines() {
        let r = res(
            r#"{"rdma":{"mlx5_1":{"hcaHandles":3},"mlx4_0":{"hcaHandles":2,"hcaObjects":9},
                       "empty":{}}}"#,
        );
        let w = plan(&r, true);
        let lines: Vec<&str> = w.iter().map(|w| w.value.as_str()).collect();
        assert_eq!(
            lines,
            ["mlx4_0 hca_handle=2 hca_object=9", "mlx5_1 hca_handle=3"]
        );
        assert_eq!(w[0].key, "linux.resources.rdma.mlx4_0");
    }

    #[test]
    fn ignored_kernel_limit_detected() {
        assert!(kernel_memory_ignored(50593792, "9223372036854771712\n"));
        assert!(!kernel_memory_ignored(50593792, "50593792\n"));
        assert!(!kernel_memory_ignored(50593793, "50593792"));
        assert!(!kernel_memory_ignored(-1, "9223372036854771712"));
    }

    #[test]
    fn apply_writes_into_the_controller_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("memory/c1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.use_hierarchy"), "1\n").unwrap();
        let dir_of = |c: &str| (c == "memory").then(|| tmp.path().join("memory/c1"));
        // Same value: left alone (a real kernel would refuse nothing here, but a rewrite of
        // use_hierarchy can fail on a cgroup with children).
        let r = res(r#"{"memory":{"useHierarchy":true}}"#);
        apply(&plan(&r, false), dir_of).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.use_hierarchy")).unwrap(),
            "1\n"
        );
        let r = res(r#"{"memory":{"useHierarchy":false}}"#);
        apply(&plan(&r, false), dir_of).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.use_hierarchy")).unwrap(),
            "0"
        );
        // A missing controller names the key.
        let r = res(r#"{"blockIO":{"leafWeight":10}}"#);
        let err = apply(&plan(&r, false), dir_of).unwrap_err();
        assert!(err.to_string().contains("blockIO.leafWeight"), "{err}");
    }
}
