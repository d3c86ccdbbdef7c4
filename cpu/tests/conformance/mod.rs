//! Native-execution oracle shared by the conformance tests.
#![allow(dead_code)]

pub mod native;
