//! The command line, as DESIGN.md fixes it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "makemore",
    version,
    about = "Train character-level language models on a list of items and generate more like them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train the experiment in EXPERIMENT.toml and write a run directory.
    Run {
        experiment: PathBuf,
        /// Override a setting, e.g. --set schedule.steps=2000 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Where run directories go.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
    },
    /// Validate FILE.toml and print the fully resolved experiment; runs nothing.
    Check {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
}
