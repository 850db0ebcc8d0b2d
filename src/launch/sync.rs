//! The parent ⇄ init handshake: small typed messages, one per SOCK_SEQPACKET datagram.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{
    recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub enum Msg {
    // parent → init
    /// The init is in its cgroup (and its id maps are written when clone made the user ns).
    Proceed,
    /// The maps of the user namespace the init unshared are written.
    IdMapsWritten,
    /// The prestart and createRuntime hooks ran: go on to createContainer and pivot_root.
    Go,
    /// The source of bind mount `mounts[index]`, opened by the parent (O_PATH, SCM_RIGHTS); no
    /// fd when the parent could not open it. One per bind mount, in order.
    MountSource { index: usize },
    // init → parent
    /// The init unshared a user namespace: write its uid/gid maps.
    WriteIdMaps,
    /// The init has its user and mount namespaces: open the bind mounts' sources for it.
    OpenMountSources,
    /// The init forked into its pid/time namespace: this is the container's pid (host view).
    Pid { pid: i32 },
    /// Namespaces exist and the mounts are made, before pivot_root: time for the prestart and
    /// createRuntime hooks.
    RootfsReady,
    /// The seccomp filter is installed; its notify fd rides along (SCM_RIGHTS).
    SeccompListener,
    /// Set up and waiting on the exec fifo.
    Created,
    /// Setup failed; the init exits.
    Error { msg: String },
}

pub struct Channel(OwnedFd);

/// A connected pair: (parent end, init end).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data = serde_json::to_vec(msg)?;
        send(self.0.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL).context("sync send")?;
        Ok(())
    }

    /// A message as sent, serialized ahead (see `send_with_fd`).
    pub fn encode(msg: &Msg) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(msg)?)
    }

    /// Sends an encoded message with `fd` attached. Neither allocates nor makes another
    /// syscall than sendmsg(2): it runs right after a seccomp filter is installed whose notify
    /// fd no agent has yet, when any other call could wait on that agent forever.
    pub fn send_with_fd(&self, data: &[u8], fd: BorrowedFd) -> Result<()> {
        // SAFETY: CMSG_SPACE only computes a size.
        const SPACE: usize = unsafe { libc::CMSG_SPACE(4) } as usize;
        // u64 words keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; SPACE.div_ceil(8)];
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = SPACE as _;
        // SAFETY: hdr points at `control`, which has room for one cmsghdr carrying one fd
        // (CMSG_SPACE(4)), so CMSG_FIRSTHDR is non-null and CMSG_DATA is inside the buffer;
        // iov and data outlive the sendmsg call.
        let rc = unsafe {
            let c = libc::CMSG_FIRSTHDR(&hdr);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd.as_raw_fd());
            libc::sendmsg(self.0.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL)
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error()).context("sync send");
        }
        Ok(())
    }

    /// The next message; `None` when the other end has closed.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// The next message and the fd sent with it, if any.
    pub fn recv_with_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 1 << 16];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<UnixAddr>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("sync recv"),
                Ok(m) => {
                    let mut fd = None;
                    for c in m.cmsgs().context("sync recv")? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: SCM_RIGHTS gave this process a new fd it owns.
                                fd = Some(unsafe { OwnedFd::from_raw_fd(raw) });
                            }
                        }
                    }
                    break (m.bytes, fd);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n]).context("sync message")?;
        Ok(Some((msg, fd)))
    }

    /// Waits for `want`; an Error from the other side or a close becomes an error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Error { msg }) => bail!("{msg}"),
            Some(other) => bail!("sync: expected {want:?}, got {other:?}"),
            None => bail!("sync: the other side closed while waiting for {want:?}"),
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.0.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_close() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Pid { pid: 42 }).unwrap();
        a.send(&Msg::Go).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Msg::Pid { pid: 42 }));
        b.expect(Msg::Go).unwrap();
        a.send(&Msg::Error { msg: "boom".into() }).unwrap();
        assert_eq!(b.expect(Msg::Created).unwrap_err().to_string(), "boom");
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }

    #[test]
    fn an_fd_rides_along() {
        let (a, b) = pair().unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let data = Channel::encode(&Msg::SeccompListener).unwrap();
        a.send_with_fd(&data, file.as_fd()).unwrap();
        let (msg, fd) = b.recv_with_fd().unwrap().unwrap();
        assert_eq!(msg, Msg::SeccompListener);
        let fd = fd.expect("an fd");
        let link = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert_eq!(link(fd.as_raw_fd()), link(file.as_raw_fd()));
    }
}
