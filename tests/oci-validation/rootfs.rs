//! config.md "Root", "Mounts"; config-linux.md devices, maskedPaths, readonlyPaths,
//! rootfsPropagation, sysctl; runtime-linux.md default symlinks — checked from inside.

use serde_json::json;

use crate::common::*;

fn add_mount(c: &mut serde_json::Value, m: serde_json::Value) {
    c["mounts"].as_array_mut().unwrap().push(m);
}

#[test]
fn runc_default_spec_is_locked_down() {
    let env = Env::new();
    // The default spec as `hako spec` writes it (readonly root, masked and read-only paths).
    let out = env.run_sh(
        "cat /proc/kcore 2>/dev/null | wc -c; ls -A /sys/firmware | wc -l; \
         (echo x > /proc/sys/kernel/domainname) 2>&1 | grep -c Read-only; \
         grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '; \
         touch /x 2>/dev/null && echo writable || echo read-only",
        |c| c["root"]["readonly"] = json!(true),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "0\n0\n1\nCapEff: 0000000020000420\nNoNewPrivs: 1\nread-only\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_symlink_to_a_host_directory_does_not_lead_a_mount_out() {
    let env = Env::new();
    let host_dir = env.dir.path().join("host-dir");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("keep"), "host data").unwrap();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", "echo inside > /evil/file; ls /evil"]);
        add_mount(
            c,
            json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    std::os::unix::fs::symlink(&host_dir, b.rootfs().join("evil")).unwrap();
    let out = env.hako(&["run", "-b", b.path(), &unique_id("evil")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "file\n",
        "the tmpfs was not what /evil showed"
    );
    let entries: Vec<_> = std::fs::read_dir(&host_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["keep"], "the host directory changed");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(host_dir.to_str().unwrap()),
        "a mount landed on the host"
    );
}

#[test]
fn only_stdio_reaches_the_container() {
    let env = Env::new();
    let b = env
        .bundle(|c| c["process"]["args"] = json!(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]));
    let script = format!(
        "exec 3</dev/null 4</dev/null 5</dev/null; exec {HAKO} --root {} run -b {} {}",
        env.root.display(),
        b.path(),
        unique_id("fds")
    );
    let out = output_via_files(std::process::Command::new("sh").args(["-c", &script]));
    assert!(out.status.success(), "{}", stderr(&out));
    // 0 1 2 and the directory ls reads.
    assert_eq!(stdout(&out), "0 1 2 3 ");
}

#[test]
fn bind_mounts_honour_ro_and_tmpfs_options() {
    let env = Env::new();
    let src = env.dir.path().join("data");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "payload").unwrap();
    let out = env.run_sh(
        "cat /data/f; echo; touch /data/g 2>/dev/null && echo rw || echo ro; \
         grep ' /scratch ' /proc/self/mountinfo | grep -o 'nosuid,nodev' ; \
         stat -c %a /scratch",
        |c| {
            add_mount(c, json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro"]}));
            add_mount(c, json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1770"]}));
        },
    );
    assert_eq!(
        stdout(&out),
        "payload\nro\nnosuid,nodev\n1770\n",
        "{}",
        stderr(&out)
    );
    assert!(!src.join("g").exists());
}

#[test]
fn masked_and_readonly_paths() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", "ls -A /secret | wc -l; cat /file-secret | wc -c; echo x > /ro/f 2>/dev/null && echo writable || echo read-only; cat /ro/f"]);
        c["linux"]["maskedPaths"] = json!(["/secret", "/file-secret", "/does-not-exist"]);
        c["linux"]["readonlyPaths"] = json!(["/ro"]);
    });
    std::fs::create_dir_all(b.rootfs().join("secret")).unwrap();
    std::fs::write(b.rootfs().join("secret/file"), "s3cret").unwrap();
    std::fs::write(b.rootfs().join("file-secret"), "s3cret").unwrap();
    std::fs::create_dir_all(b.rootfs().join("ro")).unwrap();
    std::fs::write(b.rootfs().join("ro/f"), "orig\n").unwrap();
    let out = env.hako(&["run", "-b", b.path(), &unique_id("mask")]);
    assert_eq!(stdout(&out), "0\n0\nread-only\norig\n", "{}", stderr(&out));
    let b = env.bundle(|c| c["linux"]["maskedPaths"] = json!(["relative/path"]));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("maskrel")]),
        "linux.maskedPaths[0]",
    );
}

#[test]
fn default_devices_symlinks_and_configured_devices() {
    let env = Env::new();
    let out = env.run_sh(
        "for d in null zero full random urandom tty; do stat -c '%n %t:%T %a' /dev/$d; done; \
         for l in fd stdin stdout stderr ptmx; do echo \"$l -> $(readlink /dev/$l)\"; done; \
         stat -c '%n %F %t:%T %a %u:%g' /dev/fuse /dev/myfifo",
        |c| {
            c["linux"]["devices"] = json!([
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 432, "uid": 7, "gid": 8},
                {"path": "/dev/myfifo", "type": "p", "major": 8, "minor": 666, "fileMode": 416}
            ]);
        },
    );
    let expected = "/dev/null 1:3 666\n/dev/zero 1:5 666\n/dev/full 1:7 666\n/dev/random 1:8 666\n\
/dev/urandom 1:9 666\n/dev/tty 5:0 666\nfd -> /proc/self/fd\nstdin -> /proc/self/fd/0\n\
stdout -> /proc/self/fd/1\nstderr -> /proc/self/fd/2\nptmx -> pts/ptmx\n\
/dev/fuse character special file a:e5 660 7:8\n/dev/myfifo fifo 0:0 640 0:0\n";
    assert_eq!(stdout(&out), expected, "{}", stderr(&out));
}

#[test]
fn sysctl_is_written_and_host_keys_refused() {
    let env = Env::new();
    let out = env.run_sh(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
        |c| {
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
        },
    );
    assert_eq!(stdout(&out), "1\n1234\n", "{}", stderr(&out));
    let b = env.bundle(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "1"}));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("sysctl")]),
        "linux.sysctl.vm.swappiness",
    );
}

#[test]
fn rootfs_propagation_shared_reaches_a_recursive_bind() {
    let env = Env::new();
    let out = env.run_sh(
        "mkdir -p /target /src /dst; touch /src/marker; mount --rbind / /target && \
         mount --bind /src /dst && ls /target/dst",
        |c| {
            c["linux"]["rootfsPropagation"] = json!("shared");
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_ADMIN"));
            }
        },
    );
    assert_eq!(stdout(&out), "marker\n", "{}", stderr(&out));
}

#[test]
fn idmapped_bind_mount_shows_mapped_owners() {
    let env = Env::new();
    let src = env.dir.path().join("owned");
    std::fs::create_dir(&src).unwrap();
    // Owned by 0 on disk; the mount shows on-disk 0 as 1000 (containerID → hostID).
    std::fs::write(src.join("f"), "x").unwrap();
    let out = env.run_sh("stat -c '%u:%g' /idm/f", |c| {
        add_mount(
            c,
            json!({
                "destination": "/idm", "type": "bind", "source": src, "options": ["bind"],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
            }),
        );
    });
    assert_eq!(stdout(&out), "1000:1000\n", "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(src.join("f"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap(),
        0
    );
}

#[test]
fn cgroup_mount_shows_the_containers_own_cgroup_read_only() {
    let env = Env::new();
    let out = env.run_sh(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ls /sys/fs/cgroup | grep -c -x -e pids -e cpu; \
         mkdir /sys/fs/cgroup/memory/x 2>/dev/null && echo writable || echo read-only",
        |c| c["linux"]["resources"]["memory"] = json!({"limit": 67108864}),
    );
    assert_eq!(stdout(&out), "67108864\n2\nread-only\n", "{}", stderr(&out));
}

/// Every mount of the container's cgroup tree (the tmpfs and each hierarchy in it) is read-only,
/// nosuid, nodev and noexec, however the runtime set those flags.
#[test]
fn every_cgroup_mount_is_read_only_nosuid_nodev_noexec() {
    let env = Env::new();
    let out = env.run_sh(
        "awk '$5 ~ \"^/sys/fs/cgroup\" { n++; if ($6 ~ /^ro,nosuid,nodev,noexec(,|$)/) ok++ } \
         END { print n, ok }' /proc/self/mountinfo; \
         mkdir /sys/fs/cgroup/x 2>/dev/null && echo writable || echo read-only",
        |_| {},
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    let counts: Vec<u32> = (lines.next().unwrap_or_default().split(' '))
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        counts.len() == 2 && counts[0] >= 2 && counts[0] == counts[1],
        "mounts under /sys/fs/cgroup, and how many are ro,nosuid,nodev,noexec: {text:?} {}",
        stderr(&out)
    );
    assert_eq!(lines.next(), Some("read-only"));
}

/// With a cgroup namespace each v1 hierarchy is a fresh cgroup mount under the tmpfs, rooted at
/// the container's own cgroup: its limit is at the top, and every hierarchy the host has is there.
#[test]
fn cgroup_mount_in_a_cgroup_namespace_is_rooted_at_the_containers_cgroup() {
    let env = Env::new();
    // The host's hierarchies: cgroup mounts right under /sys/fs/cgroup.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let host: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup"))
        .filter_map(|l| l.split(' ').nth(4)?.strip_prefix("/sys/fs/cgroup/"))
        .filter(|name| !name.contains('/'))
        .collect();
    if !host.contains(&"memory") {
        eprintln!("skipped: no v1 memory hierarchy on this host");
        return;
    }
    let out = env.run_sh(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; grep -c '^[0-9]*:memory:/$' /proc/self/cgroup; \
         ls /sys/fs/cgroup | wc -l",
        |c| {
            c["linux"]["resources"]["memory"] = json!({"limit": 33554432});
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "cgroup"}));
        },
    );
    assert_eq!(
        stdout(&out),
        format!("33554432\n1\n{}\n", host.len()),
        "{}",
        stderr(&out)
    );
}

/// A read-only tmpfs at /dev (runc's "ro /dev" test): /dev/pts, /dev/shm, the device nodes and
/// the console are made inside it first, then it is read-only.
#[test]
fn a_read_only_dev_tmpfs_is_filled_then_read_only() {
    let env = Env::new();
    let out = env.run_sh(
        "grep '^tmpfs /dev ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
         grep -c '^devpts /dev/pts ' /proc/mounts; ls /dev/null /dev/ptmx /dev/shm; \
         echo ok > /dev/null && echo null-ok; touch /dev/x 2>&1 | grep -c Read-only",
        |c| {
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["destination"] == "/dev" {
                    m["options"].as_array_mut().unwrap().push(json!("ro"));
                }
            }
        },
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "ro\n1\n/dev/null\n/dev/ptmx\n\n/dev/shm:\nnull-ok\n1\n",
        "{}",
        stderr(&out)
    );
}
