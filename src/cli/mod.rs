//! QEMU's command-line grammar → [`MachineConfig`].

mod argv;
mod boot_report;
mod build;
mod datetime;
mod error;
mod extras;
pub mod help;
mod keyval;
mod sandbox;
mod size;

pub use error::CliError;
use machine::config::MachineConfig;

/// What the command line asks Kindling to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Build and run this machine.
    Run(Box<MachineConfig>),
    /// `-h`.
    Help,
    /// `-version`.
    Version,
    /// `-machine help`.
    MachineHelp,
    /// `-machine microvm,help`.
    MachinePropsHelp,
    /// `-cpu help`.
    CpuHelp,
    /// `-accel help`.
    AccelHelp,
    /// `-device help`.
    DeviceHelp,
}

/// Parse argv (without argv\[0\]).
pub fn parse(args: &[String]) -> Result<Action, CliError> {
    let opts = argv::split(args)?;
    build::build(&opts)
}

#[cfg(test)]
mod tests;
