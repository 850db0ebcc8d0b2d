//! Loading a bundle: config.json → `oci_spec::runtime::Spec`, checked, with errors that name the
//! field (`config.json: linux.namespaces[3].type: unknown variant ...`).

pub mod limits;
#[cfg(test)]
mod proptests;

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

pub const CONFIG: &str = "config.json";

/// A loaded bundle: its absolute directory, the spec, and the absolute rootfs path.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
    /// config.json's text as read and checked: what the container's copy holds.
    pub text: String,
}

/// Parses a config from text; errors carry the JSON path of the offending field.
pub fn parse_config(text: &str, origin: &str) -> Result<Spec> {
    // The plain parse first: tracking the path costs an allocation per key, and only an error
    // needs it, so a config that does not parse is parsed again for the path of its error.
    if let Ok(spec) = serde_json::from_str(text) {
        return Ok(spec);
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            anyhow::anyhow!("{origin}: {inner}")
        } else {
            anyhow::anyhow!("{origin}: {path}: {inner}")
        }
    })
}

/// Reads `<dir>/config.json` and checks what a runtime needs before it creates anything.
pub fn load(dir: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(dir).with_context(|| format!("bundle: {}", dir.display()))?;
    let config_path = dir.join(CONFIG);
    let text = read_bounded(&config_path)?;
    let (spec, rootfs) = from_text(&text, &dir)?;
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        text,
    })
}

/// Parses and checks a config's text. The error is one line whatever the config holds (a
/// value quoted in it may hold a newline).
pub fn from_text(text: &str, dir: &Path) -> Result<(Spec, PathBuf)> {
    let checked = parse_config(text, CONFIG).and_then(|spec| {
        let rootfs = validate(&spec, dir)?;
        Ok((spec, rootfs))
    });
    checked.map_err(|e| anyhow::anyhow!(one_line(&format!("{e:#}"))))
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`).
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The file's text, refused past `limits::MAX_CONFIG_BYTES` (a config cannot exhaust memory).
fn read_bounded(path: &Path) -> Result<String> {
    let ctx = || format!("{}", path.display());
    let file = std::fs::File::open(path).with_context(ctx)?;
    // Room for the whole file up front: one read instead of a run of growing small ones (the
    // size is only a hint: the read stays bounded whatever the file holds by then).
    let size = file.metadata().map_or(0, |m| m.len());
    let mut text = String::with_capacity(size.min(limits::MAX_CONFIG_BYTES + 1) as usize);
    file.take(limits::MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(ctx)?;
    if text.len() as u64 > limits::MAX_CONFIG_BYTES {
        bail!(
            "{}: larger than {} bytes",
            path.display(),
            limits::MAX_CONFIG_BYTES
        );
    }
    Ok(text)
}

/// The checks a config must pass; returns the absolute rootfs path.
pub fn validate(spec: &Spec, bundle_dir: &Path) -> Result<PathBuf> {
    if !is_semver(spec.version()) {
        bail!(
            "config.json: ociVersion: {:?} is not a SemVer 2.0.0 version",
            spec.version()
        );
    }
    let root = spec
        .root()
        .as_ref()
        .context("config.json: root: missing (the container needs a root filesystem)")?;
    let rootfs = bundle_dir.join(root.path());
    if !rootfs.is_dir() {
        bail!(
            "config.json: root.path: {}: no such directory",
            rootfs.display()
        );
    }
    let rootfs = rootfs
        .canonicalize()
        .with_context(|| format!("config.json: root.path: {}", rootfs.display()))?;
    let process = spec
        .process()
        .as_ref()
        .context("config.json: process: missing")?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => bail!("config.json: process.args: must name at least the program to run"),
    }
    if !process.cwd().is_absolute() {
        bail!(
            "config.json: process.cwd: {}: must be an absolute path",
            process.cwd().display()
        );
    }
    if let Some(linux) = spec.linux() {
        let mut seen = HashSet::new();
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            if !seen.insert(ns.typ()) {
                bail!(
                    "config.json: linux.namespaces[{i}].type: {} is listed twice",
                    ns.typ()
                );
            }
        }
    }
    if let Some(linux) = spec.linux() {
        for (field, list) in [
            ("maskedPaths", linux.masked_paths()),
            ("readonlyPaths", linux.readonly_paths()),
        ] {
            for (i, p) in list.iter().flatten().enumerate() {
                if !p.starts_with('/') {
                    bail!("config.json: linux.{field}[{i}]: {p:?} must be an absolute path");
                }
            }
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            bail!(
                "config.json: mounts[{i}].destination: {}: must be an absolute path",
                m.destination().display()
            );
        }
    }
    crate::hooks::validate(spec)?;
    limits::check(spec)?;
    Ok(rootfs)
}

/// MAJOR.MINOR.PATCH with optional -pre-release and +build parts.
fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver() {
        for ok in ["1.0.0", "1.3.0", "1.0.2-dev", "1.2.3+build.1"] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in ["invalid", "1.0", "", "1.x.0"] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn truncated_config_names_the_file() {
        let err = parse_config("{\"ociVersion\": \"1.0", CONFIG).unwrap_err();
        assert!(err.to_string().starts_with("config.json: "), "{err}");
    }

    #[test]
    fn unknown_namespace_names_the_field() {
        let text =
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#;
        let err = parse_config(text, CONFIG).unwrap_err().to_string();
        assert!(err.contains("linux.namespaces[1].type"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    fn spec_with(args: &[&str]) -> Spec {
        let mut spec = Spec::default();
        let mut p = spec.process().clone().unwrap();
        p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        spec.set_process(Some(p));
        spec
    }

    #[test]
    fn empty_args_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let err = validate(&spec_with(&[]), dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("process.args"), "{err}");
        assert!(validate(&spec_with(&["sh"]), dir.path()).is_ok());
    }

    #[test]
    fn missing_rootfs_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = validate(&spec_with(&["sh"]), dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("root.path") && err.contains("rootfs"), "{err}");
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let text = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
            "linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#;
        let spec = parse_config(text, CONFIG).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let err = validate(&spec, dir.path()).unwrap_err().to_string();
        assert!(err.contains("linux.namespaces[1].type"), "{err}");
    }
}
