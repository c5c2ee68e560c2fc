//! `makemore run`: from an experiment file (or an interrupted run) to a finished run directory.
//!
//! Everything that can be wrong with the input (configuration, data, model choice) is checked
//! before the run directory exists, so a bad experiment leaves nothing behind.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use crate::backend::{self, on_backend};
use crate::checkpoint::{self, Checkpoint};
use crate::config::{self, BackendName, Experiment, LongItems, ModelType};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::{Model, memory};
use crate::progress::Progress;
use crate::rundir::{self, First, RunDir, Status, Summary};
use crate::train::{self, Ended, Session};

/// How a run ended, when it ended well.
#[allow(clippy::large_enum_variant)] // one per command
pub enum Outcome {
    /// Trained (or fitted) and evaluated: its directory, its summary, its final samples, marked
    /// in-train, in-val, in-test or new.
    Trained {
        dir: PathBuf,
        summary: Summary,
        samples: Vec<(String, &'static str)>,
    },
    /// A finished run asked to go on without more steps: nothing to do.
    AlreadyDone { dir: PathBuf, step: usize },
    /// Stopped at the step it was asked to stop at (`--until`), to go on with `--resume`.
    Paused { dir: PathBuf, step: usize },
}

/// Runs the experiment in `file` in a new run directory, to its end or to step `until`.
pub fn run(file: &Path, sets: &[String], runs: &Path, until: Option<usize>) -> Result<Outcome> {
    let experiment = config::load(file, sets)?.experiment;
    check_until(until)?;
    start(&experiment, None, until, |name, first| {
        RunDir::create(runs, name, first)
    })
}

/// Trains the shipped experiment of the family named `model` on the data file `data`
/// (`makemore run --data FILE --model TYPE`).
pub fn run_on_data(
    data: &Path,
    model: &str,
    sets: &[String],
    runs: &Path,
    until: Option<usize>,
) -> Result<Outcome> {
    let kind =
        ModelType::from_name(model).map_err(|why| Error::input(format!("--model: {why}")))?;
    let experiment = config::on_data(data, kind, sets)?;
    check_until(until)?;
    start(&experiment, None, until, |name, first| {
        RunDir::create(runs, name, first)
    })
}

fn check_until(until: Option<usize>) -> Result<()> {
    match until {
        Some(0) => Err(Error::input("--until must be a step ≥ 1")),
        _ => Ok(()),
    }
}

/// Runs `experiment` in the run directory `dir`, which must not exist yet (a sweep's trial), to
/// its end or to step `until`.
pub fn run_in(experiment: &Experiment, dir: &Path, until: Option<usize>) -> Result<Outcome> {
    start(experiment, None, until, |_, first| {
        RunDir::create_at(dir, first)
    })
}

/// Runs `experiment` starting from `weights` (a model's record, as a checkpoint holds it)
/// instead of the parameters its seed draws: an import. The run knows nothing of the file they
/// came from (`interchange.rs` does).
pub fn run_from(experiment: &Experiment, runs: &Path, weights: &[u8]) -> Result<Outcome> {
    start(experiment, Some(weights), None, |name, first| {
        RunDir::create(runs, name, first)
    })
}

fn start(
    experiment: &Experiment,
    weights: Option<&[u8]>,
    until: Option<usize>,
    make_dir: impl FnOnce(&str, First) -> anyhow::Result<RunDir>,
) -> Result<Outcome> {
    let data = Dataset::load(&experiment.dataset)?;
    check_memory(experiment, &data)?;
    let backend = backend::select(&experiment.backend)?;
    backend::use_threads(experiment.backend.threads);
    on_backend!(backend, |B, device| {
        let model = Model::<B>::new(&experiment.model, &data, experiment.seed, &device);
        let model = match weights {
            Some(weights) => checkpoint::load_weights(model, weights, &device)?,
            None => model,
        };
        let now = chrono::Utc::now().to_rfc3339();
        let summary = Summary {
            status: Status::Running,
            name: experiment.name.clone(),
            model_type: experiment.model.kind.name().into(),
            params: model.parameters(),
            step: 0,
            steps: planned_steps(experiment),
            selected_on: Some(data.selection_split()),
            selected_step: None,
            selected_weights: None,
            best_estimate: None,
            val_loss: None,
            test_loss: None,
            test_loss_se: None,
            test_loss_last: None,
            final_train_loss: None,
            final_val_loss: None,
            overlap: Some(data.overlap()),
            ms_per_step: None,
            tokens_per_s: None,
            wall_s: 0.0,
            backend: backend.describe(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_hash: experiment.identity_hash(),
            data_hash: data.data_hash.clone(),
            split_hash: data.split_hash.clone(),
            started_at: now.clone(),
            updated_at: now,
            error: None,
            generation: None,
            frontier: Vec::new(),
        };
        let config = experiment.to_toml();
        let first = First {
            config: &config,
            summary: &summary,
        };
        let mut run = make_dir(&experiment.name, first)?;
        let model = Start {
            model,
            resume: None,
            device,
            until,
        };
        execute(experiment, &data, model, &mut run, summary)
    })
}

/// Goes on with the run in `dir` from its last checkpoint: weights, optimizer, step, best loss
/// and data order, so that it ends as an uninterrupted run would. Only `schedule.steps` (to train
/// for longer), the backend and where the data lies may change. It stops at step `until` if given.
pub fn resume(dir: &Path, sets: &[String], until: Option<usize>) -> Result<Outcome> {
    check_until(until)?;
    let read_summary = || {
        rundir::read_summary(dir)
            .map_err(|e| Error::input(format!("{}: not a run directory: {e:#}", dir.display())))
    };
    read_summary()?;
    // Nothing is written before the lock, and the summary is read again under it.
    let lock = rundir::lock(dir)?;
    let mut summary = read_summary()?;
    let (experiment, data) = resumable(dir, &summary, sets)?;
    if summary.status == Status::Done && experiment.schedule.steps <= summary.step {
        let (dir, step) = (dir.to_path_buf(), summary.step);
        return Ok(Outcome::AlreadyDone { dir, step });
    }
    let backend = backend::select(&experiment.backend)?;
    backend::use_threads(experiment.backend.threads);
    // Without a checkpoint (killed before the first evaluation) the run starts over in place.
    let last = dir.join("checkpoints").join("last.ckpt");
    let checkpoint = if last.exists() {
        let checkpoint = Checkpoint::read(&last).map_err(|e| Error::input(format!("{e:#}")))?;
        checkpoint.repair_best(dir)?;
        Some(checkpoint)
    } else {
        None
    };
    on_backend!(backend, |B, device| {
        let fresh = Model::<B>::new(&experiment.model, &data, experiment.seed, &device);
        let model = match &checkpoint {
            Some(checkpoint) => checkpoint
                .load_model(fresh, &device)
                .map_err(|e| Error::input(format!("{}: {e:#}", last.display())))?,
            None => fresh,
        };
        let step = checkpoint.as_ref().map_or(0, |c| c.step);
        // Starting over (no checkpoint) keeps nothing of what was written but the event file's
        // first record, its version.
        let written = match &checkpoint {
            Some(checkpoint) => checkpoint.written,
            None => Some(rundir::Written {
                events: Some(1),
                ..Default::default()
            }),
        };
        let mut run = RunDir::reopen(dir, step, written, lock)?;
        run.write_config(&experiment.to_toml())?;
        summary.status = Status::Running;
        summary.error = None;
        summary.step = step;
        summary.steps = planned_steps(&experiment);
        summary.backend = backend.describe();
        summary.config_hash = experiment.identity_hash();
        summary.best_estimate = checkpoint.as_ref().and_then(|c| c.best_loss);
        // Older checkpoints do not say which step is the best: their summary's stands.
        summary.selected_step = checkpoint
            .as_ref()
            .and_then(|c| c.best_step.or(summary.selected_step));
        summary.selected_on = Some(data.selection_split());
        summary.selected_weights = checkpoint
            .as_ref()
            .filter(|_| experiment.schedule.ema_decay > 0.0)
            .map(|c| match c.best_average {
                true => rundir::Weights::Average,
                false => rundir::Weights::Trained,
            });
        summary.overlap = Some(data.overlap());
        // Measured again at the end, of the checkpoint selected then.
        summary.generation = None;
        summary.frontier.clear();
        run.log(&format!("resuming at step {step} on {}", summary.backend))?;
        let model = Start {
            model,
            resume: checkpoint.as_ref(),
            device,
            until,
        };
        execute(&experiment, &data, model, &mut run, summary)
    })
}

/// The run's experiment with `sets` applied, and its data, when they may go on from where the
/// run stopped: only more steps, another backend, or the same data moved elsewhere.
fn resumable(dir: &Path, summary: &Summary, sets: &[String]) -> Result<(Experiment, Dataset)> {
    let stored = rundir::read_config(dir).map_err(|e| Error::input(format!("{e:#}")))?;
    let experiment = rundir::load_config(dir, sets)?;
    let changed = changed_keys(&stored, &experiment);
    // More steps extend training; checkpoints are portable between backends; the data may have
    // moved (to another machine) as long as its split is the same, which is checked below.
    let may_change = |key: &str| {
        key == "schedule.steps"
            || key.starts_with("backend.")
            || key == "dataset.path"
            || key == "dataset.test_path"
    };
    if !changed.iter().all(|key| may_change(key)) {
        return Err(Error::input(format!(
            "{}: resuming may change schedule.steps, backend.* and the data's location only; these differ from the run's config.toml: {}",
            dir.display(),
            changed.join(", ")
        )));
    }
    // The data is checked first: a finished run asked to go on with changed data is refused
    // even when there is nothing left to train.
    let data = Dataset::load(&experiment.dataset)?;
    if data.split_hash != summary.split_hash {
        return Err(Error::input(format!(
            "{}: the data or its split changed since the run started ({}); it cannot be resumed",
            dir.display(),
            experiment.dataset.path.display()
        )));
    }
    Ok((experiment, data))
}

/// The model to train, the checkpoint it was loaded from (when resuming), its device, and the
/// step to stop at if not the schedule's last.
struct Start<'a, B: AutodiffBackend> {
    model: Model<B>,
    resume: Option<&'a Checkpoint>,
    device: B::Device,
    until: Option<usize>,
}

/// Trains, keeps the summary true at every moment, and says how it ended.
fn execute<B: AutodiffBackend>(
    experiment: &Experiment,
    data: &Dataset,
    start: Start<B>,
    run: &mut RunDir,
    summary: Summary,
) -> Result<Outcome> {
    run.write_summary(&summary)?;
    let mut session = Session {
        progress: Progress::new(summary.steps, start.resume.map_or(0, |c| c.step)),
        experiment,
        data,
        run,
        summary,
        device: start.device,
        started: Instant::now(),
        until: start.until,
    };
    announce(&mut session)?;
    let wall_before = session.summary.wall_s;
    let outcome = train_and_sample(start.model, start.resume, &mut session);
    session.summary.wall_s = wall_before + session.started.elapsed().as_secs_f64();
    session.summary.updated_at = chrono::Utc::now().to_rfc3339();
    conclude(outcome, &mut session)
}

/// The run's first lines: what is trained on what, where, and what about the data deserves a
/// warning.
fn announce<D>(session: &mut Session<D>) -> Result<()> {
    let (experiment, data) = (session.experiment, session.data);
    let header = format!(
        "{}: {} model, {} parameters | {} train, {} val, {} test items, vocabulary {} | run {}",
        experiment.name,
        experiment.model.kind.name(),
        session.summary.params,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        data.vocab.size(),
        session.run.path().display()
    );
    train::say(session, &header)?;
    for line in data_lines(experiment, data) {
        train::say(session, &line)?;
    }
    Ok(())
}

/// What a user should know of the data before training on it (`run` and `check` say it): what
/// was done to the text, repeats across the splits, splits too small to measure, items whose
/// length costs time.
pub fn data_lines(experiment: &Experiment, data: &Dataset) -> Vec<String> {
    let mut lines = data.notes.clone();
    lines.extend(data.overlap().warning());
    lines.extend(data.small_split_warnings());
    lines.extend(data.length_warning());
    if experiment.model.kind == ModelType::Mlp {
        lines.extend(crate::models::mlp::context_warning(&experiment.model, data));
    }
    if data.long_items > 0 {
        let (n, max) = (data.long_items, experiment.dataset.max_len);
        lines.push(match experiment.dataset.long_items {
            LongItems::Drop => {
                format!("dropped {n} items longer than {max} characters (dataset.max_len)")
            }
            LongItems::Truncate => format!(
                "cut {n} items longer than {max} characters to their first {max} (dataset.max_len)"
            ),
        });
    }
    lines
}

/// The final samples, marked.
type Samples = Vec<(String, &'static str)>;

/// Trains, then draws the final samples. A panic inside the training stack becomes an error, so
/// that the summary can still say the run failed.
fn train_and_sample<B: AutodiffBackend>(
    model: Model<B>,
    resume: Option<&Checkpoint>,
    session: &mut Session<B::Device>,
) -> anyhow::Result<(Ended, Samples)> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (ended, model) = train::train(model, resume, session)?;
        let samples = match ended {
            Ended::Finished => {
                let step = session.summary.step;
                train::record_samples(&model.valid(), step, session)?
            }
            _ => Vec::new(),
        };
        Ok((ended, samples))
    }))
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(anyhow::anyhow!(
            "internal error: {}",
            message.unwrap_or_else(|| "a panic".into())
        ))
    })
}

/// The summary's last word (done, interrupted or failed, with the error), and the command's.
fn conclude<D>(
    outcome: anyhow::Result<(Ended, Samples)>,
    session: &mut Session<D>,
) -> Result<Outcome> {
    let dir = session.run.path().to_path_buf();
    match outcome {
        Ok((Ended::Finished, samples)) => {
            session.summary.status = Status::Done;
            session.run.write_summary(&session.summary)?;
            let summary = session.summary.clone();
            Ok(Outcome::Trained {
                dir,
                summary,
                samples,
            })
        }
        Ok((Ended::Paused, _)) => {
            // Not finished, and resumable: what "interrupted" says to report and sweep.
            session.summary.status = Status::Interrupted;
            session.run.write_summary(&session.summary)?;
            let step = session.summary.step;
            Ok(Outcome::Paused { dir, step })
        }
        Ok((Ended::Interrupted, _)) => {
            session.summary.status = Status::Interrupted;
            session.run.write_summary(&session.summary)?;
            Err(Error::Interrupted(format!(
                "interrupted at step {}; go on with: makemore run --resume {}",
                session.summary.step,
                dir.display()
            )))
        }
        Err(error) => {
            session.summary.status = Status::Failed;
            session.summary.error = Some(format!("{error:#}"));
            let error = match session.run.write_summary(&session.summary) {
                Ok(()) => error,
                Err(also) => {
                    error.context(format!("its summary.json still says running: {also:#}"))
                }
            };
            Err(error
                .context(format!("run {} failed", dir.display()))
                .into())
        }
    }
}

/// The estimate of what `experiment` needs of memory, and what the system has, in words.
pub fn memory_line(experiment: &Experiment, data: &Dataset) -> (bool, String) {
    let needed = memory::training_bytes(experiment, data.vocab.size(), data.seq_len);
    let (fits, available) = memory::fits(needed);
    let line = format!(
        "needs about {} of memory (the parameters with their gradients and optimizer state, and \
         the activations of a batch); {available} available",
        memory::human(needed),
    );
    (fits, line)
}

/// Refuses, before anything is allocated, an experiment that cannot fit in memory. On a GPU the
/// model lives in the device's memory, which is not known here, but its batches are built in
/// the host's.
pub(crate) fn check_memory(experiment: &Experiment, data: &Dataset) -> Result<()> {
    let (fits, line) = match experiment.backend.name {
        BackendName::Cuda => host_memory_line(experiment, data),
        _ => memory_line(experiment, data),
    };
    if fits {
        return Ok(());
    }
    Err(Error::input(format!(
        "{}: {line}: lower model.n_embd, model.n_embd2, model.n_layer, model.block_size, \
         schedule.batch_size, schedule.eval_batch_size or sampling.count",
        experiment.name
    )))
}

/// What the host's memory must hold of a run whose model is on a GPU, in words.
fn host_memory_line(experiment: &Experiment, data: &Dataset) -> (bool, String) {
    let needed = memory::host_bytes(experiment, data.seq_len);
    let (fits, available) = memory::fits(needed);
    let line = format!(
        "its batches and samples need about {} of the host's memory; {available} available",
        memory::human(needed),
    );
    (fits, line)
}

fn planned_steps(experiment: &Experiment) -> usize {
    match experiment.model.kind {
        ModelType::Counts => 0,
        _ => experiment.schedule.steps,
    }
}

/// The dotted keys whose values differ between two experiments.
fn changed_keys(a: &Experiment, b: &Experiment) -> Vec<String> {
    let (a, b) = (a.flatten(), b.flatten());
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
