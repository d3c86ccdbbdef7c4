//! User-mode networking (`-netdev user`) through libslirp, the library QEMU
//! uses: the guest sees QEMU's 10.0.2.0/24 network (gateway and host
//! 10.0.2.2, DNS 10.0.2.3, DHCP from 10.0.2.15) and reaches the host's
//! network through ordinary sockets; `hostfwd=` rules forward host ports
//! to the guest.
//!
//! libslirp-sys (by libslirp's maintainer) provides the C declarations; its
//! companion crate `libslirp` wraps them but has no host forwarding and a
//! `Context` that cannot leave its thread, so the event loop here is our
//! own: one thread per netdev owns the Slirp instance, polls its sockets
//! and timers, feeds it the guest's frames and hands its frames to the NIC.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use libslirp_sys as sys;

use super::net::{NetBackend, NetInput};

/// One `hostfwd=` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFwd {
    /// UDP (else TCP).
    pub udp: bool,
    /// Host address to listen on (0.0.0.0: all).
    pub host_addr: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// Guest address (0.0.0.0: the first DHCP address).
    pub guest_addr: Ipv4Addr,
    /// Guest port.
    pub guest_port: u16,
    /// The rule as typed, for messages.
    pub rule: String,
}

impl HostFwd {
    /// Parse QEMU's `[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`
    /// field by field from the left as QEMU's `slirp_hostfwd` does; the
    /// error is its reason (`Invalid host forwarding rule 'R' (REASON)`).
    pub fn parse(rule: &str) -> Result<HostFwd, &'static str> {
        let (proto, rest) = rule.split_once(':').ok_or("No : separators")?;
        let udp = match proto {
            "tcp" | "" => false,
            "udp" => true,
            _ => return Err("Bad protocol name"),
        };
        let (host, rest) = rest.split_once(':').ok_or("Missing : separator")?;
        let host_addr = addr(host).ok_or("Bad host address")?;
        let (host_port, rest) = rest.split_once('-').ok_or("Bad host port separator")?;
        let host_port = port(host_port).ok_or("Bad host port")?;
        let (guest, guest_port) = rest.split_once(':').ok_or("Missing guest address")?;
        let guest_addr = addr(guest).ok_or("Bad guest address")?;
        let guest_port = port(guest_port)
            .filter(|&p| p != 0)
            .ok_or("Bad guest port")?;
        Ok(HostFwd {
            udp,
            host_addr,
            host_port,
            guest_addr,
            guest_port,
            rule: rule.to_string(),
        })
    }
}

/// The addresses of a user network (`-netdev user,net=,host=,dhcpstart=,
/// dns=,restrict=`), QEMU's 10.0.2.0/24 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserOptions {
    /// The network (`net=ADDR[/MASK]`).
    pub net: Ipv4Addr,
    /// Its mask.
    pub mask: Ipv4Addr,
    /// The host's (gateway's) address in it (`host=`).
    pub host: Ipv4Addr,
    /// The first address DHCP hands out (`dhcpstart=`).
    pub dhcp_start: Ipv4Addr,
    /// The DNS forwarder's address (`dns=`).
    pub dns: Ipv4Addr,
    /// `restrict=on`: the guest reaches only the host forwardings.
    pub restrict: bool,
}

impl Default for UserOptions {
    fn default() -> Self {
        UserOptions {
            net: Ipv4Addr::new(10, 0, 2, 0),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            host: Ipv4Addr::new(10, 0, 2, 2),
            dhcp_start: Ipv4Addr::new(10, 0, 2, 15),
            dns: Ipv4Addr::new(10, 0, 2, 3),
            restrict: false,
        }
    }
}

impl UserOptions {
    /// Build from the `net`, `host`, `dhcpstart`, `dns` and `restrict`
    /// (already a boolean) values as QEMU's `net_slirp_init` does: `net=`
    /// moves the defaults into the new network (host .2, DNS .3, DHCP .15
    /// of it), then each address must parse and fit; errors are QEMU's.
    pub fn new(
        net: Option<&str>,
        host: Option<&str>,
        dhcp_start: Option<&str>,
        dns: Option<&str>,
        restrict: bool,
    ) -> Result<UserOptions, &'static str> {
        let mut o = UserOptions {
            restrict,
            ..UserOptions::default()
        };
        let u = u32::from;
        if let Some(spec) = net {
            let (addr, mask) = match spec.split_once('/') {
                None => {
                    let a: Ipv4Addr = spec.parse().map_err(|_| "Failed to parse netmask")?;
                    (a, classful_mask(u(a)))
                }
                Some((a, m)) => {
                    let a: Ipv4Addr = a.parse().map_err(|_| "Failed to parse netmask")?;
                    let mask = match m.parse::<u32>() {
                        Ok(shift) if (4..=32).contains(&shift) => u32::MAX << (32 - shift),
                        Ok(_) => return Err("Invalid netmask provided (must be in range 4-32)"),
                        Err(_) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
                            return Err("Invalid netmask provided (must be in range 4-32)")
                        }
                        Err(_) => u(m
                            .parse::<Ipv4Addr>()
                            .map_err(|_| "Failed to parse netmask")?),
                    };
                    (a, mask)
                }
            };
            let net = u(addr) & mask;
            o.net = net.into();
            o.mask = mask.into();
            o.host = (net | (0x0202 & !mask)).into();
            o.dhcp_start = (net | (0x020f & !mask)).into();
            o.dns = (net | (0x0203 & !mask)).into();
        }
        let (net, mask) = (u(o.net), u(o.mask));
        if let Some(h) = host {
            o.host = h.parse().map_err(|_| "Failed to parse host")?;
        }
        if u(o.host) & mask != net {
            return Err("Host doesn't belong to network");
        }
        if let Some(d) = dns {
            o.dns = d.parse().map_err(|_| "Failed to parse DNS")?;
        }
        if restrict && u(o.dns) & mask != net {
            return Err("DNS doesn't belong to network");
        }
        if o.dns == o.host {
            return Err("DNS must be different from host");
        }
        if let Some(d) = dhcp_start {
            o.dhcp_start = d
                .parse()
                .map_err(|_| "Failed to parse DHCP start address")?;
        }
        if u(o.dhcp_start) & mask != net {
            return Err("DHCP doesn't belong to network");
        }
        if o.dhcp_start == o.host || o.dhcp_start == o.dns {
            return Err("DHCP must be different from host and DNS");
        }
        Ok(o)
    }
}

/// The mask QEMU gives a `net=` without one (by address class).
fn classful_mask(a: u32) -> u32 {
    if a & 0x8000_0000 == 0 {
        0xff00_0000
    } else if a & 0xfff0_0000 == 0xac10_0000 {
        0xfff0_0000
    } else if a & 0xc000_0000 == 0x8000_0000 || a & 0xffff_0000 == 0xc0a8_0000 {
        // Class B; 192.168.0.0/16.
        0xffff_0000
    } else if a & 0xffff_0000 == 0xc612_0000 {
        0xfffe_0000
    } else if a & 0xe000_0000 == 0xe000_0000 {
        0xffff_ff00
    } else {
        0xffff_fff0
    }
}

/// An IPv4 address, or 0.0.0.0 for an empty field.
fn addr(s: &str) -> Option<Ipv4Addr> {
    if s.is_empty() {
        Some(Ipv4Addr::UNSPECIFIED)
    } else {
        s.parse().ok()
    }
}

/// A port number in C's notation (decimal, 0x hex, leading-0 octal).
fn port(s: &str) -> Option<u16> {
    let s = s.trim_start();
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    u16::from_str_radix(digits, radix).ok()
}

/// The guest side's handle: frames the guest transmits go to the slirp
/// thread through here.
#[derive(Debug)]
pub struct UserNet {
    tx: Arc<Mutex<VecDeque<Vec<u8>>>>,
    wake: Arc<OwnedFd>,
}

impl NetBackend for UserNet {
    fn send(&mut self, frame: &[u8]) {
        if let Ok(mut q) = self.tx.lock() {
            if q.len() < 1024 {
                q.push_back(frame.to_vec());
            }
        }
        poke(&self.wake);
    }
}

fn poke(fd: &OwnedFd) {
    let b = 1u8;
    // SAFETY: a one-byte write from a valid buffer to our own pipe; a full
    // pipe (EAGAIN) already guarantees a wake-up.
    unsafe { libc::write(fd.as_raw_fd(), (&b as *const u8).cast(), 1) };
}

/// What the slirp thread delivers to: the NIC's receive queue, and a
/// callback that makes the device take the frames (process its queue).
pub type Deliver = Box<dyn Fn() + Send>;

/// A netdev waiting for its NIC: [`UserNet`] is the NIC's backend, and
/// [`PendingUserNet::start`] runs the network once the NIC exists.
pub struct PendingUserNet {
    tx: Arc<Mutex<VecDeque<Vec<u8>>>>,
    wake_r: OwnedFd,
    wake_w: Arc<OwnedFd>,
    rules: Vec<HostFwd>,
    options: UserOptions,
}

impl std::fmt::Debug for PendingUserNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingUserNet")
            .field("rules", &self.rules)
            .finish()
    }
}

/// Create a user-mode network with `rules`.
pub fn user_net(
    rules: Vec<HostFwd>,
    options: UserOptions,
) -> Result<(UserNet, PendingUserNet), String> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned only here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let tx = Arc::new(Mutex::new(VecDeque::new()));
    let wake_w = Arc::new(w);
    Ok((
        UserNet {
            tx: tx.clone(),
            wake: wake_w.clone(),
        },
        PendingUserNet {
            tx,
            wake_r: r,
            wake_w,
            rules,
            options,
        },
    ))
}

impl PendingUserNet {
    /// Start the network thread delivering to `input` (then `deliver()`);
    /// fails as QEMU does when a forwarding rule cannot be set up. The
    /// thread calls `on_start` first (the board confines it there).
    pub fn start(
        self,
        input: Arc<NetInput>,
        deliver: Deliver,
        on_start: fn(),
    ) -> Result<(), String> {
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("slirp".into())
            .spawn(move || {
                on_start();
                run(self, input, deliver, done_tx)
            })
            .map_err(|e| format!("could not start user-mode networking: {e}"))?;
        done_rx
            .recv()
            .unwrap_or_else(|_| Err("user-mode networking stopped".into()))
    }
}

/// A libslirp timer.
struct Timer {
    cb: sys::SlirpTimerCb,
    cb_opaque: *mut c_void,
    /// Expiry in milliseconds of [`State::start`], if armed.
    expire_ms: Option<i64>,
}

/// Everything the callbacks reach through their `opaque` pointer.
struct State {
    start: Instant,
    input: Arc<NetInput>,
    deliver: Deliver,
    wake_w: Arc<OwnedFd>,
    timers: Vec<*mut Timer>,
}

impl State {
    fn now_ms(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

/// # Safety
/// Called by libslirp with the `opaque` given to `slirp_new` (a `State`).
unsafe extern "C" fn send_packet(buf: *const c_void, len: usize, opaque: *mut c_void) -> isize {
    // SAFETY: see the function's contract; `buf` holds `len` bytes.
    let (st, frame) = unsafe {
        (
            &*(opaque as *const State),
            std::slice::from_raw_parts(buf as *const u8, len),
        )
    };
    st.input.push(frame.to_vec());
    (st.deliver)();
    len as isize
}

unsafe extern "C" fn guest_error(msg: *const c_char, _opaque: *mut c_void) {
    // SAFETY: libslirp passes a NUL-terminated message.
    let msg = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    log::warn!("user-mode networking: guest error: {msg}");
}

unsafe extern "C" fn clock_get_ns(opaque: *mut c_void) -> i64 {
    // SAFETY: `opaque` is our `State`.
    let st = unsafe { &*(opaque as *const State) };
    i64::try_from(st.start.elapsed().as_nanos()).unwrap_or(i64::MAX)
}

unsafe extern "C" fn timer_new(
    cb: sys::SlirpTimerCb,
    cb_opaque: *mut c_void,
    opaque: *mut c_void,
) -> *mut c_void {
    // SAFETY: `opaque` is our `State`, used only on the slirp thread.
    let st = unsafe { &mut *(opaque as *mut State) };
    let t = Box::into_raw(Box::new(Timer {
        cb,
        cb_opaque,
        expire_ms: None,
    }));
    st.timers.push(t);
    t.cast()
}

unsafe extern "C" fn timer_free(timer: *mut c_void, opaque: *mut c_void) {
    // SAFETY: as in `timer_new`; `timer` came from it.
    let st = unsafe { &mut *(opaque as *mut State) };
    let t = timer as *mut Timer;
    if let Some(i) = st.timers.iter().position(|&x| x == t) {
        st.timers.swap_remove(i);
        // SAFETY: created by Box::into_raw in `timer_new`, freed once.
        drop(unsafe { Box::from_raw(t) });
    }
}

unsafe extern "C" fn timer_mod(timer: *mut c_void, expire_ms: i64, _opaque: *mut c_void) {
    // SAFETY: `timer` came from `timer_new` and is still live.
    unsafe { (*(timer as *mut Timer)).expire_ms = Some(expire_ms) };
}

unsafe extern "C" fn register_poll_fd(_fd: c_int, _opaque: *mut c_void) {}

unsafe extern "C" fn notify(opaque: *mut c_void) {
    // SAFETY: `opaque` is our `State`.
    let st = unsafe { &*(opaque as *const State) };
    poke(&st.wake_w);
}

unsafe extern "C" fn add_poll(fd: c_int, events: c_int, opaque: *mut c_void) -> c_int {
    // SAFETY: `opaque` is the poll list of `run`.
    let fds = unsafe { &mut *(opaque as *mut Vec<libc::pollfd>) };
    let mut ev = 0;
    if events & sys::SLIRP_POLL_IN != 0 {
        ev |= libc::POLLIN;
    }
    if events & sys::SLIRP_POLL_OUT != 0 {
        ev |= libc::POLLOUT;
    }
    if events & sys::SLIRP_POLL_PRI != 0 {
        ev |= libc::POLLPRI;
    }
    fds.push(libc::pollfd {
        fd,
        events: ev,
        revents: 0,
    });
    (fds.len() - 1) as c_int
}

unsafe extern "C" fn get_revents(idx: c_int, opaque: *mut c_void) -> c_int {
    // SAFETY: `opaque` is the poll list of `run`; `idx` came from `add_poll`.
    let fds = unsafe { &*(opaque as *const Vec<libc::pollfd>) };
    let Some(p) = fds.get(idx as usize) else {
        return 0;
    };
    let mut r = 0;
    if p.revents & libc::POLLIN != 0 {
        r |= sys::SLIRP_POLL_IN;
    }
    if p.revents & libc::POLLOUT != 0 {
        r |= sys::SLIRP_POLL_OUT;
    }
    if p.revents & libc::POLLPRI != 0 {
        r |= sys::SLIRP_POLL_PRI;
    }
    if p.revents & libc::POLLERR != 0 {
        r |= sys::SLIRP_POLL_ERR;
    }
    if p.revents & libc::POLLHUP != 0 {
        r |= sys::SLIRP_POLL_HUP;
    }
    r
}

/// The user network of `o` (QEMU's 10.0.2.0/24 by default).
fn config(o: &UserOptions) -> sys::SlirpConfig {
    sys::SlirpConfig {
        // Not 4: version 4 makes libslirp also read two callbacks
        // (`init_completed`, `timer_new_opaque`) that libslirp-sys's
        // `SlirpCb` does not have, i.e. whatever lies past its end (a
        // crash in slirp_new). Version 3 has every field used here; DHCP
        // is on either way.
        version: 3,
        restricted: c_int::from(o.restrict),
        in_enabled: true,
        vnetwork: o.net.into(),
        vnetmask: o.mask.into(),
        vhost: o.host.into(),
        in6_enabled: true,
        vprefix_addr6: "fec0::"
            .parse::<Ipv6Addr>()
            .unwrap_or(Ipv6Addr::UNSPECIFIED)
            .into(),
        vprefix_len: 64,
        vhost6: "fec0::2"
            .parse::<Ipv6Addr>()
            .unwrap_or(Ipv6Addr::UNSPECIFIED)
            .into(),
        vhostname: std::ptr::null(),
        tftp_server_name: std::ptr::null(),
        tftp_path: std::ptr::null(),
        bootfile: std::ptr::null(),
        vdhcp_start: o.dhcp_start.into(),
        vnameserver: o.dns.into(),
        vnameserver6: "fec0::3"
            .parse::<Ipv6Addr>()
            .unwrap_or(Ipv6Addr::UNSPECIFIED)
            .into(),
        vdnssearch: std::ptr::null_mut(),
        vdomainname: std::ptr::null(),
        if_mtu: 0,
        if_mru: 0,
        disable_host_loopback: false,
        enable_emu: false,
        outbound_addr: std::ptr::null(),
        outbound_addr6: std::ptr::null(),
        disable_dns: false,
        disable_dhcp: false,
    }
}

/// The slirp thread.
fn run(
    net: PendingUserNet,
    input: Arc<NetInput>,
    deliver: Deliver,
    done: mpsc::Sender<Result<(), String>>,
) {
    let state = Box::into_raw(Box::new(State {
        start: Instant::now(),
        input,
        deliver,
        wake_w: net.wake_w.clone(),
        timers: Vec::new(),
    }));
    let callbacks = sys::SlirpCb {
        send_packet: Some(send_packet),
        guest_error: Some(guest_error),
        clock_get_ns: Some(clock_get_ns),
        timer_new: Some(timer_new),
        timer_free: Some(timer_free),
        timer_mod: Some(timer_mod),
        register_poll_fd: Some(register_poll_fd),
        unregister_poll_fd: Some(register_poll_fd),
        notify: Some(notify),
    };
    let cfg = config(&net.options);
    // SAFETY: the config and callbacks outlive the call; `state` lives
    // for the whole thread (this function never returns while slirp runs).
    let slirp = unsafe { sys::slirp_new(&cfg, &callbacks, state.cast()) };
    if slirp.is_null() {
        let _ = done.send(Err("could not initialize user-mode networking".into()));
        return;
    }
    for r in &net.rules {
        // SAFETY: a live Slirp instance; plain values.
        let rc = unsafe {
            sys::slirp_add_hostfwd(
                slirp,
                c_int::from(r.udp),
                r.host_addr.into(),
                c_int::from(r.host_port),
                r.guest_addr.into(),
                c_int::from(r.guest_port),
            )
        };
        if rc < 0 {
            let _ = done.send(Err(format!(
                "Could not set up host forwarding rule '{}'",
                r.rule
            )));
            return;
        }
    }
    let _ = done.send(Ok(()));
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        let frames: Vec<Vec<u8>> = net
            .tx
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default();
        for f in frames {
            // SAFETY: a live Slirp; the frame outlives the call.
            unsafe { sys::slirp_input(slirp, f.as_ptr(), f.len() as c_int) };
        }
        fds.clear();
        fds.push(libc::pollfd {
            fd: net.wake_r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let mut timeout: u32 = 1000;
        // SAFETY: `fds` is the opaque the add_poll callback expects.
        unsafe {
            sys::slirp_pollfds_fill(
                slirp,
                &mut timeout,
                Some(add_poll),
                (&mut fds as *mut Vec<_>).cast(),
            )
        };
        // SAFETY: `state` is live; only this thread touches it.
        let st = unsafe { &mut *state };
        let now = st.now_ms();
        for &t in &st.timers {
            // SAFETY: timers in the list are live.
            if let Some(e) = unsafe { (*t).expire_ms } {
                timeout = timeout.min(u32::try_from((e - now).max(0)).unwrap_or(u32::MAX));
            }
        }
        // SAFETY: a valid pollfd array of `fds.len()` entries.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout as c_int,
            )
        };
        if fds[0].revents & libc::POLLIN != 0 {
            let mut sink = [0u8; 256];
            // SAFETY: draining our own non-blocking pipe into a local buffer.
            while unsafe { libc::read(fds[0].fd, sink.as_mut_ptr().cast(), sink.len()) } > 0 {}
        }
        // SAFETY: `fds` is the opaque the get_revents callback expects.
        unsafe {
            sys::slirp_pollfds_poll(
                slirp,
                c_int::from(n < 0),
                Some(get_revents),
                (&mut fds as *mut Vec<_>).cast(),
            )
        };
        // Fire expired timers (a callback may re-arm or free timers).
        let now = st.now_ms();
        let due: Vec<*mut Timer> = st
            .timers
            .iter()
            .copied()
            // SAFETY: timers in the list are live.
            .filter(|&t| unsafe { (*t).expire_ms }.is_some_and(|e| e <= now))
            .collect();
        for t in due {
            if !st.timers.contains(&t) {
                continue;
            }
            // SAFETY: still in the list, hence live.
            let (cb, arg) = unsafe {
                (*t).expire_ms = None;
                ((*t).cb, (*t).cb_opaque)
            };
            if let Some(cb) = cb {
                // SAFETY: libslirp's own callback with its own argument.
                unsafe { cb(arg) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostfwd_rules_in_qemus_spelling() {
        let r = HostFwd::parse("tcp::5555-:22").unwrap();
        assert!(!r.udp);
        assert_eq!((r.host_addr, r.host_port), (Ipv4Addr::UNSPECIFIED, 5555));
        assert_eq!((r.guest_addr, r.guest_port), (Ipv4Addr::UNSPECIFIED, 22));
        assert_eq!(r.rule, "tcp::5555-:22");
        let r = HostFwd::parse("udp:127.0.0.1:6000-10.0.2.15:7000").unwrap();
        assert!(r.udp);
        assert_eq!(r.host_addr, Ipv4Addr::LOCALHOST);
        assert_eq!(r.guest_addr, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!((r.host_port, r.guest_port), (6000, 7000));
        assert_eq!(
            HostFwd::parse("::0x50-:010").map(|r| (r.host_port, r.guest_port)),
            Ok((80, 8))
        );
        // QEMU 7.2's reasons, checked against qemu-system-x86_64.
        for (bad, why) in [
            ("tcp", "No : separators"),
            ("sctp::1-:2", "Bad protocol name"),
            ("tcp:1-2", "Missing : separator"),
            ("tcp:300.1.1.1:1-:2", "Bad host address"),
            ("tcp::80", "Bad host port separator"),
            ("tcp::x-:2", "Bad host port"),
            ("tcp::70000-:2", "Bad host port"),
            ("tcp::1-2", "Missing guest address"),
            ("tcp::1-a.b:2", "Bad guest address"),
            ("tcp::1-:0", "Bad guest port"),
        ] {
            assert_eq!(HostFwd::parse(bad), Err(why), "{bad}");
        }
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn user_network_addresses_follow_qemu() {
        assert_eq!(
            UserOptions::new(None, None, None, None, false),
            Ok(UserOptions::default())
        );
        let o = UserOptions::new(Some("192.168.76.0/24"), None, None, None, true).unwrap();
        assert_eq!(
            (o.net, o.mask, o.host, o.dns, o.dhcp_start),
            (
                ip("192.168.76.0"),
                ip("255.255.255.0"),
                ip("192.168.76.2"),
                ip("192.168.76.3"),
                ip("192.168.76.15")
            )
        );
        assert!(o.restrict);
        // Classful mask; .2.2 and friends in a /8, as QEMU.
        let o = UserOptions::new(Some("10.9.0.0"), None, None, None, false).unwrap();
        assert_eq!((o.mask, o.host), (ip("255.0.0.0"), ip("10.0.2.2")));
        let o = UserOptions::new(
            Some("172.20.0.0/255.255.0.0"),
            Some("172.20.0.1"),
            Some("172.20.0.100"),
            Some("172.20.0.53"),
            false,
        )
        .unwrap();
        assert_eq!(
            (o.mask, o.host, o.dhcp_start, o.dns),
            (
                ip("255.255.0.0"),
                ip("172.20.0.1"),
                ip("172.20.0.100"),
                ip("172.20.0.53")
            )
        );
        for (net, host, dhcp, dns, why) in [
            (
                Some("10.0.2.0/40"),
                None,
                None,
                None,
                "Invalid netmask provided (must be in range 4-32)",
            ),
            (
                Some("nonsense"),
                None,
                None,
                None,
                "Failed to parse netmask",
            ),
            (
                None,
                Some("10.0.3.2"),
                None,
                None,
                "Host doesn't belong to network",
            ),
            (None, Some("x"), None, None, "Failed to parse host"),
            (
                None,
                None,
                None,
                Some("10.0.2.2"),
                "DNS must be different from host",
            ),
            (
                None,
                None,
                Some("10.0.9.15"),
                None,
                "DHCP doesn't belong to network",
            ),
            (
                None,
                None,
                Some("10.0.2.3"),
                None,
                "DHCP must be different from host and DNS",
            ),
        ] {
            assert_eq!(
                UserOptions::new(net, host, dhcp, dns, false),
                Err(why),
                "{net:?} {host:?} {dhcp:?} {dns:?}"
            );
        }
    }
}
