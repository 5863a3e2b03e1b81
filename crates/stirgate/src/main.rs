//! The `stirgate` command: see `stirgate --help` and docs/interface.md.

use std::process::ExitCode;

use clap::Parser;

use stirgate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout with exit 0 and usage errors with exit 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let code = match cli.command {
        Command::Run(args) => stirgate::run::main(&args),
        Command::CheckConfig(args) => stirgate::run::check_config(&args),
        Command::Verify(args) => stirgate::stir_cmd::verify(args),
        Command::Sign(args) => stirgate::stir_cmd::sign(args),
        Command::Lists(args) => stirgate::lists_cmd::run(&args),
    };
    ExitCode::from(code)
}
