//! The last step: find args[0] like execvp(3) does, with the container's PATH, and execve it.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// The PATH from the container's env (execvp's default when absent).
pub fn path_var(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

// Every path the container controls (args[0], PATH, cwd, /etc/passwd) is resolved inside its
// root and never through a magic link: until execve the process may hold fds of the runtime's
// (its /proc handle), and /proc/self/fd/N/.. would lead out of the container through them.
const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// The container's root (this process's /), as a directory fd to resolve paths in.
pub fn open_root() -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("open /")?;
    // SAFETY: fresh fd from open(2).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads a file of the container's, found inside its root.
pub fn read_in_root(root: &OwnedFd, rel: &str) -> Result<String> {
    let fd = super::openat2(root.as_raw_fd(), Path::new(rel), libc::O_RDONLY, IN_ROOT)
        .with_context(|| format!("/{rel}"))?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .with_context(|| format!("/{rel}"))?;
    Ok(text)
}

/// Whether `path` (absolute: inside the root; else from the cwd) is an executable file,
/// looked up without magic links.
fn is_executable(root: &OwnedFd, path: &Path) -> bool {
    let (dir, rel, resolve) = match path.strip_prefix("/") {
        Ok(rel) => (root.as_raw_fd(), rel, IN_ROOT),
        Err(_) => (libc::AT_FDCWD, path, libc::RESOLVE_NO_MAGICLINKS),
    };
    let Ok(fd) = super::openat2(dir, rel, libc::O_PATH, resolve) else {
        return false;
    };
    nix::sys::stat::fstat(fd.as_raw_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 != 0)
}

/// Resolves the program: a name with a '/' as is, else the first executable file on PATH.
pub fn find_program(root: &OwnedFd, arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        if !is_executable(root, &p) {
            bail!("exec: {arg0:?}: no such executable file (in the container)");
        }
        return Ok(p);
    }
    for dir in path_var(env).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        if is_executable(root, &candidate) {
            return Ok(candidate);
        }
    }
    bail!("exec: {arg0:?}: executable file not found in $PATH")
}

/// Makes the cwd (missing directories created inside the root), changes to it by fd, then
/// checks with the kernel's getcwd(2) that it is inside the container's root: a cwd outside
/// it would not start with '/' (CVE-2024-21626).
pub fn chdir_inside_root(root: &OwnedFd, cwd: &Path) -> Result<()> {
    let field = || format!("config.json: process.cwd: {}", cwd.display());
    let dir = super::mounts::create_in_root(root, &super::mounts::relative(cwd), false)
        .with_context(field)?;
    nix::unistd::fchdir(dir.as_raw_fd()).with_context(field)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is writable for its whole length; the raw syscall (not libc's wrapper, which
    // may rewrite the answer) fills it with a NUL-terminated path.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).with_context(field);
    }
    if buf.first() != Some(&b'/') {
        bail!("{}: outside the container's root", field());
    }
    Ok(())
}

pub fn cstrings<'a>(items: impl Iterator<Item = &'a [u8]>) -> Result<Vec<CString>> {
    items
        .map(|s| CString::new(s).context("argument or environment holds a NUL byte"))
        .collect()
}

/// Prepared execve arguments, built before the last steps: errors are reported before
/// `created`, and `exec` itself allocates nothing and makes no syscall but execve(2), since the
/// seccomp filter is already in place when it runs.
pub struct Program {
    path: CString,
    // The pointer arrays point into these strings, whose heap buffers never move.
    _args: Vec<CString>,
    _env: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

/// A null-terminated array of pointers to `strings`.
pub fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl Program {
    pub fn new(path: &Path, args: &[String], env: &[String]) -> Result<Program> {
        let args = cstrings(args.iter().map(|s| s.as_bytes()))?;
        let env = cstrings(env.iter().map(|s| s.as_bytes()))?;
        Ok(Program {
            path: CString::new(path.as_os_str().as_bytes()).context("program path")?,
            argv: pointers(&args),
            envp: pointers(&env),
            _args: args,
            _env: env,
        })
    }

    /// Replaces this process; returns only on failure.
    pub fn exec(&self) -> anyhow::Error {
        // SAFETY: path is NUL-terminated; argv and envp are null-terminated arrays of pointers
        // to NUL-terminated strings owned by self, alive for the call.
        unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        let e = nix::errno::Errno::last();
        anyhow::anyhow!("exec {:?}: {e}", self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_uses_container_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_program(&open_root().unwrap(), "sh", &env)
            .unwrap()
            .ends_with("sh"));
        let err = find_program(&open_root().unwrap(), "no-such-program-xyz", &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found in $PATH"), "{err}");
        assert!(find_program(&open_root().unwrap(), "/bin/sh", &[]).is_ok());
        assert!(find_program(&open_root().unwrap(), "/no/such", &[]).is_err());
    }
}
