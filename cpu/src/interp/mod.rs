//! Software x86-64 CPU built on the iced-x86 decoder.

pub mod fpu;
