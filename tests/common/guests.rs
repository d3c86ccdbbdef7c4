//! Kindling's own tiny test guests (tests/guests/*.S), assembled with the
//! host's GNU binutils into 32-bit PVH ELF files at test time.

use std::path::{Path, PathBuf};
use std::process::Command;

fn guests_src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guests")
}

/// Assemble and link `tests/guests/<name>.S`; returns the ELF's path.
/// Panics with the assembler's message if the source does not build.
pub fn build(name: &str) -> PathBuf {
    let src = guests_src();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guests");
    std::fs::create_dir_all(&out_dir).expect("create guest output dir");
    // Per-process and per-call names keep parallel tests apart.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let obj = out_dir.join(format!("{name}.{}.{n}.o", std::process::id()));
    let elf = out_dir.join(format!("{name}.{}.{n}.elf", std::process::id()));
    run(Command::new("as")
        .arg("--32")
        .arg("-I")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .arg(src.join(format!("{name}.S"))));
    run(Command::new("ld")
        .args(["-m", "elf_i386", "--build-id=none", "-z", "noexecstack"])
        .arg("--no-warn-rwx-segments")
        .arg("-T")
        .arg(src.join("guest.ld"))
        .arg("-o")
        .arg(&elf)
        .arg(&obj));
    elf
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True if the file exists (for readable assertions).
pub fn exists(p: &Path) -> bool {
    p.exists()
}
