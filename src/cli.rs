//! The command line, as the README documents it (ARCHITECTURE.md maps the rest): the flags of
//! each command, turned into the library's plain request for it; `run`, `check` and `init` take
//! a file and settings.

use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use makemore::bench::BenchRequest;
use makemore::data::SplitName;
use makemore::interchange::{ExportRequest, ImportRequest};
use makemore::report::{Format, RankBy, ReportRequest};
use makemore::sample::{SampleOptions, SampleRequest};
use makemore::score::ScoreRequest;
use makemore::sweep::{Emit, SlurmOptions, SweepRequest};
use makemore::trained::Which;

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
    Sweep(SweepArgs),
    /// Print samples from a trained run, one per line.
    Sample(SampleArgs),
    /// Print each item's log-probability under a trained run's model: total and per character.
    Score(ScoreArgs),
    /// Write a run's model as safetensors that makemore.py's model loads (its names and layouts).
    Export(ExportArgs),
    /// Turn makemore.py's model.pt (or an exported safetensors file) into a run directory.
    Import(ImportArgs),
    /// Compare the runs below the given directories: one row per configuration, seeds aggregated.
    Report(ReportArgs),
    /// Measure training, evaluation and sampling speed of each model family on this machine.
    Bench(BenchArgs),
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

/// A flag's value that must be one of a library enum's names (as its `strum` derive spells them).
fn choice<E>() -> impl TypedValueParser<Value = E>
where
    E: strum::VariantNames + FromStr + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(E::VARIANTS).map(|name| {
        let Ok(value) = E::from_str(&name) else {
            unreachable!("{name} is one of the names the parser offers")
        };
        value
    })
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "expected KEY=VALUE".to_string())
}

/// What `makemore sweep` was asked for.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// The grid file.
    pub grid: PathBuf,
    /// Override a setting of every trial (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Where the sweep's directory goes.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Trials at once; each gets an equal share of the cores.
    #[arg(short = 'j', long = "jobs", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Run exactly this trial (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX if set).
    #[arg(long)]
    pub index: Option<usize>,
    /// With --index: take the cores of this host that the sweep's other workers leave idle
    /// (the sweep passes it to the workers it starts).
    #[arg(long, hide = true, requires = "index")]
    pub share_cores: bool,
    /// List the trials and what would be run, resumed, retried or skipped.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at the first failed trial (running ones checkpoint and stop).
    #[arg(long)]
    pub fail_fast: bool,
    /// Write an sbatch script for a Slurm job array, or print one command per trial.
    #[arg(long, value_parser = choice::<Emit>())]
    pub emit: Option<Emit>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

impl From<SweepArgs> for SweepRequest {
    fn from(args: SweepArgs) -> Self {
        SweepRequest {
            grid: args.grid,
            sets: args.sets,
            runs: args.runs,
            jobs: args.jobs,
            index: args.index,
            share_cores: args.share_cores,
            dry_run: args.dry_run,
            fail_fast: args.fail_fast,
            emit: args.emit,
            slurm: args.slurm.into(),
        }
    }
}

/// Resources for the Slurm script; unset ones are left to the cluster's defaults.
#[derive(Debug, Clone, Args)]
pub struct SlurmArgs {
    /// Slurm: time limit per trial, e.g. 1:00:00.
    #[arg(long, requires = "emit", value_parser = makemore::sweep::sbatch_value)]
    pub time: Option<String>,
    /// Slurm: CPUs per trial.
    #[arg(long, requires = "emit", value_parser = makemore::config::at_least_one)]
    pub cpus_per_task: Option<usize>,
    /// Slurm: memory per trial, e.g. 4G.
    #[arg(long, requires = "emit", value_parser = makemore::sweep::sbatch_value)]
    pub mem: Option<String>,
    /// Slurm: partition.
    #[arg(long, requires = "emit", value_parser = makemore::sweep::sbatch_value)]
    pub partition: Option<String>,
    /// Slurm: at most K trials at once (--array=0-N%K).
    #[arg(long, value_name = "K", requires = "emit", value_parser = makemore::config::at_least_one)]
    pub max_parallel: Option<usize>,
}

impl From<SlurmArgs> for SlurmOptions {
    fn from(args: SlurmArgs) -> Self {
        SlurmOptions {
            time: args.time,
            cpus_per_task: args.cpus_per_task,
            mem: args.mem,
            partition: args.partition,
            max_parallel: args.max_parallel,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SampleOptionsArgs {
    /// Below 1 sharper, above 1 more adventurous; 0 takes the likeliest character every time
    /// (greedy: every sample is the same).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Draw from the k most likely characters only; 0 = all.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Draw from the most likely characters that make up this much probability (of what top-k
    /// left); 1 = all.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f64,
    /// No sample ends before it has this many characters (the stop token is held back).
    #[arg(long, default_value_t = 0)]
    pub min_len: usize,
    /// A sample is cut at this many characters; 0 = as long as the model's items.
    #[arg(long, default_value_t = 0)]
    pub max_len: usize,
}

impl From<SampleOptionsArgs> for SampleOptions {
    fn from(args: SampleOptionsArgs) -> Self {
        SampleOptions {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            min_len: args.min_len,
            max_len: args.max_len,
        }
    }
}

/// What `makemore sample` was asked for.
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    /// The run directory (or an experiment's directory of runs: its newest).
    pub run: PathBuf,
    /// Other runs of the same data and split whose models join RUN's in an ensemble: its
    /// next-character distribution is the mean of theirs.
    #[arg(long, value_name = "RUN", num_args = 1..)]
    pub ensemble: Vec<PathBuf>,
    /// How many.
    #[arg(short = 'n', default_value_t = 20)]
    pub count: usize,
    #[command(flatten)]
    pub options: SampleOptionsArgs,
    /// Every sample starts with this text.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Random seed (default: the run's).
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_parser = choice::<Which>(), default_value = "best")]
    pub checkpoint: Which,
    /// Only items that are not in the data (train, val or test).
    #[arg(long)]
    pub new_only: bool,
    /// Tag each sample in-train, in-val, in-test or new.
    #[arg(long)]
    pub mark: bool,
    /// Then measure every draw (new, copied, held-out hits, distinct, the judge's gap, the
    /// lengths' distance) and print the figures on standard error.
    #[arg(long)]
    pub stats: bool,
}

impl From<SampleArgs> for SampleRequest {
    fn from(args: SampleArgs) -> Self {
        SampleRequest {
            runs: std::iter::once(args.run).chain(args.ensemble).collect(),
            count: args.count,
            options: args.options.into(),
            prefix: args.prefix,
            seed: args.seed,
            checkpoint: args.checkpoint,
            new_only: args.new_only,
            mark: args.mark,
            stats: args.stats,
        }
    }
}

/// What `makemore score` was asked for.
#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    /// The run directory (or an experiment's directory of runs: its newest).
    pub run: PathBuf,
    /// Items to score; read from standard input, one per line, when none are given.
    pub items: Vec<String>,
    /// Other runs of the same data and split whose models join RUN's in an ensemble: its
    /// next-character distribution is the mean of theirs (items then follow `--`).
    #[arg(long, value_name = "RUN", num_args = 1..)]
    pub ensemble: Vec<PathBuf>,
    /// Instead of items, the loss over every item of this split of the run's data (nats per
    /// character) with its standard error over the items, as a run's summary gives it.
    #[arg(long, value_parser = choice::<SplitName>(), conflicts_with = "items")]
    pub split: Option<SplitName>,
    /// After each item's figures, each character's log-probability (its end's last), given the
    /// characters before it, separated by spaces.
    #[arg(long, conflicts_with = "split")]
    pub characters: bool,
    #[arg(long, value_parser = choice::<Which>(), default_value = "best")]
    pub checkpoint: Which,
    /// Leave out the lines the model cannot score (characters outside its vocabulary, longer
    /// than its items, blank) instead of printing them without figures and exiting with 2.
    #[arg(long)]
    pub skip_unknown: bool,
}

impl From<ScoreArgs> for ScoreRequest {
    fn from(args: ScoreArgs) -> Self {
        ScoreRequest {
            runs: std::iter::once(args.run).chain(args.ensemble).collect(),
            items: args.items,
            split: args.split,
            characters: args.characters,
            checkpoint: args.checkpoint,
            skip_unknown: args.skip_unknown,
        }
    }
}

/// What `makemore export` was asked for.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The run directory (or an experiment's directory of runs: its newest).
    pub run: PathBuf,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub safetensors: PathBuf,
    #[arg(long, value_parser = choice::<Which>(), default_value = "best")]
    pub checkpoint: Which,
}

impl From<ExportArgs> for ExportRequest {
    fn from(args: ExportArgs) -> Self {
        ExportRequest {
            run: args.run,
            safetensors: args.safetensors,
            checkpoint: args.checkpoint,
        }
    }
}

/// What `makemore import` needs: the weights file, the model type, the data and any settings.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// makemore.py's state_dict (torch.save) or a safetensors file.
    #[arg(value_name = "MODEL")]
    pub weights: PathBuf,
    /// The model's type: bigram, mlp, rnn, gru, bow or transformer.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// The items it was trained on (they fix the vocabulary and the block size).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Settings the model was built with (--set model.n_embd=...) or for fine-tuning
    /// (--set schedule.steps=N); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Where the run directory goes.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
}

impl From<ImportArgs> for ImportRequest {
    fn from(args: ImportArgs) -> Self {
        ImportRequest {
            weights: args.weights,
            kind: args.kind,
            data: args.data,
            sets: args.sets,
            runs: args.runs,
        }
    }
}

/// What `makemore report` was asked for.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Directories to look for runs in (below them, at any depth).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    #[arg(long, value_parser = choice::<Format>(), default_value = "table")]
    pub format: Format,
    /// Aggregate by these configuration keys only (comma-separated dotted keys).
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// Keep only runs whose KEY has VALUE (repeatable), e.g. --filter model.type=gru.
    #[arg(long = "filter", value_name = "KEY=VALUE", value_parser = key_value)]
    pub filters: Vec<(String, String)>,
    /// The best N rows of each group.
    #[arg(long, value_parser = makemore::config::at_least_one)]
    pub top: Option<usize>,
    /// Also draw the selection-loss curves and the best losses into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page (tables, plots, samples).
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
    /// Rank each group's rows by this figure: the selection split's loss (val), the test loss, or
    /// a generation metric (the share new, copied, held_out or distinct; |judge gap|; length TV).
    #[arg(long, value_parser = choice::<RankBy>(), default_value = "val")]
    pub rank_by: RankBy,
    /// Add each configuration's ensemble (its finished runs' selected checkpoints, their
    /// next-character distributions averaged): its val and its test loss over every item, the
    /// test ± its standard error over the test items. Opens every run's model.
    #[arg(long)]
    pub ensemble: bool,
}

impl From<ReportArgs> for ReportRequest {
    fn from(args: ReportArgs) -> Self {
        ReportRequest {
            dirs: args.dirs,
            format: args.format,
            by: args.by,
            filters: args.filters,
            top: args.top,
            plot: args.plot,
            html: args.html,
            rank_by: args.rank_by,
            ensemble: args.ensemble,
        }
    }
}

/// What `makemore bench` was asked for.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Families to measure, comma-separated (default: all but counts).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// The items to train on.
    #[arg(long, default_value = "data/names.txt")]
    pub data: PathBuf,
    /// Timed optimizer steps per family.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// CPU threads; 0 = all cores.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Items to sample for the sampling figure.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Override a setting of every family (repeatable), e.g. --set schedule.batch_size=64.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl From<BenchArgs> for BenchRequest {
    fn from(args: BenchArgs) -> Self {
        BenchRequest {
            models: args.models,
            data: args.data,
            steps: args.steps,
            warmup: args.warmup,
            threads: args.threads,
            samples: args.samples,
            sets: args.sets,
            json: args.json,
        }
    }
}
