//! config-linux.md "Namespaces" and "User namespace mappings": new namespaces, joined ones, and
//! id maps, checked through /proc from inside and outside.

use serde_json::json;

use crate::common::*;

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_new_namespace_differs_from_the_hosts() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "100"]);
        for t in ["user", "cgroup", "time"] {
            set_namespace(c, t, None);
        }
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let id = unique_id("allns");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    for kind in ["mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
        assert_ne!(
            theirs.to_string_lossy(),
            host_ns(kind),
            "{kind} namespace is the host's"
        );
    }
    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
}

#[test]
fn a_namespace_left_out_is_shared_with_the_host() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "100"]);
        remove_namespace(c, "network");
        remove_namespace(c, "ipc");
    });
    let id = unique_id("sharens");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    for kind in ["net", "ipc"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
        assert_eq!(theirs.to_string_lossy(), host_ns(kind));
    }
}

#[test]
fn joining_by_path_shares_another_containers_namespaces() {
    let env = Env::new();
    let first = env.bundle(|c| c["process"]["args"] = json!(["sleep", "100"]));
    let a = unique_id("ns-a");
    assert!(env
        .hako(&["create", "-b", first.path(), &a])
        .status
        .success());
    let apid = env.state(&a)["pid"].as_i64().unwrap();
    let second = env.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "100"]);
        set_namespace(c, "network", Some(&format!("/proc/{apid}/ns/net")));
        set_namespace(c, "pid", Some(&format!("/proc/{apid}/ns/pid")));
    });
    let b = unique_id("ns-b");
    let out = env.hako(&["create", "-b", second.path(), &b]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bpid = env.state(&b)["pid"].as_i64().unwrap();
    for kind in ["net", "pid"] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{bpid}/ns/{kind}")).unwrap(),
            std::fs::read_link(format!("/proc/{apid}/ns/{kind}")).unwrap(),
            "{kind} not joined"
        );
    }
    assert_ne!(
        std::fs::read_link(format!("/proc/{bpid}/ns/uts")).unwrap(),
        std::fs::read_link(format!("/proc/{apid}/ns/uts")).unwrap()
    );
}

#[test]
fn a_path_of_the_wrong_type_or_missing_is_refused() {
    let env = Env::new();
    let b = env.bundle(|c| set_namespace(c, "network", Some("/proc/self/ns/uts")));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("nstype")]),
        "is not a net namespace",
    );
    let b = env.bundle(|c| set_namespace(c, "ipc", Some("/proc/999999999/ns/ipc")));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("nsmiss")]),
        "/proc/999999999/ns/ipc",
    );
    assert!(env.ids().is_empty());
}

#[test]
fn user_namespace_maps_root_and_the_container_sees_it() {
    let env = Env::new();
    let out = env.run_sh(
        "id -u; cat /proc/self/uid_map /proc/self/gid_map; stat -c %U /bin/busybox",
        |c| {
            set_namespace(c, "user", None);
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 2000}]);
            c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 3000}]);
        },
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The rootfs belongs to host root, which the container cannot name.
    let words: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    assert_eq!(
        words,
        ["0", "0", "1000", "2000", "0", "1000", "3000", "nobody"]
    );
}

#[test]
fn time_namespace_offsets_apply() {
    let env = Env::new();
    let out = env.run_sh("cut -d. -f1 /proc/uptime", |c| {
        set_namespace(c, "time", None);
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 365, "nanosecs": 0}});
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let uptime: u64 = stdout(&out).trim().parse().unwrap();
    assert!(
        uptime >= 86400 * 365,
        "uptime {uptime} lacks the boottime offset"
    );
}

/// runc's userns.bats "userns with 2 inaccessible mounts": with a user namespace, bind sources
/// below a directory only the host's root may enter (0700) are opened by hako's parent, still
/// host root, and handed to the init as fds; a relative source is relative to create's working
/// directory, and none of those fds reaches the container.
#[test]
fn bind_sources_only_host_root_can_reach_work_in_a_user_namespace() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let locked = env.dir.path().join("locked");
    std::fs::create_dir_all(locked.join("a")).unwrap();
    std::fs::write(locked.join("a/file"), "dir-a\n").unwrap();
    std::fs::write(locked.join("b"), "file-b\n").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    // An absolute symlink on the way resolves as on the host.
    std::os::unix::fs::symlink(&locked, env.dir.path().join("link")).unwrap();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /mnt/a/file /mnt/b /mnt/c/file; ls /proc/self/fd | tr '\\n' ' '"
        ]);
        set_namespace(c, "user", None);
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let mounts = c["mounts"].as_array_mut().unwrap();
        for (src, dest) in [
            (locked.join("a").to_str().unwrap().to_string(), "/mnt/a"),
            ("locked/b".to_string(), "/mnt/b"),
            (
                env.dir.path().join("link/a").to_str().unwrap().to_string(),
                "/mnt/c",
            ),
        ] {
            mounts.push(json!({"source": src, "destination": dest, "options": ["bind"]}));
        }
    });
    // The destinations exist: the rootfs belongs to the host's root, not to the container's.
    std::fs::create_dir_all(b.rootfs().join("mnt/a")).unwrap();
    std::fs::create_dir_all(b.rootfs().join("mnt/c")).unwrap();
    std::fs::write(b.rootfs().join("mnt/b"), "").unwrap();
    let id = unique_id("usernsbind");
    let out = output_via_files(
        env.command(&["run", "-b", b.path(), &id])
            .current_dir(env.dir.path())
            .stdin(std::process::Stdio::null()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "dir-a\nfile-b\ndir-a\n0 1 2 3 ");

    // The init closed the sources' fds before pivot_root: a created container's init, which
    // waits for `start` with the container's namespaces and root, holds none of them.
    let id = unique_id("usernsbind");
    let out = output_via_files(
        env.command(&["create", "-b", b.path(), &id])
            .current_dir(env.dir.path())
            .stdin(std::process::Stdio::null()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let held: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|l| l.starts_with(&locked))
        .collect();
    assert!(held.is_empty(), "the init holds {held:?}");
}

/// Each container has a fresh network namespace of its own, with only `lo`, which its /sys
/// shows too (sysfs is mounted from within it).
#[test]
fn each_container_gets_a_fresh_network_namespace_of_its_own() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "100"]);
    });
    let mut seen = vec![host_ns("net")];
    for n in 0..2 {
        let id = unique_id(&format!("netns{n}"));
        let out = env.hako(&["run", "-d", "-b", b.path(), &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        let pid = env.state(&id)["pid"].as_i64().unwrap();
        let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
        let net = net.to_string_lossy().into_owned();
        assert!(!seen.contains(&net), "{net} is the host's or the other's");
        seen.push(net);
        let out = env.hako(&[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /proc/net/dev; ls /sys/class/net",
        ]);
        let text = stdout(&out);
        let devs: Vec<&str> = text
            .lines()
            .skip(2)
            .map(|l| l.split(':').next().unwrap_or("").trim())
            .collect();
        assert_eq!(devs, ["lo", "lo"], "{text}");
    }
}

/// A new network namespace's loopback is up, as runc and crun bring it up: a process that
/// talks to 127.0.0.1 works without CAP_NET_ADMIN. (The kernel makes `lo` down.) In a user
/// namespace too, whose init has the right over the namespace it made.
#[test]
fn the_loopback_of_a_new_network_namespace_is_up() {
    let env = Env::new();
    for userns in [false, true] {
        let b = env.bundle(|c| {
            // IFF_UP is 0x1, IFF_LOOPBACK 0x8; /sys is mounted after the netns is made.
            c["process"]["args"] = json!(["cat", "/sys/class/net/lo/flags"]);
            if userns {
                set_namespace(c, "user", None);
                c["linux"]["uidMappings"] =
                    json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                c["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            }
        });
        let id = unique_id("lo");
        let out = output_via_files(
            env.command(&["run", "-b", b.path(), &id])
                .stdin(std::process::Stdio::null()),
        );
        assert!(out.status.success(), "userns {userns}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "0x9", "userns {userns}");
    }
}
