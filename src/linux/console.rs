//! Terminals: with `process.terminal`, the init opens a pty in the container's devpts, sends the
//! master to `--console-socket` by SCM_RIGHTS (as runc does), and makes the slave its
//! controlling terminal and stdio.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;

/// Sends `fd` over the unix socket `socket` with `name` as the payload (runc's format).
pub fn send_fd(socket: RawFd, name: &str, fd: RawFd) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None)
        .context("send the pty master to the console socket")?;
    Ok(())
}

/// Opens a pty, sends its master to `socket`, and makes the slave this process's controlling
/// terminal and stdin/stdout/stderr. Returns the slave.
pub fn setup(socket: RawFd, size: Option<(u16, u16)>) -> Result<OwnedFd> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("open /dev/ptmx")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    // The slave from the master itself (TIOCGPTPEER), not reopened by a path under /dev/pts
    // that the rootfs could redirect (CVE-2025-52565).
    // SAFETY: TIOCGPTPEER takes open(2) flags and returns a new fd or -1.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(std::io::Error::last_os_error()).context("open the pty slave (TIOCGPTPEER)");
    }
    // SAFETY: fresh fd from the ioctl.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    // Output as the program wrote it: no \r added before each \n (runc clears ONLCR too).
    let mut attrs = nix::sys::termios::tcgetattr(&slave).context("tcgetattr on the pty")?;
    attrs
        .output_flags
        .remove(nix::sys::termios::OutputFlags::ONLCR);
    nix::sys::termios::tcsetattr(&slave, nix::sys::termios::SetArg::TCSANOW, &attrs)
        .context("clear ONLCR on the pty")?;
    send_fd(socket, "/dev/ptmx", master.as_raw_fd())?;
    nix::unistd::setsid().context("setsid")?;
    // SAFETY: TIOCSCTTY takes an int argument; slave is an open tty.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(std::io::Error::last_os_error())
            .context("make the pty the controlling terminal");
    }
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).context("dup2 pty slave")?;
    }
    Ok(slave)
}

/// Binds the pty slave (the fd itself) over /dev/console (after pivot_root). /dev/console must
/// be a file or device of the container's /dev, never a symlink to elsewhere.
pub fn bind_dev_console(slave: &OwnedFd) -> Result<()> {
    let dev = nix::fcntl::open(
        "/dev",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("open /dev")?;
    // SAFETY: fresh fd from open(2).
    let dev = unsafe { OwnedFd::from_raw_fd(dev) };
    // O_NOFOLLOW with O_PATH opens a symlink itself, which the type check below refuses.
    let open = || {
        nix::fcntl::openat(
            Some(dev.as_raw_fd()),
            "console",
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    };
    let target = match open() {
        Err(nix::errno::Errno::ENOENT) => {
            let made = nix::fcntl::openat(
                Some(dev.as_raw_fd()),
                "console",
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o600),
            )
            .context("create /dev/console")?;
            nix::unistd::close(made).context("create /dev/console")?;
            open()
        }
        other => other,
    }
    .context("/dev/console")?;
    // SAFETY: fresh fd from openat(2).
    let target = unsafe { OwnedFd::from_raw_fd(target) };
    let st = nix::sys::stat::fstat(target.as_raw_fd()).context("/dev/console")?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        anyhow::bail!("/dev/console is not a file or a device: refusing to bind the pty over it");
    }
    super::mounts::bind_fd(slave, &target).context("bind the pty over /dev/console")
}

/// Receives one fd sent with SCM_RIGHTS (the pty master, for `run` with a terminal).
pub fn recv_fd(socket: RawFd) -> Result<OwnedFd> {
    let mut name = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg =
        nix::sys::socket::recvmsg::<()>(socket, &mut iov, Some(&mut space), MsgFlags::empty())
            .context("receive the pty master")?;
    for c in msg.cmsgs().context("receive the pty master")? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this fd in our table for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    anyhow::bail!("the container's init sent no pty master")
}

/// A terminal put in raw mode; restored when dropped.
pub struct RawMode {
    fd: RawFd,
    saved: nix::sys::termios::Termios,
}

/// Raw mode on `fd` when it is a terminal (keys go to the container as typed).
pub fn raw_mode(fd: RawFd) -> Option<RawMode> {
    // SAFETY: fd is one of our stdio descriptors, open for the whole of `run`.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let saved = nix::sys::termios::tcgetattr(borrowed).ok()?;
    let mut raw = saved.clone();
    nix::sys::termios::cfmakeraw(&mut raw);
    nix::sys::termios::tcsetattr(borrowed, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
    Some(RawMode { fd, saved })
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: as in raw_mode.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let _ =
            nix::sys::termios::tcsetattr(borrowed, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the window size of terminal `from` to `to` (ignored when `from` is no terminal).
pub fn copy_winsize(from: RawFd, to: RawFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize; TIOCSWINSZ reads one; both to valid memory.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}
