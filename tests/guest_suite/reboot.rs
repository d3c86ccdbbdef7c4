// Guest restarts on one backend (issue 14), included by `kvm_guests.rs`
// and `tcg_guests.rs`: tests/guests/reboot.S walks Linux's restart order
// from the method its command line names, printing "TRY <m>" before each.
// Under -no-reboot the process must exit 0 within a second of the last
// attempt, which must be the one expected to work; without it the guest
// boots again.

fn reboot_guest_args<'a>(elf: &'a str, acpi: bool, method: &'a str) -> Vec<&'a str> {
    let mut a = accel_args(elf, &["-append", method]);
    let m = a.iter().position(|&x| x == "-M").expect("-M") + 1;
    a[m] = if acpi { "microvm,acpi=on" } else { "microvm,acpi=off" };
    a
}

/// Restart starting with `method`; the one that restarts the machine is
/// `works` (the last one the guest tries).
fn restart_case(method: &str, acpi: bool, works: &str) {
    let elf = common::guests::build("reboot");
    let args = reboot_guest_args(elf.to_str().unwrap(), acpi, method);
    let tag = format!("{ACCEL}-{method}-acpi-{acpi}");
    let mut once = args.clone();
    once.push("-no-reboot");
    let (code, out, err, after) = common::restart::run_until_exit(&once, T);
    assert_eq!(code, Some(0), "{tag}: {out}\n{err}");
    assert!(out.starts_with("BOOT\r\n"), "{tag}: {out}");
    assert!(out.ends_with(&format!("TRY {works}\r\n")), "{tag}: {out}");
    assert!(
        after <= common::restart::PROMPT,
        "{tag}: exited {after:?} after the restart request"
    );
    common::restart::boots_again(&args, &tag, "BOOT", 2, T);
}

macro_rules! restart_tests {
    ($($name:ident: $method:expr, $acpi:expr, $works:expr;)*) => {
        $(
            #[test]
            fn $name() {
                need_accel!();
                restart_case($method, $acpi, $works);
            }
        )*
    };
}

restart_tests! {
    restart_acpi_reset_register_acpi_on: "a", true, "a";
    restart_acpi_reset_register_acpi_off_falls_to_the_keyboard_controller: "a", false, "k";
    restart_keyboard_controller_acpi_on: "k", true, "k";
    restart_keyboard_controller_acpi_off: "k", false, "k";
    restart_bios_reset_vector_acpi_on: "b", true, "b";
    restart_bios_reset_vector_acpi_off: "b", false, "b";
    restart_bios_reset_vector_is_read_only: "w", false, "b";
    restart_triple_fault_acpi_on: "t", true, "t";
    restart_triple_fault_acpi_off: "t", false, "t";
    restart_default_order_acpi_on: "default", true, "a";
    restart_default_order_acpi_off: "default", false, "k";
}

/// `cli; hlt` sleeps: near-zero CPU for 10 s, QMP answers (stop, cont),
/// an NMI wakes it, and `system_reset` boots the guest again.
fn halt_case(acpi: bool) {
    let elf = common::guests::build("reboot");
    let args = reboot_guest_args(elf.to_str().unwrap(), acpi, "h");
    common::restart::halted_sleeps_and_resets(
        &args,
        &format!("{ACCEL}-halt-acpi-{acpi}"),
        common::restart::HaltMarks {
            halted: "HALTED",
            boot: "BOOT",
            nmi: Some("NMI"),
        },
        Duration::from_secs(10),
        Duration::from_millis(300),
        T,
    );
}

#[test]
fn halted_with_interrupts_off_sleeps_acpi_off() {
    need_accel!();
    halt_case(false);
}

#[test]
fn halted_with_interrupts_off_sleeps_acpi_on() {
    need_accel!();
    halt_case(true);
}
