//! Linux security modules: `process.apparmorProfile`, `process.selinuxLabel` and
//! `linux.mountLabel`. A label for a module this host does not run is an error that names the
//! missing module, never silently dropped.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

use super::procfs::ProcFs;

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Checks the labels against the host's modules (the module checks are passed in, so the rule
/// is testable anywhere).
pub fn check(spec: &Spec, apparmor: bool, selinux: bool) -> Result<()> {
    let process = spec.process().as_ref();
    if let Some(p) = process
        .and_then(|p| p.apparmor_profile().as_deref())
        .filter(|p| !p.is_empty())
    {
        if !apparmor {
            bail!("config.json: process.apparmorProfile: {p:?}: AppArmor is not enabled on this host (/sys/module/apparmor)");
        }
    }
    if let Some(l) = process
        .and_then(|p| p.selinux_label().as_deref())
        .filter(|l| !l.is_empty())
    {
        if !selinux {
            bail!("config.json: process.selinuxLabel: {l:?}: SELinux is not enabled on this host (/sys/fs/selinux)");
        }
    }
    if let Some(l) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        .filter(|l| !l.is_empty())
    {
        if !selinux {
            bail!("config.json: linux.mountLabel: {l:?}: SELinux is not enabled on this host (/sys/fs/selinux)");
        }
    }
    Ok(())
}

/// Mount data with the SELinux context of `linux.mountLabel` added. Pure.
pub fn with_mount_label(data: &str, label: Option<&str>) -> String {
    match label.filter(|l| !l.is_empty()) {
        None => data.to_string(),
        Some(l) if data.is_empty() => format!("context=\"{l}\""),
        Some(l) => format!("{data},context=\"{l}\""),
    }
}

/// Asks the kernel to put the process under its profile and label at execve (through the
/// verified procfs handle).
pub fn apply_exec_labels(
    apparmor: Option<&str>,
    selinux: Option<&str>,
    proc: &ProcFs,
) -> Result<()> {
    if let Some(p) = apparmor {
        let attr = if proc
            .open_file("self/attr/apparmor/exec", libc::O_PATH)
            .is_ok()
        {
            "self/attr/apparmor/exec"
        } else {
            "self/attr/exec"
        };
        proc.write(attr, &format!("exec {p}"))
            .with_context(|| format!("config.json: process.apparmorProfile: {p}"))?;
    }
    if let Some(l) = selinux {
        proc.write("self/attr/exec", l)
            .with_context(|| format!("config.json: process.selinuxLabel: {l}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Spec {
        crate::bundle::parse_config(text, "config.json").unwrap()
    }

    #[test]
    fn labels_without_their_module_name_it() {
        let s = spec(
            r#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":0,"gid":0},"apparmorProfile":"acme"}}"#,
        );
        let err = check(&s, false, false).unwrap_err().to_string();
        assert!(
            err.contains("process.apparmorProfile") && err.contains("AppArmor is not enabled"),
            "{err}"
        );
        assert!(check(&s, true, false).is_ok());
        let s = spec(r#"{"ociVersion":"1.0.0","linux":{"mountLabel":"system_u:object_r:x:s0"}}"#);
        let err = check(&s, true, false).unwrap_err().to_string();
        assert!(
            err.contains("linux.mountLabel") && err.contains("SELinux"),
            "{err}"
        );
        assert!(check(&s, false, true).is_ok());
    }

    #[test]
    fn mount_label_data() {
        assert_eq!(
            with_mount_label("mode=755", Some("a:b")),
            "mode=755,context=\"a:b\""
        );
        assert_eq!(with_mount_label("", Some("a:b")), "context=\"a:b\"");
        assert_eq!(with_mount_label("x", None), "x");
    }
}
