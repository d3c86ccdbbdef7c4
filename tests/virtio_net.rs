//! virtio-net end to end on the software CPU. TAP: inside a network
//! namespace the test creates, the guest pings the host and the host opens
//! a TCP connection to the guest. User mode (libslirp): the guest fetches
//! from a host server at 10.0.2.2 and a host client reaches a guest server
//! through `hostfwd=`. Needs root, /dev/net/tun and iproute2 (CI has them); says why it
//! skips elsewhere.

mod common;

use std::process::Command;
use std::time::Duration;

use common::vm::Vm;

const T: Duration = Duration::from_secs(120);

/// A network namespace holding a TAP interface at 10.77.N.1/24.
struct Netns {
    name: String,
}

impl Netns {
    fn create(tag: u32) -> Result<Netns, String> {
        let name = format!("kindling-{}-{tag}", std::process::id());
        let ns = Netns { name };
        let subnet = format!("10.77.{tag}.1/24");
        ns.ip(&["netns", "add", &ns.name])?;
        for args in [
            vec!["tuntap", "add", "dev", "ktap0", "mode", "tap"],
            vec!["addr", "add", subnet.as_str(), "dev", "ktap0"],
            vec!["link", "set", "ktap0", "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            ns.exec("ip", &args)?;
        }
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn exec(&self, prog: &str, args: &[&str]) -> Result<(), String> {
        let mut a = vec!["netns", "exec", self.name.as_str(), prog];
        a.extend_from_slice(args);
        self.ip(&a)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.ip(&["netns", "del", &self.name]);
    }
}

/// The busybox shell's prompt.
const PROMPT: &str = "/ # ";

/// Type `line` at the guest's shell and wait for the next prompt (lines
/// typed while a command still runs can be lost).
fn sh(vm: &mut Vm, line: &str) {
    let n = vm.output().matches(PROMPT).count();
    vm.type_text(&format!("{line}\n"));
    assert!(vm.wait_for(PROMPT, n + 1, T), "{line}:\n{}", vm.output());
}

#[test]
fn guest_and_host_exchange_packets_over_tap() {
    let (Some(k), Some(initrd)) = (
        common::guest_file("vmlinux"),
        common::guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    let ns = match Netns::create(1) {
        Ok(ns) => ns,
        Err(e) => {
            common::skip(format!(
                "cannot create a network namespace with a TAP interface: {e}"
            ));
            return;
        }
    };
    let kindling = common::kindling();
    let args = [
        "netns",
        "exec",
        ns.name.as_str(),
        kindling.to_str().unwrap(),
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-netdev",
        "tap,id=n0,ifname=ktap0,script=no,downscript=no",
        "-device",
        "virtio-net-device,netdev=n0,mac=52:54:00:ab:cd:01",
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        "console=ttyS0 reboot=t panic=-1 quiet rdinit=/bin/sh",
    ];
    let mut vm = Vm::start_program("ip", &args);
    assert!(vm.wait_for(PROMPT, 1, T), "no shell:\n{}", vm.output());
    sh(
        &mut vm,
        "busybox ip link set eth0 up; busybox ip addr add 10.77.1.2/24 dev eth0",
    );
    sh(
        &mut vm,
        "echo mac=$(cat /sys/class/net/eth0/address 2>/dev/null || busybox ip link show eth0)",
    );
    // The marker is computed, so the echoed command line does not match it.
    sh(
        &mut vm,
        "busybox ping -c 2 10.77.1.1; echo guest-ping$((1+1))=$?",
    );
    assert!(
        vm.wait_for("guest-ping2=", 1, T),
        "{}\nstderr:\n{}",
        vm.output(),
        vm.errors()
    );
    assert!(vm.output().contains("guest-ping2=0"), "{}", vm.output());
    assert!(vm.output().contains("52:54:00:ab:cd:01"), "{}", vm.output());
    // And the other way: a host program connects to a TCP server in the
    // guest and its message comes out on the guest's console.
    vm.type_text("busybox nc -l -p 7777 | busybox tr a-z A-Z\n");
    assert!(vm.wait_for("tr a-z A-Z", 1, T), "{}", vm.output());
    std::thread::sleep(Duration::from_millis(500));
    let connect = ns.exec(
        "python3",
        &[
            "-c",
            "import socket,time\n\
             for i in range(50):\n\
             \ttry:\n\
             \t\ts=socket.create_connection(('10.77.1.2',7777),timeout=5);break\n\
             \texcept OSError: time.sleep(0.2)\n\
             s.sendall(b'hello from the host\\n');s.close()",
        ],
    );
    assert!(connect.is_ok(), "host -> guest TCP: {connect:?}");
    assert!(vm.wait_for("HELLO FROM THE HOST", 1, T), "{}", vm.output());
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0), "{}", vm.output());
}

#[test]
fn network_options_fail_with_qemus_messages() {
    let run = |args: &[&str]| common::vm::run(args, Duration::from_secs(10));
    let (code, _, err) = run(&["-device", "virtio-net-device,netdev=nope"]);
    assert_eq!(code.code(), Some(1));
    assert!(
        err.contains("Property 'virtio-net-device.netdev' can't find value 'nope'"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "-netdev",
        "tap,id=n0,ifname=kt-none,script=no",
        "-device",
        "virtio-net-device,netdev=n0,mac=52:54:zz:00:00:01",
    ]);
    assert_eq!(code.code(), Some(1));
    assert!(
        err.contains("Property 'virtio-net-device.mac' doesn't take value '52:54:zz:00:00:01'"),
        "{err}"
    );
    let (code, _, err) = run(&["-netdev", "user,id=n0,hostfwd=tcp::80"]);
    assert_eq!(code.code(), Some(1));
    assert!(
        err.contains("Invalid host forwarding rule 'tcp::80' (Bad host port separator)"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-device,netdev=n0",
        "-device",
        "virtio-net-device,netdev=n0",
    ]);
    assert_eq!(code.code(), Some(1));
    assert!(
        err.contains(
            "-device virtio-net-device,netdev=n0: \
             Property 'virtio-net-device.netdev' can't take value 'n0', it's in use"
        ),
        "{err}"
    );
    let (code, _, err) = run(&["-netdev", "user,id=n0,host=10.0.3.2"]);
    assert_eq!(code.code(), Some(1));
    assert!(
        err.contains("-netdev user,id=n0,host=10.0.3.2: Host doesn't belong to network"),
        "{err}"
    );
    let (code, _, err) = run(&["-netdev", "tap,id=n0,script=/etc/qemu-ifup"]);
    assert_eq!(code.code(), Some(1));
    assert!(err.contains("script=no"), "{err}");
}

/// A free TCP port on the host's loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn user_networking_reaches_the_host_and_forwards_host_ports() {
    use std::io::{Read, Write};
    let (Some(k), Some(initrd)) = (
        common::guest_file("vmlinux"),
        common::guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    // A host server the guest reaches at 10.0.2.2 (QEMU's host address).
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = server.local_addr().unwrap().port();
    let served = std::thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        let mut req = [0u8; 1024];
        let n = c.read(&mut req).unwrap_or(0);
        c.write_all(b"HTTP/1.0 200 OK\r\n\r\nserved-by-the-host\n")
            .unwrap();
        String::from_utf8_lossy(&req[..n]).to_string()
    });
    let fwd_port = free_port();
    let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{fwd_port}-:7777");
    let mut vm = Vm::start_interactive(&[
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-netdev",
        &netdev,
        "-device",
        "virtio-net-device,netdev=n0",
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        "console=ttyS0 reboot=t panic=-1 quiet rdinit=/bin/sh",
    ]);
    assert!(vm.wait_for(PROMPT, 1, T), "no shell:\n{}", vm.output());
    // The shared kernel has no AF_PACKET, so udhcpc cannot run: configure
    // the address slirp's DHCP server would give.
    sh(
        &mut vm,
        "busybox ip link set eth0 up; busybox ip addr add 10.0.2.15/24 dev eth0; \
         busybox ip route add default via 10.0.2.2",
    );
    sh(
        &mut vm,
        &format!("busybox wget -q -O - http://10.0.2.2:{server_port}/index"),
    );
    assert!(vm.wait_for("served-by-the-host", 1, T), "{}", vm.output());
    let request = served.join().unwrap();
    assert!(request.starts_with("GET /index"), "{request}");
    // hostfwd: a host client reaches a guest server.
    let prompts = vm.output().matches(PROMPT).count();
    vm.type_text("busybox nc -l -p 7777 | busybox tr a-z A-Z\n");
    assert!(vm.wait_for("tr a-z A-Z", 1, T), "{}", vm.output());
    // Until the guest's nc listens, slirp accepts and then drops the
    // connection: retry until the message comes through.
    let mut through = false;
    for _ in 0..20 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", fwd_port)) {
            let _ = s.write_all(b"through hostfwd\n");
        }
        if vm.wait_for("THROUGH HOSTFWD", 1, Duration::from_secs(3)) {
            through = true;
            break;
        }
    }
    assert!(
        through,
        "nothing came through the forwarded port:\n{}",
        vm.output()
    );
    // nc ends with the connection; until then typed lines would go to it.
    assert!(vm.wait_for(PROMPT, prompts + 1, T), "{}", vm.output());
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0), "{}", vm.output());
}

#[test]
fn a_busy_forwarded_port_is_refused_like_qemu() {
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22");
    let (code, _, err) = common::vm::run(
        &[
            "-accel",
            "tcg",
            "-nodefaults",
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-device,netdev=n0",
            "-kernel",
            k.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "Could not set up host forwarding rule 'tcp:127.0.0.1:{port}-:22'"
        )),
        "{err}"
    );
}

/// Without CAP_NET_ADMIN (dropped with setpriv) the TAP interface cannot be
/// created: QEMU's message, status 1, before any guest runs.
#[test]
fn a_tap_that_cannot_be_configured_fails_like_qemu() {
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let kindling = common::kindling();
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-net_admin",
            "--bounding-set=-net_admin",
            kindling.to_str().unwrap(),
            "-accel",
            "tcg",
            "-nodefaults",
            "-netdev",
            "tap,id=n0,ifname=kt-noperm,script=no,downscript=no",
            "-device",
            "virtio-net-device,netdev=n0",
            "-kernel",
            k.to_str().unwrap(),
        ])
        .output();
    let out = match out {
        Ok(o) if !String::from_utf8_lossy(&o.stderr).contains("setpriv:") => o,
        other => {
            common::skip(format!("setpriv cannot drop CAP_NET_ADMIN here: {other:?}"));
            return;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Unprivileged users cannot even open /dev/net/tun (mode 0600).
    assert!(
        err.contains(
            "-netdev tap,id=n0,ifname=kt-noperm,script=no,downscript=no: \
             could not configure /dev/net/tun (kt-noperm): Operation not permitted"
        ) || err.contains("could not open /dev/net/tun: Permission denied"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
}

/// The device-test initramfs (scripts/guest/test-initramfs-path.sh), or
/// None (with the reason) when it cannot be built here.
fn test_initramfs() -> Option<std::path::PathBuf> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/guest/test-initramfs-path.sh");
    let o = Command::new(script).env("NO_APT", "1").output().ok()?;
    if !o.status.success() {
        common::skip(String::from_utf8_lossy(&o.stderr));
        return None;
    }
    Some(String::from_utf8(o.stdout).ok()?.trim().into())
}

/// The device-test initramfs's `test=net` on user networking, unattended:
/// the NIC has QEMU's first default MAC, the guest fetches a page from a
/// host web server and talks to a host TCP server, both at 10.0.2.2.
#[test]
fn test_initramfs_net_test_passes_on_user_networking() {
    net_test_on_user_networking("user,id=n0", "", "10.0.2.2", "NET-ADDR 10.0.2.15/24");
}

/// DHCP: slirp's server gives the guest 10.0.2.15. The shared kernel has no
/// AF_PACKET sockets for busybox's udhcpc, so this boots a kernel built with
/// them (`GUEST_PACKET=1 scripts/guest/path.sh`; scripts/test.sh provides it as
/// `KINDLING_DHCP_GUEST_DIR`).
#[test]
fn the_guest_gets_its_address_by_dhcp_on_user_networking() {
    let Some(dir) = std::env::var_os("KINDLING_DHCP_GUEST_DIR") else {
        common::skip("KINDLING_DHCP_GUEST_DIR is not set (GUEST_PACKET=1 scripts/guest/path.sh builds the kernel)");
        return;
    };
    let kernel = std::path::Path::new(&dir).join("bzImage");
    net_test_with_kernel(
        Some(kernel),
        "user,id=n0",
        "net-addr=dhcp",
        "10.0.2.2",
        "NET-ADDR 10.0.2.15/24 dhcp",
    );
}

/// The same on another network (`net=`, `host=`, `dhcpstart=`): the guest
/// takes the address slirp's DHCP would give and reaches the host at the
/// address given.
#[test]
fn user_network_addresses_can_be_chosen() {
    net_test_on_user_networking(
        "user,id=n0,net=192.168.76.0/24,host=192.168.76.1,dhcpstart=192.168.76.9",
        "net-addr=192.168.76.9/24 net-gw=192.168.76.1",
        "192.168.76.1",
        "NET-ADDR 192.168.76.9/24 static",
    );
}

/// Boot the device-test initramfs's `test=net` on `netdev` with the extra
/// kernel words `words`; host servers are reached at `host`.
fn net_test_on_user_networking(netdev: &str, words: &str, host: &str, addr_line: &str) {
    net_test_with_kernel(
        common::guest_file("bzImage"),
        netdev,
        words,
        host,
        addr_line,
    );
}

/// [`net_test_on_user_networking`] with another `kernel`.
fn net_test_with_kernel(
    kernel: Option<std::path::PathBuf>,
    netdev: &str,
    words: &str,
    host: &str,
    addr_line: &str,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let (Some(k), Some(initrd)) = (kernel, test_initramfs()) else {
        return;
    };
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_port = web.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = web.accept() {
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nline one\nline two\n");
        }
    });
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((c, _)) = echo.accept() {
            let mut line = String::new();
            let mut r = BufReader::new(c.try_clone().unwrap());
            let _ = r.read_line(&mut line);
            let _ = (&c).write_all(format!("ECHO {}", line).as_bytes());
        }
    });
    let append = format!(
        "console=ttyS0 reboot=t panic=-1 quiet test=virtio,net {words} \
         net-url=http://{host}:{web_port}/page net-tcp={host}:{echo_port} end=reboot"
    );
    let mut vm = Vm::start(&[
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
        "-netdev",
        netdev,
        "-device",
        "virtio-net-device,netdev=n0",
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        &append,
    ]);
    let code = vm.wait_exit(T);
    let out = vm.output();
    assert_eq!(code.code(), Some(0), "{out}");
    for want in [
        "VIRTIO virtio0 device=0x0001",
        "NET-MAC 52:54:00:12:34:56",
        addr_line,
        "NET-BODY line one",
        "NET-BODY line two",
        "NET-TCP ECHO KINDLING-NET-PING",
        "TEST net ok",
        "TESTS-DONE ok",
    ] {
        assert!(out.contains(want), "no '{want}' in:\n{out}");
    }
}

/// As QEMU: a netdev may come after its NIC; a NIC without a netdev and a
/// netdev without a NIC only draw warnings, and the guest still runs.
#[test]
fn unconnected_nics_and_netdevs_only_warn() {
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    for (args, warning) in [
        (
            vec![
                "-device",
                "virtio-net-device,netdev=n0",
                "-netdev",
                "user,id=n0",
            ],
            None,
        ),
        (
            vec!["-device", "virtio-net-device"],
            Some("warning: nic virtio-net-device.0 has no peer"),
        ),
        (
            vec!["-netdev", "user,id=n0"],
            Some("warning: netdev n0 has no peer"),
        ),
    ] {
        let mut a = vec![
            "-accel",
            "tcg",
            "-nodefaults",
            "-kernel",
            k.to_str().unwrap(),
        ];
        a.extend_from_slice(&args);
        let mut vm = Vm::start(&a);
        std::thread::sleep(Duration::from_millis(1500));
        let err = vm.errors();
        assert!(!err.contains("can't find"), "{args:?}: {err}");
        match warning {
            Some(w) => assert!(err.contains(w), "{args:?}: {err}"),
            None => assert!(!err.contains("warning"), "{args:?}: {err}"),
        }
        assert!(vm.running(), "{args:?} stopped: {err}");
    }
}
