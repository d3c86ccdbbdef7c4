//! The allowlists, one per kind of thread, and their compilation to BPF.
//!
//! The lists were found by running the end-to-end suites' scenarios (both
//! backends, the compiled tier, virtio-blk raw/qcow2 with every cache mode,
//! virtio-net user and tap, QMP over unix and TCP sockets, `pmemsave`,
//! `memsave`, `screendump`, signals, `-daemonize`) under `strace -f` and the
//! filters themselves. Every thread shares [`base`]: memory management,
//! locks, time, descriptor I/O on descriptors it already holds, and the
//! interrupt-line KVM ioctls, since any thread that advances a device may
//! raise its interrupt. What differs is who may create descriptors
//! (`openat`, sockets, `accept4`), start threads, run KVM vCPUs, or map
//! executable memory (only the software CPU's compiled tier).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::SandboxError;

/// The kinds of thread Kindling starts, each with its own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// The main thread once the machine runs: the control loop (reset,
    /// shutdown, events).
    Main,
    /// A vCPU thread; `kvm` for the KVM backend, else the software CPU.
    Vcpu {
        /// Runs a KVM vCPU (else the interpreter and compiled tier).
        kvm: bool,
    },
    /// QMP listeners and connections (and the commands they run).
    Monitor,
    /// Host helpers: the signal, timer and console-input threads.
    Io,
    /// A TAP interface's receive thread.
    Tap,
    /// The user-mode network (libslirp) thread.
    Slirp,
}

impl ThreadKind {
    /// How the denial report names the thread.
    pub fn label(self) -> &'static str {
        match self {
            ThreadKind::Main => "the main",
            ThreadKind::Vcpu { .. } => "a vCPU",
            ThreadKind::Monitor => "a monitor",
            ThreadKind::Io => "an I/O helper",
            ThreadKind::Tap => "a TAP receive",
            ThreadKind::Slirp => "the user-network",
        }
    }
}

type Rules = BTreeMap<i64, Vec<SeccompRule>>;

fn allow(rules: &mut Rules, calls: &[i64]) {
    for &c in calls {
        rules.insert(c, Vec::new());
    }
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(|e| e.to_string())
}

/// `ioctl(fd, request, ...)` for each request in `requests` (added to the
/// ones already allowed).
fn allow_ioctls(rules: &mut Rules, requests: &[u64]) -> Result<(), String> {
    let list = rules.entry(libc::SYS_ioctl).or_default();
    for &r in requests {
        let c = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, r)
            .map_err(|e| e.to_string())?;
        list.push(SeccompRule::new(vec![c]).map_err(|e| e.to_string())?);
    }
    Ok(())
}

/// `mmap`/`mprotect` without `PROT_EXEC`.
fn allow_data_mappings(rules: &mut Rules) -> Result<(), String> {
    for call in [libc::SYS_mmap, libc::SYS_mprotect] {
        let c = cond(2, SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64), 0)?;
        rules.insert(
            call,
            vec![SeccompRule::new(vec![c]).map_err(|e| e.to_string())?],
        );
    }
    Ok(())
}

/// What every thread may do.
fn base(rules: &mut Rules) -> Result<(), String> {
    allow(
        rules,
        &[
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_readv,
            libc::SYS_writev,
            libc::SYS_pread64,
            libc::SYS_pwrite64,
            libc::SYS_preadv,
            libc::SYS_pwritev,
            libc::SYS_preadv2,
            libc::SYS_pwritev2,
            libc::SYS_lseek,
            libc::SYS_fsync,
            libc::SYS_fdatasync,
            libc::SYS_fallocate,
            libc::SYS_fstat,
            libc::SYS_newfstatat,
            libc::SYS_statx,
            libc::SYS_close,
            libc::SYS_fcntl,
            libc::SYS_poll,
            libc::SYS_ppoll,
            libc::SYS_sendto,
            libc::SYS_recvfrom,
            libc::SYS_sendmsg,
            libc::SYS_recvmsg,
            libc::SYS_futex,
            libc::SYS_brk,
            libc::SYS_munmap,
            libc::SYS_mremap,
            libc::SYS_madvise,
            libc::SYS_sched_yield,
            libc::SYS_sched_getaffinity,
            libc::SYS_nanosleep,
            libc::SYS_clock_nanosleep,
            libc::SYS_clock_gettime,
            libc::SYS_gettimeofday,
            libc::SYS_getpid,
            libc::SYS_gettid,
            libc::SYS_getrandom,
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigreturn,
            libc::SYS_sigaltstack,
            libc::SYS_restart_syscall,
            libc::SYS_exit,
            libc::SYS_exit_group,
        ],
    );
    allow_data_mappings(rules)?;
    // Kicks (and QEMU-style signals) go to this process's threads only.
    let own = cond(0, SeccompCmpOp::Eq, std::process::id() as u64)?;
    rules.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![own]).map_err(|e| e.to_string())?],
    );
    allow_ioctls(rules, &kvm::IRQ)?;
    allow_ioctls(rules, &TERMINAL)
}

/// Terminal ioctls (raw mode on stdio and its restoration, `FIONBIO`).
const TERMINAL: [u64; 6] = [
    libc::TCGETS,
    libc::TCSETS,
    libc::TCSETSW,
    libc::TCSETSF,
    libc::TIOCGWINSZ,
    libc::FIONBIO,
];

/// Starting threads (std's spawn and what the new thread does before
/// running its closure, under the inherited filter).
const THREADS: [i64; 5] = [
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_prctl,
];

/// Sockets a server or a user-mode network stack uses.
const SOCKETS: [i64; 12] = [
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_socket,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_connect,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_shutdown,
    libc::SYS_recvmmsg,
];

/// The rules of one kind of thread.
fn rules(kind: ThreadKind) -> Result<Rules, String> {
    let mut r = Rules::new();
    base(&mut r)?;
    if !opens_files(kind) {
        // Answered by the open-denial filter (EACCES), not trapped.
        allow(&mut r, &[libc::SYS_openat]);
    }
    if kind == ThreadKind::Io {
        allow(&mut r, &[libc::SYS_rt_sigtimedwait]);
    }
    match kind {
        ThreadKind::Vcpu { kvm: true } => allow_ioctls(&mut r, &kvm::VCPU)?,
        ThreadKind::Vcpu { kvm: false } => {
            // The compiled tier maps and seals its code buffers.
            allow(&mut r, &[libc::SYS_mmap, libc::SYS_mprotect]);
        }
        ThreadKind::Io | ThreadKind::Tap => {}
        ThreadKind::Main => {
            // Reset reloads the kernel and initrd; exit removes the pidfile
            // and socket paths.
            allow(
                &mut r,
                &[libc::SYS_openat, libc::SYS_unlink, libc::SYS_unlinkat],
            );
            allow_ioctls(&mut r, &kvm::VM)?;
        }
        ThreadKind::Monitor => {
            // Connections get a thread each; `pmemsave`, `memsave` and
            // `screendump` create their files.
            allow(&mut r, &THREADS);
            allow(&mut r, &SOCKETS);
            allow(
                &mut r,
                &[
                    libc::SYS_openat,
                    libc::SYS_unlink,
                    libc::SYS_dup,
                    libc::SYS_ftruncate,
                ],
            );
        }
        ThreadKind::Slirp => {
            allow(&mut r, &SOCKETS);
            // libslirp rereads /etc/resolv.conf for its DNS forwarder and
            // asks how much a socket holds before reading it.
            allow(&mut r, &[libc::SYS_openat, libc::SYS_uname]);
            allow_ioctls(&mut r, &[libc::FIONREAD])?;
        }
    }
    Ok(r)
}

/// Whether threads of `kind` may open files.
fn opens_files(kind: ThreadKind) -> bool {
    matches!(
        kind,
        ThreadKind::Main | ThreadKind::Monitor | ThreadKind::Slirp
    )
}

/// For threads that may not open files: a second filter that makes
/// `openat` fail with `EACCES` instead of trapping. glibc's malloc opens
/// `/proc/sys/vm/overcommit_memory` once per process, from whichever
/// thread first shrinks a heap, and carries on when that fails; stacked
/// filters take the strictest answer, so this turns only `openat`'s TRAP
/// into an error return.
pub fn compile_open_denial(kind: ThreadKind) -> Result<Option<BpfProgram>, SandboxError> {
    if opens_files(kind) {
        return Ok(None);
    }
    let build = |e: String| SandboxError::Build(kind, e);
    let mut rules = Rules::new();
    allow(&mut rules, &[libc::SYS_openat]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        TargetArch::x86_64,
    )
    .map_err(|e| build(e.to_string()))?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| build(e.to_string()))?;
    Ok(Some(prog))
}

/// Compile `kind`'s filter: allowed calls pass, anything else traps.
pub fn compile(kind: ThreadKind) -> Result<BpfProgram, SandboxError> {
    let build = |e: String| SandboxError::Build(kind, e);
    let filter = SeccompFilter::new(
        rules(kind).map_err(build)?,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|e| build(e.to_string()))?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| build(e.to_string()))?;
    Ok(prog)
}

/// KVM ioctl request numbers, computed as `<linux/kvm.h>` does.
mod kvm {
    use kvm_bindings::*;
    use std::mem::size_of;

    const KVMIO: u64 = 0xAE;

    const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
        (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
    }
    const fn io(nr: u64) -> u64 {
        ioc(0, nr, 0)
    }
    const fn iow(nr: u64, size: usize) -> u64 {
        ioc(1, nr, size)
    }
    const fn ior(nr: u64, size: usize) -> u64 {
        ioc(2, nr, size)
    }
    const fn iowr(nr: u64, size: usize) -> u64 {
        ioc(3, nr, size)
    }

    /// Interrupt delivery to the VM, from whichever thread raises a line
    /// or (a vCPU writing the IOAPIC) reroutes one.
    pub const IRQ: [u64; 4] = [
        iow(0x61, size_of::<kvm_irq_level>()),   // KVM_IRQ_LINE
        iowr(0x67, size_of::<kvm_irq_level>()),  // KVM_IRQ_LINE_STATUS
        iow(0xa5, size_of::<kvm_msi>()),         // KVM_SIGNAL_MSI
        iow(0x6a, size_of::<kvm_irq_routing>()), // KVM_SET_GSI_ROUTING
    ];

    /// VM-wide state the control loop touches at reset.
    pub const VM: [u64; 3] = [
        iow(0x7b, size_of::<kvm_clock_data>()), // KVM_SET_CLOCK
        ior(0x7c, size_of::<kvm_clock_data>()), // KVM_GET_CLOCK
        io(0x03),                               // KVM_CHECK_EXTENSION
    ];

    /// What a vCPU thread does with its own vCPU.
    pub const VCPU: [u64; 34] = [
        io(0x80),                                    // KVM_RUN
        ior(0x81, size_of::<kvm_regs>()),            // KVM_GET_REGS
        iow(0x82, size_of::<kvm_regs>()),            // KVM_SET_REGS
        ior(0x83, size_of::<kvm_sregs>()),           // KVM_GET_SREGS
        iow(0x84, size_of::<kvm_sregs>()),           // KVM_SET_SREGS
        iowr(0x85, size_of::<kvm_translation>()),    // KVM_TRANSLATE
        iow(0x86, size_of::<kvm_interrupt>()),       // KVM_INTERRUPT
        iowr(0x88, size_of::<kvm_msrs>()),           // KVM_GET_MSRS
        iow(0x89, size_of::<kvm_msrs>()),            // KVM_SET_MSRS
        iow(0x8b, size_of::<kvm_signal_mask>()),     // KVM_SET_SIGNAL_MASK
        ior(0x8c, size_of::<kvm_fpu>()),             // KVM_GET_FPU
        iow(0x8d, size_of::<kvm_fpu>()),             // KVM_SET_FPU
        ior(0x8e, size_of::<kvm_lapic_state>()),     // KVM_GET_LAPIC
        iow(0x8f, size_of::<kvm_lapic_state>()),     // KVM_SET_LAPIC
        iow(0x90, size_of::<kvm_cpuid2>()),          // KVM_SET_CPUID2
        iowr(0x91, size_of::<kvm_cpuid2>()),         // KVM_GET_CPUID2
        ior(0x98, size_of::<kvm_mp_state>()),        // KVM_GET_MP_STATE
        iow(0x99, size_of::<kvm_mp_state>()),        // KVM_SET_MP_STATE
        io(0x9a),                                    // KVM_NMI
        iow(0x9b, size_of::<kvm_guest_debug>()),     // KVM_SET_GUEST_DEBUG
        ior(0x9f, size_of::<kvm_vcpu_events>()),     // KVM_GET_VCPU_EVENTS
        iow(0xa0, size_of::<kvm_vcpu_events>()),     // KVM_SET_VCPU_EVENTS
        ior(0xa1, size_of::<kvm_debugregs>()),       // KVM_GET_DEBUGREGS
        iow(0xa2, size_of::<kvm_debugregs>()),       // KVM_SET_DEBUGREGS
        iow(0xa3, size_of::<kvm_enable_cap>()),      // KVM_ENABLE_CAP
        ior(0xa4, size_of::<kvm_xsave>()),           // KVM_GET_XSAVE
        iow(0xa5, size_of::<kvm_xsave>()),           // KVM_SET_XSAVE
        ior(0xa6, size_of::<kvm_xcrs>()),            // KVM_GET_XCRS
        iow(0xa7, size_of::<kvm_xcrs>()),            // KVM_SET_XCRS
        io(0xa2),                                    // KVM_SET_TSC_KHZ
        io(0xa3),                                    // KVM_GET_TSC_KHZ
        io(0xad),                                    // KVM_KVMCLOCK_CTRL
        ior(0xcf, size_of::<kvm_xsave>()),           // KVM_GET_XSAVE2
        iowr(0x92, size_of::<kvm_tpr_access_ctl>()), // KVM_TPR_ACCESS_REPORTING
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_compiles() {
        for kind in [
            ThreadKind::Main,
            ThreadKind::Vcpu { kvm: true },
            ThreadKind::Vcpu { kvm: false },
            ThreadKind::Monitor,
            ThreadKind::Io,
            ThreadKind::Tap,
            ThreadKind::Slirp,
        ] {
            assert!(!compile(kind).unwrap().is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn kvm_request_numbers_match_the_kernel_headers() {
        // Values from <linux/kvm.h> as printed by a C compiler.
        assert_eq!(kvm::VCPU[0], 0xAE80); // KVM_RUN
        assert_eq!(kvm::VCPU[1], 0x8090_AE81); // KVM_GET_REGS
        assert_eq!(kvm::IRQ[0], 0x4008_AE61); // KVM_IRQ_LINE
        assert_eq!(kvm::IRQ[2], 0x4020_AEA5); // KVM_SIGNAL_MSI
    }

    #[test]
    fn only_the_software_cpu_maps_code() {
        let interp = rules(ThreadKind::Vcpu { kvm: false }).unwrap();
        let kvm = rules(ThreadKind::Vcpu { kvm: true }).unwrap();
        assert!(interp[&libc::SYS_mprotect].is_empty());
        assert_eq!(kvm[&libc::SYS_mprotect].len(), 1);
        assert!(!kvm.contains_key(&libc::SYS_getpgid));
        // vCPU threads open no files: openat fails with EACCES there.
        assert!(compile_open_denial(ThreadKind::Vcpu { kvm: true })
            .unwrap()
            .is_some());
        assert!(compile_open_denial(ThreadKind::Monitor).unwrap().is_none());
    }
}
