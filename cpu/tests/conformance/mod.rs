//! The conformance harness shared by the `conformance_*` test binaries:
//! the host CPU is the oracle ([`native`]), [`compare`] runs a snippet on
//! it and on the interpreter and reports differences readably, [`rng`] is
//! the seeded generator of the randomized tests, [`vector`] random
//! SIMD start states, [`step`] the generators' steps, [`ymm`] random
//! YMM states and the VEX form
//! loop, [`asm`] assembles and
//! disassembles snippets.
#![allow(dead_code)]

pub mod asm;
pub mod compare;
pub mod native;
pub mod rng;
pub mod step;
pub mod vector;
pub mod ymm;
