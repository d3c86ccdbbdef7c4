//! The fault rules of the XSAVE feature set and of VEX instructions, which
//! the snippet oracle cannot vary (the host runs with CR4.OSXSAVE set,
//! AVX enabled and CPL 3): #UD without CR4.OSXSAVE or with AVX/SSE
//! disabled in XCR0, #NM with CR0.TS, #GP for XSETBV outside CPL 0, for
//! invalid XCR0 values and ECX, for misaligned XSAVE areas and reserved
//! MXCSR bits, and the requested-feature bitmap limited by XCR0.

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Instruction, Register};

use super::{execute, FpuContext, FpuError, FpuState, MemFault};

const CR0_TS: u64 = 1 << 3;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXSAVE: u64 = 1 << 18;
/// The mock's memory operand address (64-byte aligned unless moved).
const BASE: u64 = 0x4000;

struct Mock {
    gpr: [u64; 16],
    mem: Vec<u8>,
    addr: u64,
    cr0: u64,
    cr4: u64,
    cpl: u8,
}

impl Mock {
    fn new() -> Self {
        Mock {
            gpr: [0; 16],
            mem: vec![0; 0x1000],
            addr: BASE,
            cr0: 0x33,
            cr4: CR4_OSFXSR | CR4_OSXSAVE,
            cpl: 0,
        }
    }
}

fn idx(r: Register) -> usize {
    (r.full_register() as usize - Register::RAX as usize) & 15
}

impl FpuContext for Mock {
    fn read_gpr(&self, reg: Register) -> u64 {
        let v = self.gpr[idx(reg)];
        if reg.size() == 4 {
            v & 0xffff_ffff
        } else {
            v
        }
    }
    fn write_gpr(&mut self, reg: Register, value: u64) {
        self.gpr[idx(reg)] = if reg.size() == 4 {
            value & 0xffff_ffff
        } else {
            value
        };
    }
    fn read_mem(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let a = (self.addr + offset - BASE) as usize;
        buf.copy_from_slice(self.mem.get(a..a + buf.len()).ok_or(MemFault)?);
        Ok(())
    }
    fn write_mem(&mut self, offset: u64, data: &[u8]) -> Result<(), MemFault> {
        let a = (self.addr + offset - BASE) as usize;
        self.mem
            .get_mut(a..a + data.len())
            .ok_or(MemFault)?
            .copy_from_slice(data);
        Ok(())
    }
    fn mem_address(&self) -> u64 {
        self.addr
    }
    fn set_flags(&mut self, _: u64, _: u64) {}
    fn cr0(&self) -> u64 {
        self.cr0
    }
    fn cr4(&self) -> u64 {
        self.cr4
    }
    fn long_mode(&self) -> bool {
        true
    }
    fn cpl(&self) -> u8 {
        self.cpl
    }
}

fn one(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Instruction {
    let mut a = CodeAssembler::new(64).expect("assembler");
    f(&mut a).expect("assemble");
    let bytes = a.assemble(0).expect("encode");
    Decoder::new(64, &bytes, DecoderOptions::NONE).decode()
}

fn ex(vector: u8) -> Result<(), FpuError> {
    Err(FpuError::Exception {
        vector,
        error_code: None,
    })
}

fn gp() -> Result<(), FpuError> {
    Err(FpuError::Exception {
        vector: 13,
        error_code: Some(0),
    })
}

#[test]
fn vex_needs_osxsave_and_sse_avx_in_xcr0_then_honours_ts() {
    let add = one(|a| a.vaddps(ymm0, ymm1, ymm2));
    let mut st = FpuState::new();
    st.xmm[1] = 1;
    let mut c = Mock::new();
    // XCR0 = x87 only (the reset value): #UD.
    assert_eq!(execute(&mut st, &add, &mut c), ex(6));
    st.set_xcr0(3).expect("x87|SSE");
    assert_eq!(execute(&mut st, &add, &mut c), ex(6), "AVX disabled");
    st.set_xcr0(7).expect("x87|SSE|AVX");
    c.cr4 &= !CR4_OSXSAVE;
    assert_eq!(execute(&mut st, &add, &mut c), ex(6), "OSXSAVE clear");
    c.cr4 |= CR4_OSXSAVE;
    c.cr0 |= CR0_TS;
    assert_eq!(execute(&mut st, &add, &mut c), ex(7), "#NM with TS");
    c.cr0 &= !CR0_TS;
    st.ymm_hi[0] = 5;
    assert_eq!(execute(&mut st, &add, &mut c), Ok(()));
    assert_eq!(st.xmm[0], 1);
    assert_eq!(st.ymm_hi[0], 0, "0 + 0 in the upper half");
    // VEX.128 zeroes bits 255:128 of the destination.
    st.ymm_hi[3] = u128::MAX;
    let x = one(|a| a.vpaddd(xmm3, xmm1, xmm1));
    assert_eq!(execute(&mut st, &x, &mut c), Ok(()));
    assert_eq!((st.xmm[3], st.ymm_hi[3]), (2, 0));
    // Legacy SSE leaves them alone.
    st.ymm_hi[3] = 9;
    let legacy = one(|a| a.paddd(xmm3, xmm1));
    assert_eq!(execute(&mut st, &legacy, &mut c), Ok(()));
    assert_eq!((st.xmm[3], st.ymm_hi[3]), (3, 9));
}

#[test]
fn xgetbv_and_xsetbv_follow_the_rules() {
    let get = one(|a| a.xgetbv());
    let set = one(|a| a.xsetbv());
    let mut st = FpuState::new();
    let mut c = Mock::new();
    c.cr4 &= !CR4_OSXSAVE;
    assert_eq!(execute(&mut st, &get, &mut c), ex(6));
    assert_eq!(execute(&mut st, &set, &mut c), ex(6));
    c.cr4 |= CR4_OSXSAVE;
    assert_eq!(execute(&mut st, &get, &mut c), Ok(()));
    assert_eq!((c.gpr[0], c.gpr[2]), (1, 0), "XCR0 after reset");
    // Invalid values, a non-zero ECX and CPL 3 are #GP(0); XCR0 stays.
    for v in [0u64, 2, 5, 0xf, 0x207, 1 << 32 | 7] {
        c.gpr[0] = v & 0xffff_ffff;
        c.gpr[2] = v >> 32;
        assert_eq!(execute(&mut st, &set, &mut c), gp(), "XCR0 {v:#x}");
    }
    c.gpr[0] = 7;
    c.gpr[2] = 0;
    c.gpr[1] = 1;
    assert_eq!(execute(&mut st, &set, &mut c), gp(), "ECX = 1");
    c.gpr[1] = 0;
    c.cpl = 3;
    assert_eq!(execute(&mut st, &set, &mut c), gp(), "CPL 3");
    c.cpl = 0;
    assert_eq!(st.xcr0(), 1);
    assert_eq!(execute(&mut st, &set, &mut c), Ok(()));
    assert_eq!(st.xcr0(), 7);
    // XSETBV and XGETBV ignore CR0.TS.
    c.cr0 |= CR0_TS;
    c.gpr[1] = 1;
    st.ymm_hi[4] = 1;
    assert_eq!(execute(&mut st, &get, &mut c), Ok(()));
    assert_eq!(c.gpr[0], 4, "XINUSE & XCR0: only AVX is not initial");
    c.gpr[1] = 2;
    assert_eq!(execute(&mut st, &get, &mut c), gp(), "ECX = 2");
}

#[test]
fn xsave_faults_and_the_requested_feature_bitmap() {
    let save = one(|a| a.xsave64(ptr(rdi)));
    let restore = one(|a| a.xrstor64(ptr(rdi)));
    let mut st = FpuState::new();
    st.set_xcr0(3).expect("x87|SSE");
    st.xmm[2] = 0x1234;
    st.ymm_hi[2] = 0x5678;
    let mut c = Mock::new();
    c.gpr[0] = 7;
    c.cr0 |= CR0_TS;
    assert_eq!(execute(&mut st, &save, &mut c), ex(7), "#NM with TS");
    c.cr0 &= !CR0_TS;
    c.cr4 &= !CR4_OSXSAVE;
    assert_eq!(
        execute(&mut st, &save, &mut c),
        ex(6),
        "#UD without OSXSAVE"
    );
    c.cr4 |= CR4_OSXSAVE;
    c.addr = BASE + 32;
    assert_eq!(
        execute(&mut st, &save, &mut c),
        gp(),
        "32-byte aligned only"
    );
    assert!(c.mem.iter().all(|&b| b == 0), "nothing written");
    c.addr = BASE;
    // EDX:EAX asks for AVX, but XCR0 does not enable it: not saved.
    assert_eq!(execute(&mut st, &save, &mut c), Ok(()));
    assert_eq!(c.mem[512], 2, "XSTATE_BV: SSE in use");
    assert_eq!(&c.mem[192..194], &[0x34, 0x12]);
    assert!(c.mem[576..832].iter().all(|&b| b == 0));
    // XRSTOR: a reserved MXCSR bit is #GP and changes nothing.
    c.mem[26] = 1;
    st.xmm[2] = 0;
    assert_eq!(execute(&mut st, &restore, &mut c), gp());
    assert_eq!(st.xmm[2], 0);
    c.mem[26] = 0;
    assert_eq!(execute(&mut st, &restore, &mut c), Ok(()));
    assert_eq!(st.xmm[2], 0x1234);
    assert_eq!(st.ymm_hi[2], 0x5678, "AVX not requested: kept");
    // XSTATE_BV naming a component XCR0 lacks: #GP.
    c.mem[512] = 6;
    assert_eq!(execute(&mut st, &restore, &mut c), gp());
}

#[test]
fn xsaves_and_xrstors_are_supervisor_compacted_forms() {
    let saves = one(|a| a.xsaves64(ptr(rdi)));
    let savec = one(|a| a.xsavec64(ptr(rdi)));
    let rstors = one(|a| a.xrstors64(ptr(rdi)));
    let mut st = FpuState::new();
    st.set_xcr0(7).expect("x87|SSE|AVX");
    st.xmm[5] = 0xabcd;
    st.ymm_hi[7] = 0x1234;
    let mut c = Mock::new();
    c.gpr[0] = 7;
    c.cpl = 3;
    assert_eq!(execute(&mut st, &saves, &mut c), gp(), "XSAVES at CPL 3");
    assert_eq!(execute(&mut st, &rstors, &mut c), gp(), "XRSTORS at CPL 3");
    c.cpl = 0;
    // With IA32_XSS = 0, XSAVES writes what XSAVEC writes (x87 is in its
    // initial configuration, so neither writes it).
    c.mem.fill(0xee);
    assert_eq!(execute(&mut st, &savec, &mut c), Ok(()));
    let by_c = c.mem.clone();
    c.mem.fill(0xee);
    assert_eq!(execute(&mut st, &saves, &mut c), Ok(()));
    assert_eq!(c.mem[..832], by_c[..832]);
    assert_eq!(
        &c.mem[512..528],
        &[6, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0x80]
    );
    assert_eq!(&c.mem[..24], &[0xee; 24], "x87 not written");
    // XRSTORS restores it (after the registers changed).
    c.mem[528..576].fill(0);
    st.xmm[5] = 0;
    st.ymm_hi[7] = 0;
    assert_eq!(execute(&mut st, &rstors, &mut c), Ok(()));
    assert_eq!((st.xmm[5], st.ymm_hi[7]), (0xabcd, 0x1234));
    // The standard format is #GP for XRSTORS.
    c.mem[527] = 0;
    c.mem[520] = 0;
    assert_eq!(execute(&mut st, &rstors, &mut c), gp());
}
