//! Hooks (runtime-spec config.md#posix-platform-hooks): each gets the state JSON on stdin, its
//! args (args[0] is argv[0], `path` is the binary) and env, and is killed, with everything it
//! started in its process group, when its timeout passes.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Hooks, Spec};

/// How much of a failed hook's stderr goes into the error (its end, where the reason usually is).
const STDERR_KEPT: usize = 2048;

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
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    /// The field name in config.json.
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

    fn list(self, hooks: &Hooks) -> Option<&Vec<Hook>> {
        match self {
            // Deprecated in favour of createRuntime, still honoured (runtime-spec 1.3.0).
            #[allow(deprecated)]
            Kind::Prestart => hooks.prestart().as_ref(),
            Kind::CreateRuntime => hooks.create_runtime().as_ref(),
            Kind::CreateContainer => hooks.create_container().as_ref(),
            Kind::StartContainer => hooks.start_container().as_ref(),
            Kind::Poststart => hooks.poststart().as_ref(),
            Kind::Poststop => hooks.poststop().as_ref(),
        }
    }
}

/// The hooks of one kind in the spec, in their listed order.
pub fn of(spec: &Spec, kind: Kind) -> &[Hook] {
    spec.hooks()
        .as_ref()
        .and_then(|h| kind.list(h))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The config.json rules for hooks: `path` absolute, `timeout` greater than zero.
pub fn validate(spec: &Spec) -> Result<()> {
    for kind in Kind::ALL {
        for (i, hook) in of(spec, kind).iter().enumerate() {
            if !hook.path().is_absolute() {
                bail!(
                    "config.json: hooks.{}[{i}].path: {}: must be an absolute path",
                    kind.name(),
                    hook.path().display()
                );
            }
            if let Some(t) = hook.timeout().filter(|t| *t <= 0) {
                bail!(
                    "config.json: hooks.{}[{i}].timeout: {t}: must be greater than zero",
                    kind.name()
                );
            }
        }
    }
    Ok(())
}

/// The environment of a hook whose `env` is absent: the runtime's own (`None`, as runc does for
/// hooks in the runtime namespace) or the given list (the container's, for hooks run inside it).
pub type DefaultEnv<'a> = Option<&'a [String]>;

/// Runs the hooks of `kind` in order; the first failure stops the rest and is returned, naming
/// the hook.
pub fn run_all(spec: &Spec, kind: Kind, state: &str, env: DefaultEnv) -> Result<()> {
    for (i, hook) in of(spec, kind).iter().enumerate() {
        run(hook, state, env).with_context(|| describe(kind, i, hook))?;
    }
    Ok(())
}

/// Runs all hooks of `kind`, logging failures as warnings (poststop: runtime.md lifecycle 13).
pub fn run_all_warn(spec: &Spec, kind: Kind, state: &str) {
    for (i, hook) in of(spec, kind).iter().enumerate() {
        if let Err(e) = run(hook, state, None) {
            tracing::warn!("{}: {e:#}", describe(kind, i, hook));
        }
    }
}

fn describe(kind: Kind, i: usize, hook: &Hook) -> String {
    // "error running hook": runc's words, which its tests look for.
    format!(
        "config.json: hooks.{}[{i}] ({}): error running hook",
        kind.name(),
        hook.path().display()
    )
}

/// Runs one hook to completion or its timeout.
pub fn run(hook: &Hook, state: &str, default_env: DefaultEnv) -> Result<()> {
    let mut cmd = Command::new(hook.path());
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(argv0).args(rest);
    }
    if let Some(env) = hook.env().as_deref().or(default_env) {
        cmd.env_clear();
        for kv in env {
            // An entry without '=' is not a variable: execve would pass it, std cannot.
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    cmd.stdin(state_pipe(state)?)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0);
    // With no signal blocked, as runc's hooks start: a foreground `run` blocks the ones it
    // forwards to the container, and std's spawn keeps the caller's mask.
    // SAFETY: between fork and exec only pthread_sigmask, which is async-signal-safe, on a set
    // on the child's stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("run {}", hook.path().display()))?;
    let mut stderr = Tail::new(child.stderr.take().context("hook stderr")?)?;
    let timeout = hook.timeout().map(|t| Duration::from_secs(t.max(1) as u64));
    let deadline = timeout.map(|t| Instant::now() + t);
    let status: ExitStatus = loop {
        stderr.drain();
        if let Some(status) = child.try_wait().context("wait for the hook")? {
            stderr.drain();
            break status;
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            bail!(
                "killed: still running after its timeout of {}s",
                hook.timeout().unwrap_or_default()
            );
        }
        // Wake for stderr output or every 20 ms to see whether it has exited.
        let nap = left.unwrap_or(Duration::MAX).min(Duration::from_millis(20));
        stderr.wait(nap);
    };
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => match Signal::try_from(s) {
            // What a seccomp filter's kill action sends.
            Ok(Signal::SIGSYS) => format!("killed by signal {s} (SIGSYS: bad system call)"),
            Ok(sig) => format!("killed by signal {s} ({sig})"),
            Err(_) => format!("killed by signal {s}"),
        },
        _ => "failed".to_string(),
    };
    match stderr.text() {
        text if text.is_empty() => bail!("{how}"),
        text => bail!("{how}: stderr: {text}"),
    }
}

/// A pipe already holding the state, for the hook's stdin: no writer to block on a hook that
/// does not read, and no SIGPIPE for one that exits first.
fn state_pipe(state: &str) -> Result<File> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe for the hook's stdin")?;
    if state.len() > 60 * 1024 {
        // Room for big annotations; the kernel caps it at /proc/sys/fs/pipe-max-size.
        let _ = fcntl(
            w.as_raw_fd(),
            FcntlArg::F_SETPIPE_SZ(state.len().next_power_of_two() as i32),
        );
    }
    fcntl(w.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).context("hook stdin")?;
    File::from(w)
        .write_all(state.as_bytes())
        .context("the state JSON does not fit the hook's stdin pipe")?;
    Ok(File::from(r))
}

/// The end of a hook's stderr, read without blocking as it comes (a hook that writes much must
/// not stall on a full pipe).
struct Tail {
    pipe: File,
    open: bool,
    /// When the pipe was found closed.
    closed_at: Option<Instant>,
    kept: Vec<u8>,
}

impl Tail {
    fn new(pipe: std::process::ChildStderr) -> Result<Tail> {
        let pipe = File::from(std::os::fd::OwnedFd::from(pipe));
        fcntl(pipe.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).context("hook stderr")?;
        Ok(Tail {
            pipe,
            open: true,
            closed_at: None,
            kept: Vec::new(),
        })
    }

    /// Reads what is there now.
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while self.open {
            match self.pipe.read(&mut buf) {
                Ok(0) => self.close(),
                Ok(n) => {
                    self.kept.extend_from_slice(&buf[..n]);
                    let extra = self.kept.len().saturating_sub(STDERR_KEPT);
                    self.kept.drain(..extra);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => self.close(),
            }
        }
    }

    fn close(&mut self) {
        self.open = false;
        self.closed_at = Some(Instant::now());
    }

    /// Sleeps up to `nap`, waking early when output (or the end of it) arrives.
    fn wait(&self, nap: Duration) {
        if let Some(closed) = self.closed_at {
            // An exit usually follows the close within microseconds: look again soon, then
            // less often (a hook may close its stderr and go on).
            let soon = closed.elapsed() < Duration::from_millis(50);
            std::thread::sleep(nap.min(Duration::from_millis(if soon { 1 } else { 20 })));
            return;
        }
        let ms = u16::try_from(nap.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }

    /// The kept stderr on one line.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn state_on_stdin_args_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["my-sh","-c","cat > {0}; echo \"$0 $X $HOME\" >> {0}"],"env":["X=42"]}}"#,
            out.display(),
        ));
        run(&h, "{\"id\":\"c\"}", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"c\"}my-sh 42 \n"
        );
    }

    #[test]
    fn absent_env_is_the_default_given() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","echo $Y > {}"]}}"#,
            out.display()
        ));
        let env = ["Y=from-container".to_string()];
        run(&h, "{}", Some(&env)).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "from-container\n");
    }

    #[test]
    fn hook_that_ignores_stdin_is_fine() {
        // A big state and a hook that exits at once: neither blocks nor kills the caller.
        let state = format!("{{\"x\":\"{}\"}}", "a".repeat(200_000));
        run(&hook(r#"{"path":"/bin/true"}"#), &state, None).unwrap();
    }

    #[test]
    fn failure_reports_status_and_stderr_on_one_line() {
        let h =
            hook(r#"{"path":"/bin/sh","args":["sh","-c","echo one >&2; echo two >&2; exit 3"]}"#);
        let err = run(&h, "{}", None).unwrap_err().to_string();
        assert_eq!(err, "exit status 3: stderr: one; two");
    }

    #[test]
    fn a_lot_of_stderr_neither_blocks_nor_floods_the_error() {
        let h = hook(
            r#"{"path":"/bin/sh","args":["sh","-c","i=0; while [ $i -lt 3000 ]; do echo line $i >&2; i=$((i+1)); done; exit 1"]}"#,
        );
        let err = run(&h, "{}", None).unwrap_err().to_string();
        assert!(err.ends_with("line 2999"), "{err}");
        assert!(err.len() < 2 * STDERR_KEPT, "{}", err.len());
    }

    #[test]
    fn timeout_kills_the_hook_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","sleep 30 & echo $! > {}; wait"],"timeout":1}}"#,
            pidfile.display()
        ));
        let err = run(&h, "{}", None).unwrap_err().to_string();
        assert_eq!(err, "killed: still running after its timeout of 1s");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let gone = (0..200).any(|_| {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
            // Gone, or a zombie waiting for init to reap it.
            let dead = stat.map_or(true, |s| s.contains(") Z "));
            if !dead {
                std::thread::sleep(Duration::from_millis(10));
            }
            dead
        });
        assert!(gone, "the hook's child outlived the timeout");
    }

    #[test]
    fn missing_binary_named() {
        let err = run(&hook(r#"{"path":"/no/such/hook"}"#), "{}", None).unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/hook"), "{err:#}");
    }

    #[test]
    fn validate_path_and_timeout() {
        let spec = |hooks: &str| -> Spec {
            serde_json::from_str(&format!(r#"{{"ociVersion":"1.3.0","hooks":{hooks}}}"#)).unwrap()
        };
        let err = validate(&spec(
            r#"{"poststop":[{"path":"/bin/true"},{"path":"true"}]}"#,
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "config.json: hooks.poststop[1].path: true: must be an absolute path"
        );
        let err = validate(&spec(
            r#"{"createRuntime":[{"path":"/bin/true","timeout":0}]}"#,
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "config.json: hooks.createRuntime[0].timeout: 0: must be greater than zero"
        );
        assert!(validate(&spec(r#"{"prestart":[{"path":"/bin/true","timeout":5}]}"#)).is_ok());
    }
}
