//! The DSDT for microvm, after QEMU's `build_dsdt_microvm` (`hw/i386/acpi-microvm.c`):
//!
//! ```text
//! Scope (\_SB) {
//!     Device (FWCF) { QEMU0002, _STA 0xB, IO 0x510/12 }             // if fw_cfg exists
//!     Device (COM1) { PNP0501, _UID 1, _STA 0xF, IO 0x3F8/8, IRQNoFlags {4} }
//!     Device (RTC_) { PNP0B00, IO 0x70/8, IRQNoFlags {8} }        // if the RTC exists
//!     Device (GED_) { ACPI0013, _UID "GED", Interrupt (Edge) {9},
//!                     OperationRegion (EREG, SystemMemory, 0xFEA00000, 4) { ESEL, 32 },
//!                     Method (_EVT, 1, Serialized) {
//!                         Local0 = ESEL
//!                         If ((Local0 & 2) == 2) { Notify (PWRB, 0x80) } } }
//!     Device (PWRB) { PNP0C0C, _UID 0 }
//!     Device (VRnn) { LNRO0005, _UID n, _CCA 1,
//!                     Memory32Fixed (RW, base, 512), Interrupt (Level, ActiveHigh) {gsi} }
//! }
//! Name (\_S5, Package { 5, 0, 0, 0 })
//! ```
//!
//! Checked against the DSDT QEMU 10.0.2 gives a microvm guest (read back from
//! `/sys/firmware/acpi/tables/DSDT` and disassembled): same devices, order and resources.

use acpi_tables::aml::{
    And, Device, EISAName, Equal, Field, FieldAccessType, FieldEntry, FieldLockRule,
    FieldUpdateRule, Interrupt, Local, Memory32Fixed, Method, Name, Notify, OpRegion,
    OpRegionSpace, Package, Path, ResourceTemplate, Scope, Store, IO, ZERO,
};
use acpi_tables::{Aml, AmlSink};

use crate::layout::{
    COM1_IRQ, COM1_PORT, FW_CFG_PORT, FW_CFG_PORT_COUNT, GED_IRQ, GED_MMIO_BASE, RTC_IRQ, RTC_PORT,
    VIRTIO_MMIO_SIZE,
};
use crate::transport::VirtioMmioTransport;

/// The GED event bit for "power button pressed" (QEMU `ACPI_GED_PWR_DOWN_EVT`).
pub const GED_PWR_DOWN_EVT: u32 = 0x2;
/// `\_S5` sleep type the GED sleep-control register expects.
pub const SLP_TYP_S5: u8 = 5;

/// What the DSDT describes.
#[derive(Debug, Clone, Copy)]
pub struct DsdtConfig<'a> {
    /// QEMU's fw_cfg interface at ports 0x510-0x51b (selector, data, DMA).
    pub fw_cfg: bool,
    /// An MC146818 RTC at port 0x70.
    pub rtc: bool,
    /// The ISA serial port COM1.
    pub serial: bool,
    /// Populated virtio-mmio transports.
    pub transports: &'a [VirtioMmioTransport],
}

/// Errors building the DSDT.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsdtError {
    /// A transport is not in one of microvm's windows, so it has no `VRnn` name.
    #[error("virtio-mmio transport at {0:#x} is not one of microvm's transport windows")]
    ForeignTransport(u64),
}

/// The legacy 3-byte `IRQNoFlags` resource descriptor (small item 0x04, length 2), which
/// acpi_tables does not provide (it only has the extended `Interrupt` descriptor). QEMU's
/// ISA devices use this form, and Linux's 8250 PNP driver takes either.
struct IrqNoFlags(u8);

impl Aml for IrqNoFlags {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let mask = 1u16 << (self.0 & 0xf);
        sink.byte(0x22);
        sink.word(mask);
    }
}

fn fw_cfg_aml(out: &mut Vec<u8>) {
    let io = IO::new(FW_CFG_PORT, FW_CFG_PORT, 1, FW_CFG_PORT_COUNT);
    let crs = ResourceTemplate::new(vec![&io]);
    Device::new(
        "FWCF".into(),
        vec![
            &Name::new("_HID".into(), &"QEMU0002"),
            &Name::new("_STA".into(), &0xbu8),
            &Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(out);
}

fn rtc_aml(out: &mut Vec<u8>) {
    let io = IO::new(RTC_PORT, RTC_PORT, 1, 8);
    let irq = IrqNoFlags(RTC_IRQ);
    let crs = ResourceTemplate::new(vec![&io, &irq]);
    let hid = EISAName::new("PNP0B00");
    Device::new(
        "RTC_".into(),
        vec![
            &Name::new("_HID".into(), &hid),
            &Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(out);
}

fn serial_aml(out: &mut Vec<u8>) {
    let io = IO::new(COM1_PORT, COM1_PORT, 0, 8);
    let irq = IrqNoFlags(COM1_IRQ);
    let crs = ResourceTemplate::new(vec![&io, &irq]);
    let hid = EISAName::new("PNP0501");
    Device::new(
        "COM1".into(),
        vec![
            &Name::new("_HID".into(), &hid),
            &Name::new("_UID".into(), &1u8),
            &Name::new("_STA".into(), &0xfu8),
            &Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(out);
}

fn ged_aml(out: &mut Vec<u8>) {
    let irq = Interrupt::new(true, true, false, false, GED_IRQ);
    let crs = ResourceTemplate::new(vec![&irq]);
    let base = GED_MMIO_BASE as u32;
    let region = OpRegion::new("EREG".into(), OpRegionSpace::SystemMemory, &base, &4u8);
    let field = Field::new(
        "EREG".into(),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        vec![FieldEntry::Named(*b"ESEL", 32)],
    );
    let local0 = Local(0);
    let esel: Path = "ESEL".into();
    let load_sel = Store::new(&local0, &esel);
    let masked = And::new(&ZERO, &local0, &GED_PWR_DOWN_EVT);
    let is_pwr = Equal::new(&masked, &GED_PWR_DOWN_EVT);
    let pwrb: Path = "PWRB".into();
    let notify = Notify::new(&pwrb, &0x80u8);
    let on_pwr = acpi_tables::aml::If::new(&is_pwr, vec![&notify]);
    let evt = Method::new("_EVT".into(), 1, true, vec![&load_sel, &on_pwr]);
    Device::new(
        "GED_".into(),
        vec![
            &Name::new("_HID".into(), &"ACPI0013"),
            &Name::new("_UID".into(), &"GED"),
            &Name::new("_CRS".into(), &crs),
            &region,
            &field,
            &evt,
        ],
    )
    .to_aml_bytes(out);
}

fn power_button_aml(out: &mut Vec<u8>) {
    Device::new(
        "PWRB".into(),
        vec![
            &Name::new("_HID".into(), &"PNP0C0C"),
            &Name::new("_UID".into(), &0u8),
        ],
    )
    .to_aml_bytes(out);
}

fn virtio_aml(out: &mut Vec<u8>, t: &VirtioMmioTransport) -> Result<(), DsdtError> {
    let index = t.index().ok_or(DsdtError::ForeignTransport(t.base))?;
    let mem = Memory32Fixed::new(true, t.base as u32, VIRTIO_MMIO_SIZE as u32);
    let irq = Interrupt::new(true, false, false, false, t.gsi);
    let crs = ResourceTemplate::new(vec![&mem, &irq]);
    let name = format!("VR{index:02}");
    Device::new(
        name.as_str().into(),
        vec![
            &Name::new("_HID".into(), &"LNRO0005"),
            &Name::new("_UID".into(), &index),
            &Name::new("_CCA".into(), &1u8),
            &Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(out);
    Ok(())
}

/// The DSDT's AML body (everything after the 36-byte table header).
pub fn dsdt_body(cfg: &DsdtConfig<'_>) -> Result<Vec<u8>, DsdtError> {
    let mut sb = Vec::new();
    if cfg.fw_cfg {
        fw_cfg_aml(&mut sb);
    }
    if cfg.serial {
        serial_aml(&mut sb);
    }
    if cfg.rtc {
        rtc_aml(&mut sb);
    }
    ged_aml(&mut sb);
    power_button_aml(&mut sb);
    for t in cfg.transports {
        virtio_aml(&mut sb, t)?;
    }
    let sb_children = RawAml(&sb);
    let mut body = Vec::new();
    Scope::new("_SB_".into(), vec![&sb_children]).to_aml_bytes(&mut body);
    body.extend_from_slice(&root_scope_s5());
    Ok(body)
}

/// `Scope (\\) { Name (_S5, Package () { 5, 0, 0, 0 }) }`, QEMU's exact encoding.
/// acpi_tables' `Path` cannot name the bare root scope (every segment must be 4 characters),
/// so the scope header (ScopeOp, one-byte PkgLength, RootChar, NullName) is written here.
fn root_scope_s5() -> Vec<u8> {
    const SCOPE_OP: u8 = 0x10;
    const ROOT_CHAR: u8 = b'\\';
    const NULL_NAME: u8 = 0x00;
    let s5 = Package::new(vec![&SLP_TYP_S5, &0u8, &0u8, &0u8]);
    let mut inner = vec![ROOT_CHAR, NULL_NAME];
    Name::new("_S5_".into(), &s5).to_aml_bytes(&mut inner);
    // A one-byte PkgLength counts itself and holds up to 63.
    let pkg_len = inner.len() + 1;
    debug_assert!(pkg_len < 64);
    let mut out = vec![SCOPE_OP, pkg_len as u8];
    out.extend_from_slice(&inner);
    out
}

/// Already-encoded AML, spliced into a container.
struct RawAml<'a>(&'a [u8]);

impl Aml for RawAml<'_> {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn body_names_every_device() {
        let transports = [
            VirtioMmioTransport::slot(23, 47),
            VirtioMmioTransport::slot(22, 46),
        ];
        let body = dsdt_body(&DsdtConfig {
            fw_cfg: true,
            rtc: true,
            serial: true,
            transports: &transports,
        })
        .unwrap();
        let pos = |n: &[u8]| body.windows(n.len()).position(|w| w == n).unwrap();
        assert!(pos(b"FWCF") < pos(b"COM1") && pos(b"COM1") < pos(b"RTC_"));
        assert!(pos(b"RTC_") < pos(b"GED_") && pos(b"PWRB") < pos(b"VR23"));
        for needle in [
            &b"_SB_"[..],
            b"QEMU0002\0",
            b"RTC_",
            b"COM1",
            b"GED_",
            b"ACPI0013\0",
            b"PWRB",
            b"PNP0C0C\0",
            b"VR23",
            b"VR22",
            b"LNRO0005\0",
            b"_S5_",
            b"ESEL",
            b"_EVT",
        ] {
            assert!(
                contains(&body, needle),
                "missing {}",
                String::from_utf8_lossy(needle)
            );
        }
        // Memory32Fixed(RW, 0xfeb02e00, 0x200) for slot 23.
        let mem32 = [0x86, 9, 0, 1, 0x00, 0x2e, 0xb0, 0xfe, 0x00, 0x02, 0, 0];
        assert!(contains(&body, &mem32));
        // Extended interrupt: consumer, level, active high, exclusive, one GSI = 47.
        assert!(contains(&body, &[0x89, 6, 0, 0x01, 1, 47, 0, 0, 0]));
        // GED interrupt: consumer | edge, IRQ 9.
        assert!(contains(&body, &[0x89, 6, 0, 0x03, 1, 9, 0, 0, 0]));
        // COM1's IRQNoFlags {4} and RTC's {8}.
        assert!(contains(&body, &[0x22, 0x10, 0x00]));
        assert!(contains(&body, &[0x22, 0x00, 0x01]));
    }

    #[test]
    fn s5_is_in_a_root_scope_like_qemu() {
        assert_eq!(
            root_scope_s5(),
            [
                0x10, 0x10, b'\\', 0, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x07, 0x04, 0x0a, 0x05,
                0, 0, 0
            ]
        );
    }

    #[test]
    fn optional_devices_can_be_left_out() {
        let body = dsdt_body(&DsdtConfig {
            fw_cfg: false,
            rtc: false,
            serial: false,
            transports: &[],
        })
        .unwrap();
        assert!(!contains(&body, b"RTC_"));
        assert!(!contains(&body, b"COM1"));
        assert!(!contains(&body, b"LNRO0005"));
        assert!(!contains(&body, b"FWCF"));
        assert!(contains(&body, b"GED_"));
    }

    #[test]
    fn foreign_transports_are_refused() {
        let t = [VirtioMmioTransport {
            base: 0xd000_0000,
            gsi: 5,
        }];
        let err = dsdt_body(&DsdtConfig {
            fw_cfg: false,
            rtc: false,
            serial: true,
            transports: &t,
        })
        .unwrap_err();
        assert_eq!(err, DsdtError::ForeignTransport(0xd000_0000));
    }
}
