//! Property test: a valid config with random values put at known fields (every JSON type,
//! extreme numbers, long strings, deep nesting, long lists) goes through loading and every
//! plan `create` makes in the parent before clone. Whatever the config, nothing panics and an
//! error is one line. Runs a bounded number of cases under `cargo test`.

use std::path::Path;

use anyhow::Result;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::from_text;
use crate::cgroups;
use crate::launch::plan;
use crate::linux::{capabilities, lsm, namespaces};

/// Loading and the parent's plans, as `create` runs them before clone (all but those that need
/// root or make something: opening namespaces to join, idmap user namespaces, the cgroup).
fn load_and_plan(text: &str, dir: &Path) -> Result<()> {
    let (spec, _) = from_text(text, dir)?;
    lsm::check(&spec, false, false)?;
    let linux = spec.linux().as_ref();
    let ns = namespaces::plan(linux)?;
    if let Some(p) = spec.process() {
        plan::process(p, linux, &[], &capabilities::own_bounding()?)?;
    }
    plan::container(&spec, ns.has_mount_ns)?;
    cgroups::resolve_path(&spec, "c1", false)?;
    let resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    cgroups::host::needs(&resources, false)?;
    cgroups::devices::plan(resources.devices().as_deref().unwrap_or_default())?;
    cgroups::extra::plan(&resources, false);
    Ok(())
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(i64::MAX)),
        Just(json!(u32::MAX)),
        Just(json!(1u64 << 32)),
        Just(json!(1e300)),
        Just(json!(-0.5)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
    ]
}

fn string() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        8 => short(),
        1 => (4000usize..9000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Strings for the entries of lists (which may be repeated thousands of times).
fn short() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just(String::new()),
        Just("..".to_string()),
        Just("/".to_string()),
        Just("/../../etc".to_string()),
        Just("0-18446744073709551615".to_string()),
        Just("net.ipv4.ip_forward".to_string()),
        Just("a\nb".to_string()),
        Just("SCMP_ACT_ALLOW".to_string()),
        Just("bind".to_string()),
        Just("rbind".to_string()),
        "[ -~]{0,40}",
        "\\PC{0,20}",
    ]
}

/// Any JSON value, nesting included.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        short().prop_map(Value::String),
    ];
    let nested = leaf.clone().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,12}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    prop_oneof![
        4 => nested,
        // Long lists of one value, past every bound.
        1 => (leaf, prop_oneof![Just(4097usize), Just(341), 0usize..50])
            .prop_map(|(v, n)| Value::Array(vec![v; n])),
        // Deeper than the parser's recursion limit.
        1 => (1usize..300).prop_map(|depth| {
            (0..depth).fold(json!(1), |v, _| json!([v]))
        }),
    ]
}

/// Fields a mutation targets (JSON pointers; missing parents are made), each with values of
/// the right shape (to get past the parser to the plans) but extreme content.
fn fields() -> Vec<(&'static str, BoxedStrategy<Value>)> {
    let s = || string().prop_map(Value::String);
    let strs = |n: usize| prop::collection::vec(short(), 0..n).prop_map(|v| json!(v));
    let one = |xs: &'static [&'static str]| prop::sample::select(xs).prop_map(|x| json!(x));
    let idmap = (u32s(), u32s(), u32s())
        .prop_map(|(c, h, n)| json!({"containerID": c, "hostID": h, "size": n}));
    let idmaps = long(idmap.clone().boxed());
    let hook = (short(), i64s()).prop_map(|(p, t)| json!({"path": format!("/{p}"), "timeout": t}));
    let few_maps = prop::collection::vec(idmap, 0..3).prop_map(Value::Array);
    let mount = (
        short(),
        short(),
        short(),
        strs(4),
        prop::option::of(few_maps),
    )
        .prop_map(|(d, t, src, o, maps)| {
            let mut m =
                json!({"destination": format!("/{d}"), "type": t, "source": src, "options": o});
            if let Some(maps) = maps {
                m["uidMappings"] = maps.clone();
                m["gidMappings"] = maps;
            }
            m
        });
    let rlimit = (one(RLIMITS), u64s(), u64s())
        .prop_map(|(t, soft, hard)| json!({"type": t, "soft": soft, "hard": hard}));
    let rule = (
        short(),
        one(ACTIONS),
        prop::collection::vec((i64s(), u64s(), one(OPS)), 0..8),
    )
        .prop_map(|(name, action, args)| {
            let args: Vec<Value> = args
                .into_iter()
                .map(|(i, v, op)| json!({"index": i, "value": v, "valueTwo": v, "op": op}))
                .collect();
            json!({"names": [name, "read"], "action": action, "args": args})
        });
    let seccomp = (one(ACTIONS), long(rule.boxed()), strs(3)).prop_map(
        |(d, rules, arch)| json!({"defaultAction": d, "syscalls": rules, "architectures": arch}),
    );
    let device = (short(), one(&["c", "b", "u", "p", "x"]), i64s(), i64s(), u32s())
        .prop_map(|(p, t, maj, min, mode)| {
            json!({"path": format!("/dev/{p}"), "type": t, "major": maj, "minor": min, "fileMode": mode})
        });
    let dev_rule = (any::<bool>(), one(&["a", "c", "b"]), i64s(), i64s(), short())
        .prop_map(|(allow, t, maj, min, acc)| {
            json!({"allow": allow, "type": t, "major": maj, "minor": min, "access": acc})
        });
    let ns = (one(NAMESPACES), prop::option::of(short()))
        .prop_map(|(t, p)| json!({"type": t, "path": p}));
    let map = || prop::collection::btree_map(short(), string(), 0..5).prop_map(|m| json!(m));
    vec![
        ("/ociVersion", prop_oneof![Just(json!("1.0.2")), s()].boxed()),
        ("/root/path", s().boxed()),
        ("/process/args", strs(4).boxed()),
        ("/process/env", strs(4).boxed()),
        ("/process/cwd", string().prop_map(|c| json!(format!("/{c}"))).boxed()),
        ("/process/consoleSize", (u64s(), u64s()).prop_map(|(h, w)| json!({"height": h, "width": w})).boxed()),
        ("/process/user/uid", u32s().boxed()),
        ("/process/user/additionalGids", long(u32s().boxed())),
        ("/process/user/umask", u32s().boxed()),
        ("/process/rlimits", long(rlimit.boxed())),
        ("/process/capabilities/bounding", prop::collection::vec(one(CAPS), 0..4).prop_map(|v| json!(v)).boxed()),
        ("/process/oomScoreAdj", i64s().boxed()),
        ("/process/scheduler", (one(&["SCHED_OTHER", "SCHED_FIFO", "SCHED_DEADLINE"]), i64s(), u64s())
            .prop_map(|(p, n, r)| json!({"policy": p, "nice": n, "priority": n, "runtime": r})).boxed()),
        ("/process/ioPriority", (one(&["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE"]), i64s())
            .prop_map(|(c, p)| json!({"class": c, "priority": p})).boxed()),
        ("/process/execCPUAffinity", (cpus(), cpus()).prop_map(|(i, f)| json!({"initial": i, "final": f})).boxed()),
        ("/hostname", s().boxed()),
        ("/mounts", long(mount.boxed())),
        ("/hooks/prestart", long(hook.clone().boxed())),
        ("/hooks/poststop", long(hook.boxed())),
        ("/linux/namespaces", prop::collection::vec(ns, 0..10).prop_map(|v| json!(v)).boxed()),
        ("/linux/uidMappings", idmaps.clone()),
        ("/linux/gidMappings", idmaps),
        ("/linux/sysctl", map().boxed()),
        ("/linux/resources/devices", long(dev_rule.boxed())),
        ("/linux/resources/memory", (i64s(), i64s())
            .prop_map(|(l, s)| json!({"limit": l, "swap": s, "swappiness": l})).boxed()),
        ("/linux/resources/cpu", (u64s(), i64s(), cpus())
            .prop_map(|(sh, q, c)| json!({"shares": sh, "quota": q, "period": sh, "cpus": c, "mems": c})).boxed()),
        ("/linux/resources/pids/limit", i64s().boxed()),
        ("/linux/resources/blockIO", (u32s(), i64s())
            .prop_map(|(w, d)| json!({"weight": w, "throttleReadBpsDevice": [{"major": d, "minor": d, "rate": w}]})).boxed()),
        ("/linux/resources/hugepageLimits", long(short().prop_map(|p| json!({"pageSize": p, "limit": 1})).boxed())),
        ("/linux/resources/unified", map().boxed()),
        ("/linux/cgroupsPath", s().boxed()),
        ("/linux/seccomp", seccomp.boxed()),
        ("/linux/maskedPaths", long(short().prop_map(Value::String).boxed())),
        ("/linux/readonlyPaths", strs(4).boxed()),
        ("/linux/devices", long(device.boxed())),
        ("/linux/timeOffsets", (one(&["monotonic", "boottime", "realtime"]), i64s(), u32s())
            .prop_map(|(c, secs, ns)| json!({ c.as_str().unwrap_or(""): {"secs": secs, "nanosecs": ns} })).boxed()),
        ("/linux/personality", (one(&["LINUX", "LINUX32"]), strs(2))
            .prop_map(|(d, f)| json!({"domain": d, "flags": f})).boxed()),
        ("/linux/rootfsPropagation", s().boxed()),
        ("/annotations", map().boxed()),
    ]
}

const RLIMITS: &[&str] = &[
    "RLIMIT_NOFILE",
    "RLIMIT_CORE",
    "RLIMIT_STACK",
    "RLIMIT_NPROC",
];
const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
];
const OPS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_GT",
    "SCMP_CMP_NE",
];
const CAPS: &[&str] = &["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NOPE", "cap_kill", ""];
const NAMESPACES: &[&str] = &[
    "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time",
];

fn u32s() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        any::<u32>()
    ]
    .prop_map(|n| json!(n))
}

fn u64s() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(1 << 32),
        any::<u64>()
    ]
    .prop_map(|n| json!(n))
}

fn i64s() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        Just(0i64),
        Just(-1),
        Just(1),
        Just(i64::MAX),
        Just(i64::MIN),
        any::<i64>()
    ]
    .prop_map(|n| json!(n))
}

/// cpu lists: ranges with extreme ends.
fn cpus() -> impl Strategy<Value = Value> + Clone {
    let n = prop_oneof![
        Just(0u64),
        Just(1023),
        Just(1024),
        Just(u64::MAX),
        any::<u64>()
    ];
    (n.clone(), n).prop_map(|(a, b)| json!(format!("{a}-{b}")))
}

/// A list of a few entries, or one entry repeated past the bounds.
fn long(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::collection::vec(item.clone(), 0..4).prop_map(Value::Array),
        1 => (item, prop_oneof![Just(341usize), Just(4097)])
            .prop_map(|(v, n)| Value::Array(vec![v; n])),
    ]
    .boxed()
}

/// A field and its new value: mostly of the field's shape, sometimes anything at all.
fn edit() -> impl Strategy<Value = (&'static str, Value)> {
    let all: Vec<_> = fields()
        .into_iter()
        .map(|(f, typed)| (Just(f), prop_oneof![3 => typed, 1 => value()]).boxed())
        .collect();
    prop::strategy::Union::new(all)
}

/// Puts `v` at the path `tokens`, making missing parents (an index past the end appends).
fn set(node: &mut Value, tokens: &[&str], v: Value) {
    let Some((first, rest)) = tokens.split_first() else {
        *node = v;
        return;
    };
    match (node, first.parse::<usize>()) {
        (Value::Array(a), Ok(i)) => {
            if i >= a.len() {
                a.push(json!({}));
            }
            let i = i.min(a.len() - 1);
            set(&mut a[i], rest, v)
        }
        (node, _) => {
            if !node.is_object() {
                *node = json!({});
            }
            let map = node.as_object_mut().unwrap();
            set(map.entry(*first).or_insert(json!({})), rest, v)
        }
    }
}

fn base() -> Value {
    let spec = crate::commands::spec::default_spec(false, true);
    serde_json::to_value(spec).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_configs_never_panic_and_fail_in_one_line(
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut config = base();
        for (field, v) in edits {
            let tokens: Vec<&str> = field.split('/').skip(1).collect();
            set(&mut config, &tokens, v);
        }
        let text = serde_json::to_string(&config).unwrap();
        if let Err(e) = load_and_plan(&text, dir.path()) {
            let msg = crate::logging::error_line(&e);
            prop_assert!(!msg.contains('\n'), "error of more than one line: {msg}");
            prop_assert!(msg.starts_with("config.json"), "error naming no field: {msg}");
        }
    }
}
