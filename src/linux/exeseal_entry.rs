//! The sealed re-exec (exeseal.rs) made at hako's ELF entry point, before glibc starts.
//!
//! A create, run or exec executes hako twice: the binary the caller named, which only makes the
//! sealed view and re-executes itself from it, then the sealed copy, which does the work. Each
//! start of a static glibc binary costs about 0.25 ms here before main, most of it CPUID
//! instructions (glibc's CPU feature and cache probing; each one exits to the hypervisor in a
//! VM). The first of the two starts does nothing that needs libc: at the entry point, this file
//! makes the same view as `exeseal::sealed_view` with raw syscalls and re-executes from it, marked
//! as `ensure_sealed` expects. Anything unusual (no create/run/exec among the arguments, already
//! marked, a closed stdio fd, a path overlayfs cannot take, any failed syscall, an environment
//! too large for the buffers here) returns to glibc's `_start` with the registers the kernel
//! gave, and main seals as before, with its memfd fallback and its errors.
//!
//! This code runs before relocations are applied (static-pie) and before TLS exists: it only
//! reads the initial stack and string literals (PC-relative), writes its own stack, makes no
//! call outside this file and no copy or comparison the compiler could turn into a call to libc's
//! memcpy, memset or bcmp (those are IFUNCs, resolved only by glibc's start): every byte goes
//! through `read_volatile`/`write_volatile`. That holds for optimised code: build.rs makes
//! `hako_entry` the entry point of the x86_64 Linux binary only, and not for a static build
//! without optimisation (whose unoptimised copies and calls go through the GOT and libc's
//! memcpy; a dynamic build is relocated by ld.so before the entry point, so the debug build
//! the tests use runs this code).

// The unit tests' binary runs none of it but the helpers' tests.
#![cfg_attr(test, allow(dead_code))]

use core::arch::{asm, global_asm};
use core::ptr::{read_volatile, write_volatile};

use super::exeseal::MARK;
use crate::cli::SEALED;
use crate::trace::T0_VAR;

// `seal_at_entry` looks at each of the sealed commands by index.
const _: () = assert!(SEALED.len() == 3);

// The unit tests' binary gets the same entry point (build.rs cannot tell it from hako's): it
// starts as usual, whatever its arguments.
#[cfg(test)]
global_asm!(".globl hako_entry", "hako_entry:", "jmp _start");

// The kernel (or, in a dynamic build, ld.so) jumps here with the initial stack at rsp and
// ld.so's finalizer in rdx (0 when static): both are kept in callee-saved registers and given
// back to `_start` unchanged when the seal is left to main.
#[cfg(not(test))]
global_asm!(
    ".globl hako_entry",
    ".type hako_entry,@function",
    "hako_entry:",
    "mov rbx, rsp",
    "mov r12, rdx",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {seal}",
    "mov rsp, rbx",
    "mov rdx, r12",
    "jmp _start",
    seal = sym seal_at_entry,
);

const SYS_CLOSE: usize = libc::SYS_close as usize;
const SYS_FCNTL: usize = libc::SYS_fcntl as usize;
const F_GETFD: usize = libc::F_GETFD as usize;
const SYS_OPENAT: usize = libc::SYS_openat as usize;
const SYS_READLINK: usize = libc::SYS_readlink as usize;
const SYS_CLOCK_GETTIME: usize = libc::SYS_clock_gettime as usize;
const SYS_EXECVEAT: usize = libc::SYS_execveat as usize;
const SYS_FSOPEN: usize = libc::SYS_fsopen as usize;
const SYS_FSCONFIG: usize = libc::SYS_fsconfig as usize;
const SYS_FSMOUNT: usize = libc::SYS_fsmount as usize;
const FSOPEN_CLOEXEC: usize = 1;
const FSCONFIG_SET_STRING: usize = 1;
const FSCONFIG_CMD_CREATE: usize = 6;
const MOUNT_ATTR_RDONLY: usize = 1;
const O_CLOEXEC: usize = libc::O_CLOEXEC as usize;
const AT_EMPTY_PATH: usize = libc::AT_EMPTY_PATH as usize;
const CLOCK_MONOTONIC: usize = libc::CLOCK_MONOTONIC as usize;
/// Environment entries the new environment can hold (more: main seals instead).
const MAX_ENV: usize = 1000;
const PATH_MAX: usize = 4096;

/// # Safety
/// A raw system call: the arguments must be what syscall `n` expects.
unsafe fn syscall(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes valid arguments for `n`; the kernel clobbers rcx and r11 only.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            in("r8") e,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A byte buffer on the stack, written one volatile byte at a time.
struct Buf<const N: usize> {
    bytes: core::mem::MaybeUninit<[u8; N]>,
    len: usize,
}

impl<const N: usize> Buf<N> {
    fn new() -> Self {
        Buf {
            bytes: core::mem::MaybeUninit::uninit(),
            len: 0,
        }
    }

    fn ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr().cast()
    }

    /// Appends `n` bytes from `src`; false when they do not fit (with the final NUL).
    fn push_raw(&mut self, src: *const u8, n: usize) -> bool {
        if self.len + n >= N {
            return false;
        }
        for i in 0..n {
            // SAFETY: i < n bytes readable at src (the caller's); len + i < N.
            unsafe { write_volatile(self.ptr().add(self.len + i), read_volatile(src.add(i))) };
        }
        self.len += n;
        true
    }

    fn push(&mut self, s: &[u8]) -> bool {
        self.push_raw(s.as_ptr(), s.len())
    }

    fn push_number(&mut self, mut v: u64) -> bool {
        let mut digits = Buf::<24>::new();
        loop {
            let d = b'0' + (v % 10) as u8;
            // SAFETY: at most 20 digits in a u64, within the 24 bytes.
            unsafe { write_volatile(digits.ptr().add(digits.len), d) };
            digits.len += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for i in (0..digits.len).rev() {
            // SAFETY: i < digits.len, written above.
            let d = unsafe { read_volatile(digits.ptr().add(i)) };
            if !self.push_raw(&d, 1) {
                return false;
            }
        }
        true
    }

    /// NUL-terminates the contents (room is kept by `push_raw`) and returns them as a C string.
    fn c_str(&mut self) -> *const u8 {
        // SAFETY: len < N (push_raw keeps one byte free).
        unsafe { write_volatile(self.ptr().add(self.len), 0) };
        self.ptr()
    }
}

/// Whether the NUL-terminated `s` starts with `prefix` (`whole`: and ends there).
///
/// # Safety
/// `s` must point to a NUL-terminated string.
unsafe fn starts_with(s: *const u8, prefix: &[u8], whole: bool) -> bool {
    let p = prefix.as_ptr();
    for i in 0..prefix.len() {
        // SAFETY: the string is read up to its NUL at most (a mismatch stops first).
        if unsafe { read_volatile(s.add(i)) != read_volatile(p.add(i)) } {
            return false;
        }
    }
    // SAFETY: s has at least prefix.len() bytes before its NUL, so this one is readable.
    !whole || unsafe { read_volatile(s.add(prefix.len())) } == 0
}

/// Whether the environment entry `s` sets the variable `name`.
///
/// # Safety
/// `s` must point to a NUL-terminated string.
unsafe fn is_variable(s: *const u8, name: &[u8]) -> bool {
    // SAFETY: the byte after the name is read only when the string is that long.
    unsafe { starts_with(s, name, false) && read_volatile(s.add(name.len())) == b'=' }
}

/// Called by `hako_entry` with the initial stack (argc, argv..., NULL, envp..., NULL). Returns
/// when main is to start as usual; otherwise re-executes hako from its sealed view.
///
/// # Safety
/// `sp` must be the process's initial stack pointer, as the kernel set it.
unsafe extern "C" fn seal_at_entry(sp: *const usize) {
    // SAFETY: the kernel's initial stack layout (argc, then the argv and envp arrays).
    unsafe {
        let argc = read_volatile(sp);
        let argv = sp.add(1).cast::<*const u8>();
        let envp = argv.add(argc + 1);
        let mut wanted = false;
        let mut traced = false;
        for i in 1..argc {
            let a = read_volatile(argv.add(i));
            // Each name by a constant index, never a loop: a loop would read the names'
            // pointers from a table, which is not relocated yet.
            wanted |= starts_with(a, SEALED[0].as_bytes(), true)
                || starts_with(a, SEALED[1].as_bytes(), true)
                || starts_with(a, SEALED[2].as_bytes(), true);
            traced |= starts_with(a, b"--trace", true);
        }
        let mut envc = 0;
        while !read_volatile(envp.add(envc)).is_null() {
            if is_variable(read_volatile(envp.add(envc)), MARK.as_bytes()) {
                return;
            }
            envc += 1;
        }
        if !wanted || envc + 3 > MAX_ENV || !stdio_open() {
            return;
        }
        let mut t0 = [0u64; 2];
        if traced {
            syscall(
                SYS_CLOCK_GETTIME,
                CLOCK_MONOTONIC,
                t0.as_mut_ptr() as usize,
                0,
                0,
                0,
            );
        }
        let mut fds = [-1isize; 2];
        seal_and_exec(argv, envp, envc, traced.then_some(t0), &mut fds);
        // Not a loop over the array: a copy of it could become a call to memcpy.
        if fds[0] >= 0 {
            syscall(SYS_CLOSE, fds[0] as usize, 0, 0, 0, 0);
        }
        if fds[1] >= 0 {
            syscall(SYS_CLOSE, fds[1] as usize, 0, 0, 0, 0);
        }
    }
}

/// Whether fds 0, 1 and 2 are open. With one closed, the view's mounts would take its number
/// and the container would inherit them as its stdio; main seals instead, once it has put
/// /dev/null there (linux/fds.rs `fill_closed_stdio`).
///
/// # Safety
/// Raw fcntl(F_GETFD) calls, which only read a flag.
unsafe fn stdio_open() -> bool {
    // SAFETY: F_GETFD on any number is harmless; EBADF says it is closed.
    unsafe {
        syscall(SYS_FCNTL, 0, F_GETFD, 0, 0, 0) >= 0
            && syscall(SYS_FCNTL, 1, F_GETFD, 0, 0, 0) >= 0
            && syscall(SYS_FCNTL, 2, F_GETFD, 0, 0, 0) >= 0
    }
}

/// Makes the sealed view (exeseal::sealed_view's: hako's directory and an empty tmpfs as the
/// two lower layers of a read-only overlayfs) and re-executes hako from it; returns on any
/// failure. The two mounts' fds are left in `fds` for the caller to close.
///
/// # Safety
/// `argv` and `envp` are the initial stack's arrays, envp with `envc` entries.
unsafe fn seal_and_exec(
    argv: *const *const u8,
    envp: *const *const u8,
    envc: usize,
    t0: Option<[u64; 2]>,
    fds: &mut [isize; 2],
) {
    // SAFETY: every pointer passed to the kernel is a NUL-terminated string or a buffer of
    // the stated size on this stack.
    unsafe {
        let mut exe = Buf::<PATH_MAX>::new();
        let n = syscall(
            SYS_READLINK,
            c"/proc/self/exe".as_ptr() as usize,
            exe.ptr() as usize,
            PATH_MAX - 1,
            0,
            0,
        );
        if n <= 0 || n as usize >= PATH_MAX - 1 {
            return;
        }
        exe.len = n as usize;
        // The directory is an overlayfs option: none of its separators; not a deleted binary.
        let mut slash = 0;
        for i in 0..exe.len {
            let c = read_volatile(exe.ptr().add(i));
            if c == b':' || c == b',' || c == b'\\' {
                return;
            }
            if c == b'/' {
                slash = i;
            }
        }
        let deleted = b" (deleted)";
        if slash == 0
            || (exe.len >= deleted.len()
                && starts_with(exe.c_str().add(exe.len - deleted.len()), deleted, true))
        {
            return;
        }
        let Some(empty) = detached(c"tmpfs".as_ptr(), None) else {
            return;
        };
        fds[1] = empty;
        let mut lower = Buf::<{ PATH_MAX + 32 }>::new();
        let ok = lower.push_raw(exe.ptr(), slash)
            && lower.push(b":/proc/self/fd/")
            && lower.push_number(empty as u64);
        if !ok {
            return;
        }
        let Some(view) = detached(c"overlay".as_ptr(), Some(lower.c_str())) else {
            return;
        };
        fds[0] = view;
        let name = exe.c_str().add(slash + 1);
        let fd = syscall(SYS_OPENAT, view as usize, name as usize, O_CLOEXEC, 0, 0);
        if fd < 0 {
            return;
        }
        // The environment, then exeseal's mark (the view's mounts, held by the sealed hako
        // until its init is running) and trace's start time.
        let mut mark = Buf::<64>::new();
        let ok = mark.push(MARK.as_bytes())
            && mark.push(b"=")
            && mark.push_number(view as u64)
            && mark.push(b",")
            && mark.push_number(empty as u64);
        let mut start = Buf::<64>::new();
        let ok = ok
            && match t0 {
                Some([s, ns]) => {
                    start.push(T0_VAR.as_bytes())
                        && start.push(b"=")
                        && start.push_number(s * 1_000_000_000 + ns)
                }
                None => true,
            };
        if ok {
            let mut env = core::mem::MaybeUninit::<[*const u8; MAX_ENV]>::uninit();
            let env = env.as_mut_ptr().cast::<*const u8>();
            for i in 0..envc {
                write_volatile(env.add(i), read_volatile(envp.add(i)));
            }
            let mut n = envc;
            write_volatile(env.add(n), mark.c_str());
            n += 1;
            if t0.is_some() {
                write_volatile(env.add(n), start.c_str());
                n += 1;
            }
            write_volatile(env.add(n), core::ptr::null());
            syscall(
                SYS_EXECVEAT,
                fd as usize,
                c"".as_ptr() as usize,
                argv as usize,
                env as usize,
                AT_EMPTY_PATH,
            );
        }
        syscall(SYS_CLOSE, fd as usize, 0, 0, 0, 0);
    }
}

/// A new read-only filesystem of type `fstype` (with `lowerdir`, for overlayfs) as a detached
/// mount whose fd survives execve; None on failure.
///
/// # Safety
/// `fstype` and `lowerdir` are NUL-terminated strings.
unsafe fn detached(fstype: *const core::ffi::c_char, lowerdir: Option<*const u8>) -> Option<isize> {
    // SAFETY: as documented; the context fd is closed on every path.
    unsafe {
        let fs = syscall(SYS_FSOPEN, fstype as usize, FSOPEN_CLOEXEC, 0, 0, 0);
        if fs < 0 {
            return None;
        }
        let fs = fs as usize;
        let configured = match lowerdir {
            Some(dir) => {
                let key = c"lowerdir".as_ptr() as usize;
                syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, key, dir as usize, 0) == 0
            }
            None => true,
        };
        let created = configured && syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, 0, 0, 0) == 0;
        // Not FSMOUNT_CLOEXEC: the sealed hako takes the mount over (exeseal::adopt_mounts).
        let mnt = match created {
            true => syscall(SYS_FSMOUNT, fs, 0, MOUNT_ATTR_RDONLY, 0, 0),
            false => -1,
        };
        syscall(SYS_CLOSE, fs, 0, 0, 0, 0);
        (mnt >= 0).then_some(mnt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<const N: usize>(b: &mut Buf<N>) -> String {
        // SAFETY: c_str NUL-terminates the buffer's contents.
        let s = unsafe { core::ffi::CStr::from_ptr(b.c_str().cast()) };
        s.to_str().unwrap().to_string()
    }

    #[test]
    fn buffers_take_strings_and_numbers_up_to_their_size() {
        let mut b = Buf::<32>::new();
        assert!(b.push(b"_HAKO_SEALED_EXE=") && b.push_number(5));
        assert!(b.push(b",") && b.push_number(0));
        assert_eq!(text(&mut b), "_HAKO_SEALED_EXE=5,0");
        let mut t = Buf::<32>::new();
        assert!(t.push_number(1_733_600_000_123_456_789));
        assert_eq!(text(&mut t), "1733600000123456789");
        // One byte is always kept for the NUL: 7 of 8 fit, 8 do not.
        let mut small = Buf::<8>::new();
        assert!(small.push(b"1234567"));
        assert!(!small.push(b"8"));
        assert!(!small.push_number(9));
        assert_eq!(text(&mut small), "1234567");
    }

    #[test]
    fn arguments_match_whole_words_and_variables_by_prefix() {
        let check = |s: &core::ffi::CStr, p: &[u8], whole: bool| {
            // SAFETY: a NUL-terminated string.
            unsafe { starts_with(s.as_ptr().cast(), p, whole) }
        };
        assert!(check(c"run", b"run", true));
        assert!(!check(c"runc", b"run", true));
        assert!(!check(c"ru", b"run", true));
        assert!(!check(c"", b"exec", true));
        assert!(check(c"_HAKO_SEALED_EXE=3,4", b"_HAKO_SEALED_EXE=", false));
        assert!(!check(c"_HAKO_SEALED", b"_HAKO_SEALED_EXE=", false));
        let var = |s: &core::ffi::CStr| {
            // SAFETY: a NUL-terminated string.
            unsafe { is_variable(s.as_ptr().cast(), MARK.as_bytes()) }
        };
        assert!(var(c"_HAKO_SEALED_EXE=3,4"));
        assert!(var(c"_HAKO_SEALED_EXE="));
        assert!(!var(c"_HAKO_SEALED_EXE_X=1"));
        assert!(!var(c"_HAKO_SEALED_EXE"));
    }
}
