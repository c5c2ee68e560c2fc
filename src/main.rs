use std::process::ExitCode;

use clap::Parser;
use makemore::error::Error;
use makemore::{config, run};

mod cli;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on usage errors too; help and version are successes.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Run {
            experiment,
            sets,
            runs,
        } => run::run(&experiment, &sets, &runs).map(|_| ()),
        Command::Check { file, sets } => {
            config::load(&file, &sets).map(|loaded| print!("{}", loaded.experiment.to_toml()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match &error {
                Error::Input(message) => eprintln!("error: {message}"),
                Error::Failed(cause) => eprintln!("error: {cause:#}"),
            }
            ExitCode::from(error.exit_code() as u8)
        }
    }
}
