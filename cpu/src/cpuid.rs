//! CPUID table entries.

/// One CPUID leaf/subleaf and its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidEntry {
    /// EAX input (leaf).
    pub function: u32,
    /// ECX input (subleaf); 0 where the leaf ignores it.
    pub index: u32,
    /// True if the leaf depends on ECX.
    pub significant_index: bool,
    /// Output EAX.
    pub eax: u32,
    /// Output EBX.
    pub ebx: u32,
    /// Output ECX.
    pub ecx: u32,
    /// Output EDX.
    pub edx: u32,
}

/// Find the entry for `function`/`index` in a table.
pub fn lookup(table: &[CpuidEntry], function: u32, index: u32) -> Option<&CpuidEntry> {
    table
        .iter()
        .find(|e| e.function == function && (!e.significant_index || e.index == index))
}
