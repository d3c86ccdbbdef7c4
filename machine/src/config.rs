//! What the command line asked for, validated: the board is built from this.

use std::path::PathBuf;

/// QEMU's OnOffAuto property type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnOffAuto {
    /// Forced on.
    On,
    /// Forced off.
    Off,
    /// The board decides.
    #[default]
    Auto,
}

/// An accelerator QEMU users can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelKind {
    /// `/dev/kvm`.
    Kvm,
    /// The software CPU (QEMU's spelling: `tcg`).
    Tcg,
}

impl AccelKind {
    /// QEMU's name.
    pub fn name(self) -> &'static str {
        match self {
            AccelKind::Kvm => "kvm",
            AccelKind::Tcg => "tcg",
        }
    }
}

/// `-cpu` model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuModel {
    /// `host`: everything the accelerator supports.
    Host,
    /// `max`: the same as `host` here.
    #[default]
    Max,
    /// `qemu64`: a conservative baseline.
    Qemu64,
}

/// `-cpu` model plus `+feat`/`-feat`/`feat=on|off` adjustments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuConfig {
    /// Base model.
    pub model: CpuModel,
    /// Feature adjustments in command-line order (name, enabled).
    pub features: Vec<(String, bool)>,
}

/// `kernel-irqchip=` of the machine or accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelIrqchip {
    /// LAPIC in the kernel, IOAPIC/PIC/PIT in userspace (microvm's default).
    #[default]
    Split,
    /// Everything in the kernel (accepted; Kindling still runs split).
    On,
    /// Everything in userspace (accepted; Kindling still runs split on KVM).
    Off,
}

/// Where a character device's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CharBackend {
    /// The process's stdin/stdout (an interactive console).
    Stdio,
    /// Output discarded, no input.
    Null,
    /// Output appended to a file (QEMU truncates it; so do we), no input.
    File(PathBuf),
    /// A socket (`-chardev socket,...`): its raw parameters, for the monitor.
    Socket(Vec<(String, String)>),
}

/// A named `-chardev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chardev {
    /// `id=`.
    pub id: String,
    /// Its backend.
    pub backend: CharBackend,
}

/// `-device isa-debug-exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugExitConfig {
    /// First port (QEMU default 0x501).
    pub iobase: u16,
    /// Number of ports (QEMU default 2).
    pub iosize: u16,
}

impl Default for DebugExitConfig {
    fn default() -> Self {
        DebugExitConfig {
            iobase: 0x501,
            iosize: 2,
        }
    }
}

/// The machine the command line describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// `-name`.
    pub name: Option<String>,
    /// Accelerators to try, in order (`accel=kvm:tcg`).
    pub accel: Vec<AccelKind>,
    /// `-accel tcg,tb-size=N,one-insn-per-tb=on|off`.
    pub tcg: cpu::interp::TcgOptions,
    /// `-cpu`.
    pub cpu: CpuConfig,
    /// Guest RAM in bytes.
    pub ram_bytes: u64,
    /// Number of vCPUs.
    pub cpus: u32,
    /// `-kernel`.
    pub kernel: Option<PathBuf>,
    /// `-initrd`.
    pub initrd: Option<PathBuf>,
    /// `-append`.
    pub append: String,
    /// `acpi=`: `auto` means on, as in QEMU.
    pub acpi: OnOffAuto,
    /// `pic=`.
    pub pic: OnOffAuto,
    /// `pit=`.
    pub pit: OnOffAuto,
    /// `rtc=`.
    pub rtc: OnOffAuto,
    /// `isa-serial=`.
    pub isa_serial: bool,
    /// `auto-kernel-cmdline=`.
    pub auto_kernel_cmdline: bool,
    /// `x-option-roms=` (accepted; there are no option ROMs to load).
    pub option_roms: bool,
    /// `kernel-irqchip=`.
    pub kernel_irqchip: KernelIrqchip,
    /// COM1's backend (`None`: no COM1, as QEMU with `-nodefaults` and no `-serial`).
    pub serial: Option<CharBackend>,
    /// `-nographic`: stdio is QEMU's mux, with Ctrl-A escapes.
    pub nographic: bool,
    /// COM1 shares stdio with the human monitor (`mon:stdio`, and
    /// `-nographic` with no `-serial` or monitor option): Ctrl-A C switches.
    pub serial_mux: bool,
    /// `-no-reboot`.
    pub no_reboot: bool,
    /// `-no-shutdown`.
    pub no_shutdown: bool,
    /// `-pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `-daemonize`.
    pub daemonize: bool,
    /// `-uuid` (lower case), for `query-uuid`.
    pub uuid: Option<String>,
    /// `-sandbox` (seccomp filters per thread kind; on by default).
    pub sandbox: crate::sandbox::SandboxConfig,
    /// `-S`.
    pub start_paused: bool,
    /// `-device isa-debug-exit`.
    pub debug_exit: Option<DebugExitConfig>,
    /// `-icount shift=N`: deterministic instruction-counted time.
    pub icount_shift: Option<u32>,
    /// `-icount sleep=on|off` (default on): whether an idle guest's
    /// instruction-counted time follows the host clock or jumps ahead.
    pub icount_sleep: bool,
    /// `-rtc base=DATETIME`: the RTC's start, in seconds since the Unix
    /// epoch (`None`: the host's time at start).
    pub rtc_base: Option<u64>,
    /// `-chardev` definitions.
    pub chardevs: Vec<Chardev>,
    /// `-qmp`/`-mon`/`-monitor` arguments in order, for the monitor layer.
    pub monitors: Vec<MonitorArg>,
    /// `-global driver.prop=value` settings.
    pub globals: Vec<(String, String)>,
    /// Block backends.
    pub drives: Vec<DriveConfig>,
    /// Network backends.
    pub netdevs: Vec<NetdevConfig>,
    /// virtio devices in command-line order.
    pub virtio: Vec<VirtioDeviceConfig>,
    /// `-kindling-boot-report`: where boot reports go, the "booted" pattern.
    pub boot_report: crate::milestones::BootReportConfig,
}

/// A `-drive`/`-blockdev` backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveConfig {
    /// `id=` (or `node-name=`).
    pub id: String,
    /// The image file.
    pub file: PathBuf,
    /// `readonly=on` / `read-only=on`.
    pub read_only: bool,
    /// `cache=` (or -blockdev's `cache.direct=`/`cache.no-flush=`).
    pub cache: devices::virtio::blk::CacheMode,
    /// `format=raw|qcow2` (`-blockdev driver=`).
    pub format: devices::virtio::blk::ImageFormat,
    /// The option as typed, for error messages.
    pub location: String,
}

/// A virtio device on the virtio-mmio bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirtioKind {
    /// `virtio-blk-device,drive=ID[,serial=]`.
    Block {
        /// The drive's id.
        drive: String,
        /// `serial=`.
        serial: String,
    },
    /// `virtio-rng-device`.
    Rng,
    /// `virtio-net-device,netdev=ID[,mac=]`.
    Net {
        /// The `-netdev` id (`None`: not connected; QEMU runs such a NIC,
        /// warning that it "has no peer").
        netdev: Option<String>,
        /// The MAC address.
        mac: [u8; 6],
    },
    /// `virtio-serial-device`, with its one `virtconsole,chardev=ID` port.
    Console {
        /// The port's chardev (`None`: no port yet; output is dropped).
        chardev: Option<String>,
    },
}

/// A `-netdev` backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetdevConfig {
    /// `id=`.
    pub id: String,
    /// What it is.
    pub kind: NetdevKind,
    /// The option as typed, for error messages.
    pub location: String,
}

/// The kinds of `-netdev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetdevKind {
    /// `tap,ifname=NAME`: the host interface (`tap%d`: the kernel picks).
    Tap {
        /// The interface name.
        ifname: String,
    },
    /// `user[,hostfwd=RULE]...`: libslirp user-mode networking.
    User {
        /// Host forwarding rules.
        hostfwd: Vec<devices::virtio::slirp::HostFwd>,
        /// `net=`, `host=`, `dhcpstart=`, `dns=`, `restrict=`.
        options: devices::virtio::slirp::UserOptions,
    },
}

/// One `-device virtio-*-device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioDeviceConfig {
    /// What it is.
    pub kind: VirtioKind,
    /// `bus=virtio-mmio-bus.N`: pin it to transport N.
    pub bus: Option<u32>,
    /// The option as typed, for error messages.
    pub location: String,
}

/// A monitor option as typed, resolved by the monitor layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorArg {
    /// `qmp`, `qmp-pretty`, `mon` (QMP) or `monitor` (HMP: `stdio`,
    /// `unix:...`, `tcp:...` or `chardev:ID`).
    pub option: String,
    /// Its value.
    pub value: String,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            name: None,
            accel: vec![AccelKind::Tcg],
            tcg: cpu::interp::TcgOptions::default(),
            cpu: CpuConfig::default(),
            ram_bytes: 128 << 20,
            cpus: 1,
            kernel: None,
            initrd: None,
            append: String::new(),
            acpi: OnOffAuto::Auto,
            pic: OnOffAuto::Auto,
            pit: OnOffAuto::Auto,
            rtc: OnOffAuto::Auto,
            isa_serial: true,
            auto_kernel_cmdline: true,
            option_roms: true,
            kernel_irqchip: KernelIrqchip::Split,
            serial: None,
            nographic: false,
            serial_mux: false,
            no_reboot: false,
            no_shutdown: false,
            pidfile: None,
            daemonize: false,
            uuid: None,
            sandbox: crate::sandbox::SandboxConfig::default(),
            start_paused: false,
            debug_exit: None,
            icount_shift: None,
            icount_sleep: true,
            rtc_base: None,
            chardevs: Vec::new(),
            monitors: Vec::new(),
            globals: Vec::new(),
            drives: Vec::new(),
            netdevs: Vec::new(),
            virtio: Vec::new(),
            boot_report: crate::milestones::BootReportConfig::default(),
        }
    }
}

impl MachineConfig {
    /// Whether the board has ACPI tables (`acpi=auto` is on, as in QEMU).
    pub fn acpi_enabled(&self) -> bool {
        self.acpi != OnOffAuto::Off
    }

    /// Whether the 8259 pair exists.
    pub fn pic_enabled(&self) -> bool {
        self.pic != OnOffAuto::Off
    }

    /// Whether the 8254 exists.
    pub fn pit_enabled(&self) -> bool {
        self.pit != OnOffAuto::Off
    }

    /// Whether the RTC exists: QEMU creates it for `auto` only without KVM.
    pub fn rtc_enabled(&self, accel: AccelKind) -> bool {
        match self.rtc {
            OnOffAuto::On => true,
            OnOffAuto::Off => false,
            OnOffAuto::Auto => accel != AccelKind::Kvm,
        }
    }
}
