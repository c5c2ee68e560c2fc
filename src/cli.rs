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
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        experiment: Option<PathBuf>,
        /// Override a setting, e.g. --set schedule.steps=2000 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Where run directories go.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Go on with an interrupted run from its last checkpoint (or extend a finished one with
        /// --set schedule.steps=N).
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
    },
    /// Validate FILE.toml and print the fully resolved experiment; runs nothing.
    Check {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
}
