//! Hooks (runtime-spec config.md#posix-platform-hooks): each gets the state JSON on stdin, its
//! args (args[0] is argv[0]) and env, and is killed when its timeout passes.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Hook, Hooks, Spec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    fn list(self, hooks: &Hooks) -> &Option<Vec<Hook>> {
        match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        }
    }
}

/// The hooks of one kind in the spec, in order.
pub fn of(spec: &Spec, kind: Kind) -> Vec<Hook> {
    spec.hooks()
        .as_ref()
        .and_then(|h| kind.list(h).clone())
        .unwrap_or_default()
}

/// Runs the hooks of `kind` in order; the first failure stops the rest and is returned.
pub fn run_all(spec: &Spec, kind: Kind, state: &str) -> Result<()> {
    for (i, hook) in of(spec, kind).iter().enumerate() {
        run(hook, state).with_context(|| {
            format!(
                "config.json: hooks.{}[{i}] ({})",
                kind.name(),
                hook.path().display()
            )
        })?;
    }
    Ok(())
}

/// Runs the hooks of `kind`, logging failures as warnings (poststart, poststop).
pub fn run_all_warn(spec: &Spec, kind: Kind, state: &str) {
    for (i, hook) in of(spec, kind).iter().enumerate() {
        if let Err(e) = run(hook, state) {
            tracing::warn!(
                "config.json: hooks.{}[{i}] ({}): {e:#}",
                kind.name(),
                hook.path().display()
            );
        }
    }
}

/// Runs one hook to completion (or its timeout).
pub fn run(hook: &Hook, state: &str) -> Result<()> {
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("start")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let status = loop {
        if let Some(status) = child.try_wait().context("wait")? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "killed after its timeout of {}s",
                hook.timeout().unwrap_or(0)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (_, Some(s)) => format!("killed by signal {s}"),
            _ => "failed".to_string(),
        };
        let stderr = stderr.trim();
        if stderr.is_empty() {
            bail!("{how}");
        }
        bail!("{how}: {stderr}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn state_on_stdin_and_args() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {} ; echo $X >> {}"],"env":["X=42"]}}"#,
            out.display(),
            out.display()
        ));
        run(&h, "{\"id\":\"c\"}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"c\"}42\n");
    }

    #[test]
    fn failure_reports_stderr() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}"#);
        let err = run(&h, "{}").unwrap_err().to_string();
        assert_eq!(err, "exit status 3: nope");
    }

    #[test]
    fn timeout_kills() {
        let h = hook(r#"{"path":"/bin/sleep","args":["sleep","30"],"timeout":1}"#);
        let err = run(&h, "{}").unwrap_err().to_string();
        assert_eq!(err, "killed after its timeout of 1s");
    }
}
