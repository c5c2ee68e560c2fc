//! The command line, as the README documents it (ARCHITECTURE.md maps the rest).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use makemore::report::Format;
use makemore::sweep::Emit;

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
    /// Run every trial of a grid file; run it again to go on after an interruption.
    Sweep {
        grid: PathBuf,
        /// Override a setting of every trial (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Where the sweep's directory goes.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Trials at once; each gets an equal share of the cores.
        #[arg(short = 'j', long = "jobs", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
        /// Run exactly this trial (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX if set).
        #[arg(long)]
        index: Option<usize>,
        /// List the trials and what would be run, resumed, retried or skipped.
        #[arg(long)]
        dry_run: bool,
        /// Stop at the first failed trial (running ones checkpoint and stop).
        #[arg(long)]
        fail_fast: bool,
        /// Write an sbatch script for a Slurm job array, or print one command per trial.
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        /// Slurm: time limit per trial, e.g. 1:00:00.
        #[arg(long, requires = "emit")]
        time: Option<String>,
        /// Slurm: CPUs per trial.
        #[arg(long, requires = "emit")]
        cpus_per_task: Option<usize>,
        /// Slurm: memory per trial, e.g. 4G.
        #[arg(long, requires = "emit")]
        mem: Option<String>,
        /// Slurm: partition.
        #[arg(long, requires = "emit")]
        partition: Option<String>,
        /// Slurm: at most K trials at once (--array=0-N%K).
        #[arg(long, value_name = "K", requires = "emit")]
        max_parallel: Option<usize>,
    },
    /// Print samples from a trained run, one per line.
    Sample {
        run: PathBuf,
        /// How many.
        #[arg(short = 'n', default_value_t = 20)]
        count: usize,
        /// Below 1 sharper, above 1 more adventurous.
        #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
        temperature: f64,
        /// Draw from the k most likely characters only; 0 = all.
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Draw from the most likely characters that make up this much probability; 1 = all.
        #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
        top_p: f64,
        /// Every sample starts with this text.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Random seed (default: the run's).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, value_enum, default_value_t = Which::Best)]
        checkpoint: Which,
        /// Only items that are not in the data (train, val or test).
        #[arg(long)]
        new_only: bool,
        /// Tag each sample in-train, in-val, in-test or new.
        #[arg(long)]
        mark: bool,
    },
    /// Print each item's log-probability under a trained run's model: total and per character.
    Score {
        run: PathBuf,
        /// Items to score; read from standard input, one per line, when none are given.
        items: Vec<String>,
        #[arg(long, value_enum, default_value_t = Which::Best)]
        checkpoint: Which,
    },
    /// Write a run's model as safetensors that makemore.py's model loads (its names and layouts).
    Export {
        run: PathBuf,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        safetensors: PathBuf,
        #[arg(long, value_enum, default_value_t = Which::Best)]
        checkpoint: Which,
    },
    /// Turn makemore.py's model.pt (or an exported safetensors file) into a run directory.
    Import {
        /// makemore.py's state_dict (torch.save) or a safetensors file.
        model: PathBuf,
        /// The model's type: bigram, mlp, rnn, gru, bow or transformer.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// The items it was trained on (they fix the vocabulary and the block size).
        #[arg(long, value_name = "FILE")]
        data: PathBuf,
        /// Settings the model was built with (--set model.n_embd=...) or for fine-tuning
        /// (--set schedule.steps=N); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Where the run directory goes.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
    },
    /// Compare the runs below the given directories: one row per configuration, seeds aggregated.
    Report {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Aggregate by these configuration keys only (comma-separated dotted keys).
        #[arg(long, value_delimiter = ',')]
        by: Vec<String>,
        /// Keep only runs whose KEY has VALUE (repeatable), e.g. --filter model.type=gru.
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        /// The best N rows of each group.
        #[arg(long)]
        top: Option<usize>,
        /// Also draw the test-loss curves and the best losses into this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
    },
    /// Measure training, evaluation and sampling speed of each model family on this machine.
    Bench {
        /// Families to measure, comma-separated (default: all but counts).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// The items to train on.
        #[arg(long, default_value = "data/names.txt")]
        data: PathBuf,
        /// Timed optimizer steps per family.
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        /// CPU threads; 0 = all cores.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Items to sample for the sampling figure.
        #[arg(long, default_value_t = 100)]
        samples: usize,
        /// Override a setting of every family (repeatable), e.g. --set schedule.batch_size=64.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Also write the figures as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Validate FILE.toml and print the fully resolved experiment; runs nothing.
    Check {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
}

/// Which checkpoint of a run.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Which {
    /// The lowest test loss.
    Best,
    /// The latest.
    Last,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Best => "best",
            Which::Last => "last",
        }
    }
}
