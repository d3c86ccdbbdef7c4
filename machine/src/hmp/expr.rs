//! HMP argument expressions, QEMU's grammar: numbers (C bases: `0x`
//! hex, leading `0` octal, decimal), `$register` (x86's names plus `pc`,
//! the linear address of the next instruction), `'c'` characters,
//! parentheses, unary `+ - ~`, and `* / % & | ^ + -` with QEMU's three
//! precedence levels. Errors are QEMU's texts.

use cpu::{Regs, Sregs};

/// Register values an expression can name.
pub trait RegisterSource {
    /// The value of `$name`, if the name is a register.
    fn register(&self, name: &str) -> Option<u64>;
}

/// A vCPU snapshot as a register source.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// General registers.
    pub regs: &'a Regs,
    /// Segment and control registers.
    pub sregs: &'a Sregs,
}

impl RegisterSource for Snapshot<'_> {
    fn register(&self, name: &str) -> Option<u64> {
        let r = self.regs;
        let s = self.sregs;
        let seg = |n: &str| match n {
            "cs" => Some(&s.cs),
            "ds" => Some(&s.ds),
            "es" => Some(&s.es),
            "fs" => Some(&s.fs),
            "gs" => Some(&s.gs),
            "ss" => Some(&s.ss),
            _ => None,
        };
        if let Some((n, field)) = name.split_once('.') {
            let sg = seg(n)?;
            return match field {
                "base" => Some(sg.base),
                "limit" => Some(u64::from(sg.limit)),
                _ => None,
            };
        }
        if let Some(sg) = seg(name) {
            return Some(u64::from(sg.selector));
        }
        Some(match name {
            "pc" => s.cs.base.wrapping_add(r.rip),
            "eax" | "rax" => r.rax,
            "ecx" | "rcx" => r.rcx,
            "edx" | "rdx" => r.rdx,
            "ebx" | "rbx" => r.rbx,
            "esp" | "rsp" | "sp" => r.rsp,
            "ebp" | "rbp" | "fp" => r.rbp,
            "esi" | "rsi" => r.rsi,
            "edi" | "rdi" => r.rdi,
            "r8" => r.r8,
            "r9" => r.r9,
            "r10" => r.r10,
            "r11" => r.r11,
            "r12" => r.r12,
            "r13" => r.r13,
            "r14" => r.r14,
            "r15" => r.r15,
            "eip" | "rip" => r.rip,
            "eflags" | "rflags" => r.rflags,
            "cr0" => s.cr0,
            "cr2" => s.cr2,
            "cr3" => s.cr3,
            "cr4" => s.cr4,
            _ => return None,
        })
    }
}

/// A register source with no registers (no vCPU to read).
#[derive(Debug, Clone, Copy)]
pub struct NoRegisters;

impl RegisterSource for NoRegisters {
    fn register(&self, _name: &str) -> Option<u64> {
        None
    }
}

struct Parser<'a, 'r> {
    s: &'a [u8],
    pos: usize,
    regs: &'r dyn RegisterSource,
}

type Res = Result<u64, String>;

impl Parser<'_, '_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn sum(&mut self) -> Res {
        let mut v = self.prod()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let r = self.prod()?;
            v = if op == b'+' {
                v.wrapping_add(r)
            } else {
                v.wrapping_sub(r)
            };
        }
        Ok(v)
    }

    fn prod(&mut self) -> Res {
        let mut v = self.logic()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            self.pos += 1;
            let r = self.logic()?;
            v = match op {
                b'*' => v.wrapping_mul(r),
                _ if r == 0 => return Err("division by zero".into()),
                b'/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    fn logic(&mut self) -> Res {
        let mut v = self.unary()?;
        while let Some(op @ (b'&' | b'|' | b'^')) = self.peek() {
            self.pos += 1;
            let r = self.unary()?;
            v = match op {
                b'&' => v & r,
                b'|' => v | r,
                _ => v ^ r,
            };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Res {
        match self.peek() {
            None => Err("unexpected end of expression".into()),
            Some(b'+') => {
                self.pos += 1;
                self.unary()
            }
            Some(b'-') => {
                self.pos += 1;
                Ok(self.unary()?.wrapping_neg())
            }
            Some(b'~') => {
                self.pos += 1;
                Ok(!self.unary()?)
            }
            Some(b'(') => {
                self.pos += 1;
                let v = self.sum()?;
                if self.peek() != Some(b')') {
                    return Err("')' expected".into());
                }
                self.pos += 1;
                Ok(v)
            }
            Some(b'\'') => {
                let c = *self
                    .s
                    .get(self.pos + 1)
                    .ok_or("character constant expected")?;
                if self.s.get(self.pos + 2) != Some(&b'\'') {
                    return Err("missing terminating ' character".into());
                }
                self.pos += 3;
                Ok(u64::from(c))
            }
            Some(b'$') => {
                self.pos += 1;
                let start = self.pos;
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
                {
                    self.pos += 1;
                }
                let name = String::from_utf8_lossy(&self.s[start..self.pos]).to_lowercase();
                self.regs
                    .register(&name)
                    .ok_or_else(|| "unknown register".to_string())
            }
            Some(c) if c.is_ascii_digit() => self.number(),
            Some(_) => Err("invalid char in expression".into()),
        }
    }

    fn number(&mut self) -> Res {
        let rest = &self.s[self.pos..];
        let (radix, skip) = if rest.len() > 1 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
            (16, 2)
        } else if rest.len() > 1 && rest[0] == b'0' && rest[1].is_ascii_digit() {
            (8, 1)
        } else {
            (10, 0)
        };
        let start = self.pos + skip;
        let mut end = start;
        while self
            .s
            .get(end)
            .is_some_and(|c| char::from(*c).is_digit(radix))
        {
            end += 1;
        }
        let text = std::str::from_utf8(&self.s[start..end]).unwrap_or("");
        if text.is_empty() {
            return Err("invalid number".into());
        }
        self.pos = end;
        u64::from_str_radix(text, radix).map_err(|_| "number too large".into())
    }
}

/// Parse one expression at the start of `text`; returns its value and the
/// rest of the text after it.
pub fn parse<'a>(text: &'a str, regs: &dyn RegisterSource) -> Result<(u64, &'a str), String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        regs,
    };
    let v = p.sum()?;
    Ok((v, &text[p.pos..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(t: &str) -> Result<u64, String> {
        let r = Regs {
            rip: 0x10,
            rax: 0x1234,
            ..Default::default()
        };
        let mut s = Sregs::reset_state();
        s.cs.base = 0x1000;
        let src = Snapshot {
            regs: &r,
            sregs: &s,
        };
        parse(t, &src).map(|(v, _)| v)
    }

    #[test]
    fn numbers_in_c_bases_and_precedence() {
        assert_eq!(eval("0x10"), Ok(16));
        assert_eq!(eval("010"), Ok(8));
        assert_eq!(eval("10"), Ok(10));
        assert_eq!(eval("1 + 2 * 3"), Ok(7));
        assert_eq!(eval("(1 + 2) * 3"), Ok(9));
        assert_eq!(eval("-1"), Ok(u64::MAX));
        assert_eq!(eval("'A'"), Ok(65));
        assert_eq!(eval("6 & 3 + 1"), Ok(3));
    }

    #[test]
    fn registers_and_pc() {
        assert_eq!(eval("$pc"), Ok(0x1010));
        assert_eq!(eval("$eax + 1"), Ok(0x1235));
        assert_eq!(eval("$rip"), Ok(0x10));
        assert_eq!(eval("$cs.base"), Ok(0x1000));
    }

    #[test]
    fn errors_are_qemus() {
        assert_eq!(eval(""), Err("unexpected end of expression".into()));
        assert_eq!(eval("$foo"), Err("unknown register".into()));
        assert_eq!(eval("@"), Err("invalid char in expression".into()));
        assert_eq!(eval("1/0"), Err("division by zero".into()));
    }

    #[test]
    fn rest_of_the_line_is_returned() {
        let (v, rest) = parse("0x20 40", &NoRegisters).unwrap();
        assert_eq!((v, rest.trim()), (0x20, "40"));
    }
}
