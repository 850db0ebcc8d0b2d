//! `hako spec [--rootless] [-b DIR]`: a default config.json like runc's.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

/// runc's default: oci-spec's default with a terminal and `sh`.
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    if rootless {
        // runc's order of the /sys bind's options (oci-spec puts rbind last).
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in mounts
            .iter_mut()
            .filter(|m| m.destination() == Path::new("/sys"))
        {
            let mut opts = m.options().clone().unwrap_or_default();
            opts.retain(|o| o != "rbind");
            opts.insert(0, "rbind".to_string());
            m.set_options(Some(opts));
        }
        spec.set_mounts(Some(mounts));
    }
    spec.set_version("1.3.0".to_string());
    spec.set_hostname(Some("hako".to_string()));
    if let Some(mut p) = spec.process().clone() {
        p.set_terminal(Some(true));
        p.set_args(Some(vec!["sh".to_string()]));
        spec.set_process(Some(p));
    }
    spec
}

pub fn run(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{}: already exists; remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&default_spec(rootless))?;
    std::fs::write(&path, text + "\n").with_context(|| format!("{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_round_trips_and_is_runc_like() {
        let text = serde_json::to_string(&default_spec(false)).unwrap();
        let spec = crate::bundle::parse_config(&text, "config.json").unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.args().as_ref().unwrap(), &vec!["sh".to_string()]);
        assert!(spec
            .linux()
            .as_ref()
            .unwrap()
            .masked_paths()
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m == "/proc/kcore"));
    }
}
