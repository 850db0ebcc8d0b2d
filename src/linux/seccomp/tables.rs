//! Syscall names → numbers, per ABI the host kernel can be entered through. The tables are the
//! `syscalls` crate's (generated from the kernel's syscall tables); only what that crate lacks is
//! listed here: the x32 entry points of syscalls whose x32 ABI differs from x86_64, and ARM's
//! private syscalls (outside the numbered table, but names libseccomp and Docker's profile use).

use std::str::FromStr;

use oci_spec::runtime::Arch;

/// `AUDIT_ARCH_*` of linux/audit.h: the ELF machine, plus 64-bit and little-endian bits.
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
pub const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
#[cfg(any(test, target_arch = "aarch64"))]
pub const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;
/// x32 syscalls enter as AUDIT_ARCH_X86_64 with this bit set in the number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One way into the kernel: an audit arch, and for x32 the number range inside it.
#[derive(Clone, Copy, Debug)]
pub struct Abi {
    pub arch: Arch,
    pub audit: u32,
    /// Arguments are 64 bits wide (else only their low 32 bits are compared, like libseccomp).
    pub wide: bool,
    lookup: fn(&str) -> Option<u32>,
}

impl Abi {
    /// The syscall's number in this ABI; None when this ABI has no such syscall.
    pub fn number(&self, name: &str) -> Option<u32> {
        (self.lookup)(name)
    }
}

#[cfg(target_arch = "x86_64")]
mod host {
    use super::*;

    fn x86_64(name: &str) -> Option<u32> {
        syscalls::x86_64::Sysno::from_str(name)
            .ok()
            .map(|s| s.id() as u32)
    }

    fn i386(name: &str) -> Option<u32> {
        syscalls::x86::Sysno::from_str(name)
            .ok()
            .map(|s| s.id() as u32)
    }

    /// x32 uses x86_64's numbers with X32_SYSCALL_BIT, except where its ABI differs: those
    /// syscalls got entry points 512..=547 (arch/x86/entry/syscalls/syscall_64.tbl, "x32"
    /// lines; the x32 ABI is frozen, new syscalls are common to both).
    const X32_SPECIFIC: [&str; 36] = [
        "rt_sigaction",
        "rt_sigreturn",
        "ioctl",
        "readv",
        "writev",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "execve",
        "ptrace",
        "rt_sigpending",
        "rt_sigtimedwait",
        "rt_sigqueueinfo",
        "sigaltstack",
        "timer_create",
        "mq_notify",
        "kexec_load",
        "waitid",
        "set_robust_list",
        "get_robust_list",
        "vmsplice",
        "move_pages",
        "preadv",
        "pwritev",
        "rt_tgsigqueueinfo",
        "recvmmsg",
        "sendmmsg",
        "process_vm_readv",
        "process_vm_writev",
        "setsockopt",
        "getsockopt",
        "io_setup",
        "io_submit",
        "execveat",
        "preadv2",
        "pwritev2",
    ];

    fn x32(name: &str) -> Option<u32> {
        let nr = match X32_SPECIFIC.iter().position(|n| *n == name) {
            Some(i) => 512 + i as u32,
            None => x86_64(name)?,
        };
        Some(nr | X32_SYSCALL_BIT)
    }

    /// The native ABI first; the others are compat entry points of the same kernel.
    pub const ABIS: [Abi; 3] = [
        Abi {
            arch: Arch::ScmpArchX86_64,
            audit: AUDIT_ARCH_X86_64,
            wide: true,
            lookup: x86_64,
        },
        Abi {
            arch: Arch::ScmpArchX32,
            audit: AUDIT_ARCH_X86_64,
            wide: true,
            lookup: x32,
        },
        Abi {
            arch: Arch::ScmpArchX86,
            audit: AUDIT_ARCH_I386,
            wide: false,
            lookup: i386,
        },
    ];
}

#[cfg(target_arch = "aarch64")]
mod host {
    use super::*;

    fn aarch64(name: &str) -> Option<u32> {
        syscalls::aarch64::Sysno::from_str(name)
            .ok()
            .map(|s| s.id() as u32)
    }

    fn arm(name: &str) -> Option<u32> {
        if let Some(i) = ARM_PRIVATE.iter().position(|n| *n == name) {
            return Some(0x0f_0001 + i as u32);
        }
        syscalls::arm::Sysno::from_str(name)
            .ok()
            .map(|s| s.id() as u32)
    }

    pub const ABIS: [Abi; 2] = [
        Abi {
            arch: Arch::ScmpArchAarch64,
            audit: AUDIT_ARCH_AARCH64,
            wide: true,
            lookup: aarch64,
        },
        Abi {
            arch: Arch::ScmpArchArm,
            audit: AUDIT_ARCH_ARM,
            wide: false,
            lookup: arm,
        },
    ];
}

pub use host::ABIS;

/// ARM's private syscalls, `__ARM_NR_BASE + 1..` in arch/arm/include/uapi/asm/unistd.h.
const ARM_PRIVATE: [&str; 5] = ["breakpoint", "cacheflush", "usr26", "usr32", "set_tls"];

/// Whether `name` is a syscall on any architecture Linux has (so a profile written for many
/// architectures loads anywhere, while a typo is an error).
pub fn is_syscall_anywhere(name: &str) -> bool {
    use syscalls::*;
    ARM_PRIVATE.contains(&name)
        || x86_64::Sysno::from_str(name).is_ok()
        || x86::Sysno::from_str(name).is_ok()
        || aarch64::Sysno::from_str(name).is_ok()
        || arm::Sysno::from_str(name).is_ok()
        || riscv64::Sysno::from_str(name).is_ok()
        || riscv32::Sysno::from_str(name).is_ok()
        || powerpc64::Sysno::from_str(name).is_ok()
        || powerpc::Sysno::from_str(name).is_ok()
        || s390x::Sysno::from_str(name).is_ok()
        || mips64::Sysno::from_str(name).is_ok()
        || mips::Sysno::from_str(name).is_ok()
        || sparc64::Sysno::from_str(name).is_ok()
        || sparc::Sysno::from_str(name).is_ok()
        || loongarch64::Sysno::from_str(name).is_ok()
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn numbers_per_abi() {
        let [native, x32, i386] = ABIS;
        assert_eq!(native.number("getpid"), Some(39));
        assert_eq!(i386.number("getpid"), Some(20));
        assert_eq!(x32.number("getpid"), Some(39 | X32_SYSCALL_BIT));
        assert_eq!(x32.number("ioctl"), Some(514 | X32_SYSCALL_BIT));
        assert_eq!(x32.number("pwritev2"), Some(547 | X32_SYSCALL_BIT));
        // Present on i386 only.
        assert_eq!(native.number("socketcall"), None);
        assert_eq!(i386.number("socketcall"), Some(102));
        assert!(is_syscall_anywhere("socketcall"));
        assert!(is_syscall_anywhere("breakpoint"));
        assert!(is_syscall_anywhere("s390_pci_mmio_read"));
        assert!(!is_syscall_anywhere("fooo"));
    }

    /// The x32 exceptions against the kernel's own header, when it is installed.
    #[test]
    fn x32_table_matches_kernel_header() {
        let Ok(text) = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_x32.h")
        else {
            eprintln!("note: unistd_x32.h not installed; x32 table not cross-checked");
            return;
        };
        let x32 = ABIS[1];
        let mut checked = 0;
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            // #define __NR_name (__X32_SYSCALL_BIT + N)
            if f.len() == 5 && f[0] == "#define" && f[3] == "+" {
                let name = f[1].trim_start_matches("__NR_");
                let nr: u32 = f[4].trim_end_matches(')').parse().unwrap();
                if let Some(got) = x32.number(name) {
                    assert_eq!(got, nr | X32_SYSCALL_BIT, "{name}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "{checked}");
    }
}
