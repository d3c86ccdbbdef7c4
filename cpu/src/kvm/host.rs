//! What kind of KVM this host has.

use std::path::Path;

/// The KVM implementation behind `/dev/kvm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvmFlavor {
    /// Hardware-backed: `kvm_intel` or `kvm_amd` is loaded.
    Hardware,
    /// `kvm_pvm`: nested without VMX/SVM; guest kernel code runs in KVM's
    /// instruction emulator (slow, and no POPCNT/SSE/XSAVE), so Linux can't boot.
    Pvm,
    /// Neither module is visible (built in, or another implementation).
    Unknown,
}

/// Detect the flavor from `/sys/module`.
pub fn flavor() -> KvmFlavor {
    flavor_in(Path::new("/sys/module"))
}

/// Detect the flavor from a `/sys/module`-like directory.
pub fn flavor_in(sys_module: &Path) -> KvmFlavor {
    let has = |m: &str| sys_module.join(m).exists();
    if has("kvm_intel") || has("kvm_amd") {
        KvmFlavor::Hardware
    } else if has("kvm_pvm") {
        KvmFlavor::Pvm
    } else {
        KvmFlavor::Unknown
    }
}

/// The one-line notice printed when `-accel kvm` is chosen on a kvm_pvm host.
pub const PVM_NOTICE: &str = "warning: /dev/kvm is kvm_pvm (nested KVM without VMX/SVM): guest kernel code runs in KVM's instruction emulator, slowly and without POPCNT/SSE/XSAVE, so Linux will not boot; use -accel tcg";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_flavor() {
        let dir = std::env::temp_dir().join(format!("kindling-kvmflavor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("kvm")).unwrap();
        assert_eq!(flavor_in(&dir), KvmFlavor::Unknown);
        std::fs::create_dir_all(dir.join("kvm_pvm")).unwrap();
        assert_eq!(flavor_in(&dir), KvmFlavor::Pvm);
        std::fs::create_dir_all(dir.join("kvm_amd")).unwrap();
        assert_eq!(flavor_in(&dir), KvmFlavor::Hardware);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
