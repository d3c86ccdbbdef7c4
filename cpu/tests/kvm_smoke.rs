//! The KVM backend runs tiny guests: real-mode port I/O, MMIO, and a
//! triple fault. Runs wherever /dev/kvm works (kvm_pvm included); prints
//! why it skipped otherwise.

use std::sync::Mutex;

use cpu::kvm::KvmAccelerator;
use cpu::{Accelerator, GuestMemory, IoBus, Regs, Segment, Sregs, VcpuExit};
use vm_memory::{Bytes, GuestAddress};

#[derive(Default)]
struct Recorder {
    out: Mutex<Vec<(u16, u8)>>,
    mmio: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl IoBus for Recorder {
    fn pio_read(&self, _vcpu: u32, port: u16, data: &mut [u8]) {
        data.fill(if port == 0x1234 { 0x5a } else { 0xff });
    }
    fn pio_write(&self, _vcpu: u32, port: u16, data: &[u8]) {
        self.out.lock().unwrap().push((port, data[0]));
    }
    fn mmio_read(&self, _vcpu: u32, gpa: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = (gpa as u8).wrapping_add(i as u8);
        }
    }
    fn mmio_write(&self, _vcpu: u32, gpa: u64, data: &[u8]) {
        self.mmio.lock().unwrap().push((gpa, data.to_vec()));
    }
}

fn kvm_or_skip(mem: &GuestMemory) -> Option<KvmAccelerator> {
    match KvmAccelerator::new(mem, 24) {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("skipping KVM test: {e}");
            None
        }
    }
}

fn real_mode_vcpu(accel: &KvmAccelerator, ip: u64) -> Box<dyn cpu::Vcpu> {
    let mut v = accel.create_vcpu(0, 1).unwrap();
    let mut s = Sregs::reset_state();
    s.cs = Segment::real_mode(0, true);
    v.set_sregs(&s).unwrap();
    v.set_regs(&Regs {
        rip: ip,
        rflags: 2,
        ..Default::default()
    })
    .unwrap();
    v
}

#[test]
fn real_mode_port_io_and_mmio() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let Some(accel) = kvm_or_skip(&mem) else {
        return;
    };
    // mov dx,0x3f8; mov al,'K'; out dx,al; mov dx,0x1234; in al,dx; mov dx,0x80; out dx,al;
    // mov ax,0xfee0? no: use a 32-bit-free MMIO: mov bx,0xf000; mov ds,bx; mov [0x10],al (0xf0010 is RAM)
    // MMIO: our RAM ends at 1 MiB, so use fs base 0xffff:0x10 = 0x100000 (first byte above RAM).
    let code: &[u8] = &[
        0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'K', // mov al, 'K'
        0xee, // out dx, al
        0xba, 0x34, 0x12, // mov dx, 0x1234
        0xec, // in al, dx
        0xba, 0x80, 0x00, // mov dx, 0x80
        0xee, // out dx, al
        0xbb, 0xff, 0xff, // mov bx, 0xffff
        0x8e, 0xdb, // mov ds, bx
        0xa2, 0x20, 0x00, // mov [0x20], al   -> 0x100010 (MMIO)
        0xa0, 0x30, 0x00, // mov al, [0x30]   -> 0x100020 reads 0x20
        0xba, 0x81, 0x00, // mov dx, 0x81
        0xee, // out dx, al
        0xeb, 0xfe, // jmp $
    ];
    mem.write_slice(code, GuestAddress(0x1000)).unwrap();
    let mut v = real_mode_vcpu(&accel, 0x1000);
    let io = Recorder::default();
    for _ in 0..100 {
        v.run(&io).unwrap();
        if io.out.lock().unwrap().len() >= 3 {
            break;
        }
    }
    assert_eq!(
        *io.out.lock().unwrap(),
        vec![(0x3f8, b'K'), (0x80, 0x5a), (0x81, 0x20)]
    );
    assert_eq!(*io.mmio.lock().unwrap(), vec![(0x10_0010, vec![0x5a])]);
}

#[test]
fn triple_fault_is_reported() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let Some(accel) = kvm_or_skip(&mem) else {
        return;
    };
    // 32-bit protected mode, as tiny-pvh: lidt [null IDT]; xor ecx,ecx; div ecx
    // (#DE with no IDT -> #GP -> #DF -> triple fault).
    let code: &[u8] = &[
        0x0f, 0x01, 0x1d, 0x00, 0x20, 0x00, 0x00, // lidt [0x2000]
        0x31, 0xc9, // xor ecx, ecx
        0xf7, 0xf1, // div ecx
        0xeb, 0xfe,
    ];
    mem.write_slice(code, GuestAddress(0x1000)).unwrap();
    mem.write_slice(&[0u8; 6], GuestAddress(0x2000)).unwrap();
    let mut v = accel.create_vcpu(0, 1).unwrap();
    let mut s = Sregs::reset_state();
    s.cs = Segment::flat(0x8, 0xb, false);
    let data = Segment::flat(0x10, 0x3, false);
    (s.ds, s.es, s.ss) = (data, data, data);
    s.cr0 = 0x11;
    v.set_sregs(&s).unwrap();
    v.set_regs(&Regs {
        rip: 0x1000,
        rflags: 2,
        ..Default::default()
    })
    .unwrap();
    let io = Recorder::default();
    let mut exit = VcpuExit::Continue;
    for _ in 0..10 {
        exit = v.run(&io).unwrap();
        if exit != VcpuExit::Continue {
            break;
        }
    }
    assert_eq!(exit, VcpuExit::TripleFault);
}

#[test]
fn kick_interrupts_a_spinning_guest() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let Some(accel) = kvm_or_skip(&mem) else {
        return;
    };
    mem.write_slice(&[0xeb, 0xfe], GuestAddress(0x1000))
        .unwrap(); // jmp $
    let mut v = real_mode_vcpu(&accel, 0x1000);
    let kick = v.kicker();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        kick.kick();
    });
    let io = Recorder::default();
    let exit = v.run(&io).unwrap();
    t.join().unwrap();
    assert_eq!(exit, VcpuExit::Kicked);
    assert_eq!(v.regs().unwrap().rip, 0x1000);
}
