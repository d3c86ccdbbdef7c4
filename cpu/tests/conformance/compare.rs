//! Running one snippet on the host CPU (the oracle) and on the
//! interpreter from the same state, and comparing what they leave behind:
//! how the snippet ended, the GPRs (all but RSP, which the runners own),
//! RFLAGS (arithmetic flags and DF, minus the flags the manuals leave
//! undefined for the instruction under test), the FXSAVE image (minus the
//! fields that legitimately differ) and the data buffer, byte for byte.

use std::cell::RefCell;
use std::fmt::Write as _;

use cpu::interp::SnippetMachine;
use cpu::snippet::{SnippetEnd, SnippetState, DATA_BASE, DATA_SIZE};

use super::asm::disassemble;
use super::native;

/// Carry flag.
pub const CF: u64 = 1 << 0;
/// Parity flag.
pub const PF: u64 = 1 << 2;
/// Auxiliary-carry flag.
pub const AF: u64 = 1 << 4;
/// Zero flag.
pub const ZF: u64 = 1 << 6;
/// Sign flag.
pub const SF: u64 = 1 << 7;
/// Direction flag.
pub const DF: u64 = 1 << 10;
/// Overflow flag.
pub const OF: u64 = 1 << 11;
/// The six arithmetic flags.
pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
/// The RFLAGS bits the runners load and the comparison looks at.
pub const COMPARED_FLAGS: u64 = ARITH | DF;

/// x87 status word condition codes C0..C3.
pub const FSW_C0: u16 = 1 << 8;
/// C1.
pub const FSW_C1: u16 = 1 << 9;
/// C2.
pub const FSW_C2: u16 = 1 << 10;
/// C3.
pub const FSW_C3: u16 = 1 << 14;

/// What the manuals leave undefined for the snippet under test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Undefined {
    /// RFLAGS bits not compared.
    pub flags: u64,
    /// x87 status-word bits not compared.
    pub fsw: u16,
    /// GPRs (bit n = register n in encoding order) whose value is
    /// undefined (e.g. BSF's destination when the source is zero).
    pub regs: u16,
}

impl Undefined {
    /// Everything is defined.
    pub const NONE: Undefined = Undefined {
        flags: 0,
        fsw: 0,
        regs: 0,
    };

    /// Only these RFLAGS bits are undefined.
    pub const fn flags(flags: u64) -> Undefined {
        Undefined {
            flags,
            fsw: 0,
            regs: 0,
        }
    }

    /// Only these x87 condition codes are undefined.
    pub const fn fsw(fsw: u16) -> Undefined {
        Undefined {
            flags: 0,
            fsw,
            regs: 0,
        }
    }

    /// These flags, and GPR `reg`'s value, are undefined.
    pub const fn flags_and_reg(flags: u64, reg: usize) -> Undefined {
        Undefined {
            flags,
            fsw: 0,
            regs: 1 << reg,
        }
    }
}

/// Which byte ranges of the FXSAVE image are never compared, and why.
const FXSAVE_IGNORED: [(usize, usize, &str); 4] = [
    // Byte 5 is reserved.
    (5, 6, "reserved"),
    // FOP, FIP and FDP describe the last x87 instruction's address and
    // opcode: the two runners execute from different RIPs and hosts differ
    // in when they update them (AMD only on an unmasked exception).
    (6, 24, "FOP/FIP/FDP"),
    // MXCSR_MASK says which MXCSR bits the implementation supports.
    (28, 32, "MXCSR_MASK"),
    // Reserved and software-available area after XMM15.
    (416, 512, "reserved"),
];

/// Whether FXSAVE byte `i` is left out of the comparison: the ranges
/// above and the reserved bytes 10..16 of each ST/MM slot.
fn fx_ignored(i: usize) -> bool {
    if (32..160).contains(&i) && (i - 32) % 16 >= 10 {
        return true; // reserved upper bytes of each ST/MM slot
    }
    FXSAVE_IGNORED.iter().any(|&(a, b, _)| (a..b).contains(&i))
}

/// Name of the FXSAVE field holding byte `i`.
fn fx_field(i: usize) -> String {
    match i {
        0..=1 => "FCW".into(),
        2..=3 => "FSW".into(),
        4 => "FTW".into(),
        24..=27 => "MXCSR".into(),
        32..=159 => format!("ST{}", (i - 32) / 16),
        160..=415 => format!("XMM{}", (i - 160) / 16),
        _ => format!("byte {i}"),
    }
}

/// A start state: zero GPRs, no flags, FCW 0x37f, MXCSR 0x1f80, empty
/// x87 stack and zero XMM registers, and a data buffer holding a
/// recognisable byte pattern.
pub fn initial_state() -> SnippetState {
    let mut fx = [0u8; 512];
    fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    SnippetState {
        gprs: [0; 16],
        rflags: 0,
        fxsave: fx,
        ymm_hi: [0; 16],
        data: data_pattern(),
    }
}

/// The data buffer's default contents: no two neighbouring bytes equal.
pub fn data_pattern() -> Vec<u8> {
    (0..DATA_SIZE).map(|i| (i * 37 + 11) as u8).collect()
}

/// Sets XMM register `n` in an FXSAVE image.
pub fn set_xmm(st: &mut SnippetState, n: usize, lo: u64, hi: u64) {
    let o = 160 + 16 * n;
    st.fxsave[o..o + 8].copy_from_slice(&lo.to_le_bytes());
    st.fxsave[o + 8..o + 16].copy_from_slice(&hi.to_le_bytes());
}

/// Reads XMM register `n` (low, high quadwords) from an FXSAVE image.
pub fn xmm(st: &SnippetState, n: usize) -> (u64, u64) {
    let o = 160 + 16 * n;
    let q = |a: usize| u64::from_le_bytes(st.fxsave[a..a + 8].try_into().unwrap_or([0; 8]));
    (q(o), q(o + 8))
}

/// Sets YMM register `n` (all 256 bits): XMM`n` in the FXSAVE image and
/// the upper half.
pub fn set_ymm(st: &mut SnippetState, n: usize, lo: u128, hi: u128) {
    set_xmm(st, n, lo as u64, (lo >> 64) as u64);
    st.ymm_hi[n] = hi;
}

/// Reads YMM register `n` as (low 128 bits, high 128 bits).
pub fn ymm(st: &SnippetState, n: usize) -> (u128, u128) {
    let (lo, hi) = xmm(st, n);
    (u128::from(lo) | (u128::from(hi) << 64), st.ymm_hi[n])
}

/// The x87 status word of an FXSAVE image.
pub fn fsw(st: &SnippetState) -> u16 {
    u16::from_le_bytes([st.fxsave[2], st.fxsave[3]])
}

/// What a runner left behind.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How the snippet ended.
    pub end: SnippetEnd,
    /// The final state.
    pub state: SnippetState,
}

/// Runs `code` natively (the oracle).
pub fn run_native(code: &[u8], start: &SnippetState) -> Outcome {
    let mut state = start.clone();
    let end = native::run_snippet(code, &mut state);
    Outcome { end, state }
}

/// Runs `code` on the interpreter (one reusable snippet machine per
/// thread).
pub fn run_interp(code: &[u8], start: &SnippetState) -> Outcome {
    run_interp_as(code, start, Tier::Default)
}

/// Which tier of the software CPU runs a snippet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// As the environment configures it.
    Default,
    /// Every block compiled at its first execution.
    Compiled,
}

/// Runs `code` on the software CPU's `tier` (one reusable snippet machine
/// per thread and tier).
pub fn run_interp_as(code: &[u8], start: &SnippetState, tier: Tier) -> Outcome {
    thread_local! {
        static MACHINE: RefCell<SnippetMachine> = RefCell::new(SnippetMachine::new());
        static COMPILED: RefCell<SnippetMachine> =
            RefCell::new(SnippetMachine::with_jit_threshold(1));
    }
    let mut state = start.clone();
    state.rflags = (state.rflags & COMPARED_FLAGS) | 2;
    let machine = match tier {
        Tier::Default => &MACHINE,
        Tier::Compiled => &COMPILED,
    };
    let end = machine.with(|m| m.borrow_mut().run(code, &mut state));
    if tier == Tier::Compiled {
        COMPILED_STATS.with(|s| s.set(COMPILED.with(|m| m.borrow().jit_stats())));
    }
    Outcome { end, state }
}

thread_local! {
    static COMPILED_STATS: std::cell::Cell<cpu::interp::jit::JitStats> =
        std::cell::Cell::new(Default::default());
}

/// The compiled tier's counters of this thread's [`Tier::Compiled`]
/// machine.
pub fn compiled_stats() -> cpu::interp::jit::JitStats {
    COMPILED_STATS.with(|s| s.get())
}

/// Compares two outcomes; `None` when they agree, else the differences,
/// one per line.
pub fn differences(native: &Outcome, interp: &Outcome, undef: Undefined) -> Option<String> {
    let mut d = String::new();
    if native.end != interp.end {
        let _ = writeln!(d, "  end: native {:?}, interp {:?}", native.end, interp.end);
    }
    let (n, i) = (&native.state, &interp.state);
    for (r, name) in GPR_NAMES.iter().enumerate() {
        if r != 4 && undef.regs & (1 << r) == 0 && n.gprs[r] != i.gprs[r] {
            let _ = writeln!(
                d,
                "  {name}: native {:#018x}, interp {:#018x}",
                n.gprs[r], i.gprs[r]
            );
        }
    }
    let mask = COMPARED_FLAGS & !undef.flags;
    if n.rflags & mask != i.rflags & mask {
        let _ = writeln!(
            d,
            "  rflags (compared {}): native {}, interp {}",
            flag_names(mask),
            flag_names(n.rflags & mask),
            flag_names(i.rflags & mask)
        );
    }
    let mut fields: Vec<String> = Vec::new();
    for b in 0..512 {
        let mut x = n.fxsave[b];
        let mut y = i.fxsave[b];
        if fx_ignored(b) {
            continue;
        }
        if b == 2 || b == 3 {
            let m = (!undef.fsw).to_le_bytes()[b - 2];
            x &= m;
            y &= m;
        }
        if x != y {
            let f = fx_field(b);
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    for f in fields {
        let _ = writeln!(
            d,
            "  {f}: native {}, interp {}",
            fx_value(n, &f),
            fx_value(i, &f)
        );
    }
    for r in 0..16 {
        if n.ymm_hi[r] != i.ymm_hi[r] {
            let _ = writeln!(
                d,
                "  YMM{r}_H: native {:032x}, interp {:032x}",
                n.ymm_hi[r], i.ymm_hi[r]
            );
        }
    }
    let diffs: Vec<usize> = (0..DATA_SIZE)
        .filter(|&k| n.data.get(k) != i.data.get(k))
        .collect();
    if !diffs.is_empty() {
        let _ = write!(d, "  data differs at {} byte(s):", diffs.len());
        for &k in diffs.iter().take(16) {
            let _ = write!(
                d,
                " [{:#x}] {:02x?}/{:02x?}",
                DATA_BASE + k as u64,
                n.data.get(k),
                i.data.get(k)
            );
        }
        let _ = writeln!(d, " (native/interp)");
    }
    (!d.is_empty()).then_some(d)
}

/// Runs `code` on both runners from `start` and returns the native
/// outcome, or a readable report of every difference: the instructions,
/// the input state and both outputs.
pub fn compare(code: &[u8], start: &SnippetState, undef: Undefined) -> Result<Outcome, String> {
    compare_as(code, start, undef, Tier::Default)
}

/// [`compare`] against the software CPU's `tier`.
pub fn compare_as(
    code: &[u8],
    start: &SnippetState,
    undef: Undefined,
    tier: Tier,
) -> Result<Outcome, String> {
    let mut start = start.clone();
    start.rflags = (start.rflags & COMPARED_FLAGS) | 2;
    let native = run_native(code, &start);
    let interp = run_interp_as(code, &start, tier);
    match differences(&native, &interp, undef) {
        None => Ok(native),
        Some(d) => Err(format!(
            "instructions:\n{}differences:\n{d}input:\n{}native ({:?}):\n{}interp ({:?}):\n{}",
            disassemble(code),
            describe(&start),
            native.end,
            describe(&native.state),
            interp.end,
            describe(&interp.state),
        )),
    }
}

/// [`compare`], panicking with the report on a difference.
pub fn check(code: &[u8], start: &SnippetState, undef: Undefined) -> Outcome {
    match compare(code, start, undef) {
        Ok(o) => o,
        Err(report) => panic!("native and interpreter differ\n{report}"),
    }
}

/// Collects the failures of many cases so one run reports them all.
#[derive(Debug, Default)]
pub struct Suite {
    cases: usize,
    failures: Vec<String>,
}

impl Suite {
    /// An empty suite.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compares one case, labelled `what`; returns the native outcome when
    /// both runners agree.
    pub fn check(
        &mut self,
        what: &str,
        code: &[u8],
        start: &SnippetState,
        undef: Undefined,
    ) -> Option<Outcome> {
        self.check_as(what, code, start, undef, Tier::Default)
    }

    /// [`Suite::check`] against the software CPU's `tier`.
    pub fn check_as(
        &mut self,
        what: &str,
        code: &[u8],
        start: &SnippetState,
        undef: Undefined,
        tier: Tier,
    ) -> Option<Outcome> {
        self.cases += 1;
        match compare_as(code, start, undef, tier) {
            Ok(o) => Some(o),
            Err(r) => {
                self.failures.push(format!("=== {what}\n{r}"));
                None
            }
        }
    }

    /// Number of cases compared so far.
    pub fn cases(&self) -> usize {
        self.cases
    }

    /// Panics with the first failures (and their count) if any case
    /// differed.
    pub fn finish(self) {
        if self.failures.is_empty() {
            return;
        }
        let shown: Vec<&String> = self.failures.iter().take(5).collect();
        let mut names: Vec<&str> = self
            .failures
            .iter()
            .filter_map(|f| f.lines().next())
            .collect();
        names.dedup();
        panic!(
            "{} of {} case(s) differ between native and interpreter; first {}:\n{}\n\
             all failing cases:\n{}",
            self.failures.len(),
            self.cases,
            shown.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            names.join("\n")
        );
    }
}

const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// "CF ZF ..." for the set bits of `f` among the compared flags.
pub fn flag_names(f: u64) -> String {
    let names = [
        (CF, "CF"),
        (PF, "PF"),
        (AF, "AF"),
        (ZF, "ZF"),
        (SF, "SF"),
        (DF, "DF"),
        (OF, "OF"),
    ];
    let s: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|&(_, n)| n)
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s.join(" ")
    }
}

fn fx_value(s: &SnippetState, field: &str) -> String {
    let fx = &s.fxsave;
    let u16at = |o: usize| u16::from_le_bytes([fx[o], fx[o + 1]]);
    match field {
        "FCW" => format!("{:#06x}", u16at(0)),
        "FSW" => format!("{:#06x}", u16at(2)),
        "FTW" => format!("{:#04x}", fx[4]),
        "MXCSR" => format!(
            "{:#010x}",
            u32::from_le_bytes([fx[24], fx[25], fx[26], fx[27]])
        ),
        f if f.starts_with("ST") => {
            let n: usize = f[2..].parse().unwrap_or(0);
            let o = 32 + 16 * n;
            let mant = u64::from_le_bytes(fx[o..o + 8].try_into().unwrap_or([0; 8]));
            format!("{:04x}:{mant:016x}", u16at(o + 8))
        }
        f if f.starts_with("YMM") => {
            let n: usize = f[3..f.len() - 2].parse().unwrap_or(0);
            format!("{:032x}", s.ymm_hi[n])
        }
        f if f.starts_with("XMM") => {
            let n: usize = f[3..].parse().unwrap_or(0);
            let (lo, hi) = xmm(s, n);
            format!("{hi:016x}_{lo:016x}")
        }
        _ => "?".into(),
    }
}

/// A readable dump: GPRs (all but RSP), flags, and the FPU/SSE state that
/// differs from [`initial_state`].
pub fn describe(s: &SnippetState) -> String {
    let mut out = String::new();
    for row in [
        [0usize, 1, 2, 3],
        [5, 6, 7, 8],
        [9, 10, 11, 12],
        [13, 14, 15, 15],
    ] {
        let _ = write!(out, "   ");
        let mut seen = Vec::new();
        for r in row {
            if seen.contains(&r) {
                continue;
            }
            seen.push(r);
            let _ = write!(out, " {:>3}={:016x}", GPR_NAMES[r], s.gprs[r]);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "    rflags={:#x} ({})",
        s.rflags,
        flag_names(s.rflags & COMPARED_FLAGS)
    );
    let init = initial_state();
    let mut fields: Vec<String> = Vec::new();
    for b in 0..416 {
        if !fx_ignored(b) && s.fxsave[b] != init.fxsave[b] {
            let f = fx_field(b);
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    for (r, v) in s.ymm_hi.iter().enumerate() {
        if *v != 0 {
            fields.push(format!("YMM{r}_H"));
        }
    }
    if !fields.is_empty() {
        let parts: Vec<String> = fields
            .iter()
            .map(|f| format!("{f}={}", fx_value(s, f)))
            .collect();
        let _ = writeln!(out, "    {}", parts.join(" "));
    }
    out
}
