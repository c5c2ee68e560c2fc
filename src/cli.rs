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
    /// Train the experiment in EXPERIMENT.toml (or, with --data FILE, the shipped experiment on
    /// FILE) and write a run directory.
    Run(RunArgs),
    /// Write a starter experiment file for your data, to edit, check and run.
    Init(InitArgs),
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
    /// Validate an experiment or sweep file: the resolved experiment (or every trial), its
    /// parameters and memory, what its data warns of; runs nothing.
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
    /// The experiment file to train (experiments/transformer.toml is the default one).
    #[arg(
        value_name = "EXPERIMENT.toml",
        required_unless_present_any = ["resume", "data"],
        conflicts_with_all = ["resume", "data"]
    )]
    pub experiment: Option<PathBuf>,
    /// Train straight on this data file (one item per line): the shipped experiment of --model,
    /// with runs in runs/<file stem>-<model>/.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub data: Option<PathBuf>,
    /// With --data: the model family (bigram, counts, mlp, cnn, rnn, lstm, gru, bow, transformer).
    #[arg(
        long,
        value_name = "TYPE",
        requires = "data",
        default_value = "transformer"
    )]
    pub model: String,
    /// Override a setting, e.g. --set schedule.steps=2000 (repeatable; KEY is section.key as in
    /// the experiment file, VALUE is read as TOML: 3, 1e-3, true, [1, 2], or a plain word).
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
    /// An experiment file, or a sweep file (a grid or a search).
    #[arg(value_name = "FILE.toml")]
    pub file: PathBuf,
    /// Override a setting as `run` would, e.g. --set model.n_embd=128 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The experiment file to write (it must not exist yet).
    #[arg(value_name = "EXPERIMENT.toml")]
    pub file: PathBuf,
    /// Your data file, one item per line; the experiment refers to it relative to its own
    /// directory.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// The model family (bigram, counts, mlp, cnn, rnn, lstm, gru, bow, transformer).
    #[arg(long, value_name = "TYPE", default_value = "transformer")]
    pub model: String,
}
