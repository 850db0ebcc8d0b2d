//! The exec stub: a static ELF of a few hundred bytes, held in a sealed memfd, that a process
//! of the container executes in place of its program and that only executes the program. At
//! the program's execve the process's /proc/self/exe is then the sealed stub, never the host's
//! hako binary, and hako need not re-execute itself from a sealed view first (a second start of
//! a 4 MB binary on every create, run and exec).
//!
//! Its arguments are the program's path, then the program's argv; its environment is the
//! program's. On failure it writes "hako: exec PATH failed: errno N" to stderr and exits 127
//! (a shell's "cannot execute"); with fewer than two arguments (not started by hako, e.g. as
//! the interpreter of a script whose #! names /proc/self/exe) it says "hako: exec stub: no
//! program" and exits 127.
//!
//! The code is assembled by rustc from the source below, position-independent, and copied from
//! hako's read-only data into the ELF image at run time. x86_64 only: elsewhere `image` is None
//! and hako re-executes itself from its sealed view instead.

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".pushsection .rodata.hako_exec_stub,\"a\",@progbits",
    ".globl hako_exec_stub_start",
    ".hidden hako_exec_stub_start",
    ".globl hako_exec_stub_end",
    ".hidden hako_exec_stub_end",
    "hako_exec_stub_start:",
    // At entry: [rsp] argc, [rsp+8..] argv, its NULL, then envp.
    "    mov rbx, rsp",
    "    mov rcx, qword ptr [rbx]",
    "    cmp rcx, 2",
    "    jb .Lhako_stub_alone",
    "    mov rdi, qword ptr [rbx + 8]", // the program's path: our argv[0]
    "    lea rsi, [rbx + 16]",          // its argv: ours from argv[1]
    "    lea rdx, [rbx + 8*rcx + 16]",  // its envp: ours, past argv's NULL
    "    mov eax, 59",                  // execve
    "    syscall",
    // Failed with rax = -errno. Below the stack pointer: four iovecs at [rsp, rsp+64), the
    // errno's digits and a newline written backwards from rsp+128.
    "    neg eax",
    "    sub rsp, 128",
    "    lea rdi, [rsp + 127]",
    "    mov byte ptr [rdi], 10",
    "    mov ecx, 10",
    ".Lhako_stub_digit:",
    "    xor edx, edx",
    "    div ecx",
    "    add dl, 48",
    "    dec rdi",
    "    mov byte ptr [rdi], dl",
    "    test eax, eax",
    "    jnz .Lhako_stub_digit",
    "    mov qword ptr [rsp + 48], rdi",
    "    lea rax, [rsp + 128]",
    "    sub rax, rdi",
    "    mov qword ptr [rsp + 56], rax",
    "    lea rax, [rip + .Lhako_stub_prefix]",
    "    mov qword ptr [rsp], rax",
    "    mov qword ptr [rsp + 8], 11",
    "    mov rsi, qword ptr [rbx + 8]",
    "    mov qword ptr [rsp + 16], rsi",
    "    xor ecx, ecx",
    ".Lhako_stub_len:",
    "    cmp byte ptr [rsi + rcx], 0",
    "    je .Lhako_stub_len_done",
    "    inc rcx",
    "    jmp .Lhako_stub_len",
    ".Lhako_stub_len_done:",
    "    mov qword ptr [rsp + 24], rcx",
    "    lea rax, [rip + .Lhako_stub_middle]",
    "    mov qword ptr [rsp + 32], rax",
    "    mov qword ptr [rsp + 40], 15",
    "    mov edi, 2",
    "    mov rsi, rsp",
    "    mov edx, 4",
    "    mov eax, 20", // writev
    "    syscall",
    "    jmp .Lhako_stub_exit",
    ".Lhako_stub_alone:",
    "    mov edi, 2",
    "    lea rsi, [rip + .Lhako_stub_no_program]",
    "    mov edx, 28",
    "    mov eax, 1", // write
    "    syscall",
    ".Lhako_stub_exit:",
    "    mov edi, 127",
    "    mov eax, 231", // exit_group
    "    syscall",
    ".Lhako_stub_no_program:",
    "    .ascii \"hako: exec stub: no program\\n\"",
    ".Lhako_stub_prefix:",
    "    .ascii \"hako: exec \"",
    ".Lhako_stub_middle:",
    "    .ascii \" failed: errno \"",
    "hako_exec_stub_end:",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    static hako_exec_stub_start: u8;
    static hako_exec_stub_end: u8;
}

/// The stub's machine code.
#[cfg(target_arch = "x86_64")]
fn code() -> Option<&'static [u8]> {
    // SAFETY: both symbols are defined by the global_asm! above, in one section, start before
    // end; the bytes between them are read-only data for the life of the process.
    unsafe {
        let start = std::ptr::addr_of!(hako_exec_stub_start);
        let end = std::ptr::addr_of!(hako_exec_stub_end);
        Some(std::slice::from_raw_parts(
            start,
            end.offset_from(start) as usize,
        ))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn code() -> Option<&'static [u8]> {
    None
}

const EM_X86_64: u16 = 62;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// The stub as an ELF file: a position-independent executable (ET_DYN, no interpreter, so
/// loaded at a random address) with one read+execute segment holding the whole file, and a
/// non-executable stack.
pub fn image() -> Option<Vec<u8>> {
    let code = code()?;
    let entry = (EHDR_SIZE + 2 * PHDR_SIZE) as u64;
    let size = entry + code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI, padding.
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&3u16.to_le_bytes()); // e_type: ET_DYN
    elf.extend_from_slice(&EM_X86_64.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&entry.to_le_bytes()); // e_entry
    elf.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    elf.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    const PF_X: u32 = 1;
    const PF_W: u32 = 2;
    const PF_R: u32 = 4;
    // PT_LOAD: the file from offset 0 at address 0 (plus the load bias).
    phdr(&mut elf, 1, PF_R | PF_X, size, 0x1000);
    // PT_GNU_STACK: the stack is not executable.
    phdr(&mut elf, 0x6474_e551, PF_R | PF_W, 0, 16);
    elf.extend_from_slice(code);
    Some(elf)
}

/// A program header at offset and address 0 of `size` bytes in the file and in memory.
fn phdr(elf: &mut Vec<u8>, typ: u32, flags: u32, size: u64, align: u64) {
    elf.extend_from_slice(&typ.to_le_bytes());
    elf.extend_from_slice(&flags.to_le_bytes());
    for field in [0u64, 0, 0, size, size, align] {
        // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        elf.extend_from_slice(&field.to_le_bytes());
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Runs the stub (from a sealed memfd, as hako does) with these arguments and environment.
    fn run_stub(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let stub = super::super::exec_stub().unwrap();
        let mut cmd = Command::new(format!("/proc/self/fd/{}", stub.as_raw_fd()));
        cmd.arg0(args[0])
            .args(&args[1..])
            .env_clear()
            .envs(env.iter().copied());
        cmd.output().unwrap()
    }

    #[test]
    fn runs_the_program_with_its_argv_and_environment() {
        let out = run_stub(
            &[
                "/bin/sh",
                "sh",
                "-c",
                "echo \"$0|$1|$FOO\"; exit 3",
                "zero",
                "one",
            ],
            &[("FOO", "b a r")],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "zero|one|b a r\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_failed_exec_says_why_and_exits_127() {
        let out = run_stub(&["/no/such/program", "program"], &[]);
        assert_eq!(out.status.code(), Some(127));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "hako: exec /no/such/program failed: errno 2\n"
        );
        // A directory: EACCES, two digits.
        let out = run_stub(&["/", "x"], &[]);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "hako: exec / failed: errno 13\n"
        );
    }

    #[test]
    fn without_a_program_it_exits_127_at_once() {
        let out = run_stub(&["/bin/sh"], &[]);
        assert_eq!(out.status.code(), Some(127));
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "hako: exec stub: no program\n"
        );
    }

    #[test]
    fn the_stub_cannot_be_written() {
        let stub = super::super::exec_stub().unwrap();
        let path = format!("/proc/self/fd/{}", stub.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    }
}
