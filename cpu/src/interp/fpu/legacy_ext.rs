//! Legacy-SSE encoding glue for SSE3, SSSE3, SSE4.1, SSE4.2 (string
//! compares, PCMPGTQ), AES-NI, PCLMULQDQ and SHA: picks operands out of the
//! decoded instruction and calls the encoding-independent semantics (the
//! lane-wise ones through `ext_lanes`; inserts, extracts, PTEST, the dot
//! products and the string compares directly). Operand fetch, the alignment check and the #UD/#NM checks are
//! done by the caller (`simd::execute_vector`, `check_unit`).

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::ext_lanes::{lane_op, Lane};
use super::softfloat::{F32, F64};
use super::{pcmpstr, sse41, sse41fp};
use super::{FpuContext, FpuError, FpuState};

/// The arithmetic flags string compares and PTEST write.
pub(super) const ARITH_FLAGS: u64 = 0x8d5;

impl FpuState {
    /// Executes one of the extension instructions; `Ok(false)` if `instr`
    /// is not one. `a` is the destination register's value (0 for a memory
    /// destination), `src` operand 1's value (register or memory), `w` the
    /// vector width in bytes (8 for the MMX forms of SSSE3).
    pub(super) fn execute_extension(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        a: u128,
        src: u128,
        w: usize,
    ) -> Result<bool, FpuError> {
        use Mnemonic as M;
        let m = instr.mnemonic();
        let imm = instr.immediate8();
        let mx = self.mxcsr();
        let mut flags = 0u32;
        let r: u128 = match m {
            M::Insertps => {
                let s = if instr.op_kind(1) == OpKind::Memory {
                    src as u32
                } else {
                    sse41::extract(src, 4, imm >> 6) as u32
                };
                sse41::insertps(a, s, imm)
            }
            M::Pinsrb => sse41::insert(a, src as u64, 1, imm),
            M::Pinsrd => sse41::insert(a, src as u64, 4, imm),
            M::Pinsrq => sse41::insert(a, src as u64, 8, imm),
            M::Pextrb | M::Pextrd | M::Pextrq | M::Extractps | M::Pextrw => {
                let size = match m {
                    M::Pextrb => 1,
                    M::Pextrw => 2,
                    M::Pextrq => 8,
                    _ => 4,
                };
                if m == M::Pextrw && instr.op_kind(0) != OpKind::Memory {
                    // The SSE2 register form is handled in `simd`.
                    return Ok(false);
                }
                let v = sse41::extract(src, size, imm);
                self.write_dest(instr, ctx, u128::from(v))?;
                return Ok(true);
            }
            M::Movntdqa => src,
            M::Ptest => {
                ctx.set_flags(sse41::ptest(a, src), ARITH_FLAGS);
                return Ok(true);
            }
            M::Dpps | M::Dppd => {
                let fmt = if m == M::Dpps { F32 } else { F64 };
                let r = sse41fp::dot(a, src, fmt, imm, mx, &mut flags);
                self.commit_sse_flags(flags, ctx)?;
                self.write_dest(instr, ctx, r)?;
                return Ok(true);
            }
            // SSE4.2 string compares
            M::Pcmpestri
            | M::Pcmpestri64
            | M::Pcmpestrm
            | M::Pcmpestrm64
            | M::Pcmpistri
            | M::Pcmpistrm => {
                self.string_compare(m, ctx, a, src, imm);
                return Ok(true);
            }
            _ => {
                let lane = Lane {
                    a,
                    b: src,
                    sel: self.xmm(0),
                    imm,
                    half: 0,
                    w,
                };
                match lane_op(m, &lane, mx, &mut flags) {
                    Some(r) => r,
                    None => return Ok(false),
                }
            }
        };
        if instr.op_kind(0) != OpKind::Register {
            return Err(FpuError::NotFpu);
        }
        // Float instructions: an unmasked exception leaves the destination.
        self.sse_flags(flags, ctx)?;
        self.write_dest(instr, ctx, r)?;
        Ok(true)
    }

    /// PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM: lengths from EAX/EDX (RAX/
    /// RDX for the REX.W forms) or the null terminators; index to ECX or
    /// mask to XMM0; flags.
    pub(super) fn string_compare(
        &mut self,
        m: Mnemonic,
        ctx: &mut dyn FpuContext,
        a: u128,
        b: u128,
        imm: u8,
    ) {
        use Mnemonic as M;
        let (la, lb) = match m {
            M::Pcmpestri | M::Pcmpestrm => {
                let len = |r| i64::from(ctx.read_gpr(r) as u32 as i32);
                (
                    pcmpstr::explicit_len(len(Register::EAX), imm),
                    pcmpstr::explicit_len(len(Register::EDX), imm),
                )
            }
            M::Pcmpestri64 | M::Pcmpestrm64 => (
                pcmpstr::explicit_len(ctx.read_gpr(Register::RAX) as i64, imm),
                pcmpstr::explicit_len(ctx.read_gpr(Register::RDX) as i64, imm),
            ),
            _ => (pcmpstr::implicit_len(a, imm), pcmpstr::implicit_len(b, imm)),
        };
        let c = pcmpstr::compare(a, b, la, lb, imm);
        if matches!(m, M::Pcmpestri | M::Pcmpestri64 | M::Pcmpistri) {
            ctx.write_gpr(Register::ECX, u64::from(pcmpstr::index(c.res, imm)));
        } else {
            self.set_xmm(0, pcmpstr::mask(c.res, imm));
        }
        ctx.set_flags(c.rflags, ARITH_FLAGS);
    }
}

#[cfg(test)]
mod tests {
    use iced_x86::code_asm::*;
    use iced_x86::{Decoder, DecoderOptions, Instruction, Register};

    use super::super::{execute, FpuContext, FpuError, FpuState, MemFault};

    /// A context with chosen CR0/CR4 and a memory operand at `addr`.
    struct Ctx {
        cr0: u64,
        cr4: u64,
        addr: u64,
    }

    impl FpuContext for Ctx {
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
    }

    fn decode(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<Instruction> {
        let mut a = CodeAssembler::new(64).expect("assembler");
        f(&mut a).expect("assemble");
        let bytes = a.assemble(0).expect("encode");
        Decoder::new(64, &bytes, DecoderOptions::NONE)
            .into_iter()
            .collect()
    }

    fn ex(vector: u8) -> Result<(), FpuError> {
        Err(FpuError::Exception {
            vector,
            error_code: None,
        })
    }

    const OSFXSR: u64 = 1 << 9;
    const OSXMMEXCPT: u64 = 1 << 10;

    /// One instruction of every family, XMM forms.
    fn xmm_family() -> Vec<Instruction> {
        decode(|a| {
            a.haddps(xmm0, xmm1)?;
            a.pshufb(xmm0, xmm1)?;
            a.pblendvb(xmm2, xmm3)?;
            a.roundps(xmm0, xmm1, 3)?;
            a.dpps(xmm0, xmm1, 0xff)?;
            a.pcmpistri(xmm0, xmm1, 0x0c)?;
            a.pcmpgtq(xmm0, xmm1)?;
            a.aesenc(xmm0, xmm1)?;
            a.pclmulqdq(xmm0, xmm1, 0x11)?;
            a.sha256rnds2(xmm4, xmm5)?;
            a.pextrb(eax, xmm1, 3)
        })
    }

    #[test]
    fn nm_and_ud_follow_cr0_and_cr4() {
        for i in xmm_family() {
            let run = |c0: u64, c4: u64| {
                let mut c = Ctx {
                    cr0: c0,
                    cr4: c4,
                    addr: 0,
                };
                execute(&mut FpuState::new(), &i, &mut c)
            };
            assert_eq!(run(0, OSFXSR), Ok(()), "{:?}", i.mnemonic());
            assert_eq!(run(8, OSFXSR), ex(7), "TS: {:?}", i.mnemonic());
            assert_eq!(run(4, OSFXSR), ex(6), "EM: {:?}", i.mnemonic());
            assert_eq!(run(0, 0), ex(6), "no OSFXSR: {:?}", i.mnemonic());
        }
        // The MMX forms of SSSE3 follow the MMX rules: no OSFXSR needed.
        let mmx = decode(|a| a.pshufb(mm0, mm1));
        let run = |c0: u64, c4: u64| {
            let mut c = Ctx {
                cr0: c0,
                cr4: c4,
                addr: 0,
            };
            execute(&mut FpuState::new(), &mmx[0], &mut c)
        };
        assert_eq!(run(0, 0), Ok(()));
        assert_eq!(run(8, 0), ex(7));
        assert_eq!(run(4, 0), ex(6));
    }

    #[test]
    fn crc32_is_left_to_the_integer_core() {
        let i = decode(|a| a.crc32(eax, ecx));
        let mut c = Ctx {
            cr0: 0,
            cr4: OSFXSR,
            addr: 0,
        };
        assert_eq!(
            execute(&mut FpuState::new(), &i[0], &mut c),
            Err(FpuError::NotFpu)
        );
    }

    #[test]
    fn unmasked_exception_without_osxmmexcpt_is_ud() {
        let i = decode(|a| a.roundps(xmm0, xmm1, 0));
        let mut st = FpuState::new();
        // xmm1 = 0.5 in every lane: inexact, PE unmasked.
        st.xmm[1] = 0x3f00_0000_3f00_0000_3f00_0000_3f00_0000;
        st.mxcsr = 0x1f80 & !(1 << 12);
        let mut c = Ctx {
            cr0: 0,
            cr4: OSFXSR,
            addr: 0,
        };
        assert_eq!(execute(&mut st, &i[0], &mut c), ex(6));
        assert_eq!(st.mxcsr & 0x3f, 0x20);
        assert_eq!(st.xmm[0], 0, "destination unchanged");
        c.cr4 |= OSXMMEXCPT;
        assert_eq!(execute(&mut st, &i[0], &mut c), ex(19));
    }

    #[test]
    fn alignment_faults_only_where_the_sdm_requires() {
        let forms = decode(|a| {
            a.pshufb(xmm0, ptr(rax))?;
            a.aesdec(xmm0, ptr(rax))?;
            a.movntdqa(xmm0, ptr(rax))?;
            a.pcmpestri(xmm0, ptr(rax), 0)?;
            a.pcmpistrm(xmm0, ptr(rax), 0x40)?;
            a.lddqu(xmm0, ptr(rax))?;
            a.pmovsxbw(xmm0, ptr(rax))?;
            a.pshufb(mm0, ptr(rax))
        });
        let gp = Err(FpuError::Exception {
            vector: 13,
            error_code: Some(0),
        });
        for (k, i) in forms.iter().enumerate() {
            let mut c = Ctx {
                cr0: 0,
                cr4: OSFXSR,
                addr: 0x1003,
            };
            let r = execute(&mut FpuState::new(), i, &mut c);
            if k < 3 {
                assert_eq!(r, gp, "{:?}", i.mnemonic());
            } else {
                assert_eq!(r, Ok(()), "{:?}", i.mnemonic());
            }
        }
    }
}
