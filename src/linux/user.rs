//! The process's identity: supplementary groups, gid, uid, umask.

use anyhow::{Context, Result};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

/// Switches to `process.user`. The caller keeps capabilities across it with PR_SET_KEEPCAPS.
pub fn switch(user: &User, may_setgroups: bool) -> Result<()> {
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    if may_setgroups {
        let groups: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        setgroups(&groups).context("config.json: process.user.additionalGids: setgroups")?;
    }
    setresgid(gid, gid, gid)
        .with_context(|| format!("config.json: process.user.gid: setgid {gid}"))?;
    setresuid(uid, uid, uid)
        .with_context(|| format!("config.json: process.user.uid: setuid {uid}"))?;
    Ok(())
}

/// runc's default umask is 0022.
pub fn set_umask(user: &User) {
    let mask = user.umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
}

/// Keeps the permitted capabilities across setuid away from 0.
pub fn keep_caps(on: bool) -> Result<()> {
    nix::sys::prctl::set_keepcaps(on).context("prctl(PR_SET_KEEPCAPS)")
}
