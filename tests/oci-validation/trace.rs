//! `--trace`: the phases cover the whole of `run` (create, start, the wait, delete) and their
//! own durations add up to the total, which is the wall time the caller sees, to within 10%.
//! A check of the trace's accounting, not of speed.

use std::process::Stdio;
use std::time::Instant;

use serde_json::json;

use crate::common::*;

/// The phases (own duration in ms, name) and the total a `--trace` stderr reports.
fn parse(stderr: &str) -> (Vec<(f64, String)>, f64, usize) {
    let mut phases = Vec::new();
    let mut total = None;
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("hako: trace: ") else {
            continue;
        };
        if let Some(t) = rest.strip_prefix("total ") {
            let (ms, n) = t.split_once(" ms in ").expect("total line");
            let n = n.trim_end_matches(" phases").parse().expect("phase count");
            total = Some((ms.parse().expect("total ms"), n));
            continue;
        }
        let (own, tail) = rest
            .strip_prefix('+')
            .and_then(|r| r.split_once(" ms  at "))
            .unwrap_or_else(|| panic!("not a phase line: {line}"));
        let (_, name) = tail.split_once(" ms  ").expect("phase name");
        phases.push((own.trim().parse().expect("own ms"), name.to_string()));
    }
    let (total, n) = total.unwrap_or_else(|| panic!("no total line in:\n{stderr}"));
    (phases, total, n)
}

#[test]
fn trace_of_run_adds_up_to_the_wall_time() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["true"]);
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/true"}],
                            "poststop": [{"path": "/bin/true"}]});
    });
    // The kernel's exec of hako and the dynamic loader before the entry point, and the exit
    // after the last line, are outside the trace: with this debug build about 2 ms (an 88 MB
    // binary and three shared libraries), 20% of a run on some machines. That share is taken
    // out of the wall time as the quickest `hako --version` (exec, loader, glibc's start, clap,
    // exit: a little more than the trace misses); the phases must cover 90% of the rest. Under
    // the rest of the suite each can be delayed: the closest of up to twenty tries counts.
    let mut outside = f64::MAX;
    let mut best: Option<(f64, f64, String)> = None;
    for _ in 0..20 {
        let began = Instant::now();
        let version = env.command(&["--version"]).output().unwrap();
        assert!(version.status.success());
        outside = outside.min(began.elapsed().as_secs_f64() * 1000.0);
        let id = unique_id("trace");
        let began = Instant::now();
        let out = env
            .command(&["--trace", "run", "-b", b.path(), &id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let wall = began.elapsed().as_secs_f64() * 1000.0;
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert_eq!(
            stdout(&out),
            "",
            "no trace line reaches the container's stdout"
        );
        let (phases, total, n) = parse(&err);
        assert_eq!(n, phases.len(), "{err}");
        let sum: f64 = phases.iter().map(|(ms, _)| ms).sum();
        // Each duration is printed to the microsecond.
        assert!(
            (sum - total).abs() <= 0.001 * n as f64,
            "{sum} vs {total}:\n{err}"
        );
        assert!(total <= wall, "{total} ms traced in {wall} ms:\n{err}");
        if best.as_ref().is_none_or(|(t, w, _)| total / wall > t / w) {
            best = Some((total, wall, err.clone()));
        }
        // The whole lifecycle: namespaces, mounts, devices, cgroup, pivot_root, caps, hooks,
        // the wait for the program, and delete's steps.
        for needle in [
            "init cloned (new namespaces: mnt uts ipc pid)",
            "init: unshare net",
            "cgroup made, joined by the init",
            "init: mount /proc",
            "init: devices made in /dev",
            "prestart and createRuntime hooks run",
            "init: pivot_root",
            "init: capabilities",
            "state.json written (created)",
            "program executed",
            "container's process exited (waited for)",
            "cgroup removed",
            "state directory removed",
            "poststop hooks run",
        ] {
            assert!(
                phases.iter().any(|(_, name)| name.starts_with(needle)),
                "no phase {needle:?} in:\n{err}"
            );
        }
        if best
            .as_ref()
            .is_some_and(|(t, w, _)| *t >= 0.9 * (w - outside))
        {
            break;
        }
    }
    let (total, wall, err) = best.unwrap();
    assert!(
        total >= 0.9 * (wall - outside),
        "the phases add up to {total:.3} ms, the run took {wall:.3} ms, of which {outside:.3} ms \
         a process's start and exit:\n{err}"
    );
}

#[test]
fn trace_of_create_start_delete_each_add_up() {
    let env = Env::new();
    let b = env.bundle(|c| c["process"]["args"] = json!(["true"]));
    let id = unique_id("trace");
    for args in [
        vec!["create", "-b", b.path(), &id],
        vec!["start", &id],
        vec!["delete", "--force", &id],
    ] {
        let mut cmd = env.command(&[&["--trace"], args.as_slice()].concat());
        // Files, not pipes: the created init holds create's stdio until it exits.
        let began = Instant::now();
        let out = output_via_files(cmd.stdin(Stdio::null()));
        let wall = began.elapsed().as_secs_f64() * 1000.0;
        let err = stderr(&out);
        assert!(out.status.success(), "{args:?}: {err}");
        let (phases, total, n) = parse(&err);
        assert_eq!(n, phases.len(), "{err}");
        assert!(
            total <= wall,
            "{args:?}: {total} ms traced, {wall} ms measured:\n{err}"
        );
        assert!(n >= 4, "{args:?}: only {n} phases:\n{err}");
    }
    assert!(env.ids().is_empty());
}
