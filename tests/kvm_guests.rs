//! Small guests on the KVM backend through the built binary. These fit
//! kvm_pvm (KVM's instruction emulator), so they run on our CI machines;
//! they print why they skip where /dev/kvm is unusable.

mod common;

use std::time::Duration;

use common::vm::{run, Vm};

const ACCEL_FLAG: &str = "-accel";
const ACCEL: &str = "kvm";

macro_rules! need_accel {
    () => {
        if let Some(why) = common::kvm_unusable() {
            common::skip_for_kvm(why);
            return;
        }
    };
}

include!("guest_suite/mod.rs");
include!("guest_suite/reboot.rs");
