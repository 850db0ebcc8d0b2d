//! `--console-socket` with `process.terminal`: the pty master arrives by SCM_RIGHTS and the
//! container's process has the slave as its controlling terminal.

use std::os::unix::net::UnixListener;

use serde_json::json;

use crate::common::*;

#[test]
fn the_pty_master_reaches_the_console_socket() {
    let env = Env::new();
    let sock_path = env.dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let b = env.bundle(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 33, "width": 101});
        c["process"]["args"] = json!(["sh", "-c", "tty; stty size; ls -l /dev/console | cut -c1"]);
    });
    let id = unique_id("tty");
    let receiver = pty_output_of(listener);
    let out = env.hako(&[
        "create",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "-b",
        b.path(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.hako(&["start", &id]).status.success());
    let text = String::from_utf8_lossy(&receiver.join().unwrap()).replace('\r', "");
    assert_eq!(text, "/dev/pts/0\n33 101\nc\n");
}

#[test]
fn terminal_without_console_socket_is_refused() {
    let env = Env::new();
    let b = env.bundle(|c| c["process"]["terminal"] = json!(true));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("tty")]),
        "--console-socket",
    );
    assert!(env.ids().is_empty());
}

#[test]
fn run_relays_the_terminal_itself_without_a_console_socket() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["sh", "-c", "tty; read line; echo got $line; exit 4"]);
    });
    let id = unique_id("runtty");
    let mut cmd = env.command(&["run", "-b", b.path(), &id]);
    std::fs::write(env.dir.path().join("in"), "hello\n").unwrap();
    cmd.stdin(std::fs::File::open(env.dir.path().join("in")).unwrap());
    let out = output_via_files(&mut cmd);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stdout(&out).replace('\r', "");
    // The pty echoes the input, which may arrive before or after `tty` prints.
    assert!(text.lines().any(|l| l == "/dev/pts/0"), "{text:?}");
    assert!(text.ends_with("got hello\n"), "{text:?}");
}

#[test]
fn run_with_a_terminal_writes_output_byte_exact() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["printf", "a\\nb\\n"]);
    });
    let out = env.hako(&["run", "-b", b.path(), &unique_id("onlcr")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The console keeps no ONLCR: no \r is added before each \n.
    assert_eq!(out.stdout, b"a\nb\n");
}
