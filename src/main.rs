//! `kindling`: QEMU's `-M microvm` command line, on KVM or a software CPU.

mod cli;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let prog = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("kindling")
        .to_string();
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
            let _ = cfg;
            eprintln!("{prog}: running machines is not implemented yet");
            std::process::exit(1);
        }
    };
    print!("{text}");
}
