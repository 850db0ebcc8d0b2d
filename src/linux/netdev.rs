//! `linux.netDevices` (runtime-spec 1.3.0, config-linux.md "Network Devices"): host network
//! devices moved into the container's network namespace, renamed when `name` is given, brought
//! up, with their permanent global addresses kept. Done by the parent over rtnetlink once the
//! init is in its namespaces. Nothing is moved back on delete (the spec forbids it): when the
//! namespace goes, the kernel returns physical devices to the host and destroys virtual ones.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::Linux;

/// One device to move. Pure data.
#[derive(Debug, Clone, PartialEq)]
pub struct NetDevPlan {
    /// Its name on the host (the key in `netDevices`).
    pub host: String,
    /// Its name in the container (`name`, else the host name); may end in `%d`.
    pub name: String,
}

impl NetDevPlan {
    fn field(&self) -> String {
        format!("config.json: linux.netDevices.{}", self.host)
    }
}

/// A valid interface name: 1..15 bytes, no '/', ':' or white space (dev_valid_name).
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() < libc::IFNAMSIZ
        && n != "."
        && n != ".."
        && !n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Checks `linux.netDevices` against the spec, in a stable order. Pure.
pub fn plan(linux: Option<&Linux>, new_netns: bool, joins_netns: bool) -> Result<Vec<NetDevPlan>> {
    let Some(devs) = linux.and_then(|l| l.net_devices().as_ref()) else {
        return Ok(Vec::new());
    };
    if devs.is_empty() {
        return Ok(Vec::new());
    }
    if !new_netns && !joins_netns {
        bail!("config.json: linux.netDevices: the container has no network namespace of its own (add one to linux.namespaces): moving a device would take it from the host");
    }
    let mut out: Vec<NetDevPlan> = devs
        .iter()
        .map(|(host, d)| NetDevPlan {
            host: host.clone(),
            name: d.name().clone().unwrap_or_else(|| host.clone()),
        })
        .collect();
    out.sort_by(|a, b| a.host.cmp(&b.host));
    for p in &out {
        if !valid_name(&p.host) {
            bail!("{}: not a valid network device name", p.field());
        }
        let template = p.name.strip_suffix("%d").unwrap_or(&p.name);
        if !valid_name(&p.name) || template.contains('%') {
            bail!(
                "{}.name: {:?} is not a valid network device name",
                p.field(),
                p.name
            );
        }
    }
    for (i, p) in out.iter().enumerate() {
        if !p.name.ends_with("%d") && out[..i].iter().any(|q| q.name == p.name) {
            bail!("{}.name: {:?} is given to two devices", p.field(), p.name);
        }
    }
    Ok(out)
}

/// Every planned device exists on the host (checked by `create` before anything is made).
pub fn check_host(devs: &[NetDevPlan]) -> Result<()> {
    if devs.is_empty() {
        return Ok(());
    }
    let nl = Netlink::open()?;
    for d in devs {
        nl.link_index(&d.host)
            .with_context(|| format!("{}: no such network device on the host", d.field()))?;
    }
    Ok(())
}

/// Moves the devices into the network namespace of `pid`, renames, keeps the addresses, sets up.
pub fn move_all(devs: &[NetDevPlan], pid: i32) -> Result<()> {
    if devs.is_empty() {
        return Ok(());
    }
    let host = Netlink::open()?;
    let ns = File::open(format!("/proc/{pid}/ns/net")).context("open the container's netns")?;
    let inside = Netlink::open_in(&ns)?;
    for d in devs {
        let field = d.field();
        let index = host
            .link_index(&d.host)
            .with_context(|| format!("{field}: no such network device on the host"))?;
        // Moving drops the addresses: read them first (permanent, global scope: the spec's).
        let addrs = host.permanent_global_addrs(index).context(field.clone())?;
        if !d.name.ends_with("%d") && inside.link_index(&d.name).is_ok() {
            bail!(
                "{field}.name: {:?} already exists in the container's network namespace",
                d.name
            );
        }
        host.move_link(index, ns.as_raw_fd(), &d.name)
            .with_context(|| format!("{field}: move into the container's network namespace"))?;
        let new = match d.name.strip_suffix("%d") {
            None => inside.link_index(&d.name),
            // The kernel chose the number; the index is kept unless taken.
            Some(prefix) => inside
                .link_name(index)
                .ok()
                .filter(|n| n.starts_with(prefix))
                .map(|_| index)
                .context("the moved device was not found"),
        }
        .with_context(|| format!("{field}: find it in the container's network namespace"))?;
        for a in &addrs {
            inside
                .add_addr(new, a)
                .with_context(|| format!("{field}: restore an address"))?;
        }
        inside
            .set_up(new)
            .with_context(|| format!("{field}: set it up"))?;
        tracing::debug!("{field}: moved into the container as {}", d.name);
    }
    Ok(())
}

// rtnetlink, by hand: the few messages above need no crate.
const NLMSG_HDR: usize = 16;
const IFINFO: usize = 16;
const IFADDR: usize = 8;
const IFA_F_PERMANENT: u32 = 0x80;
const IFA_FLAGS: u16 = 8;

/// An address as the kernel reported it: the ifaddrmsg's family and prefix, and its attributes.
#[derive(Debug, Clone)]
struct Addr {
    family: u8,
    prefixlen: u8,
    attrs: Vec<(u16, Vec<u8>)>,
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align(buf.len()), 0);
}

fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let typ = u16::from_ne_bytes([b[2], b[3]]);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((typ, &b[4..len]));
        b = &b[align(len).min(b.len())..];
    }
    out
}

fn cstr(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

/// Brings up the loopback of the network namespace this process is in, a new one (the kernel
/// makes it down), as runc and crun do: the container talks to 127.0.0.1 without needing
/// CAP_NET_ADMIN for it. Its index is 1 in every namespace (the kernel's LOOPBACK_IFINDEX).
pub fn loopback_up() -> Result<()> {
    Netlink::open()
        .and_then(|nl| nl.set_up(1))
        .context("bring the new network namespace's loopback up")
}

struct Netlink {
    fd: OwnedFd,
}

impl Netlink {
    /// A route netlink socket in this process's network namespace.
    fn open() -> Result<Netlink> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink socket");
        }
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        Ok(Netlink {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// A socket in the namespace `ns`: a socket stays in the namespace it was made in, so the
    /// parent (single-threaded) enters `ns`, makes it, and returns.
    fn open_in(ns: &File) -> Result<Netlink> {
        let own = File::open("/proc/self/ns/net").context("open hako's netns")?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).context("enter the container's netns")?;
        let sock = Netlink::open();
        setns(own.as_fd(), CloneFlags::CLONE_NEWNET).context("return to hako's netns")?;
        sock
    }

    /// Sends one request and collects the answers until the ack or the end of the dump.
    fn request(&self, typ: u16, flags: u16, body: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut msg = Vec::with_capacity(NLMSG_HDR + body.len());
        msg.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&typ.to_ne_bytes());
        msg.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        nix::sys::socket::send(
            self.fd.as_raw_fd(),
            &msg,
            nix::sys::socket::MsgFlags::empty(),
        )
        .context("netlink send")?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            )
            .context("netlink recv")?;
            let mut b = &buf[..n];
            while b.len() >= NLMSG_HDR {
                let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
                let t = u16::from_ne_bytes([b[4], b[5]]);
                if len < NLMSG_HDR || len > b.len() {
                    bail!("netlink: truncated message");
                }
                let payload = &b[NLMSG_HDR..len];
                match t as i32 {
                    libc::NLMSG_DONE => return Ok(out),
                    libc::NLMSG_ERROR => {
                        let err = i32::from_ne_bytes(payload[0..4].try_into().unwrap());
                        if err == 0 {
                            return Ok(out);
                        }
                        return Err(std::io::Error::from_raw_os_error(-err).into());
                    }
                    _ => out.push(payload.to_vec()),
                }
                b = &b[align(len).min(b.len())..];
            }
            if flags & libc::NLM_F_DUMP as u16 == 0 && flags & libc::NLM_F_ACK as u16 == 0 {
                return Ok(out);
            }
        }
    }

    fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
        let mut b = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&change.to_ne_bytes());
        b
    }

    /// The index of the link called `name`.
    fn link_index(&self, name: &str) -> Result<i32> {
        let mut body = Self::ifinfo(0, 0, 0);
        attr(&mut body, libc::IFLA_IFNAME, &cstr(name));
        let answers = self.request(libc::RTM_GETLINK, 0, &body)?;
        let a = answers.first().context("no answer")?;
        Ok(i32::from_ne_bytes(a[4..8].try_into().unwrap()))
    }

    /// The name of the link with `index`.
    fn link_name(&self, index: i32) -> Result<String> {
        let answers = self.request(libc::RTM_GETLINK, 0, &Self::ifinfo(index, 0, 0))?;
        let a = answers.first().context("no answer")?;
        for (t, v) in attrs(&a[IFINFO..]) {
            if t == libc::IFLA_IFNAME {
                return Ok(
                    String::from_utf8_lossy(v.split(|c| *c == 0).next().unwrap_or(&[]))
                        .into_owned(),
                );
            }
        }
        bail!("link {index} has no name")
    }

    /// Moves link `index` into the namespace `ns_fd`, named `name` there, in one request.
    fn move_link(&self, index: i32, ns_fd: i32, name: &str) -> Result<()> {
        let mut body = Self::ifinfo(index, 0, 0);
        attr(
            &mut body,
            libc::IFLA_NET_NS_FD,
            &(ns_fd as u32).to_ne_bytes(),
        );
        attr(&mut body, libc::IFLA_IFNAME, &cstr(name));
        self.request(libc::RTM_NEWLINK, libc::NLM_F_ACK as u16, &body)
            .map(drop)
    }

    fn set_up(&self, index: i32) -> Result<()> {
        let up = libc::IFF_UP as u32;
        self.request(
            libc::RTM_NEWLINK,
            libc::NLM_F_ACK as u16,
            &Self::ifinfo(index, up, up),
        )
        .map(drop)
    }

    /// The addresses of link `index` that are permanent and of global scope.
    fn permanent_global_addrs(&self, index: i32) -> Result<Vec<Addr>> {
        let body = vec![0u8; IFADDR];
        let answers = self.request(libc::RTM_GETADDR, libc::NLM_F_DUMP as u16, &body)?;
        let mut out = Vec::new();
        for a in answers {
            if a.len() < IFADDR {
                continue;
            }
            let (family, prefixlen, flags8, scope) = (a[0], a[1], a[2], a[3]);
            let ifindex = u32::from_ne_bytes(a[4..8].try_into().unwrap()) as i32;
            let list = attrs(&a[IFADDR..]);
            // IFA_FLAGS, when present, holds all the flags (the byte only the low eight).
            let flags = list
                .iter()
                .find(|(t, v)| *t == IFA_FLAGS && v.len() == 4)
                .map(|(_, v)| u32::from_ne_bytes((*v).try_into().unwrap()))
                .unwrap_or(flags8 as u32);
            if ifindex != index || scope != libc::RT_SCOPE_UNIVERSE || flags & IFA_F_PERMANENT == 0
            {
                continue;
            }
            let keep = [libc::IFA_ADDRESS, libc::IFA_LOCAL, libc::IFA_BROADCAST];
            out.push(Addr {
                family,
                prefixlen,
                attrs: list
                    .into_iter()
                    .filter(|(t, _)| keep.contains(t))
                    .map(|(t, v)| (t, v.to_vec()))
                    .collect(),
            });
        }
        Ok(out)
    }

    fn add_addr(&self, index: i32, a: &Addr) -> Result<()> {
        let mut body = vec![a.family, a.prefixlen, 0, libc::RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&(index as u32).to_ne_bytes());
        for (t, v) in &a.attrs {
            attr(&mut body, *t, v);
        }
        let flags = libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
        self.request(libc::RTM_NEWADDR, flags as u16, &body)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: &str) -> Linux {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn names_default_to_the_host_name() {
        let l = linux(r#"{"netDevices":{"dummy1":{},"eth9":{"name":"ctr0"}}}"#);
        let p = plan(Some(&l), true, false).unwrap();
        assert_eq!(
            p,
            vec![
                NetDevPlan {
                    host: "dummy1".into(),
                    name: "dummy1".into()
                },
                NetDevPlan {
                    host: "eth9".into(),
                    name: "ctr0".into()
                },
            ]
        );
    }

    #[test]
    fn bad_entries_name_the_field() {
        let err = |j: &str, new: bool| plan(Some(&linux(j)), new, false).unwrap_err().to_string();
        assert!(err(r#"{"netDevices":{"d0":{}}}"#, false)
            .contains("linux.netDevices: the container has no network namespace"));
        assert!(err(r#"{"netDevices":{"d0":{"name":"a/b"}}}"#, true)
            .contains("linux.netDevices.d0.name: \"a/b\""));
        assert!(
            err(r#"{"netDevices":{"d0":{"name":"abcdefghijklmnop"}}}"#, true)
                .contains("linux.netDevices.d0.name")
        );
        assert!(err(
            r#"{"netDevices":{"d0":{"name":"x"},"d1":{"name":"x"}}}"#,
            true
        )
        .contains("linux.netDevices.d1.name: \"x\" is given to two devices"));
        assert!(err(r#"{"netDevices":{"":{}}}"#, true).contains("linux.netDevices.: not a valid"));
        // A %d template is the kernel's to fill, also for several devices.
        assert!(plan(
            Some(&linux(
                r#"{"netDevices":{"d0":{"name":"c%d"},"d1":{"name":"c%d"}}}"#
            )),
            true,
            false
        )
        .is_ok());
    }

    #[test]
    fn attributes_round_trip() {
        let mut b = Vec::new();
        attr(&mut b, 3, b"eth0\0");
        attr(&mut b, 1, &[1, 2, 3, 4]);
        let a = attrs(&b);
        assert_eq!(a, vec![(3, &b"eth0\0"[..]), (1, &[1u8, 2, 3, 4][..])]);
    }
}
