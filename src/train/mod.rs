//! The training loop, written once against burn's `AutodiffBackend`.
//!
//! Step-based, as makemore.py: each step draws a random batch, takes one optimizer step, and
//! every `eval_every` steps (and at the last) estimates the losses, keeps the best checkpoint by
//! the selection split's loss (val when the data has one, else test) and may stop early. The run
//! ends with the last model and the selected checkpoint each evaluated over every item; with a
//! validation split, that is the only time the test split is read.

mod average;
mod evaluation;
mod step;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::checkpoint::{self, Checkpoint};
use crate::config::{Experiment, ModelType, ScheduleConfig};
use crate::data::{Batcher, Dataset};
use crate::models::Model;
use crate::optim::{self, ModelOptimizer};
use crate::progress::Progress;
use crate::rng::{Stream, rng};
use crate::rundir::{Kind, MetricRow, RunDir, Summary, Weights};
use crate::sample::{self, SampleOptions};
pub use average::Average;
pub use evaluation::{Evaluation, evaluate};
use evaluation::{estimate, estimate_average, finish, improves};
pub use step::{StepLoss, tokens_per_step, train_step};

/// What a training run needs besides the model, and the summary it keeps up to date.
pub struct Session<'a, D> {
    pub experiment: &'a Experiment,
    pub data: &'a Dataset,
    pub run: &'a mut RunDir,
    pub summary: Summary,
    pub progress: Progress,
    pub device: D,
    pub started: Instant,
    /// Stop after this step, before the schedule's end, with a checkpoint to go on from.
    pub until: Option<usize>,
}

/// How training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// All steps done (or stopped early), and evaluated on every item.
    Finished,
    /// A signal asked to stop; `last.ckpt` holds the state to resume from.
    Interrupted,
    /// Stopped at `Session::until`; `last.ckpt` holds the state to resume from.
    Paused,
}

/// Trains `model` (or, for `counts`, takes it as fitted), then, when it finished, evaluates it
/// on every item. `resume` is the checkpoint the model was loaded from, when the run goes on
/// from one. Returns how it ended and the model as it is then.
pub fn train<B: AutodiffBackend>(
    model: Model<B>,
    resume: Option<&Checkpoint>,
    session: &mut Session<B::Device>,
) -> Result<(Ended, Model<B>)> {
    let (ended, model) = match session.experiment.model.kind {
        ModelType::Counts => {
            let state = State::new(session.experiment.seed, None);
            save(&model, Vec::new(), &state, true, session)?;
            (Ended::Finished, model)
        }
        _ => optimize(model, resume, session)?,
    };
    session.progress.finish();
    if ended == Ended::Finished {
        finish(&model, session)?;
    }
    Ok((ended, model))
}

/// The loop's state besides the model and the optimizer: what a checkpoint carries.
struct State<B: Backend> {
    batcher: Batcher,
    stale_evaluations: usize,
    /// The weight average, when `schedule.ema_decay` asks for one.
    average: Option<Average<B>>,
}

impl<B: Backend> State<B> {
    fn new(seed: u64, average: Option<Average<B>>) -> Self {
        State {
            batcher: Batcher::new(seed),
            stale_evaluations: 0,
            average,
        }
    }
}

/// The training loop, as nanoGPT's: a step, its log line, an evaluation and checkpoint every
/// `eval_every` steps (and at the last), samples every `sample_every`, until the last step, an
/// early stop, a signal or the step to pause at.
fn optimize<B: AutodiffBackend>(
    mut model: Model<B>,
    resume: Option<&Checkpoint>,
    session: &mut Session<B::Device>,
) -> Result<(Ended, Model<B>)> {
    let (experiment, data, device) = (session.experiment, session.data, session.device.clone());
    let s = &experiment.schedule;
    let optimizer = ModelOptimizer::new(s, &model);
    let (mut optimizer, first, mut state) = restore(optimizer, &model, resume, session)?;
    let mut clock = Clock::new(tokens_per_step(&model, s.batch_size, data.seq_len));
    // The step last.ckpt holds, so the end does not write the same checkpoint again.
    let mut saved_at = resume.map(|checkpoint| checkpoint.step);
    let last = session.until.map_or(s.steps, |until| until.min(s.steps));
    let mut ended = match last < s.steps {
        true => Ended::Paused,
        false => Ended::Finished,
    };
    // The threads taken from idle cores (a sweep's worker), to say when they change.
    let mut taken = None;
    for step in first..=last {
        let timer = Instant::now();
        let lr = optim::learning_rate(s, step - 1);
        let loss;
        let pool = idle_cores(step, &mut taken, session)?;
        let batcher = &mut state.batcher;
        let work = || {
            train_step(
                model,
                &mut optimizer,
                batcher,
                step,
                experiment,
                data,
                &device,
            )
        };
        (model, loss) = match pool {
            Some(pool) => pool.install(work),
            None => work(),
        };
        if let Some(average) = &mut state.average {
            average.update(&model.valid());
        }
        let loss = reads_loss(crate::backend::is_cpu::<B>(), step, s).then(|| loss.value());
        clock.tick(timer.elapsed());
        log_step(step, loss, lr, &clock, session)?;
        if step % s.sample_every == 0 {
            record_samples(&model.valid(), step, session)?;
        }
        // The last step is always evaluated, so that the selection sees the final model too,
        // and so is a pause's (a halving rung ranks its members by their estimates up to it).
        if step % s.eval_every == 0 || step == last {
            let stop = evaluate_and_save(&model, &optimizer, &mut state, step, lr, session)?;
            saved_at = Some(step);
            if stop {
                ended = Ended::Finished;
                break;
            }
        }
        if crate::signals::interrupted() {
            let line = format!("step {step}: interrupted, saving a checkpoint to resume from");
            say(session, &line)?;
            ended = Ended::Interrupted;
            break;
        }
    }
    if saved_at != Some(session.summary.step) {
        save(&model, optimizer.encode()?, &state, false, session)?;
    }
    Ok((ended, model))
}

/// The pool of idle cores to take for the next step (`backend::idle_cores_pool`), and a line in
/// the log when the threads it gives change from `taken`.
fn idle_cores<D>(
    step: usize,
    taken: &mut Option<usize>,
    session: &mut Session<D>,
) -> Result<Option<Arc<rayon::ThreadPool>>> {
    let pool = crate::backend::idle_cores_pool();
    let threads = pool.as_ref().map(|pool| pool.current_num_threads());
    if threads != *taken {
        *taken = threads;
        let line = match threads {
            Some(n) => {
                format!("step {step}: on {n} threads, cores the sweep's other workers left idle")
            }
            None => {
                format!("step {step}: back on its own threads, the sweep's other workers at work")
            }
        };
        say(session, &line)?;
    }
    Ok(pool)
}

/// The optimizer, the first step to take and the loop's state: a checkpoint's (the optimizer's
/// state and the weight average loaded from it), or a fresh start's (the average, if asked
/// for, at the starting weights).
fn restore<B: AutodiffBackend>(
    optimizer: ModelOptimizer<B>,
    model: &Model<B>,
    resume: Option<&Checkpoint>,
    session: &Session<B::Device>,
) -> Result<(ModelOptimizer<B>, usize, State<B::InnerBackend>)> {
    let (decay, device) = (session.experiment.schedule.ema_decay, &session.device);
    let starting = (decay > 0.0).then(|| Average::new(model.valid(), decay));
    let Some(checkpoint) = resume else {
        return Ok((optimizer, 1, State::new(session.experiment.seed, starting)));
    };
    let average = match (starting, &checkpoint.average) {
        (Some(_), Some(bytes)) => {
            let weights = checkpoint::load_weights(model.valid(), bytes, device)?;
            Some(Average::new(weights, decay))
        }
        (starting, _) => starting,
    };
    let state = State {
        batcher: checkpoint.batcher.clone(),
        stale_evaluations: checkpoint.stale_evaluations,
        average,
    };
    let optimizer = optimizer.decode(&checkpoint.optimizer, device)?;
    Ok((optimizer, checkpoint.step + 1, state))
}

/// The training time of the steps this process took, for the speed figures.
struct Clock {
    tokens_per_step: f64,
    steps: usize,
    spent: Duration,
}

impl Clock {
    fn new(tokens_per_step: usize) -> Self {
        Clock {
            tokens_per_step: tokens_per_step as f64,
            steps: 0,
            spent: Duration::ZERO,
        }
    }

    fn tick(&mut self, step_time: Duration) {
        self.steps += 1;
        self.spent += step_time;
    }

    fn tokens_per_s(&self) -> f64 {
        self.tokens_per_step * self.steps as f64 / self.spent.as_secs_f64()
    }

    fn ms_per_step(&self) -> f64 {
        self.spent.as_secs_f64() * 1e3 / self.steps as f64
    }
}

/// A step's figures: the summary, the progress line, and metrics.csv's train row every 10 steps.
/// A diverged run stops here: its checkpoints keep the last finite state.
fn log_step<D>(
    step: usize,
    loss: Option<f64>,
    lr: f64,
    clock: &Clock,
    session: &mut Session<D>,
) -> Result<()> {
    if let Some(loss) = loss
        && !loss.is_finite()
    {
        anyhow::bail!(
            "step {step}: the training loss is {loss}; training diverged (lower schedule.learning_rate?)"
        );
    }
    let tokens_per_s = clock.tokens_per_s();
    session.summary.step = step;
    session.summary.ms_per_step = Some(clock.ms_per_step());
    session.summary.tokens_per_s = Some(tokens_per_s);
    session.progress.step(step, loss, tokens_per_s);
    let steps = session.experiment.schedule.steps;
    if let Some(loss) = loss
        && (step.is_multiple_of(10) || step == steps)
    {
        let row = MetricRow {
            step,
            split: "train".into(),
            loss,
            lr,
            elapsed_s: session.started.elapsed().as_secs_f64(),
            tokens_per_s,
        };
        session.run.metric(&row, Kind::Batch)?;
    }
    Ok(())
}

/// The periodic evaluation: estimate the losses, keep the model if the selection split
/// improved, and leave a checkpoint to resume from, should the process die. Whether to stop
/// early (no improvement in `early_stop_patience` evaluations).
fn evaluate_and_save<B: AutodiffBackend>(
    model: &Model<B>,
    optimizer: &ModelOptimizer<B>,
    state: &mut State<B::InnerBackend>,
    step: usize,
    lr: f64,
    session: &mut Session<B::Device>,
) -> Result<bool> {
    let trained = estimate(&model.valid(), step, lr, session)?;
    // With averaging, the step's candidate is the better of its two sets of weights.
    let (loss, weights) = match &state.average {
        None => (trained, None),
        Some(average) => match estimate_average(&average.model, step, lr, session)? {
            averaged if averaged < trained => (averaged, Some(Weights::Average)),
            _ => (trained, Some(Weights::Trained)),
        },
    };
    let improved = improves(loss, session.summary.best_estimate);
    if improved {
        session.summary.best_estimate = Some(loss);
        session.summary.selected_step = Some(step);
        session.summary.selected_weights = weights;
        state.stale_evaluations = 0;
    } else {
        state.stale_evaluations += 1;
    }
    save(model, optimizer.encode()?, state, improved, session)?;
    session.run.write_summary(&session.summary)?;
    let s = &session.experiment.schedule;
    let patience = s.early_stop_patience;
    let stop = patience > 0 && state.stale_evaluations >= patience && step < s.steps;
    if stop {
        let split = session.data.selection_split().name();
        let line = format!(
            "step {step}: no {split} improvement in {patience} evaluations, stopping early"
        );
        say(session, &line)?;
    }
    Ok(stop)
}

/// Whether the loop reads step `step`'s loss: always on the CPU, where it costs nothing; on
/// another device, whose steps run ahead of the program, only where the value is needed
/// (metrics.csv's rows, before a checkpoint or samples, the end), since reading it waits for the
/// device to finish.
fn reads_loss(on_cpu: bool, step: usize, s: &ScheduleConfig) -> bool {
    on_cpu
        || step.is_multiple_of(10)
        || step == s.steps
        || step.is_multiple_of(s.eval_every)
        || step.is_multiple_of(s.sample_every)
        || crate::signals::interrupted()
}

/// Writes last.ckpt: the model, the optimizer's state and the loop's; and, when it is the `best`
/// so far, best.ckpt after it. last.ckpt says which step is the best, so a process killed
/// between the two leaves a pair that a resume can make whole (`repair_best`), whatever the
/// resume changes: best.ckpt never holds a step beyond the one resumed from.
fn save<B: AutodiffBackend>(
    model: &Model<B>,
    optimizer: Vec<u8>,
    state: &State<B::InnerBackend>,
    best: bool,
    session: &Session<B::Device>,
) -> Result<()> {
    let average = match &state.average {
        Some(average) => Some(checkpoint::encode(average.model.clone().into_record())?),
        None => None,
    };
    let checkpoint = Checkpoint {
        step: session.summary.step,
        best_loss: session.summary.best_estimate,
        best_step: session.summary.selected_step,
        stale_evaluations: state.stale_evaluations,
        batcher: state.batcher.clone(),
        written: Some(session.run.written()),
        model: checkpoint::encode::<B::InnerBackend, _>(model.valid().into_record())?,
        optimizer,
        average,
        best_average: session.summary.selected_weights == Some(Weights::Average),
    };
    checkpoint.save(&session.run.checkpoint_path("last"))?;
    if best {
        checkpoint
            .best()
            .save(&session.run.checkpoint_path("best"))?;
    }
    Ok(())
}

/// Draws `sampling.count` items, marks each in-train / in-test / new and appends them to
/// samples.txt.
pub fn record_samples<B: Backend>(
    model: &Model<B>,
    step: usize,
    session: &mut Session<B::Device>,
) -> Result<Vec<(String, &'static str)>> {
    let (experiment, data) = (session.experiment, session.data);
    let options = SampleOptions::of(&experiment.sampling);
    let mut rng = rng(experiment.seed, Stream::Sample, step);
    let items = sample::generate(
        std::slice::from_ref(model),
        &data.vocab,
        data.seq_len,
        experiment.sampling.count,
        &[],
        options,
        &mut rng,
        &session.device,
    );
    let membership = data.membership();
    let marked: Vec<(String, &'static str)> = items
        .into_iter()
        .map(|item| {
            let mark = membership.mark(&item);
            (item, mark)
        })
        .collect();
    session.run.samples(step, &marked)?;
    Ok(marked)
}

pub fn say<D>(session: &mut Session<D>, line: &str) -> Result<()> {
    session.progress.println(line);
    session.run.log(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Off the CPU the loss is read at metrics.csv's rows (every 10 steps), at evaluations and
    /// samples (before a checkpoint), and at the end; on the CPU at every step.
    #[test]
    fn the_loss_is_read_where_it_is_needed() {
        let mut s = Experiment::defaults("t").schedule;
        (s.steps, s.eval_every, s.sample_every) = (100, 25, 40);
        let read: Vec<usize> = (1..=100)
            .filter(|&step| reads_loss(false, step, &s))
            .collect();
        let expected = [10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 100];
        assert_eq!(read, expected);
        assert!((1..=100).all(|step| reads_loss(true, step, &s)));
    }
}
