//! v1 hosts as runc's suite sees them: limits changed on a live container where the order of
//! the writes decides whether the kernel takes them (update.bats), runc 1.1.5's reading of
//! device access letters, and the cgroup2 hierarchy of a hybrid host (cgroups.bats).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::cgroups::{cg_read, cgroup_dirs_named, started, v1_host};
use crate::common::*;

const UNLIMITED: &str = "9223372036854771712";

#[test]
fn update_memory_unlimited_lifts_the_swap_limit() {
    if !v1_host()
        || !std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    {
        return;
    }
    let env = Env::new();
    let (id, pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 64 << 20});
    });
    assert_eq!(
        cg_read(pid, "memory", "memory.memsw.limit_in_bytes"),
        "67108864"
    );
    // The memory limit may not rise above the memory+swap limit: that one goes first.
    let out = env.hako(&["update", "--memory", "-1", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cg_read(pid, "memory", "memory.limit_in_bytes"), UNLIMITED);
    assert_eq!(
        cg_read(pid, "memory", "memory.memsw.limit_in_bytes"),
        UNLIMITED
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&id).join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["linux"]["resources"]["memory"]["swap"], -1);
}

/// Removes a test's parent cgroup from every hierarchy (after the Env declared later is gone).
struct Parent(String);

impl Drop for Parent {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = cgroup_dirs_named(&self.0);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn cfs_period_lowered_below_a_parents_quota() {
    if !v1_host() {
        return;
    }
    let parent = Parent(unique_id("pod"));
    let env = Env::new();
    // The pod: 50% of a CPU (runc's "update cpu period in a pod cgroup with pod limit set").
    let pod = std::path::Path::new("/sys/fs/cgroup/cpu").join(&parent.0);
    std::fs::create_dir(&pod).unwrap();
    std::fs::write(pod.join("cpu.cfs_quota_us"), "50000").unwrap();
    let (id, pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["cgroupsPath"] = json!(format!("/{}/ct", parent.0));
        c["linux"]["resources"]["cpu"] = json!({"quota": 500000, "period": 1000000});
    });
    // 60% is more than the pod has.
    let out = env.hako(&["update", "--cpu-quota", "600000", &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("linux.resources.cpu.quota"),
        "{}",
        stderr(&out)
    );
    // 30% with a shorter period: the period alone (500000/10000) is refused, so the quota
    // goes first and the period after it.
    let out = env.hako(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "3000",
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_period_us"), "10000");
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_quota_us"), "3000");
    let out = env.hako(&["delete", "-f", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// runc 1.1.5 takes the access "rwa" (its own update.bats writes it) and drops the letter it
/// does not know; runtime-spec names only r, w and m.
#[test]
fn device_access_letters_beyond_rwm_are_dropped_with_a_warning() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["linux"]["devices"] =
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
        ]);
    });
    let id = unique_id("rwa");
    let out = env.hako(&["run", "-d", "-b", b.path(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("linux.resources.devices[1].access: \\\"rwa\\\""),
        "no warning: {}",
        stderr(&out)
    );
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let list = cg_read(pid, "devices", "devices.list");
    assert!(list.lines().any(|l| l == "c 1:11 rw"), "{list}");
}

/// On a hybrid host the container (and what exec starts in it) is also in a cgroup of the
/// cgroup2 hierarchy at /sys/fs/cgroup/unified, at its own path, as with runc; delete removes it.
#[test]
fn hybrid_host_groups_the_container_in_the_cgroup2_hierarchy_too() {
    let unified = std::path::Path::new("/sys/fs/cgroup/unified");
    if !v1_host() || !unified.join("cgroup.procs").exists() {
        return;
    }
    let env = Env::new();
    let name = unique_id("hybrid");
    let (id, pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    });
    let last = |text: String| text.lines().last().unwrap_or_default().to_string();
    let run_cgroup = last(std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap());
    assert_eq!(run_cgroup, format!("0::/{name}"));
    let out = env.hako(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(last(stdout(&out)), run_cgroup);
    let out = env.hako(&["delete", "-f", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!unified.join(&name).exists(), "cgroup2 directory left");
}
