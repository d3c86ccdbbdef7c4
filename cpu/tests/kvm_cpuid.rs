//! `-cpu` feature lists reach the guest on both backends: a real-mode
//! guest executes CPUID and the test reads what it saw. On KVM, `-xsave`
//! hides XSAVE with everything that depends on it (leaf 0xD, AVX);
//! `-popcnt` hides POPCNT on KVM and on the interpreter alike. Prints why
//! it skips the KVM half where /dev/kvm is unusable.
//!
//! On kvm_pvm (nested KVM without VMX/SVM) the guest's CPUID feature
//! registers are the host CPU's whatever KVM_SET_CPUID2 says (only the
//! topology fields are ours): that, not the table, is why `-cpu
//! host,-xsave` still showed XSAVE there. The KVM half then checks only
//! that the table reached KVM (the topology bits) and says so.

use std::sync::{Arc, Mutex};

use cpu::interp::InterpAccelerator;
use cpu::kvm::host::KvmFlavor;
use cpu::kvm::KvmAccelerator;
use cpu::{Accelerator, Clock, ClockMode, GuestMemory, IoBus, Regs, Segment, Sregs};
use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress};

/// Records the port writes that mark the end of the guest.
#[derive(Default)]
struct Done(Mutex<bool>);

impl IoBus for Done {
    fn pio_read(&self, _: u32, _: u16, d: &mut [u8]) {
        d.fill(0xff);
    }
    fn pio_write(&self, _: u32, port: u16, _: &[u8]) {
        if port == 0x80 {
            *self.0.lock().unwrap() = true;
        }
    }
    fn mmio_read(&self, _: u32, _: u64, d: &mut [u8]) {
        d.fill(0xff);
    }
    fn mmio_write(&self, _: u32, _: u64, _: &[u8]) {}
}

/// What the guest saw: CPUID.1:EBX, CPUID.1:ECX, CPUID.7.0:EBX, CPUID.0DH.1:EAX,
/// CPUID.0DH.0:EAX.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    leaf1_ebx: u32,
    leaf1_ecx: u32,
    leaf7_ebx: u32,
    leaf_d1_eax: u32,
    leaf_d0_eax: u32,
}

/// Where the probe stores what it saw (real mode, DS = 0).
const RESULTS: u64 = 0x2000;

/// Run the CPUID probe on a new vCPU `id` of `accel` (whose features are
/// set; KVM creates each vCPU ID once per VM).
fn probe(accel: &dyn Accelerator, mem: &GuestMemory, id: u32) -> Seen {
    let r: [u32; 5] = run_real(accel, mem, id, |a| {
        let leaves: [(u32, u32, AsmRegister32); 5] = [
            (1, 0, ebx),
            (1, 0, ecx),
            (7, 0, ebx),
            (0xd, 1, eax),
            (0xd, 0, eax),
        ];
        for (k, (leaf, sub, out)) in leaves.into_iter().enumerate() {
            a.mov(eax, leaf)?;
            a.mov(ecx, sub)?;
            a.cpuid()?;
            a.mov(dword_ptr(RESULTS + 4 * k as u64), out)?;
        }
        Ok(())
    });
    Seen {
        leaf1_ebx: r[0],
        leaf1_ecx: r[1],
        leaf7_ebx: r[2],
        leaf_d1_eax: r[3],
        leaf_d0_eax: r[4],
    }
}

/// Run the real-mode code `body` emits on a new vCPU `id` of `accel`,
/// then read what it stored at [`RESULTS`].
fn run_real<T: vm_memory::ByteValued>(
    accel: &dyn Accelerator,
    mem: &GuestMemory,
    id: u32,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> T {
    let mut a = CodeAssembler::new(16).unwrap();
    body(&mut a).unwrap();
    a.out(0x80, al).unwrap();
    let mut spin = a.create_label();
    a.set_label(&mut spin).unwrap();
    a.jmp(spin).unwrap();
    let code = a.assemble(0x1000).unwrap();
    mem.write_slice(&code, GuestAddress(0x1000)).unwrap();
    let mut v = accel.create_vcpu(id, 4).unwrap();
    let mut s = Sregs::reset_state();
    s.cs = Segment::real_mode(0, true);
    v.set_sregs(&s).unwrap();
    v.set_regs(&Regs {
        rip: 0x1000,
        rflags: 2,
        ..Default::default()
    })
    .unwrap();
    v.set_runnable(true).unwrap();
    let io = Done::default();
    for _ in 0..1000 {
        v.run(&io).unwrap();
        if *io.0.lock().unwrap() {
            break;
        }
    }
    assert!(*io.0.lock().unwrap(), "the guest did not finish");
    mem.read_obj(GuestAddress(RESULTS)).unwrap()
}

const POPCNT: u32 = 1 << 23;
const XSAVE: u32 = 1 << 26;
const AVX: u32 = 1 << 28;
const AVX2: u32 = 1 << 5;

fn features(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(n, o)| (n.to_string(), *o)).collect()
}

#[test]
fn tcg_guest_sees_the_feature_list() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
    let accel = InterpAccelerator::new(Arc::new(mem.clone()), clock);
    let full = probe(&accel, &mem, 0);
    assert_ne!(full.leaf1_ecx & POPCNT, 0);
    assert_eq!(full.leaf7_ebx & (1 << 3), 1 << 3, "bmi1");
    let bad = accel.set_cpu_features(&features(&[("popcnt", false), ("bmi1", false)]));
    assert!(bad.is_empty());
    let less = probe(&accel, &mem, 0);
    assert_eq!(less.leaf1_ecx, full.leaf1_ecx & !POPCNT);
    assert_eq!(less.leaf7_ebx, full.leaf7_ebx & !(1 << 3));
    // XSAVE and the AVX family, with leaf 0xD (x87|SSE|AVX; XSAVEOPT,
    // XSAVEC, XGETBV1), go together.
    assert_eq!(full.leaf1_ecx & (XSAVE | AVX), XSAVE | AVX);
    assert_eq!(full.leaf7_ebx & AVX2, AVX2);
    assert_eq!((full.leaf_d0_eax, full.leaf_d1_eax), (7, 7));
    assert!(accel
        .set_cpu_features(&features(&[("xsave", false)]))
        .is_empty());
    let no_xsave = probe(&accel, &mem, 0);
    assert_eq!(no_xsave.leaf1_ecx & (XSAVE | AVX), 0);
    assert_eq!(no_xsave.leaf7_ebx & AVX2, 0);
    assert_eq!((no_xsave.leaf_d0_eax, no_xsave.leaf_d1_eax), (0, 0));
    accel.set_cpu_model(cpu::features::CpuModel::Qemu64);
    accel.set_cpu_features(&[]);
    let q64 = probe(&accel, &mem, 0);
    assert_eq!(q64.leaf7_ebx, 0);
    assert_eq!(q64.leaf1_ecx & POPCNT, 0);
}

#[test]
fn hidden_lzcnt_and_tzcnt_run_as_bsr_and_bsf_on_tcg() {
    // LZCNT/TZCNT are REP BSR/BSF: where the model hides them, they run
    // as on a processor without them.
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
    let accel = InterpAccelerator::new(Arc::new(mem.clone()), clock);
    let body = |a: &mut CodeAssembler| {
        a.mov(ax, 0x10)?;
        a.mov(bx, 0x7777)?;
        a.lzcnt(bx, ax)?;
        a.mov(word_ptr(RESULTS), bx)?;
        a.xor(ax, ax)?;
        a.mov(bx, 0x7777)?;
        a.tzcnt(bx, ax)?;
        a.pushf()?;
        a.pop(ax)?;
        a.mov(word_ptr(RESULTS + 2), bx)?;
        a.mov(word_ptr(RESULTS + 4), ax)
    };
    const CF_ZF: u16 = 0x41;
    let with: [u16; 3] = run_real(&accel, &mem, 0, body);
    assert_eq!(
        (with[0], with[1], with[2] & CF_ZF),
        (11, 16, 0x01),
        "lzcnt 11, tzcnt 16 and CF"
    );
    accel.set_cpu_model(cpu::features::CpuModel::Qemu64);
    let without: [u16; 3] = run_real(&accel, &mem, 0, body);
    assert_eq!(
        (without[0], without[1], without[2] & CF_ZF),
        (4, 0x7777, 0x40),
        "bsr 4, bsf of 0 keeps the destination and sets ZF"
    );
}

#[test]
fn kvm_guest_loses_xsave_and_its_dependents() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let accel = match KvmAccelerator::new(&mem, 24) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("skipping KVM test: {e}");
            return;
        }
    };
    let host = probe(&accel, &mem, 0);
    let bad = accel.set_cpu_features(&features(&[("xsave", false), ("popcnt", false)]));
    assert!(bad.is_empty(), "{bad:?}");
    let less = probe(&accel, &mem, 1);
    assert_eq!(less.leaf1_ebx >> 16, 0x0104, "APIC ID 1 of 4: {less:x?}");
    if cpu::kvm::host::flavor() == KvmFlavor::Pvm {
        eprintln!("kvm_pvm: guest CPUID features are the host's; feature bits not checked");
        return;
    }
    assert_eq!(less.leaf1_ecx & (POPCNT | XSAVE | AVX), 0, "{less:x?}");
    assert_eq!(less.leaf7_ebx & AVX2, 0, "{less:x?}");
    assert_eq!((less.leaf_d0_eax, less.leaf_d1_eax), (0, 0), "{less:x?}");
    if host.leaf1_ecx & XSAVE == 0 {
        eprintln!("this KVM offers no XSAVE: only its absence was checked");
    } else {
        assert_ne!(host.leaf_d0_eax, 0, "{host:x?}");
    }
}
