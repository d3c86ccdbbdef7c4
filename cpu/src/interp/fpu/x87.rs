//! x87 floating-point instructions on the soft-float core.
//!
//! Arithmetic uses [`super::softfloat`] at the precision (PC) and rounding
//! (RC) of FCW; flags accumulate in FSW with the masked responses of the
//! SDM (vol. 1, 8.5). Unmasked invalid/denormal/zero-divide exceptions
//! leave the destination and the stack unchanged and set ES/B, so the next
//! waiting instruction raises #MF. Unmasked overflow/underflow deliver the
//! masked result (the hardware's 2^±24576 bias adjustment is not modelled).

use core::cmp::Ordering;

use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind, Register};

use super::softfloat::{
    self as sf, Class, Decoded, Env, Fp, NanRule, Round, DE, F32, F64, F80 as F80F, IE, OE, PE,
    TOP, UE, ZE,
};
use super::state::{FpuState, F80, SW_B, SW_C0, SW_C1, SW_C2, SW_C3, SW_ES, SW_SF};
use super::{FpuContext, FpuError};

/// Stack-fault marker passed with IE to [`FpuState::x87_flags`].
const SF: u32 = SW_SF as u32;

/// The four basic x87 binary operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
}

/// `a op b` as FADD/FSUB/FMUL/FDIV compute it (unsupported encodings are
/// invalid operands; NaNs follow the x87 rule).
pub(super) fn binary(op: BinOp, a: Decoded, b: Decoded, env: &mut Env) -> Fp {
    if a.unsupported || b.unsupported {
        env.flags |= IE;
        return Fp::default_nan();
    }
    env.denormal_input = a.denormal || b.denormal;
    match op {
        BinOp::Add => sf::add(a.v, b.v, false, NanRule::X87, env),
        BinOp::Sub => sf::add(a.v, b.v, true, NanRule::X87, env),
        BinOp::Mul => sf::mul(a.v, b.v, NanRule::X87, env),
        BinOp::Div => sf::div(a.v, b.v, NanRule::X87, env),
    }
}

/// FCOM/FUCOM comparison: the ordering (None = unordered) with IE/DE in `env`.
pub(super) fn compare(a: Decoded, b: Decoded, signaling: bool, env: &mut Env) -> Option<Ordering> {
    if a.unsupported || b.unsupported {
        env.flags |= IE;
        return None;
    }
    if a.v.is_nan() || b.v.is_nan() {
        if signaling || a.v.is_snan() || b.v.is_snan() {
            env.flags |= IE;
        }
        return None;
    }
    if a.denormal || b.denormal {
        env.flags |= DE;
    }
    sf::compare(a.v, b.v)
}

/// Store conversion of an x87 value to f32/f64/f80 format `fmt` with RC.
pub(super) fn store_float(a: Decoded, fmt: sf::Format, env: &mut Env) -> u128 {
    if a.unsupported {
        env.flags |= IE;
        return sf::pack(Fp::default_nan(), fmt);
    }
    env.fmt = fmt;
    env.prec = fmt.width;
    sf::pack(sf::convert(a.v, env), fmt)
}

/// FIST/FISTTP conversion: `None` means invalid (store the indefinite).
pub(super) fn store_int(a: Decoded, bits: u32, rc: Round, env: &mut Env) -> Option<i64> {
    if a.unsupported {
        env.flags |= IE;
        return None;
    }
    let r = sf::to_int(a.v, bits, rc, env);
    if r.is_none() {
        env.flags |= IE;
    }
    r
}

/// FLDPI and friends: (exponent, 128-bit significand) rounded per RC.
fn constant(m: Mnemonic, rc: Round) -> Option<F80> {
    let (exp, sig): (i32, u128) = match m {
        Mnemonic::Fld1 => (0, 1 << 127),
        Mnemonic::Fldpi => (1, 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1),
        Mnemonic::Fldl2e => (0, 0xb8aa_3b29_5c17_f0bb_be87_fed0_691d_3e88),
        Mnemonic::Fldl2t => (1, 0xd49a_784b_cd1b_8afe_492b_f6ff_4daf_db4c),
        Mnemonic::Fldlg2 => (-2, 0x9a20_9a84_fbcf_f798_8f89_59ac_0b7c_9178),
        Mnemonic::Fldln2 => (-1, 0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af),
        Mnemonic::Fldz => return Some(F80::default()),
        _ => return None,
    };
    let mut env = Env::new(F80F, rc);
    let v = sf::round_pack(false, exp, sf::shr_jam(sig, 1), &mut env);
    Some(F80::encode(v))
}

fn mem_int(size: MemorySize, b: &[u8; 16]) -> Option<i64> {
    Some(match size {
        MemorySize::Int16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
        MemorySize::Int32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        MemorySize::Int64 => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        _ => return None,
    })
}

/// Read the instruction's floating-point or integer memory operand.
fn read_operand(instr: &Instruction, ctx: &mut dyn FpuContext) -> Result<Decoded, FpuError> {
    let size = instr.memory_size();
    let mut b = [0u8; 16];
    let n = size.size().clamp(1, 10);
    ctx.read_mem(0, &mut b[..n])?;
    let bits = u128::from_le_bytes(b);
    Ok(match size {
        MemorySize::Float32 => sf::unpack(bits, F32),
        MemorySize::Float64 => sf::unpack(bits, F64),
        MemorySize::Float80 => sf::unpack(bits, F80F),
        _ => {
            let v = mem_int(size, &b).ok_or(FpuError::NotFpu)?;
            Decoded {
                v: Fp::from_i128(i128::from(v)),
                denormal: false,
                unsupported: false,
            }
        }
    })
}

fn sti(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::ST0 as usize) & 7
}

/// The ST(i) operand of a one- or two-register form (the one that is not
/// ST(0), or ST(0) itself).
fn other_st(instr: &Instruction) -> usize {
    let mut idx = 0;
    for n in 0..instr.op_count() {
        if instr.op_kind(n) == OpKind::Register && instr.op_register(n).is_st() {
            let i = sti(instr.op_register(n));
            if i != 0 {
                idx = i;
            }
        }
    }
    idx
}

fn has_mem(instr: &Instruction) -> bool {
    (0..instr.op_count()).any(|n| instr.op_kind(n) == OpKind::Memory)
}

fn bcd_decode(b: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for i in (0..9).rev() {
        v = v * 100 + i64::from(b[i] >> 4) * 10 + i64::from(b[i] & 15);
    }
    if b[9] & 0x80 != 0 {
        -v
    } else {
        v
    }
}

fn bcd_encode(v: i64) -> [u8; 10] {
    let mut o = [0u8; 10];
    let mut m = v.unsigned_abs();
    for byte in o.iter_mut().take(9) {
        let lo = (m % 10) as u8;
        m /= 10;
        let hi = (m % 10) as u8;
        m /= 10;
        *byte = (hi << 4) | lo;
    }
    if v < 0 {
        o[9] = 0x80;
    }
    o
}

impl FpuState {
    fn rc(&self) -> Round {
        Round::from_bits(u32::from(self.fcw >> 10))
    }

    /// Soft-float environment from FCW; `pc` applies precision control.
    pub(super) fn x87_env(&self, pc: bool) -> Env {
        let mut e = Env::new(F80F, self.rc());
        if pc {
            e.prec = match (self.fcw >> 8) & 3 {
                0 => 24,
                2 => 53,
                _ => 64,
            };
        }
        e.underflow_trap = self.fcw & 0x10 == 0;
        e
    }

    /// Record flags (IE..PE, plus SF) and C1. Returns false when an
    /// unmasked invalid, denormal or zero-divide exception forbids the store.
    fn x87_flags(&mut self, flags: u32, c1: bool) -> bool {
        let mut f = (flags & 0x7f) as u16;
        let mut c1 = c1;
        if f & !(self.fcw & 0x3f) & (IE | DE | ZE) as u16 != 0 {
            // Aborted before the result exists: no overflow/underflow/precision.
            f &= (IE | DE | ZE | SF) as u16;
            c1 = c1 && f & SW_SF != 0;
        }
        self.fsw |= f;
        self.fsw = (self.fsw & !SW_C1) | if c1 { SW_C1 } else { 0 };
        let unmasked = f & 0x3f & !(self.fcw & 0x3f);
        if unmasked != 0 {
            self.fsw |= SW_ES | SW_B;
        }
        unmasked & (IE | DE | ZE) as u16 == 0
    }

    /// Unmasked overflow or underflow of a register result: the hardware
    /// delivers the result rounded with an unbounded exponent, then scaled
    /// by 2^-24576 (overflow) or 2^24576 (underflow). `rerun` recomputes
    /// the operation in a given environment. A result still out of range
    /// after the bias becomes an infinity or a zero.
    fn bias_adjust(&self, env: &mut Env, masked: Fp, rerun: impl FnOnce(&mut Env) -> Fp) -> Fp {
        let oe = env.flags & OE != 0 && self.fcw & OE as u16 == 0;
        let ue = env.flags & UE != 0 && self.fcw & UE as u16 == 0;
        if !oe && !ue {
            return masked;
        }
        let mut wide = *env;
        wide.flags = 0;
        wide.fmt.emin = -(1 << 20);
        wide.fmt.emax = 1 << 20;
        let mut v = rerun(&mut wide);
        if v.class == Class::Finite {
            v.exp += if oe { -24576 } else { 24576 };
            if v.exp > F80F.emax {
                // Still out of range after the bias: infinity, whatever RC says.
                env.flags |= PE;
                env.rounded_up = true;
                return Fp::inf(v.sign);
            }
            if v.exp < F80F.emin {
                env.flags |= PE;
                env.rounded_up = false;
                return Fp::zero(v.sign);
            }
        }
        env.flags = (env.flags & !PE) | (wide.flags & PE);
        env.rounded_up = wide.rounded_up;
        v
    }

    fn env_flags(&mut self, env: &Env) -> bool {
        let c1 = env.flags & PE != 0 && env.rounded_up;
        self.x87_flags(env.flags, c1)
    }

    fn set_cc(&mut self, c3: bool, c2: bool, c0: bool) {
        self.fsw &= !(SW_C3 | SW_C2 | SW_C0);
        if c3 {
            self.fsw |= SW_C3;
        }
        if c2 {
            self.fsw |= SW_C2;
        }
        if c0 {
            self.fsw |= SW_C0;
        }
    }

    /// Stack underflow (#IS, C1=0). True if masked (store the indefinite).
    fn underflow(&mut self) -> bool {
        self.x87_flags(IE | SF, false)
    }

    /// Push `v`, handling stack overflow (#IS, C1=1).
    fn push(&mut self, v: F80) {
        let p = (self.top() + 7) & 7;
        let mut v = v;
        if self.empty & (1 << p) == 0 {
            if !self.x87_flags(IE | SF, true) {
                return;
            }
            v = F80::INDEFINITE;
        }
        self.set_top(self.top() + 7);
        self.set_st(0, v);
    }

    /// Push after a stack underflow was already reported: no second
    /// (overflow) check, as the hardware does.
    fn push_unchecked(&mut self, v: F80) {
        self.set_top(self.top() + 7);
        self.set_st(0, v);
    }

    /// Reinitialise the x87 part (FNINIT).
    pub(super) fn fninit(&mut self) {
        self.fcw = 0x037f;
        self.fsw = 0;
        self.empty = 0xff;
        self.fop = 0;
        self.fip = 0;
        self.fdp = 0;
    }

    fn update_es(&mut self) {
        if self.fsw & 0x3f & !(self.fcw & 0x3f) != 0 {
            self.fsw |= SW_ES | SW_B;
        } else {
            self.fsw &= !(SW_ES | SW_B);
        }
    }

    /// Pending unmasked x87 exception (FSW.ES).
    pub(super) fn x87_pending(&self) -> bool {
        self.fsw & SW_ES != 0
    }

    fn store_env(&self, ctx: &mut dyn FpuContext, small: bool) -> Result<usize, FpuError> {
        let tag = self.full_tag();
        if small {
            let mut b = [0u8; 14];
            b[0..2].copy_from_slice(&self.fcw.to_le_bytes());
            b[2..4].copy_from_slice(&self.fsw.to_le_bytes());
            b[4..6].copy_from_slice(&tag.to_le_bytes());
            b[6..8].copy_from_slice(&(self.fip as u16).to_le_bytes());
            b[8..10].copy_from_slice(&self.fcs.to_le_bytes());
            b[10..12].copy_from_slice(&(self.fdp as u16).to_le_bytes());
            b[12..14].copy_from_slice(&self.fds.to_le_bytes());
            ctx.write_mem(0, &b)?;
            Ok(14)
        } else {
            let mut b = [0u8; 28];
            let dw = |v: u16| (u32::from(v) | 0xffff_0000).to_le_bytes();
            b[0..4].copy_from_slice(&dw(self.fcw));
            b[4..8].copy_from_slice(&dw(self.fsw));
            b[8..12].copy_from_slice(&dw(tag));
            b[12..16].copy_from_slice(&(self.fip as u32).to_le_bytes());
            b[16..20].copy_from_slice(
                &(u32::from(self.fcs) | (u32::from(self.fop) << 16)).to_le_bytes(),
            );
            b[20..24].copy_from_slice(&(self.fdp as u32).to_le_bytes());
            b[24..28].copy_from_slice(&dw(self.fds));
            ctx.write_mem(0, &b)?;
            Ok(28)
        }
    }

    fn load_env(&mut self, ctx: &mut dyn FpuContext, small: bool) -> Result<usize, FpuError> {
        let n = if small { 14 } else { 28 };
        let mut b = [0u8; 28];
        ctx.read_mem(0, &mut b[..n])?;
        let w = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let step = if small { 2 } else { 4 };
        self.set_fcw(w(0));
        self.fsw = w(step);
        self.set_full_tag(w(2 * step));
        if small {
            self.fip = u64::from(w(6));
            self.fcs = w(8);
            self.fdp = u64::from(w(10));
            self.fds = w(12);
        } else {
            self.fip = u64::from(u32::from_le_bytes([b[12], b[13], b[14], b[15]]));
            self.fcs = w(16);
            self.fop = w(18) & 0x7ff;
            self.fdp = u64::from(u32::from_le_bytes([b[20], b[21], b[22], b[23]]));
            self.fds = w(24);
        }
        Ok(n)
    }

    /// Execute one x87 instruction (the caller did the #NM/#MF checks).
    pub(super) fn execute_x87(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<(), FpuError> {
        use Mnemonic as M;
        let m = instr.mnemonic();
        let mem = has_mem(instr);
        let is_control = matches!(
            m,
            M::Fninit
                | M::Finit
                | M::Fnclex
                | M::Fclex
                | M::Fldcw
                | M::Fnstcw
                | M::Fstcw
                | M::Fnstsw
                | M::Fstsw
                | M::Fnstenv
                | M::Fstenv
                | M::Fldenv
                | M::Fnsave
                | M::Fsave
                | M::Frstor
                | M::Wait
        );
        if !is_control {
            if let Some(ip) = ctx.instruction_address() {
                self.fip = ip;
            }
            if mem {
                // 64-bit mode: the selectors are recorded as zero.
                self.fdp = ctx.mem_address();
                self.fds = 0;
            }
        }
        match m {
            // 8087/287 mode controls are FNOPs on later processors.
            M::Wait
            | M::Fnop
            | M::Fneni
            | M::Feni
            | M::Fndisi
            | M::Fdisi
            | M::Fnsetpm
            | M::Fsetpm => {}
            M::Fninit | M::Finit => self.fninit(),
            M::Fnclex | M::Fclex => self.fsw &= !(0xff | SW_B),
            M::Fldcw => {
                let mut b = [0u8; 2];
                ctx.read_mem(0, &mut b)?;
                self.set_fcw(u16::from_le_bytes(b));
                self.update_es();
            }
            M::Fnstcw | M::Fstcw => ctx.write_mem(0, &self.fcw.to_le_bytes())?,
            M::Fnstsw | M::Fstsw => {
                if mem {
                    ctx.write_mem(0, &self.fsw.to_le_bytes())?;
                } else {
                    ctx.write_gpr(Register::AX, u64::from(self.fsw));
                }
            }
            M::Fnstenv | M::Fstenv => {
                self.store_env(ctx, instr.memory_size() == MemorySize::FpuEnv14)?;
                self.fcw |= 0x3f;
            }
            M::Fldenv => {
                self.load_env(ctx, instr.memory_size() == MemorySize::FpuEnv14)?;
                self.update_es();
            }
            M::Fnsave | M::Fsave => {
                let n = self.store_env(ctx, instr.memory_size() == MemorySize::FpuState94)?;
                for i in 0..8 {
                    let r = self.regs[self.phys(i)].to_bytes();
                    ctx.write_mem((n + 10 * i) as u64, &r)?;
                }
                self.fninit();
            }
            M::Frstor => {
                let mut regs = [0u8; 80];
                let small = instr.memory_size() == MemorySize::FpuState94;
                let n = if small { 14 } else { 28 };
                ctx.read_mem(n as u64, &mut regs)?;
                self.load_env(ctx, small)?;
                for i in 0..8 {
                    let p = self.phys(i);
                    self.regs[p] = F80::from_bytes(&regs[10 * i..10 * i + 10]);
                }
                self.update_es();
            }
            M::Ffree | M::Ffreep => {
                let p = self.phys(other_st(instr));
                self.empty |= 1 << p;
                self.fsw &= !SW_C1;
                if m == M::Ffreep {
                    self.pop();
                }
            }
            M::Fincstp => {
                self.set_top(self.top() + 1);
                self.fsw &= !SW_C1;
            }
            M::Fdecstp => {
                self.set_top(self.top() + 7);
                self.fsw &= !SW_C1;
            }
            M::Fld => {
                if mem && self.empty & (1 << ((self.top() + 7) & 7)) == 0 {
                    // Stack overflow is detected before the operand is
                    // examined (no #D/#IA from the load).
                    self.push(F80::INDEFINITE);
                    return Ok(());
                }
                let v = if mem {
                    if instr.memory_size() == MemorySize::Float80 {
                        let mut b = [0u8; 10];
                        ctx.read_mem(0, &mut b)?;
                        F80::from_bytes(&b)
                    } else {
                        let d = read_operand(instr, ctx)?;
                        let mut env = self.x87_env(false);
                        env.denormal_input = d.denormal;
                        let v = sf::convert(d.v, &mut env);
                        // Widening is exact: only IE (SNaN) and DE can arise;
                        // an unmasked DE still loads the value.
                        self.x87_flags(env.flags, false);
                        if env.flags & IE != 0 && self.fcw & 1 == 0 {
                            return Ok(());
                        }
                        F80::encode(v)
                    }
                } else {
                    match self.st(other_st(instr)) {
                        Some(v) => v,
                        None => {
                            // Underflow: the indefinite is pushed without a
                            // second (overflow) check, and C1 stays 0.
                            if self.underflow() {
                                self.push_unchecked(F80::INDEFINITE);
                            }
                            return Ok(());
                        }
                    }
                };
                self.fsw &= !SW_C1;
                self.push(v);
            }
            M::Fild => {
                let d = read_operand(instr, ctx)?;
                self.fsw &= !SW_C1;
                self.push(F80::encode(d.v));
            }
            M::Fbld => {
                let mut b = [0u8; 10];
                ctx.read_mem(0, &mut b)?;
                let v = bcd_decode(&b);
                let mut f = Fp::from_i128(i128::from(v));
                if v == 0 && b[9] & 0x80 != 0 {
                    f = Fp::zero(true);
                }
                self.fsw &= !SW_C1;
                self.push(F80::encode(f));
            }
            M::Fld1 | M::Fldz | M::Fldpi | M::Fldl2e | M::Fldl2t | M::Fldlg2 | M::Fldln2 => {
                let v = constant(m, self.rc()).ok_or(FpuError::NotFpu)?;
                self.fsw &= !SW_C1;
                self.push(v);
            }
            M::Fst | M::Fstp => self.fst(instr, ctx, m == M::Fstp)?,
            M::Fstpnce => {
                // D9 D8+i: FSTP ST(i) that never faults: an empty ST(0)
                // is just popped, leaving ST(i) alone.
                if let Some(v) = self.st(0) {
                    self.set_st(other_st(instr), v);
                }
                self.fsw &= !SW_C1;
                self.pop();
            }
            M::Fist | M::Fistp | M::Fisttp | M::Fbstp => self.fist(instr, ctx, m)?,
            M::Fxch => {
                let i = other_st(instr);
                let (a, b) = (self.st(0), self.st(i));
                if a.is_none() || b.is_none() {
                    if !self.underflow() {
                        return Ok(());
                    }
                } else {
                    self.fsw &= !SW_C1;
                }
                let a = a.unwrap_or(F80::INDEFINITE);
                let b = b.unwrap_or(F80::INDEFINITE);
                self.set_st(0, b);
                self.set_st(i, a);
            }
            M::Fadd
            | M::Faddp
            | M::Fiadd
            | M::Fsub
            | M::Fsubp
            | M::Fisub
            | M::Fsubr
            | M::Fsubrp
            | M::Fisubr
            | M::Fmul
            | M::Fmulp
            | M::Fimul
            | M::Fdiv
            | M::Fdivp
            | M::Fidiv
            | M::Fdivr
            | M::Fdivrp
            | M::Fidivr => self.arith(instr, ctx, m)?,
            M::Fchs | M::Fabs => match self.st(0) {
                Some(mut v) => {
                    if m == M::Fchs {
                        v.se ^= 0x8000;
                    } else {
                        v.se &= 0x7fff;
                    }
                    self.fsw &= !SW_C1;
                    self.set_st(0, v);
                }
                None => {
                    if self.underflow() {
                        self.set_st(0, F80::INDEFINITE);
                    }
                }
            },
            M::Fsqrt | M::Frndint => {
                let Some(a) = self.st_value(0) else {
                    if self.underflow() {
                        self.set_st(0, F80::INDEFINITE);
                    }
                    return Ok(());
                };
                let mut env = self.x87_env(m == M::Fsqrt);
                let r = if a.unsupported {
                    env.flags |= IE;
                    Fp::default_nan()
                } else {
                    env.denormal_input = a.denormal;
                    if m == M::Fsqrt {
                        let r = sf::sqrt(a.v, &mut env);
                        self.bias_adjust(&mut env, r, |e| sf::sqrt(a.v, e))
                    } else {
                        sf::round_to_integral(a.v, &mut env)
                    }
                };
                if self.env_flags(&env) {
                    self.set_st(0, F80::encode(r));
                }
            }
            M::Fscale => self.fscale(),
            M::Fxtract => self.fxtract(),
            M::Fprem | M::Fprem1 => self.fprem(m == M::Fprem1),
            M::Fcom
            | M::Fcomp
            | M::Fcompp
            | M::Fucom
            | M::Fucomp
            | M::Fucompp
            | M::Ficom
            | M::Ficomp
            | M::Ftst
            | M::Fcomi
            | M::Fcomip
            | M::Fucomi
            | M::Fucomip => self.fcom(instr, ctx, m)?,
            M::Fxam => {
                let c1 = self.regs[self.phys(0)].sign();
                let (c3, c2, c0) = match self.st_value(0) {
                    None => (true, false, true),
                    Some(d) if d.unsupported => (false, false, false),
                    Some(d) => match d.v.class {
                        Class::Nan => (false, false, true),
                        Class::Inf => (false, true, true),
                        Class::Zero => (true, false, false),
                        Class::Finite if d.denormal => (true, true, false),
                        Class::Finite => (false, true, false),
                    },
                };
                self.set_cc(c3, c2, c0);
                self.fsw = (self.fsw & !SW_C1) | if c1 { SW_C1 } else { 0 };
            }
            M::Fcmovb
            | M::Fcmove
            | M::Fcmovbe
            | M::Fcmovu
            | M::Fcmovnb
            | M::Fcmovne
            | M::Fcmovnbe
            | M::Fcmovnu => {
                let fl = ctx.rflags().ok_or(FpuError::NotFpu)?;
                let (cf, pf, zf) = (fl & 1 != 0, fl & 4 != 0, fl & 0x40 != 0);
                let cond = match m {
                    M::Fcmovb => cf,
                    M::Fcmove => zf,
                    M::Fcmovbe => cf || zf,
                    M::Fcmovu => pf,
                    M::Fcmovnb => !cf,
                    M::Fcmovne => !zf,
                    M::Fcmovnbe => !cf && !zf,
                    _ => !pf,
                };
                let i = other_st(instr);
                match (self.st(0), self.st(i)) {
                    (Some(_), Some(v)) => {
                        // C1 is left as it was (undefined in the SDM).
                        if cond {
                            self.set_st(0, v);
                        }
                    }
                    _ => {
                        if self.underflow() {
                            self.set_st(0, F80::INDEFINITE);
                        }
                    }
                }
            }
            M::Fsin
            | M::Fcos
            | M::Fsincos
            | M::Fptan
            | M::Fpatan
            | M::F2xm1
            | M::Fyl2x
            | M::Fyl2xp1 => self.transcendental(m),
            _ => return Err(FpuError::NotFpu),
        }
        Ok(())
    }

    fn fst(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        pop: bool,
    ) -> Result<(), FpuError> {
        let src = self.st(0);
        if has_mem(instr) {
            let size = instr.memory_size();
            let fmt = match size {
                MemorySize::Float32 => F32,
                MemorySize::Float64 => F64,
                _ => F80F,
            };
            let nbytes = size.size().clamp(4, 10);
            let bits = match src {
                None => {
                    if !self.underflow() {
                        return Ok(());
                    }
                    if fmt == F80F {
                        F80::INDEFINITE.bits()
                    } else {
                        sf::pack(Fp::default_nan(), fmt)
                    }
                }
                Some(v) if fmt == F80F => {
                    self.fsw &= !SW_C1;
                    v.bits()
                }
                Some(v) => {
                    let mut env = self.x87_env(false);
                    let bits = store_float(v.decode(), fmt, &mut env);
                    let unmasked = env.flags & !u32::from(self.fcw) & 0x1f;
                    if unmasked & (OE | UE) != 0 {
                        // Memory is not written, so nothing was rounded.
                        env.flags &= !PE;
                    }
                    self.env_flags(&env);
                    if unmasked & (IE | OE | UE) != 0 {
                        return Ok(());
                    }
                    bits
                }
            };
            ctx.write_mem(0, &bits.to_le_bytes()[..nbytes])?;
        } else {
            let i = other_st(instr);
            match src {
                Some(v) => {
                    self.fsw &= !SW_C1;
                    self.set_st(i, v);
                }
                None => {
                    if !self.underflow() {
                        return Ok(());
                    }
                    self.set_st(i, F80::INDEFINITE);
                }
            }
        }
        if pop {
            self.pop();
        }
        Ok(())
    }

    fn fist(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        m: Mnemonic,
    ) -> Result<(), FpuError> {
        let size = instr.memory_size();
        let bits: u32 = match size {
            MemorySize::Int16 => 16,
            MemorySize::Int32 => 32,
            MemorySize::Bcd => 80,
            _ => 64,
        };
        let nbytes = (bits / 8) as usize;
        let indefinite: [u8; 10] = if bits == 80 {
            [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff]
        } else {
            let mut b = [0u8; 10];
            b[nbytes - 1] = 0x80;
            b
        };
        let out = match self.st_value(0) {
            None => {
                if !self.underflow() {
                    return Ok(());
                }
                indefinite
            }
            Some(d) => {
                let mut env = self.x87_env(false);
                let rc = if m == Mnemonic::Fisttp {
                    Round::Zero
                } else {
                    self.rc()
                };
                let r = if bits == 80 {
                    store_int(d, 64, rc, &mut env)
                        .and_then(|v| (v.unsigned_abs() <= 999_999_999_999_999_999).then_some(v))
                } else {
                    store_int(d, bits, rc, &mut env)
                };
                if r.is_none() {
                    env.flags = IE;
                }
                if !self.env_flags(&env) {
                    return Ok(());
                }
                match r {
                    None => indefinite,
                    Some(v) if bits == 80 => {
                        let mut b = bcd_encode(v);
                        if v == 0 && d.v.sign {
                            b[9] = 0x80;
                        }
                        b
                    }
                    Some(v) => {
                        let mut b = [0u8; 10];
                        b[..8].copy_from_slice(&v.to_le_bytes());
                        b
                    }
                }
            }
        };
        ctx.write_mem(0, &out[..nbytes])?;
        if m != Mnemonic::Fist {
            self.pop();
        }
        Ok(())
    }

    fn arith(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        m: Mnemonic,
    ) -> Result<(), FpuError> {
        use Mnemonic as M;
        let (dst, src_st) = if has_mem(instr) {
            (0, None)
        } else if instr.op_count() >= 2 {
            (sti(instr.op_register(0)), Some(sti(instr.op_register(1))))
        } else {
            (other_st(instr), Some(0))
        };
        let src = match src_st {
            None => Some(read_operand(instr, ctx)?),
            Some(i) => self.st_value(i),
        };
        let pop = matches!(
            m,
            M::Faddp | M::Fsubp | M::Fsubrp | M::Fmulp | M::Fdivp | M::Fdivrp
        );
        let (Some(a), Some(b)) = (self.st_value(dst), src) else {
            if self.underflow() {
                self.set_st(dst, F80::INDEFINITE);
                if pop {
                    self.pop();
                }
            }
            return Ok(());
        };
        let (op, rev) = match m {
            M::Fadd | M::Faddp | M::Fiadd => (BinOp::Add, false),
            M::Fsub | M::Fsubp | M::Fisub => (BinOp::Sub, false),
            M::Fsubr | M::Fsubrp | M::Fisubr => (BinOp::Sub, true),
            M::Fmul | M::Fmulp | M::Fimul => (BinOp::Mul, false),
            M::Fdiv | M::Fdivp | M::Fidiv => (BinOp::Div, false),
            _ => (BinOp::Div, true),
        };
        let mut env = self.x87_env(true);
        let run = |e: &mut Env| {
            if rev {
                binary(op, b, a, e)
            } else {
                binary(op, a, b, e)
            }
        };
        let r = run(&mut env);
        let r = self.bias_adjust(&mut env, r, run);
        if self.env_flags(&env) {
            self.set_st(dst, F80::encode(r));
            if pop {
                self.pop();
            }
        }
        Ok(())
    }

    fn fcom(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        m: Mnemonic,
    ) -> Result<(), FpuError> {
        use Mnemonic as M;
        let b = match m {
            M::Ftst => Some(sf::unpack(0, F80F)),
            M::Fcompp | M::Fucompp => self.st_value(1),
            _ if has_mem(instr) => Some(read_operand(instr, ctx)?),
            _ => self.st_value(other_st(instr)),
        };
        let mut pops = match m {
            M::Fcompp | M::Fucompp => 2,
            M::Fcomp | M::Fucomp | M::Ficomp | M::Fcomip | M::Fucomip => 1,
            _ => 0,
        };
        let eflags = matches!(m, M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip);
        let ord = match (self.st_value(0), b) {
            (Some(a), Some(b)) => {
                let signaling = !matches!(
                    m,
                    M::Fucom | M::Fucomp | M::Fucompp | M::Fucomi | M::Fucomip
                );
                let mut env = self.x87_env(false);
                let ord = compare(a, b, signaling, &mut env);
                // Even an unmasked exception lets the comparison complete,
                // but the stack is not popped.
                // FCOMI and friends leave C1 alone; FCOM clears it.
                let c1 = eflags && self.fsw & SW_C1 != 0;
                if !self.x87_flags(env.flags, c1) {
                    pops = 0;
                }
                ord
            }
            _ => {
                if !self.underflow() {
                    return Ok(());
                }
                None
            }
        };
        let (c3, c2, c0) = match ord {
            None => (true, true, true),
            Some(Ordering::Less) => (false, false, true),
            Some(Ordering::Equal) => (true, false, false),
            Some(Ordering::Greater) => (false, false, false),
        };
        if eflags {
            let v = (u64::from(c3) << 6) | (u64::from(c2) << 2) | u64::from(c0);
            ctx.set_flags(v, 0x8d5);
        } else {
            self.set_cc(c3, c2, c0);
        }
        for _ in 0..pops {
            self.pop();
        }
        Ok(())
    }

    fn two_operands(&mut self) -> Option<(Decoded, Decoded)> {
        match (self.st_value(0), self.st_value(1)) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => {
                if self.underflow() {
                    self.set_st(0, F80::INDEFINITE);
                }
                None
            }
        }
    }

    fn fscale(&mut self) {
        let Some((a, b)) = self.two_operands() else {
            return;
        };
        let mut env = self.x87_env(false);
        let r = if a.unsupported || b.unsupported {
            env.flags |= IE;
            Fp::default_nan()
        } else if a.v.is_nan() || b.v.is_nan() {
            sf::propagate_nan(a.v, b.v, NanRule::X87, &mut env)
        } else {
            env.denormal_input = a.denormal || b.denormal;
            if env.denormal_input {
                env.flags |= DE;
            }
            match (a.v.class, b.v.class) {
                (Class::Zero, Class::Inf) if !b.v.sign => invalid(&mut env),
                (Class::Inf, Class::Inf) if b.v.sign => invalid(&mut env),
                (Class::Zero | Class::Inf, _) => a.v,
                (Class::Finite, Class::Inf) => {
                    if b.v.sign {
                        Fp::zero(a.v.sign)
                    } else {
                        Fp::inf(a.v.sign)
                    }
                }
                (Class::Finite, _) => {
                    let n = sf::to_int(b.v, 64, Round::Zero, &mut Env::new(F80F, Round::Zero))
                        .unwrap_or(if b.v.sign { i64::MIN } else { i64::MAX })
                        .clamp(-70000, 70000) as i32;
                    let r = sf::round_pack(a.v.sign, a.v.exp + n, a.v.sig, &mut env);
                    self.bias_adjust(&mut env, r, |e| {
                        sf::round_pack(a.v.sign, a.v.exp + n, a.v.sig, e)
                    })
                }
                _ => a.v,
            }
        };
        if self.env_flags(&env) {
            self.set_st(0, F80::encode(r));
        }
    }

    fn fxtract(&mut self) {
        let Some(a) = self.st_value(0) else {
            if self.underflow() {
                self.set_st(0, F80::INDEFINITE);
                self.push_unchecked(F80::INDEFINITE);
            }
            return;
        };
        if self.empty & (1 << ((self.top() + 7) & 7)) == 0 {
            if self.x87_flags(IE | SF, true) {
                self.set_st(0, F80::INDEFINITE);
                self.push(F80::INDEFINITE);
            }
            return;
        }
        let mut env = self.x87_env(false);
        let (e, s) = if a.unsupported {
            env.flags |= IE;
            (Fp::default_nan(), Fp::default_nan())
        } else {
            match a.v.class {
                Class::Nan => {
                    let q = sf::propagate_nan(a.v, a.v, NanRule::X87, &mut env);
                    (q, q)
                }
                Class::Inf => (Fp::inf(false), a.v),
                Class::Zero => {
                    env.flags |= ZE;
                    (Fp::inf(true), a.v)
                }
                Class::Finite => {
                    if a.denormal {
                        env.flags |= DE;
                    }
                    let mut s = a.v;
                    s.exp = 0;
                    (Fp::from_i128(i128::from(a.v.exp)), s)
                }
            }
        };
        if self.env_flags(&env) {
            self.set_st(0, F80::encode(e));
            self.push(F80::encode(s));
        }
    }

    fn fprem(&mut self, ieee: bool) {
        let Some((a, b)) = self.two_operands() else {
            self.fsw &= !SW_C2;
            return;
        };
        let mut env = self.x87_env(false);
        let mut cc = (false, false, false, false); // C3 C2 C1 C0
        let mut computed = false;
        let r = if a.unsupported || b.unsupported {
            env.flags |= IE;
            Fp::default_nan()
        } else if a.v.is_nan() || b.v.is_nan() {
            sf::propagate_nan(a.v, b.v, NanRule::X87, &mut env)
        } else if a.v.class == Class::Inf || b.v.class == Class::Zero {
            invalid(&mut env)
        } else {
            if a.denormal || b.denormal {
                env.flags |= DE;
            }
            computed = true;
            let r = if a.v.class == Class::Zero || b.v.class == Class::Inf {
                a.v
            } else {
                let (r, q, partial) = remainder(a.v, b.v, ieee);
                cc = (q & 2 != 0, partial, q & 1 != 0, q & 4 != 0);
                if r.class == Class::Zero {
                    Fp::zero(a.v.sign)
                } else {
                    r
                }
            };
            // A tiny remainder underflows (exactly) like any result.
            let masked = sf::round_value(r, &mut env);
            self.bias_adjust(&mut env, masked, |e| sf::round_value(r, e))
        };
        if self.x87_flags(env.flags, false) {
            self.set_st(0, F80::encode(r));
            if computed {
                self.set_cc(cc.0, cc.1, cc.3);
                if cc.2 {
                    self.fsw |= SW_C1;
                }
            } else {
                // NaN/invalid operands: C2 cleared, C3/C0 left as they were.
                self.fsw &= !SW_C2;
            }
        }
    }

    /// FSIN etc. via host f64 arithmetic: results may differ from the
    /// hardware in the last bits (the x87 computes these with a 68-bit
    /// internal pi and its own polynomials).
    fn transcendental(&mut self, m: Mnemonic) {
        use Mnemonic as M;
        let binary_op = matches!(m, M::Fpatan | M::Fyl2x | M::Fyl2xp1);
        let (a, b) = if binary_op {
            match self.two_operands() {
                Some(p) => p,
                None => return,
            }
        } else {
            match self.st_value(0) {
                Some(a) => (a, a),
                None => {
                    if self.underflow() {
                        self.set_st(0, F80::INDEFINITE);
                        if matches!(m, M::Fsincos | M::Fptan) {
                            self.push_unchecked(F80::INDEFINITE);
                        }
                    }
                    return;
                }
            }
        };
        let mut env = self.x87_env(false);
        if a.unsupported || b.unsupported {
            env.flags |= IE;
        }
        let to_f64 = |d: Decoded| {
            let mut e = Env::new(F64, Round::Nearest);
            f64::from_bits(sf::pack(sf::convert(d.v, &mut e), F64) as u64)
        };
        let from_f64 = |x: f64| sf::unpack(u128::from(x.to_bits()), F64).v;
        let x = to_f64(a);
        if !binary_op
            && matches!(m, M::Fsin | M::Fcos | M::Fsincos | M::Fptan)
            && a.v.class == Class::Finite
            && a.v.exp >= 63
        {
            self.fsw |= SW_C2;
            return;
        }
        self.fsw &= !SW_C2;
        if a.v.is_nan() || b.v.is_nan() {
            let q = sf::propagate_nan(a.v, b.v, NanRule::X87, &mut env);
            if self.x87_flags(env.flags, false) {
                if binary_op {
                    self.pop();
                }
                self.set_st(0, F80::encode(q));
                if matches!(m, M::Fsincos | M::Fptan) {
                    self.push(F80::encode(q));
                }
            }
            return;
        }
        if a.denormal || b.denormal {
            env.flags |= DE;
        }
        let y = to_f64(b);
        if m == M::Fyl2x && a.v.class == Class::Zero && b.v.class != Class::Zero && !b.v.is_nan() {
            // log2(±0) = -inf: a zero divide, not an invalid operation.
            env.flags |= ZE;
        }
        let (r, second) = match m {
            M::Fsin => (x.sin(), None),
            M::Fcos => (x.cos(), None),
            M::Fsincos => (x.cos(), Some(x.sin())),
            M::Fptan => (1.0, Some(x.tan())),
            M::F2xm1 => ((x * core::f64::consts::LN_2).exp_m1(), None),
            M::Fpatan => (y.atan2(x), None),
            M::Fyl2x => (y * x.log2(), None),
            _ => (y * x.ln_1p() / core::f64::consts::LN_2, None),
        };
        let (r, second) = if matches!(m, M::Fsincos | M::Fptan) {
            // ST(0) is replaced by the first result, then the second is pushed.
            (second.unwrap_or(r), Some(r))
        } else {
            (r, second)
        };
        if r.is_nan() {
            env.flags |= IE;
        } else if x != 0.0 {
            env.flags |= PE;
        }
        if !self.x87_flags(env.flags, false) {
            return;
        }
        let enc = |v: f64| {
            if v.is_nan() {
                F80::INDEFINITE
            } else {
                F80::encode(from_f64(v))
            }
        };
        if binary_op {
            self.pop();
        }
        self.set_st(0, enc(r));
        if let Some(s) = second {
            self.push(enc(s));
        }
    }
}

fn invalid(env: &mut Env) -> Fp {
    env.flags |= IE;
    Fp::default_nan()
}

/// Partial remainder of finite nonzero `a` by `b`: (remainder, low three
/// quotient bits, incomplete). FPREM truncates the quotient, FPREM1
/// rounds it to nearest-even; an exponent difference of 64 or more only
/// reduces by a quotient chunk.
pub(super) fn remainder(a: Fp, b: Fp, ieee: bool) -> (Fp, u64, bool) {
    let ma = (a.sig >> (TOP - 63)) as u64;
    let mb = (b.sig >> (TOP - 63)) as u64;
    let d = a.exp - b.exp;
    if d >= 64 {
        let n = 32 + ((d - 64) % 32);
        // quotient chunk of a / (b * 2^(d-n)), truncated
        let num = u128::from(ma) << n;
        let q = num / u128::from(mb);
        let r = num - q * u128::from(mb);
        let res = Fp::finite(a.sign, a.exp - n - 63 + TOP as i32, r);
        return (res, 0, true);
    }
    if d < 0 {
        if ieee && d == -1 && ma > mb {
            // |a| > |b|/2: quotient 1, remainder a - b (opposite sign).
            let diff = (u128::from(mb) << 1) - u128::from(ma);
            let r = Fp::finite(!a.sign, b.exp - 64 + TOP as i32, diff);
            return (r, 1, false);
        }
        return (a, 0, false);
    }
    let num = u128::from(ma) << d;
    let mut q = num / u128::from(mb);
    let mut r = num % u128::from(mb);
    let mut sign = a.sign;
    if ieee {
        let twice = r << 1;
        if twice > u128::from(mb) || (twice == u128::from(mb) && q & 1 == 1) {
            q += 1;
            r = u128::from(mb) - r;
            sign = !sign;
        }
    }
    let res = Fp::finite(sign, b.exp - 63 + TOP as i32, r);
    (res, q as u64, false)
}
