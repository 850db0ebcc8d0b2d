//! The device cgroup's rules, planned: a deny-all start, the config's `linux.resources.devices`
//! in their listed order, then the devices every container needs. Like runc, the defaults come
//! last, so no config can take /dev/null away from its own init; and like runc, the start is
//! "deny everything" rather than whatever the parent cgroup allows. The one list serves both
//! hierarchies: v1 writes it to devices.allow/deny, v2 compiles it to a BPF program
//! (device_bpf.rs).

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// A rule in the kernel's terms (a line for `devices.allow` / `devices.deny` on v1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a', 'b' or 'c'.
    pub typ: char,
    /// None: any (`*`).
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl Rule {
    fn to_spec(&self) -> LinuxDeviceCgroup {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(self.allow);
        d.set_typ(Some(match self.typ {
            'b' => LinuxDeviceType::B,
            'c' => LinuxDeviceType::C,
            _ => LinuxDeviceType::A,
        }));
        d.set_major(self.major);
        d.set_minor(self.minor);
        d.set_access(Some(self.access.clone()));
        d
    }
}

fn allow(typ: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
    Rule {
        allow: true,
        typ,
        major,
        minor,
        access: access.to_string(),
    }
}

/// What every container may use: mknod of any device (the init makes `linux.devices` nodes;
/// using them still needs a rule), the standard character devices of runtime-spec's "Default
/// Devices" (null, zero, full, random, urandom, tty), the console and the pty multiplexer with
/// its slaves, and tun (runc allows it too, for containers that make their own tap devices).
pub fn defaults() -> Vec<Rule> {
    let c = |major, minor| allow('c', Some(major), Some(minor), "rwm");
    vec![
        allow('c', None, None, "m"),
        allow('b', None, None, "m"),
        c(1, 3),                            // null
        c(1, 5),                            // zero
        c(1, 7),                            // full
        c(1, 8),                            // random
        c(1, 9),                            // urandom
        c(5, 0),                            // tty
        c(5, 1),                            // console
        c(5, 2),                            // ptmx
        allow('c', Some(136), None, "rwm"), // pts/*
        c(10, 200),                         // net/tun
    ]
}

/// The full, ordered rule list for a config's device rules.
pub fn plan(user: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut rules = vec![Rule {
        allow: false,
        typ: 'a',
        major: None,
        minor: None,
        access: "rwm".to_string(),
    }];
    for (i, d) in user.iter().enumerate() {
        let field = format!("config.json: linux.resources.devices[{i}]");
        let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C => 'c',
            other => bail!(
                "{field}.type: {:?} is not a device cgroup type (a, b or c)",
                other.as_str()
            ),
        };
        for (name, n) in [("major", d.major()), ("minor", d.minor())] {
            match n {
                Some(n) if n < 0 => bail!("{field}.{name}: {n} is negative"),
                Some(n) if n > u32::MAX as i64 => bail!("{field}.{name}: {n} is too large"),
                _ => {}
            }
        }
        let access = match d.access().as_deref() {
            None | Some("") => "rwm".to_string(),
            Some(a) => {
                let known: String = a.chars().filter(|c| "rwm".contains(*c)).collect();
                if known.is_empty() {
                    bail!("{field}.access: {a:?}: none of r, w, m");
                }
                if known.len() != a.len() {
                    // runc 1.1.5 drops letters it does not know (its own tests write "rwa"):
                    // what is left never grants more than the known letters say.
                    tracing::warn!(
                        "{field}.access: {a:?}: only r, w and m mean something; the rest is \
                         ignored, as runc does"
                    );
                }
                known
            }
        };
        rules.push(Rule {
            allow: d.allow(),
            typ,
            major: d.major(),
            minor: d.minor(),
            access,
        });
    }
    rules.extend(defaults());
    Ok(rules)
}

/// The planned rules as spec entries, for libcgroups (which appends its own defaults after them:
/// the same devices, so the kernel merges them into ours).
pub fn as_spec(rules: &[Rule]) -> Vec<LinuxDeviceCgroup> {
    rules.iter().map(Rule::to_spec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn deny_all_then_config_in_order_then_defaults() {
        let u = user(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":10,"minor":229,"access":"rwm"},
                {"allow":true,"type":"b","major":8,"minor":20,"access":"rw"},
                {"allow":false,"type":"c","major":1,"minor":3}]"#,
        );
        let rules = plan(&u).unwrap();
        let lines: Vec<String> = as_spec(&rules)
            .iter()
            .map(|d| format!("{} {d}", if d.allow() { "allow" } else { "deny" }))
            .collect();
        assert_eq!(lines[0], "deny a *:* rwm");
        assert_eq!(lines[1], "deny a *:* rwm");
        assert_eq!(lines[2], "allow c 10:229 rwm");
        assert_eq!(lines[3], "allow b 8:20 rw");
        assert_eq!(lines[4], "deny c 1:3 rwm");
        // The defaults follow, so /dev/null is allowed again in the end.
        assert_eq!(&rules[5..], &defaults()[..]);
        assert!(lines.contains(&"allow c 1:3 rwm".to_string()));
        assert!(lines.contains(&"allow c 136:* rwm".to_string()));
        assert!(lines.contains(&"allow b *:* m".to_string()));
    }

    #[test]
    fn defaults_cover_the_standard_devices() {
        let d = defaults();
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            assert!(
                d.iter().any(|r| r.allow
                    && r.typ == 'c'
                    && r.major == Some(major)
                    && r.minor == Some(minor)
                    && r.access == "rwm"),
                "{major}:{minor} missing"
            );
        }
        // Nothing block-level beyond mknod.
        assert!(d.iter().filter(|r| r.typ == 'b').all(|r| r.access == "m"));
    }

    #[test]
    fn unknown_access_letters_are_dropped_as_runc_does() {
        let d = plan(&user(
            r#"[{"allow":false,"type":"c","major":1,"minor":11,"access":"rwa"}]"#,
        ))
        .unwrap();
        assert_eq!(d[1].access, "rw");
        assert!(!d[1].allow);
    }

    #[test]
    fn bad_rules_name_the_field() {
        let err = plan(&user(r#"[{"allow":true,"type":"u","major":1,"minor":1}]"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux.resources.devices[0].type"), "{err}");
        let err = plan(&user(r#"[{"allow":true},{"allow":true,"access":"xyz"}]"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("devices[1].access"), "{err}");
        let err = plan(&user(r#"[{"allow":true,"type":"c","major":-2}]"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("devices[0].major"), "{err}");
        let err = plan(&user(r#"[{"allow":true,"type":"c","minor":4294967296}]"#))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("devices[0].minor: 4294967296 is too large"),
            "{err}"
        );
    }

    #[test]
    fn spec_round_trip_keeps_wildcards() {
        let spec = as_spec(&defaults());
        assert_eq!(spec[0].to_string(), "c *:* m");
        assert_eq!(spec[10].to_string(), "c 136:* rwm");
        assert!(spec.iter().all(|d| d.allow()));
    }
}
