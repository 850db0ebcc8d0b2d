//! The harness: busybox bundles in temporary directories, a private `--root` per test, and
//! helpers that run the built hako binary. Every container a test makes is deleted (with
//! --force) when its `Env` is dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

pub const HAKO: &str = env!("CARGO_BIN_EXE_hako");

/// The binary `Env` runs: the built one, or `HAKO_UNDER_TEST` (an older build, to see an exploit
/// test fail without its defence).
pub fn hako_bin() -> String {
    std::env::var("HAKO_UNDER_TEST").unwrap_or_else(|_| HAKO.to_string())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique container id for this test process.
pub fn unique_id(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A test's private `--root`, and the containers it made.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("hako-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        Env { dir, root }
    }

    /// `hako --root ROOT ARGS...` with stdin closed, output captured. Output goes through files,
    /// not pipes: a created container's init holds hako's stdio open until it exits.
    pub fn hako(&self, args: &[&str]) -> Output {
        output_via_files(self.command(args).stdin(Stdio::null()))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(hako_bin());
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// A fresh busybox bundle in this env's directory, its config changed by `edit`.
    pub fn bundle(&self, edit: impl FnOnce(&mut Value)) -> Bundle {
        Bundle::new(&self.dir.path().join(unique_id("bundle")), edit)
    }

    /// `hako run` of a bundle whose process is `sh -c SCRIPT`; returns its output.
    pub fn run_sh(&self, script: &str, edit: impl FnOnce(&mut Value)) -> Output {
        let b = self.bundle(|c| {
            c["process"]["args"] = json!(["sh", "-c", script]);
            edit(c);
        });
        let id = unique_id("run");
        self.hako(&["run", "-b", b.path(), &id])
    }

    /// The status string `hako state` reports.
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_string()
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.hako(&["state", id]);
        assert!(out.status.success(), "state {id}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("state JSON")
    }

    pub fn ids(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = self.hako(&["delete", "--force", &id]);
        }
    }
}

/// A bundle directory: rootfs (static busybox and its applets) and config.json.
pub struct Bundle {
    pub dir: PathBuf,
}

impl Bundle {
    pub fn new(dir: &Path, edit: impl FnOnce(&mut Value)) -> Bundle {
        let rootfs = dir.join("rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("/bin/busybox: install busybox-static");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        let out = Command::new(HAKO)
            .args(["spec", "-b"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "hako spec: {}", stderr(&out));
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        // Tests read what the container writes into its rootfs.
        config["root"]["readonly"] = json!(false);
        edit(&mut config);
        let b = Bundle {
            dir: dir.to_path_buf(),
        };
        b.write_config(&config);
        b
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn write_config(&self, config: &Value) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }
}

/// Runs `cmd` to completion with stdout and stderr in temporary files.
pub fn output_via_files(cmd: &mut Command) -> Output {
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let status = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .expect("run hako");
    use std::io::{Read, Seek};
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    out.rewind().unwrap();
    out.read_to_end(&mut stdout).unwrap();
    err.rewind().unwrap();
    err.read_to_end(&mut stderr).unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the command failed with exit code 1 and one error line containing `needle`.
pub fn assert_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1; stderr: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one error line: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
}

/// Adds a namespace entry (or replaces the one of that type).
pub fn set_namespace(config: &mut Value, typ: &str, path: Option<&str>) {
    let list = config["linux"]["namespaces"].as_array_mut().unwrap();
    list.retain(|n| n["type"] != typ);
    let mut ns = json!({"type": typ});
    if let Some(p) = path {
        ns["path"] = json!(p);
    }
    list.push(ns);
}

pub fn remove_namespace(config: &mut Value, typ: &str) {
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != typ);
}

/// Waits (bounded) until `f` holds; returns whether it did.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Accepts one connection on a `--console-socket` listener, takes the pty master it carries
/// (SCM_RIGHTS) and reads it until the container's side closes.
pub fn pty_output_of(
    listener: std::os::unix::net::UnixListener,
) -> std::thread::JoinHandle<Vec<u8>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut name = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("no fd in the message");
        // SAFETY (test): the fd was just received and is owned by nobody else.
        let mut master = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        // Until the slave side closes (EIO) when the container's process exits.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    })
}
