//! The last step: find args[0] like execvp(3) does, with the container's PATH, and execve it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The PATH from the container's env (execvp's default when absent).
pub fn path_var(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

/// Resolves the program: a name with a '/' as is, else the first executable file on PATH.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        if !p.exists() {
            bail!("exec: {arg0:?}: no such file or directory (in the container)");
        }
        return Ok(p);
    }
    for dir in path_var(env).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        if let Ok(md) = candidate.metadata() {
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    bail!("exec: {arg0:?}: executable file not found in $PATH")
}

fn cstrings<'a>(items: impl Iterator<Item = &'a [u8]>) -> Result<Vec<CString>> {
    items
        .map(|s| CString::new(s).context("argument or environment holds a NUL byte"))
        .collect()
}

/// Prepared execve arguments, built before the last steps (seccomp may forbid allocation-heavy
/// work after, and errors are reported before `created`).
pub struct Program {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

impl Program {
    pub fn new(path: &Path, args: &[String], env: &[String]) -> Result<Program> {
        Ok(Program {
            path: CString::new(path.as_os_str().as_bytes()).context("program path")?,
            args: cstrings(args.iter().map(|s| s.as_bytes()))?,
            env: cstrings(env.iter().map(|s| s.as_bytes()))?,
        })
    }

    /// Replaces this process; returns only on failure.
    pub fn exec(&self) -> anyhow::Error {
        match nix::unistd::execve(&self.path, &self.args, &self.env) {
            Err(e) => anyhow::anyhow!("exec {:?}: {e}", self.path),
            Ok(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_uses_container_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_program("sh", &env).unwrap().ends_with("sh"));
        let err = find_program("no-such-program-xyz", &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found in $PATH"), "{err}");
        assert!(find_program("/bin/sh", &[]).is_ok());
        assert!(find_program("/no/such", &[]).is_err());
    }
}
