//! Command-line errors, printed QEMU-style: `prog: -opt value: message`.

use thiserror::Error;

/// A command line Kindling cannot run.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{}{message}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
pub struct CliError {
    /// The option as typed (`-m foo`), when the error belongs to one.
    pub location: Option<String>,
    /// What is wrong, in QEMU's words where QEMU has them.
    pub message: String,
}

impl CliError {
    /// An error located at an option.
    pub fn at(location: impl Into<String>, message: impl Into<String>) -> Self {
        CliError {
            location: Some(location.into()),
            message: message.into(),
        }
    }

    /// An error about the command line as a whole.
    pub fn general(message: impl Into<String>) -> Self {
        CliError {
            location: None,
            message: message.into(),
        }
    }
}
