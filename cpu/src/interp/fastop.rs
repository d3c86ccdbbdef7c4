//! Pre-decoded instructions for the block engine: the common 64-bit
//! integer instructions reduced at decode time to a compact form with their
//! registers, immediates and address parts resolved, so executing one is a
//! single `match` and a few register-file accesses. Everything else stays a
//! [`FastOp::Generic`] iced instruction for `Cpu::execute`.

use iced_x86::{ConditionCode, Instruction, Mnemonic, OpKind, Register};

use super::alu::{self, mask};
use super::cpu::Cpu;
use super::mem::Exception;
use super::state::flags::*;

/// A two-operand arithmetic or logic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluOp {
    /// ADD.
    Add,
    /// OR.
    Or,
    /// ADC.
    Adc,
    /// SBB.
    Sbb,
    /// AND.
    And,
    /// SUB.
    Sub,
    /// XOR.
    Xor,
    /// CMP (SUB without the write).
    Cmp,
    /// TEST (AND without the write).
    Test,
}

impl AluOp {
    fn of(m: Mnemonic) -> Option<AluOp> {
        Some(match m {
            Mnemonic::Add => AluOp::Add,
            Mnemonic::Or => AluOp::Or,
            Mnemonic::Adc => AluOp::Adc,
            Mnemonic::Sbb => AluOp::Sbb,
            Mnemonic::And => AluOp::And,
            Mnemonic::Sub => AluOp::Sub,
            Mnemonic::Xor => AluOp::Xor,
            Mnemonic::Cmp => AluOp::Cmp,
            Mnemonic::Test => AluOp::Test,
            _ => return None,
        })
    }

    /// Whether the result is written back.
    fn writes(self) -> bool {
        !matches!(self, AluOp::Cmp | AluOp::Test)
    }

    /// The flags the operation reads.
    fn reads_flags(self) -> u64 {
        match self {
            AluOp::Adc | AluOp::Sbb => CF,
            _ => 0,
        }
    }
}

/// A memory operand in 64-bit mode: `seg_base + base + index * scale + disp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRef {
    /// Base register number, or `NONE`.
    pub base: u8,
    /// Index register number, or `NONE`.
    pub index: u8,
    /// Index scale (1, 2, 4 or 8).
    pub scale: u8,
    /// 0: no segment base; 1: FS; 2: GS.
    pub seg: u8,
    /// Displacement (RIP-relative operands hold their absolute address).
    pub disp: u64,
}

/// "No register" in [`MemRef`].
pub const NONE: u8 = 0xff;

/// One pre-decoded instruction. `size` is the operand size in bytes
/// (1, 2, 4 or 8); registers are numbers 0..16 (8-bit operands are only
/// the low bytes: AH..BH stay generic). `flags` is false when no later
/// instruction of the block can see the flags this one writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastOp {
    /// `dst op= src` on registers.
    AluRR {
        op: AluOp,
        size: u8,
        dst: u8,
        src: u8,
        flags: bool,
    },
    /// `dst op= imm`.
    AluRI {
        op: AluOp,
        size: u8,
        dst: u8,
        imm: u64,
        flags: bool,
    },
    /// `dst op= [mem]`.
    AluRM {
        op: AluOp,
        size: u8,
        dst: u8,
        mem: MemRef,
        flags: bool,
    },
    /// `[mem] op= src`.
    AluMR {
        op: AluOp,
        size: u8,
        mem: MemRef,
        src: u8,
        flags: bool,
    },
    /// `[mem] op= imm`.
    AluMI {
        op: AluOp,
        size: u8,
        mem: MemRef,
        imm: u64,
        flags: bool,
    },
    /// INC/DEC of a register (CF kept).
    IncDec {
        dec: bool,
        size: u8,
        dst: u8,
        flags: bool,
    },
    /// `dst = src`.
    MovRR { size: u8, dst: u8, src: u8 },
    /// `dst = imm`.
    MovRI { size: u8, dst: u8, imm: u64 },
    /// `dst = [mem]`, zero- or sign-extended from `from` bytes.
    Load {
        size: u8,
        from: u8,
        signed: bool,
        dst: u8,
        mem: MemRef,
    },
    /// `[mem] = src`.
    Store { size: u8, mem: MemRef, src: u8 },
    /// `[mem] = imm`.
    StoreI { size: u8, mem: MemRef, imm: u64 },
    /// `dst = zx/sx(src)` from `from` bytes.
    Extend {
        size: u8,
        from: u8,
        signed: bool,
        dst: u8,
        src: u8,
    },
    /// LEA.
    Lea { size: u8, dst: u8, mem: MemRef },
    /// PUSH r64.
    Push { src: u8 },
    /// PUSH imm (sign-extended to 64 bits).
    PushI { imm: u64 },
    /// POP r64.
    Pop { dst: u8 },
    /// SHL/SHR/SAR/ROL/ROR of a register by an immediate (`op` as `alu::shift`).
    ShiftRI {
        op: u8,
        size: u8,
        dst: u8,
        count: u8,
    },
    /// CMOVcc between registers.
    Cmov {
        cc: ConditionCode,
        size: u8,
        dst: u8,
        src: u8,
    },
    /// SETcc of a low byte register.
    Setcc { cc: ConditionCode, dst: u8 },
    /// Jcc rel (ends the block).
    Jcc { cc: ConditionCode, target: u64 },
    /// JMP rel (ends the block).
    Jmp { target: u64 },
    /// CALL rel (ends the block).
    Call { target: u64 },
    /// RET (ends the block).
    Ret,
    /// Anything else: the full executor.
    Generic,
}

impl FastOp {
    /// The flags this op reads and writes: (read, written).
    pub fn flag_use(&self) -> (u64, u64) {
        match *self {
            FastOp::AluRR { op, .. }
            | FastOp::AluRI { op, .. }
            | FastOp::AluRM { op, .. }
            | FastOp::AluMR { op, .. }
            | FastOp::AluMI { op, .. } => (op.reads_flags(), ARITH),
            FastOp::IncDec { .. } => (0, ARITH & !CF),
            FastOp::Cmov { .. } | FastOp::Setcc { .. } | FastOp::Jcc { .. } => (ARITH, 0),
            // Shifts by an immediate keep flags on a zero count; treat
            // them as reading everything so earlier flags stay exact.
            FastOp::ShiftRI { count, .. } => (ARITH, if count == 0 { 0 } else { ARITH }),
            FastOp::Generic => (ARITH, 0),
            _ => (0, 0),
        }
    }

    /// Whether the op can raise an exception (memory accesses; generic
    /// instructions are assumed to).
    pub fn may_fault(&self) -> bool {
        !matches!(
            self,
            FastOp::AluRR { .. }
                | FastOp::AluRI { .. }
                | FastOp::IncDec { .. }
                | FastOp::MovRR { .. }
                | FastOp::MovRI { .. }
                | FastOp::Extend { .. }
                | FastOp::Lea { .. }
                | FastOp::ShiftRI { .. }
                | FastOp::Cmov { .. }
                | FastOp::Setcc { .. }
                | FastOp::Jcc { .. }
                | FastOp::Jmp { .. }
        )
    }

    fn flags_mut(&mut self) -> Option<&mut bool> {
        match self {
            FastOp::AluRR { flags, .. }
            | FastOp::AluRI { flags, .. }
            | FastOp::AluRM { flags, .. }
            | FastOp::AluMR { flags, .. }
            | FastOp::AluMI { flags, .. }
            | FastOp::IncDec { flags, .. } => Some(flags),
            _ => None,
        }
    }

    /// The memory operand this op stores through, if any (PUSH and CALL
    /// store to the stack, which is not code).
    pub fn store_target(&self) -> Option<&MemRef> {
        match self {
            FastOp::Store { mem, .. }
            | FastOp::StoreI { mem, .. }
            | FastOp::AluMR { mem, .. }
            | FastOp::AluMI { mem, .. } => Some(mem),
            _ => None,
        }
    }

    /// Mark the flags this op writes dead (no later reader).
    pub fn drop_flags(&mut self) {
        if let Some(f) = self.flags_mut() {
            *f = false;
        }
    }

    /// Compute this op's flags even if they were found dead.
    pub fn keep_flags(&mut self) {
        if let Some(f) = self.flags_mut() {
            *f = true;
        }
    }
}

/// A 64-bit general register's number, for registers the fast path
/// handles (8-bit high registers excluded).
fn reg_num(r: Register) -> Option<u8> {
    if matches!(r, Register::AH | Register::CH | Register::DH | Register::BH) {
        return None;
    }
    let full = r.full_register();
    (Register::RAX..=Register::R15)
        .contains(&full)
        .then(|| (full as usize - Register::RAX as usize) as u8)
}

fn mem_ref(i: &Instruction) -> Option<MemRef> {
    let seg = match i.memory_segment() {
        Register::FS => 1,
        Register::GS => 2,
        _ => 0,
    };
    let base = i.memory_base();
    let index = i.memory_index();
    let base_num = match base {
        Register::None | Register::RIP => NONE,
        r if r.size() == 8 => reg_num(r)?,
        _ => return None,
    };
    let index_num = match index {
        Register::None => NONE,
        r if r.size() == 8 => reg_num(r)?,
        _ => return None,
    };
    if base == Register::None && index == Register::None {
        // Absolute addressing: leave its width rules to the executor.
        return None;
    }
    Some(MemRef {
        base: base_num,
        index: index_num,
        scale: i.memory_index_scale() as u8,
        seg,
        disp: i.memory_displacement64(),
    })
}

fn op_reg(i: &Instruction, n: u32) -> Option<(u8, u8)> {
    if i.op_kind(n) != OpKind::Register {
        return None;
    }
    let r = i.op_register(n);
    let size = r.size();
    if !matches!(size, 1 | 2 | 4 | 8) {
        return None;
    }
    Some((reg_num(r)?, size as u8))
}

fn is_imm(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

fn mem_size(i: &Instruction) -> Option<u8> {
    match i.memory_size().size() {
        s @ (1 | 2 | 4 | 8) => Some(s as u8),
        _ => None,
    }
}

/// Reduce a 64-bit-mode instruction to a [`FastOp`] (or `Generic`).
pub fn classify(i: &Instruction) -> FastOp {
    classify_inner(i).unwrap_or(FastOp::Generic)
}

fn classify_inner(i: &Instruction) -> Option<FastOp> {
    use Mnemonic as M;
    if i.has_lock_prefix() || i.has_xacquire_prefix() || i.has_xrelease_prefix() {
        return None;
    }
    let m = i.mnemonic();
    let k0 = i.op_kind(0);
    let k1 = if i.op_count() > 1 {
        i.op_kind(1)
    } else {
        OpKind::Register
    };
    if let Some(op) = AluOp::of(m) {
        if i.op_count() != 2 {
            return None;
        }
        return Some(match (k0, k1) {
            (OpKind::Register, OpKind::Register) => {
                let (dst, size) = op_reg(i, 0)?;
                let (src, _) = op_reg(i, 1)?;
                FastOp::AluRR {
                    op,
                    size,
                    dst,
                    src,
                    flags: true,
                }
            }
            (OpKind::Register, k) if is_imm(k) => {
                let (dst, size) = op_reg(i, 0)?;
                let imm = i.immediate(1) & mask(u32::from(size) * 8);
                FastOp::AluRI {
                    op,
                    size,
                    dst,
                    imm,
                    flags: true,
                }
            }
            (OpKind::Register, OpKind::Memory) => {
                let (dst, size) = op_reg(i, 0)?;
                FastOp::AluRM {
                    op,
                    size,
                    dst,
                    mem: mem_ref(i)?,
                    flags: true,
                }
            }
            (OpKind::Memory, OpKind::Register) => {
                let (src, size) = op_reg(i, 1)?;
                FastOp::AluMR {
                    op,
                    size,
                    mem: mem_ref(i)?,
                    src,
                    flags: true,
                }
            }
            (OpKind::Memory, k) if is_imm(k) => {
                let size = mem_size(i)?;
                let imm = i.immediate(1) & mask(u32::from(size) * 8);
                FastOp::AluMI {
                    op,
                    size,
                    mem: mem_ref(i)?,
                    imm,
                    flags: true,
                }
            }
            _ => return None,
        });
    }
    Some(match m {
        M::Inc | M::Dec => {
            let (dst, size) = op_reg(i, 0)?;
            FastOp::IncDec {
                dec: m == M::Dec,
                size,
                dst,
                flags: true,
            }
        }
        M::Mov => match (k0, k1) {
            (OpKind::Register, OpKind::Register) => {
                let (dst, size) = op_reg(i, 0)?;
                let (src, _) = op_reg(i, 1)?;
                FastOp::MovRR { size, dst, src }
            }
            (OpKind::Register, k) if is_imm(k) => {
                let (dst, size) = op_reg(i, 0)?;
                FastOp::MovRI {
                    size,
                    dst,
                    imm: i.immediate(1) & mask(u32::from(size) * 8),
                }
            }
            (OpKind::Register, OpKind::Memory) => {
                let (dst, size) = op_reg(i, 0)?;
                FastOp::Load {
                    size,
                    from: size,
                    signed: false,
                    dst,
                    mem: mem_ref(i)?,
                }
            }
            (OpKind::Memory, OpKind::Register) => {
                let (src, size) = op_reg(i, 1)?;
                FastOp::Store {
                    size,
                    mem: mem_ref(i)?,
                    src,
                }
            }
            (OpKind::Memory, k) if is_imm(k) => {
                let size = mem_size(i)?;
                FastOp::StoreI {
                    size,
                    mem: mem_ref(i)?,
                    imm: i.immediate(1) & mask(u32::from(size) * 8),
                }
            }
            _ => return None,
        },
        M::Movzx | M::Movsx | M::Movsxd => {
            let (dst, size) = op_reg(i, 0)?;
            let signed = m != M::Movzx;
            match k1 {
                OpKind::Register => {
                    let (src, from) = op_reg(i, 1)?;
                    FastOp::Extend {
                        size,
                        from,
                        signed,
                        dst,
                        src,
                    }
                }
                OpKind::Memory => {
                    let from = mem_size(i)?;
                    FastOp::Load {
                        size,
                        from,
                        signed,
                        dst,
                        mem: mem_ref(i)?,
                    }
                }
                _ => return None,
            }
        }
        M::Lea => {
            let (dst, size) = op_reg(i, 0)?;
            if size < 4 {
                return None;
            }
            FastOp::Lea {
                size,
                dst,
                mem: mem_ref(i)?,
            }
        }
        M::Push => match k0 {
            OpKind::Register => {
                let (src, size) = op_reg(i, 0)?;
                if size != 8 {
                    return None;
                }
                FastOp::Push { src }
            }
            k if is_imm(k) && i.stack_pointer_increment() == -8 => FastOp::PushI {
                imm: i.immediate(0),
            },
            _ => return None,
        },
        M::Pop => {
            let (dst, size) = op_reg(i, 0)?;
            if size != 8 || dst == 4 {
                return None;
            }
            FastOp::Pop { dst }
        }
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror => {
            let (dst, size) = op_reg(i, 0)?;
            if !is_imm(k1) {
                return None;
            }
            let cmask = if size == 8 { 0x3f } else { 0x1f };
            let op = match m {
                M::Rol => 0,
                M::Ror => 1,
                M::Shl | M::Sal => 4,
                M::Shr => 5,
                _ => 7,
            };
            FastOp::ShiftRI {
                op,
                size,
                dst,
                count: (i.immediate(1) & cmask) as u8,
            }
        }
        _ if i.condition_code() != ConditionCode::None => match m {
            M::Cmovo
            | M::Cmovno
            | M::Cmovb
            | M::Cmovae
            | M::Cmove
            | M::Cmovne
            | M::Cmovbe
            | M::Cmova
            | M::Cmovs
            | M::Cmovns
            | M::Cmovp
            | M::Cmovnp
            | M::Cmovl
            | M::Cmovge
            | M::Cmovle
            | M::Cmovg => {
                let (dst, size) = op_reg(i, 0)?;
                let (src, _) = op_reg(i, 1)?;
                FastOp::Cmov {
                    cc: i.condition_code(),
                    size,
                    dst,
                    src,
                }
            }
            M::Seto
            | M::Setno
            | M::Setb
            | M::Setae
            | M::Sete
            | M::Setne
            | M::Setbe
            | M::Seta
            | M::Sets
            | M::Setns
            | M::Setp
            | M::Setnp
            | M::Setl
            | M::Setge
            | M::Setle
            | M::Setg => {
                let (dst, _) = op_reg(i, 0)?;
                FastOp::Setcc {
                    cc: i.condition_code(),
                    dst,
                }
            }
            _ if matches!(k0, OpKind::NearBranch64) && i.is_jcc_short_or_near() => FastOp::Jcc {
                cc: i.condition_code(),
                target: i.near_branch_target(),
            },
            _ => return None,
        },
        M::Jmp if k0 == OpKind::NearBranch64 => FastOp::Jmp {
            target: i.near_branch_target(),
        },
        M::Call if k0 == OpKind::NearBranch64 => FastOp::Call {
            target: i.near_branch_target(),
        },
        M::Ret if i.op_count() == 0 && i.code_size() == iced_x86::CodeSize::Code64 => {
            if i.stack_pointer_increment() != 8 {
                return None;
            }
            FastOp::Ret
        }
        _ => return None,
    })
}

#[inline(always)]
fn write_reg(g: &mut u64, size: u8, v: u64) {
    *g = match size {
        8 => v,
        4 => v & 0xffff_ffff,
        2 => (*g & !0xffff) | (v & 0xffff),
        _ => (*g & !0xff) | (v & 0xff),
    };
}

#[inline(always)]
fn read_reg(g: u64, size: u8) -> u64 {
    g & mask(u32::from(size) * 8)
}

impl Cpu {
    /// The linear address of a fast memory operand.
    #[inline(always)]
    pub(super) fn fast_la(&self, m: &MemRef) -> u64 {
        let a = self.fast_ea(m);
        match m.seg {
            0 => a,
            1 => a.wrapping_add(self.st.seg[super::state::Seg::Fs as usize].base),
            _ => a.wrapping_add(self.st.seg[super::state::Seg::Gs as usize].base),
        }
    }

    /// The effective (segment-relative) address of a fast memory operand.
    #[inline(always)]
    fn fast_ea(&self, m: &MemRef) -> u64 {
        let mut a = m.disp;
        if m.base != NONE {
            a = a.wrapping_add(self.st.gpr[m.base as usize]);
        }
        if m.index != NONE {
            a = a.wrapping_add(self.st.gpr[m.index as usize].wrapping_mul(u64::from(m.scale)));
        }
        a
    }

    /// `a op b` on `size` bytes: the result, and the flags when `flags`.
    #[inline(always)]
    fn fast_alu(&mut self, op: AluOp, size: u8, a: u64, b: u64, flags: bool) -> u64 {
        let bits = u32::from(size) * 8;
        let m = mask(bits);
        match op {
            AluOp::Add | AluOp::Adc | AluOp::Sub | AluOp::Sbb | AluOp::Cmp => {
                let carry = self.st.rflags & CF != 0;
                if !flags {
                    return match op {
                        AluOp::Add => a.wrapping_add(b),
                        AluOp::Adc => a.wrapping_add(b).wrapping_add(u64::from(carry)),
                        AluOp::Sbb => a.wrapping_sub(b).wrapping_sub(u64::from(carry)),
                        _ => a.wrapping_sub(b),
                    } & m;
                }
                let (r, f) = match op {
                    AluOp::Add => alu::add(a, b, false, bits),
                    AluOp::Adc => alu::add(a, b, carry, bits),
                    AluOp::Sbb => alu::sub(a, b, carry, bits),
                    _ => alu::sub(a, b, false, bits),
                };
                self.st.rflags = (self.st.rflags & !ARITH) | f;
                r
            }
            _ => {
                let r = match op {
                    AluOp::Or => a | b,
                    AluOp::Xor => a ^ b,
                    _ => a & b,
                } & m;
                if flags {
                    self.st.rflags = (self.st.rflags & !ARITH) | alu::logic(r, bits);
                }
                r
            }
        }
    }

    /// Execute a fast op (RIP is not advanced; branches set it).
    /// `Ok(true)`: the op transferred control (the block ends).
    #[inline(always)]
    pub(super) fn exec_fast(&mut self, op: &FastOp, next: u64) -> Result<bool, Exception> {
        match *op {
            FastOp::AluRR {
                op,
                size,
                dst,
                src,
                flags,
            } => {
                let a = read_reg(self.st.gpr[dst as usize], size);
                let b = read_reg(self.st.gpr[src as usize], size);
                let r = self.fast_alu(op, size, a, b, flags);
                if op.writes() {
                    write_reg(&mut self.st.gpr[dst as usize], size, r);
                }
            }
            FastOp::AluRI {
                op,
                size,
                dst,
                imm,
                flags,
            } => {
                let a = read_reg(self.st.gpr[dst as usize], size);
                let r = self.fast_alu(op, size, a, imm, flags);
                if op.writes() {
                    write_reg(&mut self.st.gpr[dst as usize], size, r);
                }
            }
            FastOp::AluRM {
                op,
                size,
                dst,
                ref mem,
                flags,
            } => {
                let b = self.read_la(self.fast_la(mem), size as usize)?;
                let a = read_reg(self.st.gpr[dst as usize], size);
                let r = self.fast_alu(op, size, a, b, flags);
                if op.writes() {
                    write_reg(&mut self.st.gpr[dst as usize], size, r);
                }
            }
            FastOp::AluMR {
                op,
                size,
                ref mem,
                src,
                flags,
            } => {
                let la = self.fast_la(mem);
                let a = self.read_la(la, size as usize)?;
                let b = read_reg(self.st.gpr[src as usize], size);
                let r = self.fast_alu_checked(op, size, a, b, flags, la)?;
                let _ = r;
            }
            FastOp::AluMI {
                op,
                size,
                ref mem,
                imm,
                flags,
            } => {
                let la = self.fast_la(mem);
                let a = self.read_la(la, size as usize)?;
                self.fast_alu_checked(op, size, a, imm, flags, la)?;
            }
            FastOp::IncDec {
                dec,
                size,
                dst,
                flags,
            } => {
                let bits = u32::from(size) * 8;
                let a = read_reg(self.st.gpr[dst as usize], size);
                let r = if flags {
                    let (r, f) = if dec {
                        alu::sub(a, 1, false, bits)
                    } else {
                        alu::add(a, 1, false, bits)
                    };
                    self.st.rflags = (self.st.rflags & !(ARITH & !CF)) | (f & !CF);
                    r
                } else if dec {
                    a.wrapping_sub(1)
                } else {
                    a.wrapping_add(1)
                };
                write_reg(&mut self.st.gpr[dst as usize], size, r);
            }
            FastOp::MovRR { size, dst, src } => {
                let v = self.st.gpr[src as usize];
                write_reg(&mut self.st.gpr[dst as usize], size, v);
            }
            FastOp::MovRI { size, dst, imm } => {
                write_reg(&mut self.st.gpr[dst as usize], size, imm)
            }
            FastOp::Load {
                size,
                from,
                signed,
                dst,
                ref mem,
            } => {
                let mut v = self.read_la(self.fast_la(mem), from as usize)?;
                if signed && from < size {
                    v = alu::sign_extend(v, u32::from(from) * 8);
                }
                write_reg(&mut self.st.gpr[dst as usize], size, v);
            }
            FastOp::Store { size, ref mem, src } => {
                let v = self.st.gpr[src as usize];
                self.write_la(self.fast_la(mem), v, size as usize)?;
            }
            FastOp::StoreI { size, ref mem, imm } => {
                self.write_la(self.fast_la(mem), imm, size as usize)?;
            }
            FastOp::Extend {
                size,
                from,
                signed,
                dst,
                src,
            } => {
                let mut v = read_reg(self.st.gpr[src as usize], from);
                if signed {
                    v = alu::sign_extend(v, u32::from(from) * 8);
                }
                write_reg(&mut self.st.gpr[dst as usize], size, v);
            }
            FastOp::Lea { size, dst, ref mem } => {
                let a = self.fast_ea(mem);
                write_reg(&mut self.st.gpr[dst as usize], size, a);
            }
            FastOp::Push { src } => {
                let v = self.st.gpr[src as usize];
                let sp = self.st.gpr[4].wrapping_sub(8);
                self.write_la(sp, v, 8)?;
                self.st.gpr[4] = sp;
            }
            FastOp::PushI { imm } => {
                let sp = self.st.gpr[4].wrapping_sub(8);
                self.write_la(sp, imm, 8)?;
                self.st.gpr[4] = sp;
            }
            FastOp::Pop { dst } => {
                let sp = self.st.gpr[4];
                let v = self.read_la(sp, 8)?;
                self.st.gpr[4] = sp.wrapping_add(8);
                self.st.gpr[dst as usize] = v;
            }
            FastOp::ShiftRI {
                op,
                size,
                dst,
                count,
            } => {
                let a = read_reg(self.st.gpr[dst as usize], size);
                let (r, f) =
                    alu::shift(op, a, u32::from(count), u32::from(size) * 8, self.st.rflags);
                self.st.rflags = f | 2;
                write_reg(&mut self.st.gpr[dst as usize], size, r);
            }
            FastOp::Cmov { cc, size, dst, src } => {
                let v = if self.cond(cc) {
                    self.st.gpr[src as usize]
                } else {
                    self.st.gpr[dst as usize]
                };
                write_reg(&mut self.st.gpr[dst as usize], size, v);
            }
            FastOp::Setcc { cc, dst } => {
                let v = u64::from(self.cond(cc));
                write_reg(&mut self.st.gpr[dst as usize], 1, v);
            }
            FastOp::Jcc { cc, target } => {
                self.st.rip = if self.cond(cc) { target } else { next };
                return Ok(true);
            }
            FastOp::Jmp { target } => {
                self.st.rip = target;
                return Ok(true);
            }
            FastOp::Call { target } => {
                let sp = self.st.gpr[4].wrapping_sub(8);
                self.write_la(sp, next, 8)?;
                self.st.gpr[4] = sp;
                self.st.rip = target;
                return Ok(true);
            }
            FastOp::Ret => {
                let sp = self.st.gpr[4];
                let target = self.read_la(sp, 8)?;
                if target >> 47 != 0 && target >> 47 != 0x1_ffff {
                    return Err(Exception::gp(0));
                }
                self.st.gpr[4] = sp.wrapping_add(8);
                self.st.rip = target;
                return Ok(true);
            }
            FastOp::Generic => unreachable!("generic ops run through Cpu::execute"),
        }
        Ok(false)
    }

    /// A read-modify-write on memory at `la`: the store happens before the
    /// flags change, so a faulting store leaves the flags untouched.
    #[inline(always)]
    fn fast_alu_checked(
        &mut self,
        op: AluOp,
        size: u8,
        a: u64,
        b: u64,
        flags: bool,
        la: u64,
    ) -> Result<u64, Exception> {
        let saved = self.st.rflags;
        let r = self.fast_alu(op, size, a, b, flags);
        if op.writes() {
            if let Err(e) = self.write_la(la, r, size as usize) {
                self.st.rflags = saved;
                return Err(e);
            }
        }
        Ok(r)
    }
}
