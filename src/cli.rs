//! The command line, as the README documents it (ARCHITECTURE.md maps the rest). Each command's
//! arguments are the library's request for it; `run` and `check` take a file and settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use makemore::bench::BenchRequest;
use makemore::interchange::{ExportRequest, ImportRequest};
use makemore::report::ReportRequest;
use makemore::sample::SampleRequest;
use makemore::score::ScoreRequest;
use makemore::sweep::SweepRequest;

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
    Run(RunArgs),
    /// Run every trial of a grid file; run it again to go on after an interruption.
    Sweep(SweepRequest),
    /// Print samples from a trained run, one per line.
    Sample(SampleRequest),
    /// Print each item's log-probability under a trained run's model: total and per character.
    Score(ScoreRequest),
    /// Write a run's model as safetensors that makemore.py's model loads (its names and layouts).
    Export(ExportRequest),
    /// Turn makemore.py's model.pt (or an exported safetensors file) into a run directory.
    Import(ImportRequest),
    /// Compare the runs below the given directories: one row per configuration, seeds aggregated.
    Report(ReportRequest),
    /// Measure training, evaluation and sampling speed of each model family on this machine.
    Bench(BenchRequest),
    /// Validate FILE.toml and print the fully resolved experiment; runs nothing.
    Check(CheckArgs),
}

impl Command {
    /// Whether the command trains: its output is a log, which a closed pipe must not stop.
    pub fn trains(&self) -> bool {
        matches!(self, Command::Run(_) | Command::Sweep(_))
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(required_unless_present = "resume", conflicts_with = "resume")]
    pub experiment: Option<PathBuf>,
    /// Override a setting, e.g. --set schedule.steps=2000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Where run directories go.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Go on with an interrupted run from its last checkpoint (or extend a finished one with
    /// --set schedule.steps=N).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Stop after this step of the schedule, with a checkpoint; --resume goes on from it to the
    /// same losses as a run that never stopped.
    #[arg(long, value_name = "STEP")]
    pub until: Option<usize>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    pub file: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}
