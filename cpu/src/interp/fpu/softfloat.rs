//! Software IEEE-754 arithmetic for the three x86 binary formats.
//!
//! One core serves the x87 80-bit extended format (with its precision
//! control) and SSE's single and double formats. Values are unpacked into
//! [`Fp`], a sign, an unbiased exponent and a 127-bit significand whose
//! leading one sits at bit [`TOP`]; every operation computes the exact
//! result (or the exact result plus a sticky bit in bit 0) with integer
//! arithmetic and rounds it once in [`round_pack`], so all rounding modes
//! and all exception flags come out as the hardware produces them.
//!
//! Tininess is detected after rounding, as x86 does (SDM vol. 1, 4.9.1.5).

/// Invalid-operation flag (same bit in FSW and MXCSR).
pub const IE: u32 = 1;
/// Denormal-operand flag.
pub const DE: u32 = 2;
/// Divide-by-zero flag.
pub const ZE: u32 = 4;
/// Overflow flag.
pub const OE: u32 = 8;
/// Underflow flag.
pub const UE: u32 = 16;
/// Precision (inexact) flag.
pub const PE: u32 = 32;

/// Bit position of the leading one of a normalized [`Fp`] significand.
pub const TOP: u32 = 126;

/// Rounding control, encoded as in FCW.RC and MXCSR.RC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Round to nearest, ties to even.
    Nearest,
    /// Round toward minus infinity.
    Down,
    /// Round toward plus infinity.
    Up,
    /// Round toward zero.
    Zero,
}

impl Round {
    /// Decode a two-bit RC field.
    pub fn from_bits(rc: u32) -> Self {
        match rc & 3 {
            0 => Round::Nearest,
            1 => Round::Down,
            2 => Round::Up,
            _ => Round::Zero,
        }
    }
}

/// A binary interchange format's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Exponent of the smallest normal number.
    pub emin: i32,
    /// Exponent of the largest finite number.
    pub emax: i32,
    /// Exponent bias.
    pub bias: i32,
    /// Significand width including the integer bit.
    pub width: u32,
    /// Width of the exponent field.
    pub exp_bits: u32,
    /// True when the integer bit is stored (x87 extended).
    pub explicit: bool,
}

/// IEEE single precision.
pub const F32: Format = Format {
    emin: -126,
    emax: 127,
    bias: 127,
    width: 24,
    exp_bits: 8,
    explicit: false,
};
/// IEEE half precision (F16C).
pub const F16: Format = Format {
    emin: -14,
    emax: 15,
    bias: 15,
    width: 11,
    exp_bits: 5,
    explicit: false,
};
/// IEEE double precision.
pub const F64: Format = Format {
    emin: -1022,
    emax: 1023,
    bias: 1023,
    width: 53,
    exp_bits: 11,
    explicit: false,
};
/// x87 double-extended precision.
pub const F80: Format = Format {
    emin: -16382,
    emax: 16383,
    bias: 16383,
    width: 64,
    exp_bits: 15,
    explicit: true,
};

impl Format {
    fn total_bits(&self) -> u32 {
        1 + self.exp_bits + self.width - u32::from(!self.explicit)
    }
}

/// Class of an unpacked value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Plus or minus zero.
    Zero,
    /// A nonzero finite number (normal or denormal in its format).
    Finite,
    /// Plus or minus infinity.
    Inf,
    /// Not a number; `sig` holds the x87-style significand top-aligned
    /// (integer bit at [`TOP`], quiet bit at `TOP - 1`).
    Nan,
}

/// An unpacked floating-point value: `sig * 2^(exp - TOP)` for finite values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fp {
    /// What kind of value this is.
    pub class: Class,
    /// Sign (true = negative).
    pub sign: bool,
    /// Unbiased exponent of the leading significand bit.
    pub exp: i32,
    /// Significand, leading one at bit [`TOP`].
    pub sig: u128,
}

const QUIET: u128 = 1 << (TOP - 1);

impl Fp {
    /// Signed zero.
    pub fn zero(sign: bool) -> Self {
        Fp {
            class: Class::Zero,
            sign,
            exp: 0,
            sig: 0,
        }
    }
    /// Signed infinity.
    pub fn inf(sign: bool) -> Self {
        Fp {
            class: Class::Inf,
            sign,
            exp: 0,
            sig: 1 << TOP,
        }
    }
    /// The default QNaN ("real indefinite"): negative, quiet, zero payload.
    pub fn default_nan() -> Self {
        Fp {
            class: Class::Nan,
            sign: true,
            exp: 0,
            sig: (1 << TOP) | QUIET,
        }
    }
    /// A finite value `sig * 2^(exp - TOP)`, normalized (sig may be any nonzero).
    pub fn finite(sign: bool, exp: i32, sig: u128) -> Self {
        if sig == 0 {
            return Fp::zero(sign);
        }
        let lz = sig.leading_zeros() as i32;
        let shift = lz - (127 - TOP as i32);
        let sig = if shift >= 0 {
            sig << shift
        } else {
            shr_jam(sig, (-shift) as u32)
        };
        Fp {
            class: Class::Finite,
            sign,
            exp: exp - shift,
            sig,
        }
    }
    /// Exact value of a signed integer.
    pub fn from_i128(v: i128) -> Self {
        Fp::finite(v < 0, TOP as i32, v.unsigned_abs())
    }
    /// True for a NaN.
    pub fn is_nan(&self) -> bool {
        self.class == Class::Nan
    }
    /// True for a signaling NaN.
    pub fn is_snan(&self) -> bool {
        self.class == Class::Nan && self.sig & QUIET == 0
    }
    /// The same NaN with the quiet bit set.
    pub fn quieted(mut self) -> Self {
        self.sig |= QUIET;
        self
    }
    /// Negated value.
    pub fn neg(mut self) -> Self {
        self.sign = !self.sign;
        self
    }
}

/// A decoded operand: its value plus encoding facts the callers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The value.
    pub v: Fp,
    /// The encoding was a denormal (or pseudo-denormal).
    pub denormal: bool,
    /// An x87 encoding the FPU does not support (unnormal, pseudo-NaN,
    /// pseudo-infinity): an invalid operand.
    pub unsupported: bool,
}

/// Shift right, OR-ing every lost bit into bit 0 ("jamming").
pub fn shr_jam(v: u128, n: u32) -> u128 {
    if n == 0 {
        v
    } else if n >= 128 {
        u128::from(v != 0)
    } else {
        (v >> n) | u128::from(v & ((1u128 << n) - 1) != 0)
    }
}

/// Decode `bits` (low bits of the value) in format `f`.
pub fn unpack(bits: u128, f: Format) -> Decoded {
    let frac_bits = f.width - 1;
    let sign = (bits >> (f.total_bits() - 1)) & 1 != 0;
    let e = ((bits >> (f.total_bits() - 1 - f.exp_bits)) & ((1 << f.exp_bits) - 1)) as i32;
    let emask = (1i32 << f.exp_bits) - 1;
    let frac = bits & ((1u128 << frac_bits) - 1);
    let int_bit = if f.explicit {
        (bits >> frac_bits) & 1 != 0
    } else {
        e != 0
    };
    let mut d = Decoded {
        v: Fp::zero(sign),
        denormal: false,
        unsupported: false,
    };
    let m = (u128::from(int_bit) << frac_bits) | frac;
    if e == 0 {
        if m != 0 {
            d.denormal = true;
            d.v = Fp::finite(sign, f.emin - frac_bits as i32 + TOP as i32, m);
        }
    } else if e == emask {
        if f.explicit && !int_bit {
            d.unsupported = true;
        }
        d.v = if frac == 0 {
            Fp::inf(sign)
        } else {
            Fp {
                class: Class::Nan,
                sign,
                exp: 0,
                sig: (m | (1 << frac_bits)) << (TOP + 1 - f.width),
            }
        };
    } else {
        if !int_bit {
            d.unsupported = true;
        }
        d.v = Fp::finite(sign, e - f.bias - frac_bits as i32 + TOP as i32, m);
    }
    d
}

/// Encode `v` (already rounded to `f`) in format `f`.
pub fn pack(v: Fp, f: Format) -> u128 {
    let frac_bits = f.width - 1;
    let sign = u128::from(v.sign) << (f.total_bits() - 1);
    let emask = (1u128 << f.exp_bits) - 1;
    let int_mask = if f.explicit { 0 } else { 1u128 << frac_bits };
    let body = match v.class {
        Class::Zero => 0,
        Class::Inf => {
            (emask << (frac_bits + u32::from(f.explicit)))
                | if f.explicit { 1 << frac_bits } else { 0 }
        }
        Class::Nan => {
            let m = v.sig >> (TOP + 1 - f.width);
            (emask << (frac_bits + u32::from(f.explicit))) | (m & !int_mask)
        }
        Class::Finite => {
            if v.exp >= f.emin {
                let m = v.sig >> (TOP + 1 - f.width);
                let be = (v.exp + f.bias) as u128;
                (be << (frac_bits + u32::from(f.explicit))) | (m & !int_mask)
            } else {
                let shift = (f.emin - v.exp) as u32 + TOP + 1 - f.width;
                if shift >= 128 {
                    0
                } else {
                    v.sig >> shift
                }
            }
        }
    };
    sign | body
}

/// Rounding parameters and accumulated exception flags of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Env {
    /// Rounding direction.
    pub rc: Round,
    /// Destination format (exponent range).
    pub fmt: Format,
    /// Significand precision in bits (x87 precision control may make this
    /// narrower than `fmt.width`).
    pub prec: u32,
    /// Flags raised so far ([`IE`]..[`PE`]).
    pub flags: u32,
    /// SSE flush-to-zero for tiny results (with underflow masked).
    pub ftz: bool,
    /// Underflow is unmasked: report tininess even when exact.
    pub underflow_trap: bool,
    /// An operand was a denormal: raise [`DE`] once NaN checks pass.
    pub denormal_input: bool,
    /// The last inexact rounding increased the magnitude (x87 C1).
    pub rounded_up: bool,
}

impl Env {
    /// Round-to-nearest, full precision, no flags.
    pub fn new(fmt: Format, rc: Round) -> Self {
        Env {
            rc,
            fmt,
            prec: fmt.width,
            flags: 0,
            ftz: false,
            underflow_trap: false,
            denormal_input: false,
            rounded_up: false,
        }
    }

    fn note_denormal(&mut self) {
        if self.denormal_input {
            self.flags |= DE;
        }
    }
}

/// Round `sig` (any bits) at bit `lsb`: (quotient, inexact, incremented).
fn round_bits(sig: u128, lsb: u32, sign: bool, rc: Round) -> (u128, bool, bool) {
    if lsb == 0 {
        return (sig, false, false);
    }
    let rem = sig & ((1u128 << lsb) - 1);
    let half = 1u128 << (lsb - 1);
    let q = sig >> lsb;
    let inc = match rc {
        Round::Nearest => rem > half || (rem == half && q & 1 == 1),
        Round::Zero => false,
        Round::Up => !sign && rem != 0,
        Round::Down => sign && rem != 0,
    };
    (q + u128::from(inc), rem != 0, inc)
}

/// Round the exact value `sig * 2^(exp - TOP)` (sig normalized, sticky in
/// bit 0) to `env`'s format and precision, raising OE/UE/PE.
pub fn round_pack(sign: bool, exp: i32, sig: u128, env: &mut Env) -> Fp {
    let f = env.fmt;
    let p = env.prec;
    let lsb = TOP + 1 - p;
    if exp >= f.emin {
        let (mut q, inexact, up) = round_bits(sig, lsb, sign, env.rc);
        let mut exp = exp;
        if q >> p != 0 {
            q >>= 1;
            exp += 1;
        }
        if exp > f.emax {
            return overflow(sign, env);
        }
        if inexact {
            env.flags |= PE;
            env.rounded_up = up;
        }
        return Fp {
            class: Class::Finite,
            sign,
            exp,
            sig: q << lsb,
        };
    }
    let (q0, _, _) = round_bits(sig, lsb, sign, env.rc);
    let tiny = !(exp == f.emin - 1 && q0 >> p != 0);
    if env.ftz && tiny {
        env.flags |= UE | PE;
        return Fp::zero(sign);
    }
    let s = shr_jam(sig, (f.emin - exp) as u32);
    let (q, inexact, up) = round_bits(s, lsb, sign, env.rc);
    if tiny && (inexact || env.underflow_trap) {
        env.flags |= UE;
    }
    if inexact {
        env.flags |= PE;
        env.rounded_up = up;
    }
    Fp::finite(sign, f.emin, q << lsb)
}

fn overflow(sign: bool, env: &mut Env) -> Fp {
    env.flags |= OE | PE;
    let to_inf = match env.rc {
        Round::Nearest => true,
        Round::Zero => false,
        Round::Up => !sign,
        Round::Down => sign,
    };
    env.rounded_up = to_inf;
    if to_inf {
        Fp::inf(sign)
    } else {
        let lsb = TOP + 1 - env.prec;
        Fp {
            class: Class::Finite,
            sign,
            exp: env.fmt.emax,
            sig: ((1u128 << env.prec) - 1) << lsb,
        }
    }
}

/// Round a finite or zero value to the environment (conversions, FLD
/// with precision, results that need no arithmetic).
pub fn round_value(v: Fp, env: &mut Env) -> Fp {
    match v.class {
        Class::Finite => round_pack(v.sign, v.exp, v.sig, env),
        _ => v,
    }
}

/// NaN propagation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NanRule {
    /// x87: of two NaNs the one with the larger significand (then the positive one).
    X87,
    /// SSE: the first source operand if it is a NaN, else the second.
    First,
}

/// Result for operands of which at least one is a NaN. Raises IE for an SNaN.
pub fn propagate_nan(a: Fp, b: Fp, rule: NanRule, env: &mut Env) -> Fp {
    if a.is_snan() || b.is_snan() {
        env.flags |= IE;
    }
    let r = match (a.is_nan(), b.is_nan()) {
        (true, true) => match rule {
            NanRule::First => a,
            // A QNaN beats an SNaN; otherwise the larger significand wins.
            NanRule::X87 => match (a.is_snan(), b.is_snan()) {
                (false, true) => a,
                (true, false) => b,
                _ => {
                    if a.sig > b.sig || (a.sig == b.sig && !a.sign) {
                        a
                    } else {
                        b
                    }
                }
            },
        },
        (true, false) => a,
        _ => b,
    };
    r.quieted()
}

fn invalid(env: &mut Env) -> Fp {
    env.flags |= IE;
    Fp::default_nan()
}

/// `a + b` (or `a - b` with `subtract`).
pub fn add(a: Fp, b: Fp, subtract: bool, rule: NanRule, env: &mut Env) -> Fp {
    if a.is_nan() || b.is_nan() {
        return propagate_nan(a, b, rule, env);
    }
    let b = if subtract { b.neg() } else { b };
    env.note_denormal();
    match (a.class, b.class) {
        (Class::Inf, Class::Inf) => {
            if a.sign != b.sign {
                invalid(env)
            } else {
                a
            }
        }
        (Class::Inf, _) => a,
        (_, Class::Inf) => b,
        (Class::Zero, Class::Zero) => {
            if a.sign == b.sign {
                a
            } else {
                Fp::zero(env.rc == Round::Down)
            }
        }
        (Class::Zero, _) => round_value(b, env),
        (_, Class::Zero) => round_value(a, env),
        _ => {
            let (big, small) = if (a.exp, a.sig) >= (b.exp, b.sig) {
                (a, b)
            } else {
                (b, a)
            };
            let d = (big.exp - small.exp) as u32;
            let s = shr_jam(small.sig, d);
            if big.sign == small.sign {
                let sum = big.sig + s;
                let v = Fp::finite(big.sign, big.exp, sum);
                round_pack(v.sign, v.exp, v.sig, env)
            } else {
                let diff = big.sig - s;
                if diff == 0 {
                    return Fp::zero(env.rc == Round::Down);
                }
                let v = Fp::finite(big.sign, big.exp, diff);
                round_pack(v.sign, v.exp, v.sig, env)
            }
        }
    }
}

/// `a * b`.
pub fn mul(a: Fp, b: Fp, rule: NanRule, env: &mut Env) -> Fp {
    if a.is_nan() || b.is_nan() {
        return propagate_nan(a, b, rule, env);
    }
    let sign = a.sign != b.sign;
    match (a.class, b.class) {
        (Class::Inf, Class::Zero) | (Class::Zero, Class::Inf) => invalid(env),
        (Class::Inf, _) | (_, Class::Inf) => {
            env.note_denormal();
            Fp::inf(sign)
        }
        (Class::Zero, _) | (_, Class::Zero) => {
            env.note_denormal();
            Fp::zero(sign)
        }
        _ => {
            env.note_denormal();
            let x = (a.sig >> (TOP - 63)) as u64;
            let y = (b.sig >> (TOP - 63)) as u64;
            let p = u128::from(x) * u128::from(y);
            // x, y carry their leading one at bit 63, so p = a*b*2^(TOP-ea-eb).
            let v = Fp::finite(sign, a.exp + b.exp, p);
            round_pack(v.sign, v.exp, v.sig, env)
        }
    }
}

/// Fused `a * b + c` with one rounding: the product is formed exactly
/// (the operands' significands are at most 64 bits wide, so it fits the
/// 128-bit significand) and rounded only after the addition. NaN operands
/// take `rule` between the product's NaN and `c`; callers with another
/// NaN order (x86 FMA) resolve NaNs before calling.
pub fn fma(a: Fp, b: Fp, c: Fp, rule: NanRule, env: &mut Env) -> Fp {
    if a.is_nan() || b.is_nan() {
        let p = propagate_nan(a, b, rule, env);
        return propagate_nan(p, c, rule, env);
    }
    let sign = a.sign != b.sign;
    let product = match (a.class, b.class) {
        (Class::Inf, Class::Zero) | (Class::Zero, Class::Inf) => {
            if c.is_snan() {
                env.flags |= IE;
            }
            return invalid(env);
        }
        (Class::Inf, _) | (_, Class::Inf) => Fp::inf(sign),
        (Class::Zero, _) | (_, Class::Zero) => Fp::zero(sign),
        _ => {
            let x = (a.sig >> (TOP - 63)) as u64;
            let y = (b.sig >> (TOP - 63)) as u64;
            Fp::finite(sign, a.exp + b.exp, u128::from(x) * u128::from(y))
        }
    };
    if c.is_nan() {
        return propagate_nan(product, c, rule, env);
    }
    add(product, c, false, rule, env)
}

/// `a / b`.
pub fn div(a: Fp, b: Fp, rule: NanRule, env: &mut Env) -> Fp {
    if a.is_nan() || b.is_nan() {
        return propagate_nan(a, b, rule, env);
    }
    let sign = a.sign != b.sign;
    match (a.class, b.class) {
        (Class::Inf, Class::Inf) | (Class::Zero, Class::Zero) => invalid(env),
        (Class::Inf, _) => {
            env.note_denormal();
            Fp::inf(sign)
        }
        (_, Class::Inf) => {
            env.note_denormal();
            Fp::zero(sign)
        }
        (Class::Zero, _) => {
            env.note_denormal();
            Fp::zero(sign)
        }
        (_, Class::Zero) => {
            // The hardware reports only the zero divide, even for a denormal dividend.
            env.flags |= ZE;
            Fp::inf(sign)
        }
        _ => {
            env.note_denormal();
            let x = (a.sig >> (TOP - 63)) as u64;
            let y = (b.sig >> (TOP - 63)) as u64;
            let (num, exp) = if x >= y {
                (u128::from(x) << 63, a.exp - b.exp)
            } else {
                (u128::from(x) << 64, a.exp - b.exp - 1)
            };
            let y = u128::from(y);
            let q1 = num / y;
            let r1 = num % y;
            let q2 = (r1 << 64) / y;
            let r2 = (r1 << 64) % y;
            // q1 has its leading one at bit 63; q = q1:q2 at bit 127.
            let q = (q1 << 64) | q2;
            let sig = shr_jam(q, 1) | u128::from(r2 != 0);
            round_pack(sign, exp, sig, env)
        }
    }
}

fn isqrt(m: u128) -> u128 {
    let mut x = m;
    let mut r: u128 = 0;
    let mut bit: u128 = 1 << 126;
    while bit > x {
        bit >>= 2;
    }
    while bit != 0 {
        if x >= r + bit {
            x -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    r
}

/// Square root of `a`.
pub fn sqrt(a: Fp, env: &mut Env) -> Fp {
    match a.class {
        Class::Nan => propagate_nan(a, a, NanRule::First, env),
        Class::Zero => a,
        _ if a.sign => invalid(env),
        Class::Inf => a,
        Class::Finite => {
            env.note_denormal();
            let x = (a.sig >> (TOP - 63)) as u64;
            let m = if a.exp & 1 != 0 {
                u128::from(x) << 64
            } else {
                u128::from(x) << 63
            };
            let q = isqrt(m);
            let r = m - q * q;
            let sig = (q << (TOP - 63)) | (u128::from(r > q) << (TOP - 64)) | u128::from(r != 0);
            round_pack(false, a.exp.div_euclid(2), sig, env)
        }
    }
}

/// Ordering of two values; `None` when unordered (a NaN is involved).
/// Raises no flags: callers decide between quiet and signaling rules.
pub fn compare(a: Fp, b: Fp) -> Option<core::cmp::Ordering> {
    use core::cmp::Ordering;
    if a.is_nan() || b.is_nan() {
        return None;
    }
    let key = |v: Fp| -> (i32, i32, u128) {
        match v.class {
            Class::Zero => (0, 0, 0),
            Class::Inf => (2, 0, 0),
            _ => (1, v.exp, v.sig),
        }
    };
    let (ka, kb) = (key(a), key(b));
    if a.class == Class::Zero && b.class == Class::Zero {
        return Some(Ordering::Equal);
    }
    let sa = if a.class == Class::Zero {
        b.sign
    } else {
        a.sign
    };
    let sb = if b.class == Class::Zero {
        a.sign
    } else {
        b.sign
    };
    Some(match (sa, sb) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => ka.cmp(&kb),
        (true, true) => kb.cmp(&ka),
    })
}

/// Round a finite value with `exp <= TOP` to an integer magnitude:
/// (magnitude, inexact, incremented).
fn round_int_parts(v: Fp, rc: Round) -> (u128, bool, bool) {
    if v.exp < 0 {
        // |v| < 1: fold everything into a 2-bit round/sticky field.
        let field = if v.exp == -1 {
            2 | u128::from(v.sig & !(1 << TOP) != 0)
        } else {
            1
        };
        return round_bits(field, 2, v.sign, rc);
    }
    round_bits(v.sig, TOP - v.exp as u32, v.sign, rc)
}

/// Round `v` to an integral value in the same format (FRNDINT).
pub fn round_to_integral(v: Fp, env: &mut Env) -> Fp {
    match v.class {
        Class::Nan => propagate_nan(v, v, NanRule::First, env),
        Class::Finite if v.exp < 63 => {
            env.note_denormal();
            let (q, inexact, up) = round_int_parts(v, env.rc);
            if inexact {
                env.flags |= PE;
                env.rounded_up = up;
            }
            Fp::finite(v.sign, TOP as i32, q)
        }
        Class::Finite => {
            env.note_denormal();
            v
        }
        _ => v,
    }
}

/// Convert to a signed integer of `bits` bits; `None` for NaN, infinity or
/// out of range (the caller raises IE and stores the integer indefinite).
pub fn to_int(v: Fp, bits: u32, rc: Round, env: &mut Env) -> Option<i64> {
    match v.class {
        Class::Zero => Some(0),
        Class::Nan | Class::Inf => None,
        Class::Finite => {
            if v.exp >= 64 {
                return None;
            }
            let (q, inexact, up) = round_int_parts(v, rc);
            let limit = 1u128 << (bits - 1);
            if q > limit || (q == limit && !v.sign) {
                return None;
            }
            if inexact {
                env.flags |= PE;
                env.rounded_up = up;
            }
            let q = q as i128;
            Some((if v.sign { -q } else { q }) as i64)
        }
    }
}

/// Convert a value to format `env.fmt` (narrowing rounds; NaNs keep the
/// top of their payload and are quieted, an SNaN raising IE).
pub fn convert(v: Fp, env: &mut Env) -> Fp {
    match v.class {
        Class::Nan => {
            if v.is_snan() {
                env.flags |= IE;
            }
            let mut q = v.quieted();
            let keep = TOP + 1 - env.fmt.width;
            q.sig = (q.sig >> keep) << keep;
            q
        }
        Class::Finite => {
            env.note_denormal();
            round_pack(v.sign, v.exp, v.sig, env)
        }
        _ => v,
    }
}
