//! Whole-instruction differential tests: a program of x87/SSE/MMX
//! instructions runs natively on the host (from an executable page) and
//! through [`super::execute`] with a mock [`FpuContext`]; the final FXSAVE
//! images, the data buffer, the volatile GPRs and the arithmetic flags must
//! match bit for bit.

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Instruction, Register};

use super::host_tests::Rng;
use super::{execute, FpuContext, FpuError, FpuState, MemFault};

/// Data area size (operands live at `[rdi + 0 .. DATA)`).
const DATA: usize = 0x400;
const INIT_IMG: usize = 0x400;
const FINAL_IMG: usize = 0x600;
const FLAGS_OUT: usize = 0x800;
const MXCSR_DEF: usize = 0x808;
const GPR_OUT: usize = 0x810;
const GPR_IN: usize = 0x880;
const FLAGS_IN: usize = 0x8c0;
const BUF: usize = 0x1000;
/// GPRs the programs may use (all caller-saved).
const GPRS: [Register; 7] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];
/// The mock's address for the data area.
const MOCK_BASE: u64 = 0x10_0000;
const ARITH_FLAGS: u64 = 0x8d5;

struct Mock {
    mem: Vec<u8>,
    gpr: [u64; 16],
    rflags: u64,
    cr0: u64,
    cr4: u64,
    cur: Instruction,
}

impl Mock {
    fn ea(&self) -> u64 {
        let i = &self.cur;
        let base = if i.memory_base() == Register::None {
            0
        } else {
            self.read_gpr(i.memory_base())
        };
        let index = if i.memory_index() == Register::None {
            0
        } else {
            self.read_gpr(i.memory_index()) * u64::from(i.memory_index_scale())
        };
        base.wrapping_add(index)
            .wrapping_add(i.memory_displacement64())
    }

    fn slot(&self, offset: u64, len: usize) -> Result<usize, MemFault> {
        let a = self.ea().wrapping_add(offset).wrapping_sub(MOCK_BASE) as usize;
        if a.checked_add(len).is_some_and(|end| end <= self.mem.len()) {
            Ok(a)
        } else {
            Err(MemFault)
        }
    }
}

fn gpr_index(r: Register) -> usize {
    r.full_register() as usize - Register::RAX as usize
}

impl FpuContext for Mock {
    fn read_gpr(&self, reg: Register) -> u64 {
        let v = self.gpr[gpr_index(reg) & 15];
        match reg.size() {
            8 => v,
            4 => v & 0xffff_ffff,
            2 => v & 0xffff,
            _ => v & 0xff,
        }
    }
    fn write_gpr(&mut self, reg: Register, value: u64) {
        let i = gpr_index(reg) & 15;
        self.gpr[i] = match reg.size() {
            8 => value,
            4 => value & 0xffff_ffff,
            2 => (self.gpr[i] & !0xffff) | (value & 0xffff),
            _ => (self.gpr[i] & !0xff) | (value & 0xff),
        };
    }
    fn read_mem(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let a = self.slot(offset, buf.len())?;
        buf.copy_from_slice(&self.mem[a..a + buf.len()]);
        Ok(())
    }
    fn write_mem(&mut self, offset: u64, data: &[u8]) -> Result<(), MemFault> {
        let a = self.slot(offset, data.len())?;
        self.mem[a..a + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn mem_address(&self) -> u64 {
        self.ea()
    }
    fn set_flags(&mut self, value: u64, mask: u64) {
        self.rflags = (self.rflags & !mask) | (value & mask);
    }
    fn cr0(&self) -> u64 {
        self.cr0
    }
    fn cr4(&self) -> u64 {
        self.cr4
    }
    fn long_mode(&self) -> bool {
        true
    }
    fn rflags(&self) -> Option<u64> {
        Some(self.rflags)
    }
}

/// Final state of one run.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    image: Vec<u8>,
    data: Vec<u8>,
    gprs: Vec<u64>,
    flags: u64,
}

fn assemble(f: &dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("64-bit assembler");
    f(&mut a).expect("assemble");
    a.assemble(0).expect("assemble")
}

fn decode_all(bytes: &[u8]) -> Vec<Instruction> {
    Decoder::new(64, bytes, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

/// Masks out the fields the two sides legitimately differ in (FOP, FIP,
/// FDP, MXCSR_MASK) and the reserved area.
fn normalise(img: &mut [u8]) {
    img[6..24].fill(0);
    img[28..32].fill(0);
    img[416..].fill(0);
}

fn run_native(program: &[u8], init: &[u8; 512], data: &[u8], gprs: &[u64], flags: u64) -> Outcome {
    let prologue = assemble(&|a| {
        a.fxrstor64(ptr(rdi + INIT_IMG as i32))?;
        a.push(qword_ptr(rdi + FLAGS_IN as i32))?;
        a.popfq()?;
        a.mov(rax, qword_ptr(rdi + GPR_IN as i32))?;
        a.mov(rcx, qword_ptr(rdi + GPR_IN as i32 + 8))?;
        a.mov(rdx, qword_ptr(rdi + GPR_IN as i32 + 16))?;
        a.mov(r8, qword_ptr(rdi + GPR_IN as i32 + 24))?;
        a.mov(r9, qword_ptr(rdi + GPR_IN as i32 + 32))?;
        a.mov(r10, qword_ptr(rdi + GPR_IN as i32 + 40))?;
        a.mov(r11, qword_ptr(rdi + GPR_IN as i32 + 48))
    });
    let epilogue = assemble(&|a| {
        a.fxsave64(ptr(rdi + FINAL_IMG as i32))?;
        a.mov(qword_ptr(rdi + GPR_OUT as i32), rax)?;
        a.mov(qword_ptr(rdi + GPR_OUT as i32 + 8), rcx)?;
        a.mov(qword_ptr(rdi + GPR_OUT as i32 + 16), rdx)?;
        a.mov(qword_ptr(rdi + GPR_OUT as i32 + 24), r8)?;
        a.mov(qword_ptr(rdi + GPR_OUT as i32 + 32), r9)?;
        a.mov(qword_ptr(rdi + GPR_OUT as i32 + 40), r10)?;
        a.mov(qword_ptr(rdi + GPR_OUT as i32 + 48), r11)?;
        a.pushfq()?;
        a.pop(rax)?;
        a.mov(qword_ptr(rdi + FLAGS_OUT as i32), rax)?;
        a.fninit()?;
        a.ldmxcsr(dword_ptr(rdi + MXCSR_DEF as i32))?;
        a.ret()
    });
    let code: Vec<u8> = [prologue, program.to_vec(), epilogue].concat();
    let mut buf = vec![0u8; BUF + 16];
    let off = buf.as_ptr().align_offset(16);
    let b = &mut buf[off..off + BUF];
    b[..DATA].copy_from_slice(data);
    b[INIT_IMG..INIT_IMG + 512].copy_from_slice(init);
    b[MXCSR_DEF..MXCSR_DEF + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
    for (i, g) in gprs.iter().enumerate() {
        b[GPR_IN + 8 * i..GPR_IN + 8 * i + 8].copy_from_slice(&g.to_le_bytes());
    }
    b[FLAGS_IN..FLAGS_IN + 8].copy_from_slice(&flags.to_le_bytes());
    // SAFETY: an anonymous private mapping we own; checked for failure below.
    let page = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096 * 4,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap for the native run");
    assert!(code.len() <= 4096 * 4);
    // SAFETY: `page` is a fresh writable mapping of at least code.len() bytes.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), page as *mut u8, code.len()) };
    // SAFETY: the page holds a complete function (prologue, program of FPU
    // instructions on [rdi] and caller-saved registers, epilogue ending in
    // RET) following the SysV ABI: it leaves the x87 empty, MXCSR at the
    // default, and touches only caller-saved state and the buffer.
    unsafe {
        let f: extern "sysv64" fn(*mut u8) = core::mem::transmute(page);
        f(b.as_mut_ptr());
        libc::munmap(page, 4096 * 4);
    }
    let mut image = b[FINAL_IMG..FINAL_IMG + 512].to_vec();
    normalise(&mut image);
    let gprs = (0..GPRS.len())
        .map(|i| {
            u64::from_le_bytes(
                b[GPR_OUT + 8 * i..GPR_OUT + 8 * i + 8]
                    .try_into()
                    .unwrap_or([0; 8]),
            )
        })
        .collect();
    let flags = u64::from_le_bytes(b[FLAGS_OUT..FLAGS_OUT + 8].try_into().unwrap_or([0; 8]));
    Outcome {
        image,
        data: b[..DATA].to_vec(),
        gprs,
        flags: flags & ARITH_FLAGS,
    }
}

fn run_emulated(
    program: &[u8],
    init: &[u8; 512],
    data: &[u8],
    gprs: &[u64],
    flags: u64,
) -> Result<Outcome, FpuError> {
    run_emulated_until(program, init, data, gprs, flags, &mut |_| false)
}

/// Emulate `program`; an error for which `stop` returns true ends the run
/// normally (the faulting instruction's side effects kept).
fn run_emulated_until(
    program: &[u8],
    init: &[u8; 512],
    data: &[u8],
    gprs: &[u64],
    flags: u64,
    stop: &mut dyn FnMut(&FpuError) -> bool,
) -> Result<Outcome, FpuError> {
    let mut st = FpuState::new();
    st.fxrstor(init)?;
    let mut m = Mock {
        mem: data.to_vec(),
        gpr: [0; 16],
        rflags: flags,
        cr0: 0x8000_0033,
        cr4: 0x620,
        cur: Instruction::default(),
    };
    for (r, v) in GPRS.iter().zip(gprs) {
        m.write_gpr(*r, *v);
    }
    m.write_gpr(Register::RDI, MOCK_BASE);
    for i in decode_all(program) {
        m.cur = i;
        match execute(&mut st, &i, &mut m) {
            Ok(()) => {}
            Err(e) if stop(&e) => break,
            Err(e) => {
                eprintln!("{i} failed: {e:?}");
                return Err(e);
            }
        }
    }
    let mut image = [0u8; 512];
    st.fxsave(&mut image);
    let mut image = image.to_vec();
    normalise(&mut image);
    Ok(Outcome {
        image,
        data: m.mem.clone(),
        gprs: GPRS.iter().map(|r| m.read_gpr(*r)).collect(),
        flags: m.rflags & ARITH_FLAGS,
    })
}

fn describe(o: &Outcome) -> String {
    let mut s = format!(
        "fcw {:04x} fsw {:04x} ftw {:02x} mxcsr {:08x} flags {:x}\n",
        u16::from_le_bytes([o.image[0], o.image[1]]),
        u16::from_le_bytes([o.image[2], o.image[3]]),
        o.image[4],
        u32::from_le_bytes([o.image[24], o.image[25], o.image[26], o.image[27]]),
        o.flags
    );
    for i in 0..8 {
        let r = &o.image[32 + 16 * i..42 + 16 * i];
        s += &format!("st{i} {:02x?}\n", r.iter().rev().collect::<Vec<_>>());
    }
    for i in 0..16 {
        let x = &o.image[160 + 16 * i..176 + 16 * i];
        s += &format!(
            "xmm{i} {:032x}\n",
            u128::from_le_bytes(x.try_into().unwrap_or([0; 16]))
        );
    }
    s += &format!("gprs {:x?}\n", o.gprs);
    s
}

/// Run `program` both ways on `data` and compare everything.
fn differential(
    name: &str,
    program: &[u8],
    init: &[u8; 512],
    data: &[u8],
    gprs: &[u64],
    flags: u64,
) {
    differential_masked(name, program, init, data, gprs, flags, &[]);
}

/// As [`differential`], ignoring the FIP/FCS/FOP/FDP/FDS fields of 28-byte
/// x87 environments stored at the data offsets in `envs` (the code and
/// data addresses differ between the native and the emulated run).
fn differential_masked(
    name: &str,
    program: &[u8],
    init: &[u8; 512],
    data: &[u8],
    gprs: &[u64],
    flags: u64,
    envs: &[usize],
) {
    let mut host = run_native(program, init, data, gprs, flags);
    let mut emu = match run_emulated(program, init, data, gprs, flags) {
        Ok(o) => o,
        Err(e) => panic!("{name}: emulation raised {e:?}"),
    };
    // The pointer fields (FIP, FCS/FOP, FDP, FDS): not tracked, and newer
    // CPUs store FCS and FDS as zero (CPUID.7:EBX[13]) while older ones
    // keep them.
    for &e in envs {
        host.data[e + 12..e + 28].fill(0);
        emu.data[e + 12..e + 28].fill(0);
    }
    if host != emu {
        let diff: Vec<String> = (0..DATA)
            .filter(|&i| host.data[i] != emu.data[i])
            .map(|i| {
                format!(
                    "data[{i:#x}] host {:02x} emu {:02x}",
                    host.data[i], emu.data[i]
                )
            })
            .take(16)
            .collect();
        let first = first_divergence(program, init, data, gprs, flags, envs);
        panic!(
            "{name}: mismatch (first diverging instruction: {first})\n--- host\n{}--- emulated\n{}{}",
            describe(&host),
            describe(&emu),
            diff.join("\n")
        );
    }
}

/// The first instruction after which the native and the emulated runs of
/// a prefix of `program` disagree.
fn first_divergence(
    program: &[u8],
    init: &[u8; 512],
    data: &[u8],
    gprs: &[u64],
    flags: u64,
    envs: &[usize],
) -> String {
    let insns = decode_all(program);
    let mut end = 0;
    let mut before = String::new();
    for i in &insns {
        end += i.len();
        let p = &program[..end];
        let mut host = run_native(p, init, data, gprs, flags);
        let Ok(mut emu) = run_emulated(p, init, data, gprs, flags) else {
            return format!("{i} (emulation error)");
        };
        for &e in envs {
            host.data[e + 12..e + 28].fill(0);
            emu.data[e + 12..e + 28].fill(0);
        }
        if host != emu {
            return format!(
                "{i}; host state before it:\n{before}after it, host:\n{}emulated:\n{}",
                describe(&host),
                describe(&emu)
            );
        }
        before = describe(&host);
    }
    "none".into()
}

fn default_image() -> [u8; 512] {
    let mut img = [0u8; 512];
    FpuState::new().fxsave(&mut img);
    img
}

/// Random data with interesting f32/f64/f80 values at fixed offsets.
fn random_data(rng: &mut Rng) -> Vec<u8> {
    let mut d = vec![0u8; DATA];
    for c in d.chunks_mut(8) {
        c.copy_from_slice(&rng.next().to_le_bytes());
    }
    // 0x000..0x100: f80 values every 16 bytes.
    for i in 0..16 {
        let v = rng.f80_near(None).to_le_bytes();
        d[16 * i..16 * i + 10].copy_from_slice(&v[..10]);
    }
    // 0x100..0x200: f64 values; 0x200..0x300: f32 values.
    let f64s = [
        1.5f64,
        -0.0,
        3.0,
        1e308,
        2.2250738585072014e-308,
        4.9e-324,
        f64::INFINITY,
        f64::NAN,
        0.1,
        -7.25,
        1e-300,
        123456789.0,
        0.5,
        -2.0,
        1e18,
        -1e19,
    ];
    for (i, v) in f64s.iter().enumerate() {
        let v = if rng.next() % 4 == 0 {
            f64::from_bits(rng.next())
        } else {
            *v
        };
        d[0x100 + 8 * i..0x108 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    let f32s = [
        1.5f32,
        -0.0,
        3.0,
        3e38,
        1.1754944e-38,
        1e-45,
        f32::INFINITY,
        f32::NAN,
        0.1,
        -7.25,
        1e-30,
        16777217.0,
        0.5,
        -2.0,
        1e9,
        -3e9,
    ];
    for i in 0..64 {
        let v = if rng.next() % 4 == 0 {
            f32::from_bits(rng.next() as u32)
        } else {
            f32s[i % 16]
        };
        d[0x200 + 4 * i..0x204 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    d
}

#[test]
fn x87_programs_match_host() {
    let prog = assemble(&|a| {
        a.fld(tword_ptr(rdi))?;
        a.fld(qword_ptr(rdi + 0x100))?;
        a.fadd_2(st0, st1)?;
        a.fmul(dword_ptr(rdi + 0x200))?;
        a.fld(tword_ptr(rdi + 0x10))?;
        a.fdivr_2(st2, st0)?;
        a.fsubp(st1, st0)?;
        a.fld(st0)?;
        a.fsqrt()?;
        a.fxch(st0, st1)?;
        a.fstp(tword_ptr(rdi + 0x300))?;
        a.fst(qword_ptr(rdi + 0x310))?;
        a.fst(dword_ptr(rdi + 0x318))?;
        a.fist(dword_ptr(rdi + 0x31c))?;
        a.fild(word_ptr(rdi + 0x204))?;
        a.fiadd(dword_ptr(rdi + 0x208))?;
        a.fisubr(word_ptr(rdi + 0x20c))?;
        a.fldpi()?;
        a.fldl2e()?;
        a.fldl2t()?;
        a.fldlg2()?;
        a.fldln2()?;
        a.fld1()?;
        a.fldz()?;
        a.fcom_2(st0, st1)?;
        a.fnstsw(word_ptr(rdi + 0x320))?;
        a.fcomi(st0, st2)?;
        a.fucomip(st0, st3)?;
        a.fxam()?;
        a.fnstsw(ax)?;
        a.frndint()?;
        a.fchs()?;
        a.fabs()?;
        a.fld(tword_ptr(rdi + 0x20))?; // overflows the stack
        a.fnstenv(ptr(rdi + 0x330))?;
        a.fldcw(word_ptr(rdi + 0x330))?;
        a.fistp(qword_ptr(rdi + 0x350))?;
        a.fisttp(word_ptr(rdi + 0x358))?;
        a.ffree(st2)?;
        a.fincstp()?;
        a.fdecstp()?;
        a.fstp(st3)?;
        a.fcompp()?;
        a.fnstsw(word_ptr(rdi + 0x35a))?;
        a.fnclex()?;
        a.fbstp(ptr(rdi + 0x360))?;
        a.fbld(ptr(rdi + 0x360))?;
        a.fxtract()?;
        a.fscale()?;
        a.fprem()?;
        a.fprem1()?;
        a.fnstsw(word_ptr(rdi + 0x36a))
    });
    let mut rng = Rng(2024);
    let init = default_image();
    for round in 0..60 {
        let data = random_data(&mut rng);
        let gprs: Vec<u64> = (0..GPRS.len()).map(|_| rng.next()).collect();
        let mut img = init;
        // Vary RC and PC through the initial FCW.
        img[0..2].copy_from_slice(
            &(0x003fu16
                | (rng.next() as u16 & 0xf040)
                | ((round as u16 % 4) << 10)
                | ([0, 2, 3][round % 3] << 8))
                .to_le_bytes(),
        );
        differential_masked(
            &format!("x87 round {round}"),
            &prog,
            &img,
            &data,
            &gprs,
            0x202,
            &[0x330],
        );
    }
}

#[test]
fn x87_env_save_restore_and_cmov_match_host() {
    let prog = assemble(&|a| {
        a.fld(qword_ptr(rdi + 0x100))?;
        a.fld(qword_ptr(rdi + 0x108))?;
        a.fld(tword_ptr(rdi + 0x30))?;
        a.fcmovb(st0, st1)?;
        a.fcmove(st0, st2)?;
        a.fcmovnbe(st0, st1)?;
        a.fcmovu(st0, st2)?;
        a.fnsave(ptr(rdi + 0x300))?;
        a.fld1()?;
        a.frstor(ptr(rdi + 0x300))?;
        a.fnstenv(ptr(rdi + 0x380))?;
        a.fldenv(ptr(rdi + 0x380))?;
        a.fstp(qword_ptr(rdi + 0x3a0))?;
        a.fldcw(word_ptr(rdi + 0x3a8))?;
        a.fnstcw(word_ptr(rdi + 0x3aa))?;
        a.fninit()?;
        a.fldcw(word_ptr(rdi + 0x3a8))?;
        a.fld(qword_ptr(rdi + 0x110))?;
        a.fmul(qword_ptr(rdi + 0x118))?;
        a.fstp(qword_ptr(rdi + 0x3b0))?;
        a.fldenv(ptr(rdi + 0x3c0))?;
        a.fnstenv(ptr(rdi + 0x3e0))?;
        a.fninit()
    });
    let mut rng = Rng(77);
    for round in 0..40 {
        let mut data = random_data(&mut rng);
        // A masked control word with a random RC/PC for the later FLDCW.
        // Bits 6 and 13-15 vary too: FLDCW must keep what the hardware keeps.
        let cw = 0x003fu16 | ((rng.next() as u16 & 0xf) << 8) | (rng.next() as u16 & 0xf040);
        data[0x3a8..0x3aa].copy_from_slice(&cw.to_le_bytes());
        // A crafted environment: random control/status/tag bits with all
        // exceptions masked and none pending.
        let env_cw = 0x003fu16 | (rng.next() as u16 & 0xffc0);
        let env_sw = rng.next() as u16 & 0x7f3f & !0x80;
        let env_tag = rng.next() as u16;
        data[0x3c0..0x3c2].copy_from_slice(&env_cw.to_le_bytes());
        data[0x3c4..0x3c6].copy_from_slice(&env_sw.to_le_bytes());
        data[0x3c8..0x3ca].copy_from_slice(&env_tag.to_le_bytes());
        let flags = 0x202 | (rng.next() & 0x45);
        differential_masked(
            &format!("env round {round}"),
            &prog,
            &default_image(),
            &data,
            &[0; 7],
            flags,
            &[0x300, 0x380, 0x3e0],
        );
    }
}

#[test]
fn x87_fprem_large_exponent_differences_match_host() {
    let prog = assemble(&|a| {
        a.fld(tword_ptr(rdi + 0x10))?;
        a.fld(tword_ptr(rdi))?;
        a.fprem()?;
        a.fnstsw(word_ptr(rdi + 0x300))?;
        a.fprem()?;
        a.fnstsw(word_ptr(rdi + 0x302))?;
        a.fld(tword_ptr(rdi + 0x10))?;
        a.fld(tword_ptr(rdi))?;
        a.fprem1()?;
        a.fnstsw(word_ptr(rdi + 0x304))?;
        a.fprem1()?;
        a.fnstsw(word_ptr(rdi + 0x306))
    });
    let mut rng = Rng(31337);
    for round in 0..200 {
        let mut data = random_data(&mut rng);
        let e = 0x3fff + (rng.next() % 300) as u16;
        let a = (u128::from(e) << 64) | u128::from(rng.next() | 1 << 63);
        let b = (u128::from(0x3fffu16 - (rng.next() % 40) as u16) << 64)
            | u128::from(rng.next() | 1 << 63);
        data[0..10].copy_from_slice(&a.to_le_bytes()[..10]);
        data[0x10..0x1a].copy_from_slice(&b.to_le_bytes()[..10]);
        differential(
            &format!("fprem round {round}"),
            &prog,
            &default_image(),
            &data,
            &[0; 7],
            0x202,
        );
    }
}

#[test]
fn sse_programs_match_host() {
    let prog = assemble(&|a| {
        a.movaps(xmm0, xmmword_ptr(rdi + 0x200))?;
        a.movups(xmm1, xmmword_ptr(rdi + 0x214))?;
        a.movapd(xmm2, xmmword_ptr(rdi + 0x100))?;
        a.movupd(xmm3, xmmword_ptr(rdi + 0x118))?;
        a.addps(xmm0, xmm1)?;
        a.mulpd(xmm2, xmm3)?;
        a.subss(xmm1, dword_ptr(rdi + 0x228))?;
        a.divsd(xmm3, qword_ptr(rdi + 0x130))?;
        a.sqrtps(xmm4, xmmword_ptr(rdi + 0x240))?;
        a.sqrtsd(xmm5, xmm2)?;
        a.minps(xmm4, xmm0)?;
        a.maxpd(xmm5, xmm3)?;
        a.cmpps(xmm6, xmm0, 1)?;
        a.cmppd(xmm7, xmm2, 4)?;
        a.cmpss(xmm1, xmm0, 6)?;
        a.comiss(xmm0, xmm1)?;
        a.ucomisd(xmm2, xmm3)?;
        a.cvtps2pd(xmm8, xmm0)?;
        a.cvtpd2ps(xmm9, xmm2)?;
        a.cvtdq2ps(xmm10, xmmword_ptr(rdi + 0x300))?;
        a.cvtdq2pd(xmm11, xmmword_ptr(rdi + 0x310))?;
        a.cvtps2dq(xmm12, xmm0)?;
        a.cvttpd2dq(xmm13, xmm2)?;
        a.cvtsd2si(rax, xmm3)?;
        a.cvttss2si(ecx, xmm1)?;
        a.cvtsi2sd(xmm14, rdx)?;
        a.cvtsi2ss(xmm15, r8d)?;
        a.cvtss2sd(xmm14, xmm15)?;
        a.cvtsd2ss(xmm15, xmm3)?;
        a.andps(xmm0, xmm6)?;
        a.andnpd(xmm7, xmm2)?;
        a.orps(xmm1, xmm4)?;
        a.xorpd(xmm5, xmm8)?;
        a.shufps(xmm8, xmm9, 0x9c)?;
        a.shufpd(xmm9, xmm10, 2)?;
        a.unpcklps(xmm10, xmm11)?;
        a.unpckhpd(xmm11, xmm12)?;
        a.movmskps(r9d, xmm0)?;
        a.movmskpd(r10d, xmm2)?;
        a.movhlps(xmm12, xmm13)?;
        a.movlhps(xmm13, xmm14)?;
        a.movhps(xmm14, qword_ptr(rdi + 0x140))?;
        a.movlpd(qword_ptr(rdi + 0x380), xmm15)?;
        a.movss(xmm15, xmm0)?;
        a.movsd_2(qword_ptr(rdi + 0x388), xmm1)?;
        a.stmxcsr(dword_ptr(rdi + 0x390))?;
        a.movaps(xmmword_ptr(rdi + 0x3a0), xmm0)?;
        a.movntps(xmmword_ptr(rdi + 0x3b0), xmm4)?;
        a.movups(xmmword_ptr(rdi + 0x3c1), xmm5)
    });
    let mut rng = Rng(555);
    for round in 0..60 {
        let data = random_data(&mut rng);
        let gprs: Vec<u64> = (0..GPRS.len())
            .map(|_| rng.next() >> (rng.next() % 64))
            .collect();
        let mut img = default_image();
        let mx = [0x1f80u32, 0x3f80, 0x5f80, 0x7f80, 0x9f80, 0x1fc0, 0xffc0][round % 7];
        img[24..28].copy_from_slice(&mx.to_le_bytes());
        differential(
            &format!("sse round {round}"),
            &prog,
            &img,
            &data,
            &gprs,
            0x202,
        );
    }
}

#[test]
fn sse2_integer_programs_match_host() {
    let prog = assemble(&|a| {
        a.movdqa(xmm0, xmmword_ptr(rdi))?;
        a.movdqu(xmm1, xmmword_ptr(rdi + 0x13))?;
        a.movdqa(xmm2, xmmword_ptr(rdi + 0x20))?;
        a.movdqa(xmm3, xmmword_ptr(rdi + 0x30))?;
        a.paddb(xmm0, xmm1)?;
        a.paddw(xmm1, xmm2)?;
        a.paddd(xmm2, xmm3)?;
        a.paddq(xmm3, xmm0)?;
        a.psubb(xmm4, xmm0)?;
        a.psubw(xmm5, xmm1)?;
        a.psubd(xmm6, xmm2)?;
        a.psubq(xmm7, xmm3)?;
        a.paddsb(xmm4, xmm1)?;
        a.paddsw(xmm5, xmm2)?;
        a.paddusb(xmm6, xmm3)?;
        a.paddusw(xmm7, xmm0)?;
        a.psubsb(xmm8, xmm1)?;
        a.psubsw(xmm9, xmm2)?;
        a.psubusb(xmm10, xmm3)?;
        a.psubusw(xmm11, xmm0)?;
        a.pcmpeqb(xmm12, xmm1)?;
        a.pcmpeqw(xmm13, xmm2)?;
        a.pcmpeqd(xmm14, xmm3)?;
        a.pcmpgtb(xmm15, xmm0)?;
        a.pcmpgtw(xmm8, xmm1)?;
        a.pcmpgtd(xmm9, xmm2)?;
        a.pmullw(xmm10, xmm3)?;
        a.pmulhw(xmm11, xmm0)?;
        a.pmulhuw(xmm12, xmm1)?;
        a.pmuludq(xmm13, xmm2)?;
        a.pmaddwd(xmm14, xmm3)?;
        a.pavgb(xmm15, xmm0)?;
        a.pavgw(xmm8, xmm1)?;
        a.pminub(xmm9, xmm2)?;
        a.pmaxub(xmm10, xmm3)?;
        a.pminsw(xmm11, xmm0)?;
        a.pmaxsw(xmm12, xmm1)?;
        a.psadbw(xmm13, xmm2)?;
        a.pand(xmm14, xmm3)?;
        a.pandn(xmm15, xmm0)?;
        a.por(xmm8, xmm1)?;
        a.pxor(xmm9, xmm2)?;
        a.psllw(xmm10, 3)?;
        a.pslld(xmm11, xmm4)?;
        a.psllq(xmm12, 33)?;
        a.psrlw(xmm13, 15)?;
        a.psrld(xmm14, xmmword_ptr(rdi + 0x3f0))?;
        a.psrlq(xmm15, 1)?;
        a.psraw(xmm8, 4)?;
        a.psrad(xmm9, 40)?;
        a.pslldq(xmm10, 3)?;
        a.psrldq(xmm11, 9)?;
        a.packsswb(xmm12, xmm13)?;
        a.packssdw(xmm13, xmm14)?;
        a.packuswb(xmm14, xmm15)?;
        a.punpcklbw(xmm0, xmm8)?;
        a.punpckhbw(xmm1, xmm9)?;
        a.punpcklwd(xmm2, xmm10)?;
        a.punpckhwd(xmm3, xmm11)?;
        a.punpckldq(xmm4, xmm12)?;
        a.punpckhdq(xmm5, xmm13)?;
        a.punpcklqdq(xmm6, xmm14)?;
        a.punpckhqdq(xmm7, xmm15)?;
        a.pshufd(xmm8, xmm0, 0x1b)?;
        a.pshufhw(xmm9, xmm1, 0x8d)?;
        a.pshuflw(xmm10, xmm2, 0x72)?;
        a.pinsrw(xmm11, eax, 5)?;
        a.pinsrw(xmm12, word_ptr(rdi + 0x40), 2)?;
        a.pextrw(ecx, xmm3, 6)?;
        a.pmovmskb(edx, xmm4)?;
        a.movd(xmm13, r8d)?;
        a.movq(xmm14, r9)?;
        a.movd(r10d, xmm5)?;
        a.movq(r11, xmm6)?;
        a.movq(xmm15, qword_ptr(rdi + 0x48))?;
        a.movq(qword_ptr(rdi + 0x300), xmm7)?;
        a.movd(dword_ptr(rdi + 0x308), xmm8)?;
        a.movq(xmm0, xmm9)?;
        a.movntdq(xmmword_ptr(rdi + 0x310), xmm10)?;
        a.movdqu(xmmword_ptr(rdi + 0x321), xmm11)?;
        a.movdqa(xmmword_ptr(rdi + 0x330), xmm12)
    });
    let mut rng = Rng(8080);
    for round in 0..40 {
        let mut data = random_data(&mut rng);
        data[0x3f0..0x400].fill(0);
        data[0x3f0] = (rng.next() % 40) as u8;
        let mut img = default_image();
        for i in 0..16 {
            img[160 + 16 * i..176 + 16 * i].copy_from_slice(
                &(u128::from(rng.next()) << 64 | u128::from(rng.next())).to_le_bytes(),
            );
        }
        let gprs: Vec<u64> = (0..GPRS.len()).map(|_| rng.next()).collect();
        differential(
            &format!("sse2 int round {round}"),
            &prog,
            &img,
            &data,
            &gprs,
            0x202,
        );
    }
}

#[test]
fn mmx_programs_match_host() {
    let prog = assemble(&|a| {
        a.fld1()?;
        a.movq(mm0, qword_ptr(rdi))?;
        a.movq(mm1, qword_ptr(rdi + 8))?;
        a.movd(mm2, eax)?;
        a.movq(mm3, rcx)?;
        a.paddb(mm0, mm1)?;
        a.paddsw(mm1, mm2)?;
        a.psubusb(mm2, mm3)?;
        a.pmullw(mm3, mm0)?;
        a.pmaddwd(mm4, mm1)?;
        a.pcmpgtw(mm5, mm2)?;
        a.psllq(mm6, 7)?;
        a.psrad(mm7, mm0)?;
        a.packsswb(mm4, mm5)?;
        a.punpckhbw(mm5, mm6)?;
        a.punpckldq(mm6, mm7)?;
        a.pxor(mm7, mm3)?;
        a.pshufw(mm0, mm1, 0x4e)?;
        a.pavgb(mm1, mm2)?;
        a.pminsw(mm2, mm3)?;
        a.psadbw(mm3, mm4)?;
        a.pextrw(edx, mm4, 3)?;
        a.pinsrw(mm5, r8d, 1)?;
        a.pmovmskb(r9d, mm6)?;
        a.movdq2q(mm7, xmm1)?;
        a.movq2dq(xmm2, mm0)?;
        a.movd(r10d, mm1)?;
        a.movq(r11, mm2)?;
        a.movq(qword_ptr(rdi + 0x300), mm3)?;
        a.movntq(qword_ptr(rdi + 0x308), mm4)?;
        a.paddq(mm5, mm6)?;
        a.pmuludq(mm6, mm7)
    });
    let prog_emms = [prog.clone(), assemble(&|a| a.emms())].concat();
    let mut rng = Rng(6502);
    for round in 0..40 {
        let data = random_data(&mut rng);
        let mut img = default_image();
        for i in 0..16 {
            img[160 + 16 * i..176 + 16 * i].copy_from_slice(
                &(u128::from(rng.next()) << 64 | u128::from(rng.next())).to_le_bytes(),
            );
        }
        let gprs: Vec<u64> = (0..GPRS.len()).map(|_| rng.next()).collect();
        let p = if round % 2 == 0 { &prog } else { &prog_emms };
        differential(&format!("mmx round {round}"), p, &img, &data, &gprs, 0x202);
    }
}

#[test]
fn fxsave_fxrstor_roundtrip_through_instructions() {
    let prog = assemble(&|a| {
        a.fld(tword_ptr(rdi))?;
        a.fld(qword_ptr(rdi + 0x100))?;
        a.movaps(xmm3, xmmword_ptr(rdi + 0x200))?;
        a.fxsave64(ptr(rdi + 0x200))?;
        a.fninit()?;
        a.pxor(xmm3, xmm3)?;
        a.fxrstor64(ptr(rdi + 0x200))?;
        a.faddp(st1, st0)?;
        a.fxsave(ptr(rdi + 0x200))
    });
    let mut rng = Rng(11);
    for round in 0..10 {
        let data = random_data(&mut rng);
        let host = run_native(&prog, &default_image(), &data, &[0; 7], 0x202);
        let emu =
            run_emulated(&prog, &default_image(), &data, &[0; 7], 0x202).expect("emulated run");
        // FOP/FIP/FDP and MXCSR_MASK inside the saved image legitimately differ.
        let mut h = host.data.clone();
        let mut e = emu.data.clone();
        normalise(&mut h[0x200..0x400]);
        normalise(&mut e[0x200..0x400]);
        assert_eq!(h, e, "round {round}");
        assert_eq!(host.image, emu.image, "round {round}");
    }
}

#[test]
fn exceptions_nm_ud_gp_mf_xm() {
    let insns = |f: &dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>| decode_all(&assemble(f));
    let mut m = Mock {
        mem: vec![0; DATA],
        gpr: [0; 16],
        rflags: 2,
        cr0: 0x8000_0033,
        cr4: 0x620,
        cur: Instruction::default(),
    };
    m.write_gpr(Register::RDI, MOCK_BASE);
    let mut st = FpuState::new();
    // Misaligned MOVAPS: #GP(0); MOVUPS is fine.
    let i = insns(&|a| a.movaps(xmm0, xmmword_ptr(rdi + 8)))[0];
    m.cur = i;
    assert_eq!(
        execute(&mut st, &i, &mut m),
        Err(FpuError::Exception {
            vector: 13,
            error_code: Some(0)
        })
    );
    let i = insns(&|a| a.movups(xmm0, xmmword_ptr(rdi + 8)))[0];
    m.cur = i;
    assert_eq!(execute(&mut st, &i, &mut m), Ok(()));
    // Unmasked zero-divide in DIVSS: #XM with OSXMMEXCPT, flags set, no write.
    st.mxcsr = 0x1f80 & !(1 << 9);
    st.xmm[1] = 0x3f80_0000;
    st.xmm[2] = 0;
    let i = insns(&|a| a.divss(xmm1, xmm2))[0];
    m.cur = i;
    assert_eq!(
        execute(&mut st, &i, &mut m),
        Err(FpuError::Exception {
            vector: 19,
            error_code: None
        })
    );
    assert_eq!(st.xmm[1], 0x3f80_0000);
    assert_ne!(st.mxcsr & 4, 0);
    m.cr4 = 0x220;
    assert_eq!(
        execute(&mut st, &i, &mut m),
        Err(FpuError::Exception {
            vector: 6,
            error_code: None
        })
    );
    // Unmasked x87 zero-divide: the next waiting instruction takes #MF.
    let mut st = FpuState::new();
    st.fcw = 0x037b;
    let prog = insns(&|a| {
        a.fld1()?;
        a.fldz()?;
        a.fdivp(st1, st0)?;
        a.fld1()?;
        a.fnclex()?;
        a.fld1()
    });
    for (n, i) in prog.iter().enumerate() {
        m.cur = *i;
        let r = execute(&mut st, i, &mut m);
        if n == 3 {
            assert_eq!(
                r,
                Err(FpuError::Exception {
                    vector: 16,
                    error_code: None
                })
            );
        } else {
            assert_eq!(r, Ok(()), "{i}");
        }
    }
    // FDIVP neither stored nor popped: 1, 0, then the final FLD1.
    assert_eq!(st.top(), 5, "the faulting FDIVP left the stack unchanged");
    assert_eq!(st.st(1).map(|v| v.sig), Some(0));
    assert_eq!(st.st(2).map(|v| v.se), Some(0x3fff));
}

/// CR0/CR4-dependent faults, with a context whose control registers vary.
#[test]
fn nm_and_ud_follow_cr0_and_cr4() {
    struct Cr(u64, u64);
    impl FpuContext for Cr {
        fn read_gpr(&self, _: Register) -> u64 {
            0
        }
        fn write_gpr(&mut self, _: Register, _: u64) {}
        fn read_mem(&mut self, _: u64, b: &mut [u8]) -> Result<(), MemFault> {
            b.fill(0);
            Ok(())
        }
        fn write_mem(&mut self, _: u64, _: &[u8]) -> Result<(), MemFault> {
            Ok(())
        }
        fn mem_address(&self) -> u64 {
            0
        }
        fn set_flags(&mut self, _: u64, _: u64) {}
        fn cr0(&self) -> u64 {
            self.0
        }
        fn cr4(&self) -> u64 {
            self.1
        }
        fn long_mode(&self) -> bool {
            true
        }
    }
    let code = assemble(&|a| {
        a.fld1()?;
        a.addps(xmm0, xmm1)?;
        a.paddb(mm0, mm1)?;
        a.wait()?;
        a.fxsave64(ptr(rax))
    });
    let i = decode_all(&code);
    let ex = |v| {
        Err(FpuError::Exception {
            vector: v,
            error_code: None,
        })
    };
    let run = |n: usize, c0: u64, c4: u64| execute(&mut FpuState::new(), &i[n], &mut Cr(c0, c4));
    // TS: everything #NM (FWAIT only with MP).
    assert_eq!(run(0, 8, 0x200), ex(7));
    assert_eq!(run(1, 8, 0x200), ex(7));
    assert_eq!(run(2, 8, 0x200), ex(7));
    assert_eq!(run(3, 8, 0x200), Ok(()));
    assert_eq!(run(3, 0xa, 0x200), ex(7));
    assert_eq!(run(4, 8, 0x200), ex(7));
    // EM: x87 #NM, SSE and MMX #UD.
    assert_eq!(run(0, 4, 0x200), ex(7));
    assert_eq!(run(1, 4, 0x200), ex(6));
    assert_eq!(run(2, 4, 0x200), ex(6));
    // No OSFXSR: SSE #UD, x87 and MMX fine.
    assert_eq!(run(1, 0, 0), ex(6));
    assert_eq!(run(0, 0, 0), Ok(()));
    assert_eq!(run(2, 0, 0), Ok(()));
}

/// Unmasked x87 exceptions: the faulting instruction's effect (no store
/// for #I/#D/#Z, biased results for #O/#U, ES/B set) must match; the
/// program ends before the next waiting instruction would take #MF, and
/// the epilogue's FXSAVE does not wait.
#[test]
fn x87_unmasked_exceptions_match_host() {
    type Emit = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let ops: [Emit; 22] = [
        |a| a.fld(dword_ptr(rdi + 0x204)),
        |a| a.fld(qword_ptr(rdi + 0x108)),
        |a| a.fbstp(ptr(rdi + 0x300)),
        |a| a.fist(dword_ptr(rdi + 0x300)),
        |a| a.fprem1(),
        |a| a.fxtract(),
        |a| a.frndint(),
        |a| a.fcomi(st0, st1),
        |a| a.fst(qword_ptr(rdi + 0x300)),
        |a| a.fidiv(word_ptr(rdi + 0x206)),
        |a| a.fcomp_2(st0, st1),
        |a| a.fucomip(st0, st1),
        |a| a.fcompp(),
        |a| a.fadd_2(st0, st1),
        |a| a.fmul_2(st0, st1),
        |a| a.fdiv_2(st0, st1),
        |a| a.fsubrp(st1, st0),
        |a| a.fsqrt(),
        |a| a.fscale(),
        |a| a.fst(dword_ptr(rdi + 0x300)),
        |a| a.fistp(word_ptr(rdi + 0x300)),
        |a| a.fcom_2(st0, st1),
    ];
    let mut rng = Rng(0xe1);
    for round in 0..3000 {
        let op = ops[round % ops.len()];
        let prog = assemble(&|a| {
            a.fld(tword_ptr(rdi + 0x10))?;
            a.fld(tword_ptr(rdi))?;
            op(a)
        });
        let mut data = random_data(&mut rng);
        let x = rng.f80_near(None);
        let y = if round % 3 == 0 {
            // An exponent that makes FSCALE/FMUL leave the range.
            let sign = u16::from(rng.next() & 1 == 1) << 15;
            (u128::from(sign | (0x400du16 + (rng.next() % 4) as u16)) << 64)
                | u128::from(rng.next() | 1 << 63)
        } else {
            rng.f80_near(Some(((x >> 64) as u16) & 0x7fff))
        };
        data[..10].copy_from_slice(&x.to_le_bytes()[..10]);
        data[0x10..0x1a].copy_from_slice(&y.to_le_bytes()[..10]);
        let mut img = default_image();
        let cw = 0x0340u16 | (rng.next() as u16 & 0x3f) | ((rng.next() as u16 & 3) << 10);
        img[0..2].copy_from_slice(&cw.to_le_bytes());
        differential(
            &format!("unmasked round {round} cw {cw:#x}"),
            &prog,
            &img,
            &data,
            &[0; 7],
            0x202,
        );
    }
}

fn sts() -> [AsmRegisterSt; 8] {
    [st0, st1, st2, st3, st4, st5, st6, st7]
}

/// A random x87 program: `n` instructions over the data layout of
/// [`random_data`], all exceptions masked (FLDCW loads one of the masked
/// control words at 0x3f0..0x3f8), stores going to 0x300..0x3f0.
fn random_x87_program(rng: &mut Rng, n: usize) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    for _ in 0..n {
        let r = rng.next();
        let i = sts()[(r >> 8) as usize % 8];
        let k = ((r >> 16) & 0xffff) as i32;
        let m80 = tword_ptr(rdi + 16 * (k % 16));
        let m64 = qword_ptr(rdi + 0x100 + 8 * (k % 16));
        let m32 = dword_ptr(rdi + 0x200 + 4 * (k % 64));
        let m16 = word_ptr(rdi + 0x200 + 2 * (k % 128));
        let o80 = tword_ptr(rdi + 0x300 + 16 * (k % 15));
        let o64 = qword_ptr(rdi + 0x300 + 8 * (k % 30));
        let o32 = dword_ptr(rdi + 0x300 + 4 * (k % 60));
        let o16 = word_ptr(rdi + 0x300 + 2 * (k % 120));
        match r % 78 {
            0 => a.fld(m80)?,
            1 => a.fld(m64)?,
            2 => a.fld(m32)?,
            3 => a.fld(i)?,
            4 => a.fild(m16)?,
            5 => a.fild(m32)?,
            6 => a.fild(m64)?,
            7 => a.fld1()?,
            8 => a.fldz()?,
            9 => a.fldpi()?,
            10 => a.fldl2t()?,
            11 => a.fst(o32)?,
            12 => a.fstp(o64)?,
            13 => a.fstp(o80)?,
            14 => a.fst(i)?,
            15 => a.fstp(i)?,
            16 => a.fist(o16)?,
            17 => a.fistp(o32)?,
            18 => a.fistp(o64)?,
            19 => a.fisttp(o16)?,
            20 => a.fisttp(o64)?,
            21 => a.fbstp(ptr(rdi + 0x300 + 16 * (k % 15)))?,
            22 => a.fadd(m32)?,
            23 => a.fsub(m64)?,
            24 => a.fsubr(m32)?,
            25 => a.fmul(m64)?,
            26 => a.fdiv(m32)?,
            27 => a.fdivr(m64)?,
            28 => a.fadd_2(st0, i)?,
            29 => a.fsub_2(i, st0)?,
            30 => a.fsubr_2(st0, i)?,
            31 => a.fmul_2(i, st0)?,
            32 => a.fdiv_2(st0, i)?,
            33 => a.fdivr_2(i, st0)?,
            34 => a.faddp(i, st0)?,
            35 => a.fsubrp(i, st0)?,
            36 => a.fmulp(i, st0)?,
            37 => a.fdivp(i, st0)?,
            38 => a.fiadd(m16)?,
            39 => a.fimul(m32)?,
            40 => a.fidivr(m16)?,
            41 => a.fisub(m32)?,
            42 => a.fchs()?,
            43 => a.fabs()?,
            44 => a.fsqrt()?,
            45 => a.frndint()?,
            46 => a.fscale()?,
            47 => a.fxtract()?,
            48 => a.fprem()?,
            49 => a.fprem1()?,
            50 => a.fcom(m32)?,
            51 => a.fcomp(m64)?,
            52 => a.fcom_2(st0, i)?,
            53 => a.fcompp()?,
            54 => a.fucom(st0, i)?,
            55 => a.fucompp()?,
            56 => a.ficom(m16)?,
            57 => a.ficomp(m32)?,
            58 => a.ftst()?,
            59 => a.fxam()?,
            60 => a.fcomi(st0, i)?,
            61 => a.fucomip(st0, i)?,
            62 => match k % 8 {
                0 => a.fcmovb(st0, i)?,
                1 => a.fcmove(st0, i)?,
                2 => a.fcmovbe(st0, i)?,
                3 => a.fcmovu(st0, i)?,
                4 => a.fcmovnb(st0, i)?,
                5 => a.fcmovne(st0, i)?,
                6 => a.fcmovnbe(st0, i)?,
                _ => a.fcmovnu(st0, i)?,
            },
            63 => a.fxch(st0, i)?,
            64 => a.ffree(i)?,
            65 => a.fincstp()?,
            66 => a.fdecstp()?,
            67 => a.fnop()?,
            68 => a.fnclex()?,
            69 => a.fnstsw(ax)?,
            70 => a.fnstsw(o16)?,
            71 => a.fnstcw(o16)?,
            72 => a.fldcw(word_ptr(rdi + 0x3f0 + 2 * (k % 4)))?,
            73 => a.fninit()?,
            74 => a.fstpnce(i)?,
            75 => a.fneni()?,
            76 => a.fnsetpm()?,
            _ => a.fcomip(st0, i)?,
        }
    }
    a.assemble(0)
}

#[test]
fn random_x87_programs_match_host() {
    let mut rng = Rng(0x5eed_1234);
    for round in 0..1000 {
        let prog = random_x87_program(&mut rng, 40).expect("assemble");
        let mut data = random_data(&mut rng);
        for j in 0..4 {
            let cw = 0x007fu16
                | (((rng.next() & 3) as u16) << 10)
                | ([0u16, 2, 3][(rng.next() % 3) as usize] << 8);
            data[0x3f0 + 2 * j..0x3f2 + 2 * j].copy_from_slice(&cw.to_le_bytes());
        }
        let mut img = default_image();
        img[0..2].copy_from_slice(&data[0x3f0..0x3f2]);
        let flags = 0x202 | (rng.next() & 0x8d5);
        differential(
            &format!("random x87 round {round}"),
            &prog,
            &img,
            &data,
            &[0; 7],
            flags,
        );
    }
}

/// A random SSE/SSE2 program over xmm0-15 and the data area (aligned
/// memory operands at 16-byte offsets).
fn random_sse_program(rng: &mut Rng, n: usize) -> Result<Vec<u8>, IcedError> {
    let xmms = [
        xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13,
        xmm14, xmm15,
    ];
    let mut a = CodeAssembler::new(64)?;
    for _ in 0..n {
        let r = rng.next();
        let x = xmms[(r >> 8) as usize % 16];
        let y = xmms[(r >> 12) as usize % 16];
        let k = ((r >> 16) & 0xffff) as i32;
        let imm = (r >> 40) as u32 & 0xff;
        let m128 = xmmword_ptr(rdi + 16 * (k % 48));
        let m64 = qword_ptr(rdi + 8 * (k % 96));
        let m32 = dword_ptr(rdi + 4 * (k % 192));
        let g32 = [eax, ecx, edx, r8d][(r >> 24) as usize % 4];
        let g64 = [rax, rcx, rdx, r9][(r >> 24) as usize % 4];
        match r % 64 {
            0 => a.addps(x, y)?,
            1 => a.addsd(x, m64)?,
            2 => a.subpd(x, m128)?,
            3 => a.subss(x, y)?,
            4 => a.mulps(x, m128)?,
            5 => a.mulsd(x, y)?,
            6 => a.divpd(x, y)?,
            7 => a.divss(x, m32)?,
            8 => a.sqrtpd(x, y)?,
            9 => a.sqrtss(x, m32)?,
            10 => a.minpd(x, y)?,
            11 => a.maxss(x, m32)?,
            12 => a.minsd(x, m64)?,
            13 => a.maxps(x, y)?,
            14 => a.cmpps(x, y, imm & 7)?,
            15 => a.cmpsd_3(x, m64, imm & 7)?,
            16 => a.comisd(x, y)?,
            17 => a.ucomiss(x, m32)?,
            18 => a.cvtss2sd(x, y)?,
            19 => a.cvtsd2ss(x, m64)?,
            20 => a.cvtps2pd(x, y)?,
            21 => a.cvtpd2ps(x, m128)?,
            22 => a.cvtdq2ps(x, y)?,
            23 => a.cvtdq2pd(x, m64)?,
            24 => a.cvtps2dq(x, y)?,
            25 => a.cvttps2dq(x, m128)?,
            26 => a.cvtpd2dq(x, y)?,
            27 => a.cvttpd2dq(x, y)?,
            28 => a.cvtsi2ss(x, g64)?,
            29 => a.cvtsi2sd(x, g32)?,
            30 => a.cvtss2si(g64, y)?,
            31 => a.cvttsd2si(g32, m64)?,
            32 => a.cvtsd2si(g64, y)?,
            33 => a.cvttss2si(g32, m32)?,
            34 => a.andpd(x, y)?,
            35 => a.xorps(x, m128)?,
            36 => a.shufps(x, y, imm)?,
            37 => a.unpckhps(x, y)?,
            38 => a.movmskpd(g32, y)?,
            39 => a.movss(x, m32)?,
            40 => a.movsd_2(x, y)?,
            41 => a.movaps(x, m128)?,
            42 => a.movlps(x, m64)?,
            43 => a.movhpd(x, m64)?,
            44 => a.paddw(x, y)?,
            45 => a.psubusb(x, m128)?,
            46 => a.pmulhw(x, y)?,
            47 => a.pmaddwd(x, y)?,
            48 => a.psraw(x, imm % 20)?,
            49 => a.psrlq(x, y)?,
            50 => a.pshufd(x, y, imm)?,
            51 => a.packssdw(x, y)?,
            52 => a.punpcklwd(x, m128)?,
            53 => a.pcmpgtd(x, y)?,
            54 => a.pmovmskb(g32, y)?,
            55 => a.movd(x, g32)?,
            56 => a.movq(g64, y)?,
            57 => a.psadbw(x, y)?,
            58 => a.pextrw(g32, y, imm)?,
            59 => a.pinsrw(x, g32, imm)?,
            60 => a.movq(x, y)?,
            61 => a.cvtsi2sd(x, g64)?,
            62 => a.addpd(x, m128)?,
            _ => a.mulss(x, y)?,
        }
    }
    a.assemble(0)
}

#[test]
fn random_sse_programs_match_host() {
    let mut rng = Rng(0xfeed_beef);
    for round in 0..1000 {
        let prog = random_sse_program(&mut rng, 40).expect("assemble");
        let data = random_data(&mut rng);
        let mut img = default_image();
        let mx = 0x1f80u32
            | ((rng.next() as u32 & 3) << 13)
            | ((rng.next() as u32 & 1) << 15)
            | ((rng.next() as u32 & 1) << 6);
        img[24..28].copy_from_slice(&mx.to_le_bytes());
        for i in 0..16 {
            let lo = &data[16 * (i % 48)..16 * (i % 48) + 16];
            img[160 + 16 * i..176 + 16 * i].copy_from_slice(lo);
        }
        let gprs: Vec<u64> = (0..GPRS.len())
            .map(|_| rng.next() >> (rng.next() % 64))
            .collect();
        differential(
            &format!("random sse round {round}"),
            &prog,
            &img,
            &data,
            &gprs,
            0x202,
        );
    }
}

/// Random MMX programs mixed with x87 loads/stores, EMMS and the
/// MMX<->SSE conversions (aliasing, TOP/tag transitions).
fn random_mmx_program(rng: &mut Rng, n: usize) -> Result<Vec<u8>, IcedError> {
    let mms = [mm0, mm1, mm2, mm3, mm4, mm5, mm6, mm7];
    let xmms = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7];
    let mut a = CodeAssembler::new(64)?;
    for _ in 0..n {
        let r = rng.next();
        let x = mms[(r >> 8) as usize % 8];
        let y = mms[(r >> 12) as usize % 8];
        let v = xmms[(r >> 20) as usize % 8];
        let k = ((r >> 16) & 0xffff) as i32;
        let imm = (r >> 40) as u32 & 0xff;
        let m64 = qword_ptr(rdi + 8 * (k % 96));
        let m128 = xmmword_ptr(rdi + 16 * (k % 48));
        let g32 = [eax, ecx, edx, r8d][(r >> 24) as usize % 4];
        match r % 40 {
            0 => a.paddb(x, y)?,
            1 => a.paddusw(x, m64)?,
            2 => a.psubsb(x, y)?,
            3 => a.psubq(x, y)?,
            4 => a.pmulhuw(x, y)?,
            5 => a.pmuludq(x, m64)?,
            6 => a.pcmpeqd(x, y)?,
            7 => a.pand(x, y)?,
            8 => a.psllw(x, imm % 20)?,
            9 => a.psrld(x, y)?,
            10 => a.psraw(x, m64)?,
            11 => a.packuswb(x, y)?,
            12 => a.punpcklbw(x, y)?,
            13 => a.punpckhwd(x, m64)?,
            14 => a.pshufw(x, y, imm)?,
            15 => a.pavgw(x, y)?,
            16 => a.pmaxub(x, m64)?,
            17 => a.psadbw(x, y)?,
            18 => a.pmovmskb(g32, y)?,
            19 => a.pextrw(g32, y, imm)?,
            20 => a.pinsrw(x, g32, imm)?,
            21 => a.movq(x, m64)?,
            22 => a.movq(qword_ptr(rdi + 0x300 + 8 * (k % 30)), y)?,
            23 => a.movd(g32, y)?,
            24 => a.movd(x, g32)?,
            25 => a.movdq2q(x, v)?,
            26 => a.movq2dq(v, y)?,
            27 => a.emms()?,
            28 => a.fld(qword_ptr(rdi + 0x100 + 8 * (k % 16)))?,
            29 => a.fstp(qword_ptr(rdi + 0x300 + 8 * (k % 30)))?,
            30 => a.fadd_2(st0, st1)?,
            31 => a.cvtpi2ps(v, y)?,
            32 => a.cvtpi2pd(v, m64)?,
            33 => a.cvtps2pi(x, v)?,
            34 => a.cvttpd2pi(x, m128)?,
            35 => a.cvtpd2pi(x, v)?,
            36 => a.cvttps2pi(x, m64)?,
            37 => a.cvtpi2ps(v, m64)?,
            38 => a.pmaddwd(x, y)?,
            _ => a.pxor(x, y)?,
        }
    }
    a.assemble(0)
}

#[test]
fn random_mmx_programs_match_host() {
    let mut rng = Rng(0x6d6d_7800);
    for round in 0..1000 {
        let prog = random_mmx_program(&mut rng, 30).expect("assemble");
        let data = random_data(&mut rng);
        let mut img = default_image();
        let mx = 0x1f80u32 | ((rng.next() as u32 & 3) << 13);
        img[24..28].copy_from_slice(&mx.to_le_bytes());
        for i in 0..8 {
            img[32 + 16 * i..42 + 16 * i].copy_from_slice(&data[16 * i..16 * i + 10]);
            let lo = &data[0x100 + 16 * i..0x110 + 16 * i];
            img[160 + 16 * i..176 + 16 * i].copy_from_slice(lo);
        }
        // Start with a partly filled x87 stack (TOP = 5, three valid).
        img[2..4].copy_from_slice(&(5u16 << 11).to_le_bytes());
        img[4] = 0xe0;
        let gprs: Vec<u64> = (0..GPRS.len()).map(|_| rng.next()).collect();
        differential(
            &format!("random mmx round {round}"),
            &prog,
            &img,
            &data,
            &gprs,
            0x202,
        );
    }
}

/// Decodes random instruction bytes in the x87/SSE/MMX opcode space and
/// executes whatever decodes on random state: no input may panic, and the
/// only MMX/SSE/SSE2/x87 instructions answering "not mine" (#UD) are the
/// known unimplemented ones.
#[test]
fn random_encodings_never_panic_and_coverage_is_known() {
    use std::collections::BTreeSet;
    let known_missing: BTreeSet<&str> = [
        "Maskmovq",
        "Maskmovdqu",
        "Rcpps",
        "Rcpss",
        "Rsqrtps",
        "Rsqrtss",
        // The integer core executes these itself.
        "Clflush",
        "Lfence",
        "Mfence",
        "Sfence",
        "Pause",
        "Prefetchnta",
        "Prefetcht0",
        "Prefetcht1",
        "Prefetcht2",
        // SSE2 forms that the core treats as integer instructions.
        "Movsd",
        "Cmpsd",
    ]
    .into_iter()
    .collect();
    let mut rng = Rng(0xdec0de);
    let mut missing = BTreeSet::new();
    let mut executed = 0;
    for _ in 0..60_000 {
        let r = rng.next();
        let mut bytes = Vec::new();
        match r % 4 {
            0 => bytes.push(0x66),
            1 => bytes.push(0xf2),
            2 => bytes.push(0xf3),
            _ => {}
        }
        if r & 0x10 != 0 {
            bytes.push(0x40 | ((r >> 8) as u8 & 0xf));
        }
        if r & 0x20 != 0 {
            bytes.push(0xd8 + ((r >> 12) as u8 & 7));
        } else {
            bytes.push(0x0f);
        }
        bytes.extend_from_slice(&rng.next().to_le_bytes());
        let Some(i) = decode_all(&bytes).into_iter().next() else {
            continue;
        };
        if i.is_invalid() {
            continue;
        }
        let mut st = FpuState::new();
        st.fsw = rng.next() as u16 & 0x387f;
        st.fcw = (rng.next() as u16) | 0x3f;
        st.empty = rng.next() as u8;
        st.mxcsr = 0x1f80 | (rng.next() as u32 & 0xe07f);
        for x in st.xmm.iter_mut() {
            *x = u128::from(rng.next()) << 64 | u128::from(rng.next());
        }
        for r in st.regs.iter_mut() {
            *r = super::state::F80::from_bits(rng.f80_near(None));
        }
        let mut m = Mock {
            mem: vec![0; 0x1000],
            gpr: [0; 16],
            rflags: 2,
            cr0: 0x8000_0033,
            cr4: 0x620,
            cur: i,
        };
        for g in m.gpr.iter_mut() {
            *g = MOCK_BASE + (rng.next() & 0x3ff);
        }
        match execute(&mut st, &i, &mut m) {
            Ok(()) => executed += 1,
            Err(FpuError::NotFpu) => {
                use iced_x86::CpuidFeature as C;
                let ours = i.cpuid_features().iter().any(|f| {
                    matches!(
                        f,
                        C::FPU | C::FPU287 | C::FPU387 | C::MMX | C::SSE | C::SSE2 | C::FXSR
                    )
                });
                if ours {
                    missing.insert(format!("{:?}", i.mnemonic()));
                }
            }
            Err(_) => {}
        }
    }
    assert!(executed > 10_000, "only {executed} instructions executed");
    let unexpected: Vec<_> = missing
        .iter()
        .filter(|m| !known_missing.contains(m.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "unimplemented: {unexpected:?}");
}

/// ST(0), ST(1) as f64 and FSW of an emulated or native outcome.
fn top_two(o: &Outcome) -> (f64, f64, u16) {
    let get = |i: usize| {
        let r = super::state::F80::from_bytes(&o.image[32 + 16 * i..42 + 16 * i]);
        let mut env =
            super::softfloat::Env::new(super::softfloat::F64, super::softfloat::Round::Nearest);
        let v = super::softfloat::convert(r.decode().v, &mut env);
        f64::from_bits(super::softfloat::pack(v, super::softfloat::F64) as u64)
    };
    (get(0), get(1), u16::from_le_bytes([o.image[2], o.image[3]]))
}

/// Transcendentals are computed through f64 (documented as possibly
/// differing from the hardware in the last bits): compare with the host
/// within f64 accuracy, and bit for bit for the out-of-range (C2) case.
#[test]
fn x87_transcendentals_are_close_to_host() {
    type Emit = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let cases: [(&str, Emit, f64, f64); 8] = [
        ("fsin", |a| a.fsin(), -50.0, 50.0),
        ("fcos", |a| a.fcos(), -50.0, 50.0),
        ("fptan", |a| a.fptan(), -1.5, 1.5),
        ("f2xm1", |a| a.f2xm1(), -1.0, 1.0),
        ("fyl2x", |a| a.fyl2x(), 1e-3, 1e6),
        ("fyl2xp1", |a| a.fyl2xp1(), -0.29, 0.29),
        ("fpatan", |a| a.fpatan(), -100.0, 100.0),
        ("fsincos", |a| a.fsincos(), -10.0, 10.0),
    ];
    let mut rng = Rng(0x7a7a);
    for (name, op, lo, hi) in cases {
        let prog = assemble(&|a| {
            a.fld(qword_ptr(rdi + 8))?;
            a.fld(qword_ptr(rdi))?;
            op(a)
        });
        for _ in 0..200 {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let x = lo + (hi - lo) * u;
            let y = 0.5 + (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let mut data = vec![0u8; DATA];
            data[0..8].copy_from_slice(&x.to_le_bytes());
            data[8..16].copy_from_slice(&y.to_le_bytes());
            let host = run_native(&prog, &default_image(), &data, &[0; 7], 0x202);
            let emu =
                run_emulated(&prog, &default_image(), &data, &[0; 7], 0x202).expect("emulated");
            let (h0, h1, hsw) = top_two(&host);
            let (e0, e1, esw) = top_two(&emu);
            // TOP, C2 and the exception flags other than precision agree.
            assert_eq!(hsw & 0x3c5f, esw & 0x3c5f, "{name}({x}, {y}) status");
            for (h, e) in [(h0, e0), (h1, e1)] {
                let tol = 1e-13 * h.abs().max(1.0);
                assert!(
                    (h - e).abs() <= tol,
                    "{name}({x}, {y}): host {h:e}, emulated {e:e}"
                );
            }
        }
    }
    // |x| >= 2^63: C2 set and the operand left alone, bit for bit.
    let prog = assemble(&|a| {
        a.fld(qword_ptr(rdi))?;
        a.fsin()?;
        a.fld(qword_ptr(rdi))?;
        a.fptan()
    });
    let mut data = vec![0u8; DATA];
    data[0..8].copy_from_slice(&1e19f64.to_le_bytes());
    differential(
        "fsin out of range",
        &prog,
        &default_image(),
        &data,
        &[0; 7],
        0x202,
    );
}

static XM_SKIP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static XM_HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn sigfpe_skip(_sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    use std::sync::atomic::Ordering::SeqCst;
    let uc = uc as *mut libc::ucontext_t;
    // SAFETY: the kernel passes a valid ucontext for an SA_SIGINFO handler;
    // moving RIP past the faulting instruction resumes the test program.
    unsafe {
        (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] += XM_SKIP.load(SeqCst) as i64;
    }
    XM_HITS.fetch_add(1, SeqCst);
}

/// Unmasked SSE exceptions: the host takes #XM (SIGFPE, whose handler
/// skips the instruction); the emulation must raise #XM and leave the same
/// MXCSR flags and the same (unchanged) destination.
#[test]
fn sse_unmasked_exceptions_match_host() {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut previous: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: installs a process-wide SIGFPE handler that only adjusts RIP
    // by the length of the single test instruction (no other test raises
    // SIGFPE); the previous action is kept and restored below.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = sigfpe_skip as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGFPE, &sa, &mut previous), 0);
    }
    let result = unmasked_sse_rounds();
    // SAFETY: reinstates the action that was in place before this test.
    unsafe {
        libc::sigaction(libc::SIGFPE, &previous, core::ptr::null_mut());
    }
    match result {
        Ok(faults) => assert!(faults > 100, "only {faults} rounds faulted"),
        Err(e) => panic!("{e}"),
    }
}

fn unmasked_sse_rounds() -> Result<usize, String> {
    use std::sync::atomic::Ordering::SeqCst;
    type Emit = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let ops: [Emit; 20] = [
        |a| a.addps(xmm0, xmm1),
        |a| a.mulpd(xmm0, xmm1),
        |a| a.divss(xmm0, xmm1),
        |a| a.divpd(xmm0, xmm1),
        |a| a.sqrtsd(xmm0, xmm1),
        |a| a.cvtpd2ps(xmm0, xmm1),
        |a| a.cvtsd2ss(xmm0, xmm1),
        |a| a.cmpps(xmm0, xmm1, 1),
        |a| a.comiss(xmm0, xmm1),
        |a| a.cvttss2si(eax, xmm1),
        |a| a.minps(xmm0, xmm1),
        |a| a.subsd(xmm0, xmm1),
        |a| a.cvtps2dq(xmm0, xmm1),
        |a| a.cvtsi2ss(xmm0, rax),
        |a| a.sqrtps(xmm0, xmm1),
        |a| a.maxsd(xmm0, xmm1),
        |a| a.cmpsd_3(xmm0, xmm1, 5),
        |a| a.ucomisd(xmm0, xmm1),
        |a| a.cvtss2sd(xmm0, xmm1),
        |a| a.cvtsd2si(rax, xmm1),
    ];
    let mut rng = Rng(0x0b0e);
    let mut faults = 0;
    for round in 0..1000 {
        let op = ops[round % ops.len()];
        let prog = assemble(&|a| op(a));
        XM_SKIP.store(prog.len() as u64, SeqCst);
        let data = random_data(&mut rng);
        let mut img = default_image();
        let unmask = (rng.next() as u32 & 0x3f) << 7;
        let mx =
            (0x1f80 & !unmask) | ((rng.next() as u32 & 3) << 13) | ((rng.next() as u32 & 1) << 15);
        img[24..28].copy_from_slice(&mx.to_le_bytes());
        for i in 0..2 {
            let off = 0x100 * (1 + (rng.next() % 2) as usize) + 16 * (rng.next() % 8) as usize;
            img[160 + 16 * i..176 + 16 * i].copy_from_slice(&data[off..off + 16]);
        }
        let before = XM_HITS.load(SeqCst);
        let gprs = [rng.next() >> (rng.next() % 64), 0, 0, 0, 0, 0, 0];
        let host = run_native(&prog, &img, &data, &gprs, 0x202);
        let host_faulted = XM_HITS.load(SeqCst) != before;
        let mut emu_faulted = false;
        let emu = run_emulated_until(&prog, &img, &data, &gprs, 0x202, &mut |e| {
            emu_faulted = *e
                == FpuError::Exception {
                    vector: 19,
                    error_code: None,
                };
            emu_faulted
        })
        .map_err(|e| format!("round {round}: emulation raised {e:?}"))?;
        faults += usize::from(host_faulted);
        if host_faulted != emu_faulted {
            return Err(format!(
                "round {round} mxcsr {mx:#x}: host #XM {host_faulted}, emulated {emu_faulted}"
            ));
        }
        if host != emu {
            return Err(format!(
                "round {round} mxcsr {mx:#x}\n--- host\n{}--- emulated\n{}",
                describe(&host),
                describe(&emu)
            ));
        }
    }
    Ok(faults)
}
