//! `-h`, `-version` and the `help` listings, in QEMU's layout.

/// The version banner; the first line keeps QEMU's shape so scripts that
/// parse `qemu-system-x86_64 --version` keep working.
pub fn version() -> String {
    format!(
        "QEMU emulator version {} (Kindling {})\nCopyright (c) the Kindling developers; QEMU-compatible microvm machine emulator\n",
        machine::QEMU_COMPAT_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h`.
pub fn usage(prog: &str) -> String {
    format!(
        "{}usage: {prog} [options]

Kindling emulates QEMU's 'microvm' machine (x86-64) on KVM or on its own
software CPU. Options follow QEMU's syntax: -opt value or --opt value,
key=value,... lists with an implied first key and ',,' to escape a comma.

Standard options:
-h or -help     display this help and exit
-version        display version information and exit
-machine [type=]microvm[,prop=value[,...]]
                acpi=on|off|auto (auto: on, as in QEMU)
                pic=, pit=, rtc=on|off|auto  isa-serial=on|off
                auto-kernel-cmdline=on|off  x-option-roms=on|off
                kernel-irqchip=on|off|split  accel=kvm[:tcg]
                ('-machine help' lists machines, '-machine microvm,help' properties)
-M              same as -machine
-accel [accel=]kvm|tcg[,kernel-irqchip=...][,tb-size=n][,one-insn-per-tb=on|off]
                select accelerator (tcg: Kindling's software CPU); repeat to give fallbacks
                tb-size: translation cache size in MiB (sizes the block cache)
                one-insn-per-tb=on: every instruction its own block (reference mode)
-enable-kvm     same as -accel kvm
-cpu host|max|qemu64[,+feature|-feature|feature=on|off...]
-m [size=]megs[,slots=n,maxmem=size]
                guest RAM; a bare number is MiB, suffixes K, M, G, T
-smp [cpus=]n[,maxcpus=,sockets=,dies=,cores=,threads=]
-name [guest=]name
-uuid uuid      (accepted)
-S              freeze the CPUs at startup (use 'cont' in the monitor)
-no-reboot      exit instead of rebooting
-no-shutdown    stop before shutdown instead of exiting
-icount [shift=]N[,sleep=on|off]
                deterministic time: each instruction advances the clock 2^N ns (software CPU)
-kindling-boot-report [file=]path|stderr[,booted=text]
                (Kindling's own) one JSON line per boot with its milestones: times since
                process start, and exact instruction counts under -icount; booted=: the
                console text that marks the guest as booted (e.g. login:)

Boot options:
-kernel bzImage|vmlinux (Linux boot protocol, or ELF with a PVH note)
-initrd file    initial ram disk
-append cmdline kernel command line

Devices and character backends:
-device isa-debug-exit[,iobase=0x501,iosize=2]
                a write of V to iobase exits with status (V<<1)|1
-device virtio-blk-device,drive=id[,serial=][,bus=virtio-mmio-bus.N]
-device virtio-rng-device[,bus=]
-device virtio-net-device,netdev=id[,mac=52:54:00:12:34:56][,bus=]
-netdev tap,id=id[,ifname=name][,script=no,downscript=no]
-netdev user,id=id[,hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport]
                user-mode networking (libslirp): the guest's 10.0.2.0/24 network
-device virtio-serial-device[,bus=] -device virtconsole,chardev=id
                the guest's /dev/hvc0 on a character backend
-drive id=id,file=path,format=raw,if=none[,readonly=on][,cache=][,aio=]
-blockdev driver=raw,node-name=id,file.driver=file,file.filename=path
-device help    list devices
-serial stdio|mon:stdio|null|none|file:path|chardev:id
-chardev stdio|null|file|socket,id=id[,path=path][,host=,port=,server=on,wait=off]
-global driver.prop=value
-nodefaults     don't create default devices (no COM1 unless -serial is given)
-no-user-config (accepted; Kindling reads no configuration files)
-nographic      no display; without -serial, COM1 and the monitor share stdio
                (mon:stdio): Ctrl-A C switches, Ctrl-A X quits, Ctrl-A H helps
-display none   no display
-vga none       (accepted)

Monitor:
-qmp unix:path,server=on,wait=off | tcp:host:port,server=on,wait=off | stdio
-qmp-pretty dev like -qmp, with pretty-printed JSON
-mon chardev=id[,mode=readline|control][,pretty=on]
-monitor stdio | unix:path,server,nowait | tcp:host:port,server,nowait | chardev:id | none
                the human monitor (HMP)

Process:
-pidfile file   write the process id to file
-daemonize      detach from the terminal after the machine is set up

Kindling is not QEMU: it builds one machine type (microvm), has no firmware
image, no PCI, and boots Linux directly with -kernel.
",
        version()
    )
}

/// `-machine help`.
pub fn machines() -> String {
    "Supported machines are:\nmicrovm              microvm (i386) (default)\n".to_string()
}

/// `-machine microvm,help`.
pub fn machine_props() -> String {
    "microvm-machine options:
  acpi=<OnOffAuto>       - Enable ACPI
  append=<string>        - Linux kernel command line
  auto-kernel-cmdline=<bool> - Set off to disable adding virtio-mmio devices to the kernel cmdline
  initrd=<string>        - Linux initial ramdisk file
  isa-serial=<bool>      - Set off to disable the instantiation an ISA serial port
  kernel=<string>        - Linux kernel image file
  kernel-irqchip=on|off|split - Configure KVM in-kernel irqchip
  pic=<OnOffAuto>        - Enable i8259 PIC
  pit=<OnOffAuto>        - Enable i8254 PIT
  rtc=<OnOffAuto>        - Enable MC146818 RTC
  x-option-roms=<bool>   - Set off to disable loading option ROMs
"
    .to_string()
}

/// `-cpu help`.
pub fn cpus() -> String {
    "Available CPUs:\nx86 host                  processor with all supported host features\nx86 max                   Enables all features supported by the accelerator in the current host\nx86 qemu64                QEMU Virtual CPU version 2.5+\n".to_string()
}

/// `-accel help`.
pub fn accels() -> String {
    "Accelerators supported in QEMU binary:\ntcg\nkvm\n".to_string()
}

/// `-device help`.
pub fn devices() -> String {
    concat!(
        "Storage devices:\n",
        "name \"virtio-blk-device\", bus virtio-bus\n",
        "\n",
        "Network devices:\n",
        "name \"virtio-net-device\", bus virtio-bus\n",
        "\n",
        "Input devices:\n",
        "name \"virtconsole\", bus virtio-serial-bus\n",
        "name \"virtio-serial-device\", bus virtio-bus\n",
        "\n",
        "Misc devices:\n",
        "name \"isa-debug-exit\", bus ISA\n",
        "name \"virtio-rng-device\", bus virtio-bus\n",
    )
    .to_string()
}
