//! `kindling`: QEMU's `-M microvm` command line, on KVM or a software CPU.

mod cli;
mod logging;

use machine::board::Machine;
use machine::config::MachineConfig;
use machine::{signals, terminal};

/// Build and run the machine; returns the process exit status.
fn run(cfg: MachineConfig, prog: &str) -> i32 {
    // Before any thread exists: every thread inherits the blocked set, and
    // fork (-daemonize) is only safe while single-threaded.
    signals::block_termination_signals();
    terminal::restore_on_panic();
    let ready = if cfg.daemonize {
        match machine::process::daemonize() {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("{prog}: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    if let Err(e) = machine::sandbox::init(cfg.sandbox) {
        eprintln!("{prog}: {e}");
        return 1;
    }
    let m = match Machine::new(cfg, prog) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{prog}: {e}");
            if let Some(r) = ready {
                r(false);
            }
            return 1;
        }
    };
    if let Some(r) = ready {
        r(true);
    }
    m.run()
}

fn main() {
    // Boot reports time everything from here.
    machine::milestones::mark_process_start();
    let args: Vec<String> = std::env::args().collect();
    let prog = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("kindling")
        .to_string();
    logging::init(&prog);
    let action = match cli::parse(args.get(1..).unwrap_or(&[])) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{prog}: {e}");
            std::process::exit(1);
        }
    };
    let text = match action {
        cli::Action::Help => cli::help::usage(&prog),
        cli::Action::Version => cli::help::version(),
        cli::Action::MachineHelp => cli::help::machines(),
        cli::Action::MachinePropsHelp => cli::help::machine_props(),
        cli::Action::CpuHelp => cli::help::cpus(),
        cli::Action::AccelHelp => cli::help::accels(),
        cli::Action::DeviceHelp => cli::help::devices(),
        cli::Action::Run(cfg) => {
            let status = run(*cfg, &prog);
            machine::milestones::at_exit(status);
            std::process::exit(status)
        }
    };
    print!("{text}");
}
