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

/// A register or memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rm {
    /// A register number.
    Reg(u8),
    /// A memory operand.
    Mem(MemRef),
}

/// "The count is CL" in [`FastOp::Shd`].
pub const COUNT_CL: u8 = 0xff;

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
    /// NOP, multi-byte NOP, PREFETCHh, ENDBR64, LFENCE and SFENCE (only a
    /// compiler fence, see `shared_ram`; MFENCE is a host fence and runs
    /// generic).
    Nop,
    /// NEG (`neg`) or NOT of a register.
    Unary {
        neg: bool,
        size: u8,
        dst: u8,
        flags: bool,
    },
    /// INC/DEC of memory (CF kept).
    IncDecM { dec: bool, size: u8, mem: MemRef },
    /// Shift or rotate of a register by CL (`op` as `alu::shift`).
    ShiftRC {
        op: u8,
        size: u8,
        dst: u8,
        flags: bool,
    },
    /// SHLD (`left`) / SHRD between registers, by an immediate or by CL
    /// ([`COUNT_CL`]).
    Shd {
        left: bool,
        size: u8,
        dst: u8,
        src: u8,
        count: u8,
    },
    /// One-operand MUL/IMUL: rDX:rAX (AX for bytes) = rAX * src.
    Mul1 {
        signed: bool,
        size: u8,
        src: Rm,
        flags: bool,
    },
    /// DIV/IDIV: rAX, rDX = rDX:rAX / src (#DE on zero or overflow).
    Div1 { signed: bool, size: u8, src: Rm },
    /// IMUL dst, src (truncated).
    Imul2 {
        size: u8,
        dst: u8,
        src: Rm,
        flags: bool,
    },
    /// IMUL dst, src, imm (truncated).
    Imul3 {
        size: u8,
        dst: u8,
        src: Rm,
        imm: u64,
        flags: bool,
    },
    /// BT (`op` 0), BTS, BTR, BTC (3) with the bit number in a register
    /// (`bit_reg`, register destinations only) or an immediate (`bit`).
    Bt {
        op: u8,
        size: u8,
        dst: Rm,
        bit_reg: u8,
        bit: u8,
    },
    /// XCHG between registers.
    XchgRR { size: u8, a: u8, b: u8 },
    /// CMPXCHG without LOCK.
    Cmpxchg { size: u8, dst: Rm, src: u8 },
    /// CBW/CWDE/CDQE (`op` 0..2, by size 2/4/8) and CWD/CDQ/CQO (3..5).
    Convert { op: u8 },
    /// PUSHFQ.
    Pushf,
    /// JMP through a register or memory (ends the block).
    JmpInd { src: Rm },
    /// CALL through a register or memory (ends the block).
    CallInd { src: Rm },
    /// RET imm16 (ends the block).
    RetImm { imm: u16 },
    /// LOOP (`op` 0), LOOPE (1), LOOPNE (2), JRCXZ (3) on RCX (ends the block).
    Loop { op: u8, target: u64 },
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
            // By CL: the count may be zero (flags kept).
            FastOp::ShiftRC { .. } | FastOp::Shd { .. } => (ARITH, ARITH),
            FastOp::Unary { neg: true, .. }
            | FastOp::Mul1 { .. }
            | FastOp::Imul2 { .. }
            | FastOp::Imul3 { .. }
            | FastOp::Cmpxchg { .. } => (0, ARITH),
            FastOp::IncDecM { .. } => (0, ARITH & !CF),
            FastOp::Bt { .. } => (0, CF),
            FastOp::Pushf | FastOp::Loop { .. } => (ARITH, 0),
            FastOp::Generic => (ARITH, 0),
            _ => (0, 0),
        }
    }

    /// Whether the op can raise an exception (memory accesses; generic
    /// instructions are assumed to).
    pub fn may_fault(&self) -> bool {
        let reg = |rm: &Rm| matches!(rm, Rm::Reg(_));
        let safe = match self {
            FastOp::Mul1 { src, .. } | FastOp::Imul2 { src, .. } | FastOp::Imul3 { src, .. } => {
                reg(src)
            }
            FastOp::Bt { dst, .. } | FastOp::Cmpxchg { dst, .. } => reg(dst),
            _ => false,
        };
        !safe
            && !matches!(
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
                    | FastOp::Nop
                    | FastOp::Unary { .. }
                    | FastOp::ShiftRC { .. }
                    | FastOp::Shd { .. }
                    | FastOp::XchgRR { .. }
                    | FastOp::Convert { .. }
                    | FastOp::Loop { .. }
            )
    }

    fn flags_mut(&mut self) -> Option<&mut bool> {
        match self {
            FastOp::AluRR { flags, .. }
            | FastOp::AluRI { flags, .. }
            | FastOp::AluRM { flags, .. }
            | FastOp::AluMR { flags, .. }
            | FastOp::AluMI { flags, .. }
            | FastOp::IncDec { flags, .. }
            | FastOp::Unary { flags, .. }
            | FastOp::ShiftRC { flags, .. }
            | FastOp::Mul1 { flags, .. }
            | FastOp::Imul2 { flags, .. }
            | FastOp::Imul3 { flags, .. } => Some(flags),
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
            | FastOp::AluMI { mem, .. }
            | FastOp::IncDecM { mem, .. }
            | FastOp::Bt {
                dst: Rm::Mem(mem), ..
            }
            | FastOp::Cmpxchg {
                dst: Rm::Mem(mem), ..
            } => Some(mem),
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
    if base == Register::None && index == Register::None && i.memory_displ_size() != 8 {
        // Absolute addressing with a 32-bit address size: leave its width
        // rules to the executor (64-bit absolute addresses are the
        // displacement, as `Cpu::effective` computes them).
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

/// Operand `n` as a register or 64-bit-mode memory operand.
fn rm_op(i: &Instruction, n: u32) -> Option<Rm> {
    match i.op_kind(n) {
        OpKind::Register => Some(Rm::Reg(op_reg(i, n)?.0)),
        OpKind::Memory => Some(Rm::Mem(mem_ref(i)?)),
        _ => None,
    }
}

/// The operand size of operand `n` (register or memory).
fn op_size(i: &Instruction, n: u32) -> Option<u8> {
    match i.op_kind(n) {
        OpKind::Register => Some(op_reg(i, n)?.1),
        OpKind::Memory => mem_size(i),
        _ => None,
    }
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
        M::Inc | M::Dec if k0 == OpKind::Register => {
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
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => {
            let (dst, size) = op_reg(i, 0)?;
            let cmask = if size == 8 { 0x3f } else { 0x1f };
            let op = match m {
                M::Rol => 0,
                M::Ror => 1,
                M::Rcl => 2,
                M::Rcr => 3,
                M::Shl | M::Sal => 4,
                M::Shr => 5,
                _ => 7,
            };
            if k1 == OpKind::Register && i.op_register(1) == Register::CL {
                FastOp::ShiftRC {
                    op,
                    size,
                    dst,
                    flags: true,
                }
            } else if is_imm(k1) {
                FastOp::ShiftRI {
                    op,
                    size,
                    dst,
                    count: (i.immediate(1) & cmask) as u8,
                }
            } else {
                return None;
            }
        }
        M::Shld | M::Shrd => {
            let (dst, size) = op_reg(i, 0)?;
            let (src, _) = op_reg(i, 1)?;
            let count = match i.op_kind(2) {
                OpKind::Register if i.op_register(2) == Register::CL => COUNT_CL,
                k if is_imm(k) => (i.immediate(2) & if size == 8 { 0x3f } else { 0x1f }) as u8,
                _ => return None,
            };
            FastOp::Shd {
                left: m == M::Shld,
                size,
                dst,
                src,
                count,
            }
        }
        M::Nop
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Prefetchw
        | M::Endbr64
        | M::Lfence
        | M::Sfence => FastOp::Nop,
        M::Neg | M::Not => {
            let (dst, size) = op_reg(i, 0)?;
            FastOp::Unary {
                neg: m == M::Neg,
                size,
                dst,
                flags: true,
            }
        }
        M::Inc | M::Dec if k0 == OpKind::Memory => FastOp::IncDecM {
            dec: m == M::Dec,
            size: mem_size(i)?,
            mem: mem_ref(i)?,
        },
        M::Mul | M::Div | M::Idiv | M::Imul if i.op_count() == 1 => {
            let size = op_size(i, 0)?;
            let src = rm_op(i, 0)?;
            match m {
                M::Mul | M::Imul => FastOp::Mul1 {
                    signed: m == M::Imul,
                    size,
                    src,
                    flags: true,
                },
                _ => FastOp::Div1 {
                    signed: m == M::Idiv,
                    size,
                    src,
                },
            }
        }
        M::Imul => {
            let (dst, size) = op_reg(i, 0)?;
            let src = rm_op(i, 1)?;
            if i.op_count() == 3 {
                if !is_imm(i.op_kind(2)) {
                    return None;
                }
                FastOp::Imul3 {
                    size,
                    dst,
                    src,
                    imm: i.immediate(2),
                    flags: true,
                }
            } else {
                FastOp::Imul2 {
                    size,
                    dst,
                    src,
                    flags: true,
                }
            }
        }
        M::Bt | M::Bts | M::Btr | M::Btc => {
            let size = op_size(i, 0)?;
            let dst = rm_op(i, 0)?;
            let op = match m {
                M::Bt => 0,
                M::Bts => 1,
                M::Btr => 2,
                _ => 3,
            };
            let bits = u64::from(size) * 8;
            match k1 {
                // A register bit offset reaches beyond a memory operand:
                // left to the executor.
                OpKind::Register if matches!(dst, Rm::Reg(_)) => FastOp::Bt {
                    op,
                    size,
                    dst,
                    bit_reg: op_reg(i, 1)?.0,
                    bit: 0,
                },
                k if is_imm(k) => FastOp::Bt {
                    op,
                    size,
                    dst,
                    bit_reg: NONE,
                    bit: (i.immediate(1) % bits) as u8,
                },
                _ => return None,
            }
        }
        M::Xchg => {
            let (a, size) = op_reg(i, 0)?;
            let (b, _) = op_reg(i, 1)?;
            FastOp::XchgRR { size, a, b }
        }
        M::Cmpxchg => {
            let size = op_size(i, 0)?;
            let (src, _) = op_reg(i, 1)?;
            FastOp::Cmpxchg {
                size,
                dst: rm_op(i, 0)?,
                src,
            }
        }
        M::Cbw => FastOp::Convert { op: 0 },
        M::Cwde => FastOp::Convert { op: 1 },
        M::Cdqe => FastOp::Convert { op: 2 },
        M::Cwd => FastOp::Convert { op: 3 },
        M::Cdq => FastOp::Convert { op: 4 },
        M::Cqo => FastOp::Convert { op: 5 },
        M::Pushfq => FastOp::Pushf,
        M::Jmp | M::Call
            if matches!(k0, OpKind::Register | OpKind::Memory) && op_size(i, 0)? == 8 =>
        {
            let src = rm_op(i, 0)?;
            if m == M::Jmp {
                FastOp::JmpInd { src }
            } else {
                FastOp::CallInd { src }
            }
        }
        M::Ret if i.op_count() == 1 && i.code_size() == iced_x86::CodeSize::Code64 => {
            if i.stack_pointer_increment() != 8 + i.immediate(0) as i32 {
                return None;
            }
            FastOp::RetImm {
                imm: i.immediate(0) as u16,
            }
        }
        M::Loop | M::Loope | M::Loopne | M::Jrcxz if k0 == OpKind::NearBranch64 => {
            if !format!("{:?}", i.code()).ends_with("_RCX") {
                return None;
            }
            FastOp::Loop {
                op: match m {
                    M::Loop => 0,
                    M::Loope => 1,
                    M::Loopne => 2,
                    _ => 3,
                },
                target: i.near_branch_target(),
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

/// A branch target, or #GP(0) if it is not canonical (the fault is the
/// branch's, as on hardware).
#[inline(always)]
fn canonical(target: u64) -> Result<u64, Exception> {
    if target >> 47 != 0 && target >> 47 != 0x1_ffff {
        return Err(Exception::gp(0));
    }
    Ok(target)
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
                let target = canonical(self.read_la(sp, 8)?)?;
                self.st.gpr[4] = sp.wrapping_add(8);
                self.st.rip = target;
                return Ok(true);
            }
            FastOp::Nop => {}
            FastOp::Unary {
                neg,
                size,
                dst,
                flags,
            } => {
                let bits = u32::from(size) * 8;
                let a = read_reg(self.st.gpr[dst as usize], size);
                let r = if !neg {
                    !a
                } else if flags {
                    let (r, f) = alu::sub(0, a, false, bits);
                    self.st.rflags = (self.st.rflags & !ARITH) | f;
                    r
                } else {
                    a.wrapping_neg()
                };
                write_reg(&mut self.st.gpr[dst as usize], size, r);
            }
            FastOp::IncDecM { dec, size, ref mem } => {
                let la = self.fast_la(mem);
                let a = self.read_la(la, size as usize)?;
                let bits = u32::from(size) * 8;
                let (r, f) = if dec {
                    alu::sub(a, 1, false, bits)
                } else {
                    alu::add(a, 1, false, bits)
                };
                self.write_la(la, r, size as usize)?;
                self.st.rflags = (self.st.rflags & !(ARITH & !CF)) | (f & !CF);
            }
            FastOp::ShiftRC {
                op,
                size,
                dst,
                flags,
            } => {
                let cmask = if size == 8 { 0x3f } else { 0x1f };
                let count = (self.st.gpr[1] & cmask) as u32;
                let a = read_reg(self.st.gpr[dst as usize], size);
                let (r, f) = alu::shift(op, a, count, u32::from(size) * 8, self.st.rflags);
                if flags {
                    self.st.rflags = f | 2;
                }
                write_reg(&mut self.st.gpr[dst as usize], size, r);
            }
            FastOp::Shd {
                left,
                size,
                dst,
                src,
                count,
            } => {
                let count = if count == COUNT_CL {
                    (self.st.gpr[1] & if size == 8 { 0x3f } else { 0x1f }) as u32
                } else {
                    u32::from(count)
                };
                let a = read_reg(self.st.gpr[dst as usize], size);
                let b = read_reg(self.st.gpr[src as usize], size);
                let r = match alu::shift_double(left, a, b, count, u32::from(size) * 8) {
                    Some((r, f)) => {
                        self.st.rflags = (self.st.rflags & !ARITH) | f;
                        r
                    }
                    None => a,
                };
                write_reg(&mut self.st.gpr[dst as usize], size, r);
            }
            FastOp::Mul1 {
                signed,
                size,
                src,
                flags,
            } => {
                let b = self.fast_rm(&src, size)?;
                let bits = u32::from(size) * 8;
                let a = read_reg(self.st.gpr[0], size);
                let (lo, hi, f) = alu::mul_wide(a, b, bits, signed);
                if size == 1 {
                    write_reg(&mut self.st.gpr[0], 2, hi << 8 | lo);
                } else {
                    write_reg(&mut self.st.gpr[0], size, lo);
                    write_reg(&mut self.st.gpr[2], size, hi);
                }
                if flags {
                    self.st.rflags = (self.st.rflags & !ARITH) | f;
                }
            }
            FastOp::Div1 { signed, size, src } => {
                let d = self.fast_rm(&src, size)?;
                let bits = u32::from(size) * 8;
                let dividend = if size == 1 {
                    u128::from(self.st.gpr[0] & 0xffff)
                } else {
                    (u128::from(read_reg(self.st.gpr[2], size)) << bits)
                        | u128::from(read_reg(self.st.gpr[0], size))
                };
                let (q, r) = alu::div_wide(dividend, d, bits, signed).ok_or(Exception::DE)?;
                if size == 1 {
                    write_reg(&mut self.st.gpr[0], 2, r << 8 | q);
                } else {
                    write_reg(&mut self.st.gpr[0], size, q);
                    write_reg(&mut self.st.gpr[2], size, r);
                }
            }
            FastOp::Imul2 {
                size,
                dst,
                src,
                flags,
            } => {
                let b = self.fast_rm(&src, size)?;
                let a = read_reg(self.st.gpr[dst as usize], size);
                let (r, f) = alu::imul_trunc(a, b, u32::from(size) * 8);
                if flags {
                    self.st.rflags = (self.st.rflags & !ARITH) | f;
                }
                write_reg(&mut self.st.gpr[dst as usize], size, r);
            }
            FastOp::Imul3 {
                size,
                dst,
                src,
                imm,
                flags,
            } => {
                let a = self.fast_rm(&src, size)?;
                let (r, f) = alu::imul_trunc(a, imm, u32::from(size) * 8);
                if flags {
                    self.st.rflags = (self.st.rflags & !ARITH) | f;
                }
                write_reg(&mut self.st.gpr[dst as usize], size, r);
            }
            FastOp::Bt {
                op,
                size,
                dst,
                bit_reg,
                bit,
            } => {
                let bits = u32::from(size) * 8;
                let bit = if bit_reg == NONE {
                    u32::from(bit)
                } else {
                    (self.st.gpr[bit_reg as usize] % u64::from(bits)) as u32
                };
                let (nv, cf) = match dst {
                    Rm::Reg(r) => {
                        let v = read_reg(self.st.gpr[r as usize], size);
                        let (nv, cf) = alu::bit_test(v, bit, op);
                        if op != 0 {
                            write_reg(&mut self.st.gpr[r as usize], size, nv);
                        }
                        (nv, cf)
                    }
                    Rm::Mem(ref m) => {
                        let la = self.fast_la(m);
                        let v = self.read_la(la, size as usize)?;
                        let (nv, cf) = alu::bit_test(v, bit, op);
                        if op != 0 {
                            self.write_la(la, nv, size as usize)?;
                        }
                        (nv, cf)
                    }
                };
                let _ = nv;
                self.st.rflags = (self.st.rflags & !CF) | if cf { CF } else { 0 };
            }
            FastOp::XchgRR { size, a, b } => {
                let (va, vb) = (self.st.gpr[a as usize], self.st.gpr[b as usize]);
                write_reg(&mut self.st.gpr[a as usize], size, vb);
                write_reg(&mut self.st.gpr[b as usize], size, va);
            }
            FastOp::Cmpxchg { size, dst, src } => {
                let bits = u32::from(size) * 8;
                let acc = read_reg(self.st.gpr[0], size);
                let new = read_reg(self.st.gpr[src as usize], size);
                let d = match dst {
                    Rm::Reg(r) => read_reg(self.st.gpr[r as usize], size),
                    Rm::Mem(ref m) => self.read_la(self.fast_la(m), size as usize)?,
                };
                let (_, f) = alu::sub(acc, d, false, bits);
                let equal = f & ZF != 0;
                match dst {
                    Rm::Reg(r) if equal => write_reg(&mut self.st.gpr[r as usize], size, new),
                    Rm::Reg(_) => {}
                    // Memory sees its own value written back when unequal
                    // (the locked cycle), before anything else changes.
                    Rm::Mem(ref m) => {
                        let v = if equal { new } else { d };
                        self.write_la(self.fast_la(m), v, size as usize)?;
                    }
                }
                if !equal {
                    write_reg(&mut self.st.gpr[0], size, d);
                }
                self.st.rflags = (self.st.rflags & !ARITH) | f;
            }
            FastOp::Convert { op } => {
                let g = &mut self.st.gpr;
                let a = g[0];
                match op {
                    0 => write_reg(&mut g[0], 2, alu::sign_extend(a, 8)),
                    1 => write_reg(&mut g[0], 4, alu::sign_extend(a, 16)),
                    2 => g[0] = alu::sign_extend(a, 32),
                    _ => {
                        let size = 1u8 << (op - 2);
                        let neg = g[0] >> (u32::from(size) * 8 - 1) & 1 != 0;
                        write_reg(&mut g[2], size, if neg { u64::MAX } else { 0 });
                    }
                }
            }
            FastOp::Pushf => {
                let sp = self.st.gpr[4].wrapping_sub(8);
                self.write_la(sp, self.st.rflags & !(RF | (1 << 17)), 8)?;
                self.st.gpr[4] = sp;
            }
            FastOp::JmpInd { src } => {
                let target = self.fast_rm(&src, 8)?;
                self.st.rip = canonical(target)?;
                return Ok(true);
            }
            FastOp::CallInd { src } => {
                let target = canonical(self.fast_rm(&src, 8)?)?;
                let sp = self.st.gpr[4].wrapping_sub(8);
                self.write_la(sp, next, 8)?;
                self.st.gpr[4] = sp;
                self.st.rip = target;
                return Ok(true);
            }
            FastOp::RetImm { imm } => {
                let sp = self.st.gpr[4];
                let target = canonical(self.read_la(sp, 8)?)?;
                self.st.gpr[4] = sp.wrapping_add(8 + u64::from(imm));
                self.st.rip = target;
                return Ok(true);
            }
            FastOp::Loop { op, target } => {
                let take = if op == 3 {
                    self.st.gpr[1] == 0
                } else {
                    let c = self.st.gpr[1].wrapping_sub(1);
                    self.st.gpr[1] = c;
                    let zf = self.st.rflags & ZF != 0;
                    c != 0
                        && match op {
                            1 => zf,
                            2 => !zf,
                            _ => true,
                        }
                };
                self.st.rip = if take { target } else { next };
                return Ok(true);
            }
            FastOp::Generic => unreachable!("generic ops run through Cpu::execute"),
        }
        Ok(false)
    }

    /// A register or memory operand's value (`size` bytes).
    #[inline(always)]
    fn fast_rm(&mut self, rm: &Rm, size: u8) -> Result<u64, Exception> {
        match *rm {
            Rm::Reg(r) => Ok(read_reg(self.st.gpr[r as usize], size)),
            Rm::Mem(ref m) => self.read_la(self.fast_la(m), size as usize),
        }
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

#[cfg(test)]
mod tests {
    use iced_x86::code_asm::*;
    use iced_x86::{Decoder, DecoderOptions};

    use super::*;

    /// The fast form of one assembled 64-bit instruction.
    fn form(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> FastOp {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a).unwrap();
        let code = a.assemble(0x1000).unwrap();
        classify(&Decoder::with_ip(64, &code, 0x1000, DecoderOptions::NONE).decode())
    }

    #[test]
    fn the_wider_fast_path_covers_what_kernels_run_hot() {
        let fast: Vec<(&str, FastOp)> = vec![
            ("imul r,r", form(|a| a.imul_2(rax, rbx))),
            (
                "imul r,m,imm",
                form(|a| a.imul_3(ecx, dword_ptr(rdi + 8), 7)),
            ),
            ("mul m", form(|a| a.mul(qword_ptr(rsi + rdx * 8)))),
            ("div r", form(|a| a.div(rcx))),
            ("idiv m8", form(|a| a.idiv(byte_ptr(rdi)))),
            ("neg", form(|a| a.neg(r9))),
            ("not", form(|a| a.not(r10d))),
            ("inc m", form(|a| a.inc(dword_ptr(rdi)))),
            ("shl r,cl", form(|a| a.shl(rdx, cl))),
            ("rcr r,imm", form(|a| a.rcr(eax, 3))),
            ("shrd r,r,cl", form(|a| a.shrd(rax, rdx, cl))),
            ("bt r,imm", form(|a| a.bt(rax, 5))),
            ("btr m,imm", form(|a| a.btr(qword_ptr(rdi), 5))),
            ("xchg r,r", form(|a| a.xchg(rax, rbx))),
            (
                "cmpxchg gs:m,r",
                form(|a| a.cmpxchg(qword_ptr(rsi).gs(), rdx)),
            ),
            ("nop m", form(|a| a.nop_1(dword_ptr(rax + rax)))),
            ("cqo", form(|a| a.cqo())),
            ("pushfq", form(|a| a.pushfq())),
            ("jmp r", form(|a| a.jmp(rax))),
            ("call m", form(|a| a.call(qword_ptr(rbx + 0x100)))),
            ("ret imm", form(|a| a.ret_1(16))),
            ("loop", form(|a| a.loop_(0x1000u64))),
            (
                "mov r, gs:abs",
                form(|a| a.mov(rax, qword_ptr(0x1234u64).gs())),
            ),
        ];
        for (name, op) in &fast {
            assert_ne!(*op, FastOp::Generic, "{name}");
        }
        assert!(matches!(
            form(|a| a.mov(rax, qword_ptr(0x1234u64).gs())),
            FastOp::Load {
                mem: MemRef {
                    base: NONE,
                    index: NONE,
                    seg: 2,
                    disp: 0x1234,
                    ..
                },
                ..
            }
        ));
        // Left to the executor: LOCK'd and memory XCHG (atomic), a register
        // bit offset into memory, 32-bit addressing.
        assert_eq!(
            form(|a| a.lock().cmpxchg(qword_ptr(rdi), rdx)),
            FastOp::Generic
        );
        assert_eq!(form(|a| a.xchg(qword_ptr(rdi), rdx)), FastOp::Generic);
        assert_eq!(form(|a| a.bts(qword_ptr(rdi), rdx)), FastOp::Generic);
        assert_eq!(form(|a| a.mov(eax, dword_ptr(edi))), FastOp::Generic);
    }
}
