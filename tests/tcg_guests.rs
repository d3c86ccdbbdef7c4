//! The same small guests on the software CPU (`-accel tcg`): always runs.

mod common;

use std::time::Duration;

use common::vm::{run, Vm};

const ACCEL_FLAG: &str = "-accel";
const ACCEL: &str = "tcg";

macro_rules! need_accel {
    () => {};
}

include!("guest_suite/mod.rs");
