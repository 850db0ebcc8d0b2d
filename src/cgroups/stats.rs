//! `hako events`: libcgroups' statistics in the JSON shape runc's `events` prints (its field
//! names, zero values left out where runc leaves them out), and the OOM notification.

use std::collections::{BTreeMap, HashMap};

use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use serde::Serialize;

fn zero(n: &u64) -> bool {
    *n == 0
}

/// One line of `hako events`: `{"type":"stats","id":"c1","data":{...}}` or `{"type":"oom",...}`.
#[derive(Serialize, Debug)]
pub struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub typ: &'a str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct RuncStats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: BTreeMap<String, u64>,
    pub network_interfaces: Option<Vec<()>>,
}

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_bytes: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub serviced: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_time: Vec<BlkioEntry>,
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub wait_time: Vec<BlkioEntry>,
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<BlkioEntry>,
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub time: Vec<BlkioEntry>,
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors: Vec<BlkioEntry>,
}

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn memory_entry(m: &MemoryData) -> MemoryEntry {
    MemoryEntry {
        limit: m.limit,
        usage: m.usage,
        max: m.max_usage,
        failcnt: m.fail_count,
    }
}

fn blkio_entries(list: &[BlkioDeviceStat]) -> Vec<BlkioEntry> {
    list.iter()
        .map(|d| BlkioEntry {
            major: d.major,
            minor: d.minor,
            op: d.op_type.clone().unwrap_or_default(),
            value: d.value,
        })
        .collect()
}

/// Nanoseconds per clock tick (cpuacct.stat counts USER_HZ ticks, 100 a second on Linux).
const NS_PER_TICK: u64 = 10_000_000;

/// runc's stats from libcgroups': v1 reports cpu time in nanoseconds (totals) and ticks
/// (user/system); v2 in microseconds. runc's JSON is nanoseconds throughout.
pub fn from_libcgroups(s: &Stats, unified: bool) -> RuncStats {
    let u = &s.cpu.usage;
    let (total, user, kernel) = if unified {
        (
            u.usage_total * 1000,
            u.usage_user * 1000,
            u.usage_kernel * 1000,
        )
    } else {
        (
            u.usage_total,
            u.usage_user * NS_PER_TICK,
            u.usage_kernel * NS_PER_TICK,
        )
    };
    let m = &s.memory;
    let sorted = |h: &HashMap<String, u64>| h.iter().map(|(k, v)| (k.clone(), *v)).collect();
    RuncStats {
        cpu: Cpu {
            usage: CpuUsage {
                total,
                percpu: u.per_core_usage_total.clone(),
                percpu_kernel: u.per_core_usage_kernel.clone(),
                percpu_user: u.per_core_usage_user.clone(),
                kernel,
                user,
            },
            throttling: Throttling {
                periods: s.cpu.throttling.periods,
                throttled_periods: s.cpu.throttling.throttled_periods,
                throttled_time: s.cpu.throttling.throttled_time,
            },
        },
        memory: Memory {
            cache: m.cache,
            usage: memory_entry(&m.memory),
            swap: memory_entry(&m.memswap),
            kernel: memory_entry(&m.kernel),
            kernel_tcp: memory_entry(&m.kernel_tcp),
            raw: sorted(&m.stats),
        },
        pids: Pids {
            current: s.pids.current,
            limit: s.pids.limit,
        },
        blkio: Blkio {
            service_bytes: blkio_entries(&s.blkio.service_bytes),
            serviced: blkio_entries(&s.blkio.serviced),
            queued: blkio_entries(&s.blkio.queued),
            service_time: blkio_entries(&s.blkio.service_time),
            wait_time: blkio_entries(&s.blkio.wait_time),
            merged: blkio_entries(&s.blkio.merged),
            time: blkio_entries(&s.blkio.time),
            sectors: blkio_entries(&s.blkio.sectors),
        },
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| {
                let entry = Hugetlb {
                    usage: h.usage,
                    max: h.max_usage,
                    failcnt: h.fail_count,
                };
                (size.clone(), entry)
            })
            .collect(),
        intel_rdt: BTreeMap::new(),
        network_interfaces: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_shape() {
        let mut s = Stats::default();
        s.cpu.usage.usage_total = 15_000_000;
        s.cpu.usage.usage_user = 2;
        s.cpu.usage.per_core_usage_total = vec![5_000_000, 10_000_000];
        s.memory.memory.limit = 64 << 20;
        s.memory.memory.usage = 4096;
        s.memory.stats.insert("rss".into(), 4096);
        s.pids.current = 3;
        s.blkio.service_bytes.push(BlkioDeviceStat {
            major: 254,
            minor: 0,
            op_type: Some("Read".into()),
            value: 512,
        });
        let ev = Event {
            typ: "stats",
            id: "c1",
            data: Some(from_libcgroups(&s, false)),
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["id"], "c1");
        let d = &v["data"];
        assert_eq!(d["cpu"]["usage"]["total"], 15_000_000);
        assert_eq!(d["cpu"]["usage"]["user"], 20_000_000);
        assert_eq!(d["cpu"]["usage"]["kernel"], 0);
        assert_eq!(d["cpu"]["usage"]["percpu"][1], 10_000_000);
        assert_eq!(d["cpu"]["throttling"], serde_json::json!({}));
        assert_eq!(d["memory"]["usage"]["limit"], 64 << 20);
        assert_eq!(d["memory"]["usage"]["failcnt"], 0);
        assert!(d["memory"]["usage"].get("max").is_none());
        assert!(d["memory"].get("kernelTCP").is_some());
        assert_eq!(d["memory"]["raw"]["rss"], 4096);
        assert_eq!(d["pids"], serde_json::json!({"current": 3}));
        assert_eq!(
            d["blkio"]["ioServiceBytesRecursive"][0],
            serde_json::json!({"major": 254, "op": "Read", "value": 512})
        );
        assert_eq!(d["hugetlb"], serde_json::json!({}));
        assert!(d["network_interfaces"].is_null());
        let oom: Event<'_, ()> = Event {
            typ: "oom",
            id: "c1",
            data: None,
        };
        assert_eq!(
            serde_json::to_string(&oom).unwrap(),
            r#"{"type":"oom","id":"c1"}"#
        );
    }

    #[test]
    fn v2_microseconds_become_nanoseconds() {
        let mut s = Stats::default();
        s.cpu.usage.usage_total = 7;
        s.cpu.usage.usage_kernel = 3;
        let r = from_libcgroups(&s, true);
        assert_eq!((r.cpu.usage.total, r.cpu.usage.kernel), (7000, 3000));
    }
}
