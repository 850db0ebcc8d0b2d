//! The parent ⇄ init handshake: small typed messages, one per SOCK_SEQPACKET datagram.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
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
    // init → parent
    /// The init unshared a user namespace: write its uid/gid maps.
    WriteIdMaps,
    /// The init forked into its pid/time namespace: this is the container's pid (host view).
    Pid { pid: i32 },
    /// Namespaces exist and the mounts are made, before pivot_root: time for the prestart and
    /// createRuntime hooks.
    RootfsReady,
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

    /// The next message; `None` when the other end has closed.
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 1 << 16];
        let n = loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.context("sync recv")?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_slice(&buf[..n]).context("sync message")?,
        ))
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
}
