//! The container record at `<root>/<id>/`: state.json (written atomically), the exec fifo, a
//! copy of the config the container was created from, and a lock so that two hako processes
//! never change one container at once. The status is derived from the live process.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
pub const CONFIG_COPY: &str = "config.json";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What state.json holds: the runtime-spec state fields (as `hako state` prints them, in runc's
/// shape) and what hako needs to find the container's resources again.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// Start time of `pid` (clock ticks since boot, /proc/PID/stat field 22): tells a reused
    /// pid from ours.
    #[serde(default)]
    pub pid_start_time: u64,
    /// The container's cgroup, recorded before it is made.
    #[serde(default)]
    pub cgroup_path: PathBuf,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Whether the container has a pid namespace of its own (killing init then kills all).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// Whether config.json has hooks: without any, `start` and `delete` do not read the config
    /// copy. Assumed for a record written before this field.
    #[serde(default = "assumed")]
    pub has_hooks: bool,
}

fn assumed() -> bool {
    true
}

/// The public view printed by `hako state` and given to hooks.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PublicState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

impl Record {
    pub fn public(&self, status: Status) -> PublicState<'_> {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        PublicState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid,
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }

    /// The state JSON for hooks and `hako state`, with the given status.
    pub fn state_json(&self, status: Status) -> String {
        serde_json::to_string(&self.public(status)).unwrap_or_default()
    }
}

/// The state directory: `--root`, else root's `/run/hako`, else (rootless, runc's rule)
/// `$XDG_RUNTIME_DIR/hako`; a rootless user without XDG_RUNTIME_DIR has to say where.
pub fn state_root(given: Option<&Path>, rootless: bool, xdg: Option<&OsStr>) -> Result<PathBuf> {
    match (given, rootless, xdg) {
        (Some(root), _, _) => Ok(root.to_path_buf()),
        (None, false, _) => Ok(PathBuf::from(crate::cli::DEFAULT_ROOT)),
        (None, true, Some(xdg)) if !xdg.is_empty() => Ok(Path::new(xdg).join("hako")),
        (None, true, _) => bail!(
            "running rootless (uid {}): XDG_RUNTIME_DIR is not set, so there is no default \
             state directory: set XDG_RUNTIME_DIR or pass --root DIR",
            nix::unistd::geteuid()
        ),
    }
}

/// A container's directory under `--root`, with its lock held while this value lives.
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
    _lock: Option<Flock<File>>,
}

/// runc's rule: letters, digits and `_+-.`, but not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if id.is_empty() || id == "." || id == ".." || !ok_chars {
        bail!("invalid container id {id:?}: use letters, digits and _+-. only (not '.', '..' or empty)");
    }
    Ok(())
}

fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    let f = File::open(dir).with_context(|| format!("{}", dir.display()))?;
    lock(f, dir)
}

fn lock(f: File, dir: &Path) -> Result<Flock<File>> {
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", dir.display()))
}

pub fn ensure_root(root: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("--root {}", root.display()))
}

impl Container {
    /// Makes `<root>/<id>/` (0700) and locks it; fails if the id is taken.
    pub fn reserve(root: &Path, record: Record) -> Result<Container> {
        validate_id(&record.id)?;
        let dir = root.join(&record.id);
        let mut made = fs::DirBuilder::new().mode(0o700).create(&dir);
        // The root is made (or its error reported) only when the container's directory could
        // not be made in it.
        if made
            .as_ref()
            .is_err_and(|e| e.kind() != std::io::ErrorKind::AlreadyExists)
        {
            ensure_root(root)?;
            made = fs::DirBuilder::new().mode(0o700).create(&dir);
        }
        match made {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {:?} already exists", record.id)
            }
            Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
        }
        let lock = lock_dir(&dir)?;
        let c = Container {
            dir,
            record,
            _lock: Some(lock),
        };
        c.save()?;
        Ok(c)
    }

    /// Opens an existing container, holding its lock; the record is read once, under it.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = root.join(id);
        // The directory may be removed while this waits for its lock, and another container
        // made under the id: the lock held must be that of the directory the id names now.
        for _ in 0..3 {
            let opened = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(&dir);
            let f = match opened {
                Ok(f) => f,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    bail!("container {id:?} does not exist")
                }
                Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
            };
            let lock = lock(f, &dir)?;
            let same =
                |a: &fs::Metadata, b: &fs::Metadata| (a.dev(), a.ino()) == (b.dev(), b.ino());
            if !lock
                .metadata()
                .is_ok_and(|l| fs::metadata(&dir).is_ok_and(|d| same(&l, &d)))
            {
                continue;
            }
            let record = read_record(&dir, id)?;
            return Ok(Container {
                dir,
                record,
                _lock: Some(lock),
            });
        }
        bail!("container {id:?}: made again and again while waiting for its lock")
    }

    /// Opens an existing container without locking (for state, list).
    pub fn read(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = root.join(id);
        // No directory (or not one): the state file's open says so, without a stat first.
        let record = match fs::read(dir.join(STATE_FILE)) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                match dir.is_dir() {
                    true => Err(e).with_context(|| state_file_of(&dir, id))?,
                    false => bail!("container {id:?} does not exist"),
                }
            }
            read => parse_record(read, &dir, id)?,
        };
        Ok(Container {
            dir,
            record,
            _lock: None,
        })
    }

    /// Writes state.json atomically (write to a temporary file, then rename).
    pub fn save(&self) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let path = self.dir.join(STATE_FILE);
        let data = serde_json::to_vec(&self.record)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("{}", tmp.display()))?;
        f.write_all(&data)
            .with_context(|| format!("{}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("{}", path.display()))
    }

    pub fn exec_fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    pub fn config_copy(&self) -> PathBuf {
        self.dir.join(CONFIG_COPY)
    }

    /// The spec the container was created from (hooks, namespaces, cgroup resources).
    pub fn spec(&self) -> Result<oci_spec::runtime::Spec> {
        let path = self.config_copy();
        let text = fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        crate::bundle::parse_config(&text, &path.display().to_string())
    }

    /// The spec, read only when it has hooks to run.
    pub fn spec_for_hooks(&self) -> Result<Option<oci_spec::runtime::Spec>> {
        match self.record.has_hooks {
            true => self.spec().map(Some),
            false => Ok(None),
        }
    }

    /// The status from the live process: a dead, zombie or reused pid means stopped.
    pub fn status(&self) -> Status {
        let r = &self.record;
        if r.status == Status::Creating || r.status == Status::Stopped {
            return r.status;
        }
        if !process_alive(r.pid, r.pid_start_time) {
            return Status::Stopped;
        }
        if r.status == Status::Paused {
            return Status::Paused;
        }
        if fifo_waiting(&self.exec_fifo()) {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// Removes `<root>/<id>/` and everything in it.
    pub fn remove_dir(&self) -> Result<()> {
        // The files hako makes there, by name through the locked directory's fd, then the
        // directory: no listing. Anything else left there (a crash's temporary file): the
        // long way.
        if let Some(dir) = &self._lock {
            use std::os::fd::AsRawFd;
            for name in [STATE_FILE, CONFIG_COPY, EXEC_FIFO] {
                let _ = nix::unistd::unlinkat(
                    Some(dir.as_raw_fd()),
                    name,
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
            }
            if fs::remove_dir(&self.dir).is_ok() {
                return Ok(());
            }
        }
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("remove {}", self.dir.display())),
        }
    }
}

/// The exec fifo's mtime is 0 while the init waits on it; the init stamps it when released, so
/// a container whose `start` was killed midway is not taken for one that still waits.
pub fn mark_fifo_waiting(fifo: &Path) -> Result<()> {
    let zero = nix::sys::time::TimeSpec::new(0, 0);
    nix::sys::stat::utimensat(
        None,
        fifo,
        &zero,
        &zero,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .with_context(|| format!("{}", fifo.display()))
}

/// Whether the exec fifo exists and the init has not been released from it.
pub fn fifo_waiting(fifo: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(fifo).is_ok_and(|m| m.mtime() == 0 && m.mtime_nsec() == 0)
}

fn read_record(dir: &Path, id: &str) -> Result<Record> {
    parse_record(fs::read(dir.join(STATE_FILE)), dir, id)
}

fn parse_record(read: std::io::Result<Vec<u8>>, dir: &Path, id: &str) -> Result<Record> {
    let data = read.with_context(|| state_file_of(dir, id))?;
    serde_json::from_slice(&data).with_context(|| state_file_of(dir, id))
}

fn state_file_of(dir: &Path, id: &str) -> String {
    format!("container {id:?}: {}", dir.join(STATE_FILE).display())
}

/// Start time (field 22 of /proc/PID/stat) and whether the process is a zombie.
pub fn stat_of(pid: i32) -> Option<(u64, bool)> {
    // One read: the kernel makes the whole line at once (~300 bytes; fields past the 22nd are
    // not needed), where read_to_string would stat and read it in growing pieces.
    let mut buf = [0u8; 1024];
    let n =
        std::io::Read::read(&mut File::open(format!("/proc/{pid}/stat")).ok()?, &mut buf).ok()?;
    // The command name (field 2) is the process's to set: any bytes, spaces, parentheses, not
    // UTF-8 (which must not make a live process look gone). Parsed after the last ')'.
    let close = buf[..n].iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&buf[close + 1..n]).ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, *state == "Z" || *state == "X"))
}

pub fn process_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match stat_of(pid) {
        Some((start, zombie)) => start == start_time && !zombie,
        None => false,
    }
}

/// Ids of all containers under `root` (directories holding a state.json).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).with_context(|| format!("--root {}", root.display())),
    };
    for entry in entries.flatten() {
        if entry.path().join(STATE_FILE).is_file() {
            if let Some(name) = entry.file_name().to_str() {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_root_follows_runcs_rule() {
        let xdg = Some(OsStr::new("/run/user/1000"));
        let given = Some(Path::new("/tmp/r"));
        assert_eq!(
            state_root(given, true, None).unwrap(),
            PathBuf::from("/tmp/r")
        );
        assert_eq!(
            state_root(None, false, xdg).unwrap(),
            PathBuf::from("/run/hako")
        );
        assert_eq!(
            state_root(None, true, xdg).unwrap(),
            PathBuf::from("/run/user/1000/hako")
        );
        for unset in [None, Some(OsStr::new(""))] {
            let err = state_root(None, true, unset).unwrap_err().to_string();
            assert!(
                err.contains("XDG_RUNTIME_DIR") && err.contains("--root"),
                "{err}"
            );
        }
    }

    #[test]
    fn ids() {
        for bad in ["", ".", "..", "../x", "a/b", "a b", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "abc-1_2.3+4", "0123456789abcdef"] {
            assert!(validate_id(good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn a_record_from_before_has_hooks_is_assumed_to_have_them() {
        let old = r#"{"ociVersion":"1.3.0","id":"a","pid":1,"status":"created",
            "bundle":"/b","rootfs":"/b/r","created":"t","owner":""}"#;
        let r: Record = serde_json::from_str(old).unwrap();
        assert!(r.has_hooks);
        let none = serde_json::to_string(&Record {
            has_hooks: false,
            ..r
        })
        .unwrap();
        let back: Record = serde_json::from_str(&none).unwrap();
        assert!(!back.has_hooks);
    }

    #[test]
    fn own_process_alive_and_start_time_checked() {
        let me = std::process::id() as i32;
        let (start, zombie) = stat_of(me).unwrap();
        assert!(!zombie);
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1));
        assert!(!process_alive(0, 0));
    }
}
