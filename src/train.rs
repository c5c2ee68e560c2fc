//! The training loop, written once against burn's `AutodiffBackend`.
//!
//! Step-based, as makemore.py: each step draws a random batch, takes one optimizer step, and
//! every `eval_every` steps (and at the last) estimates the losses, keeps the best checkpoint by
//! the selection split's loss (val when the data has one, else test) and may stop early. The run
//! ends with the last model and the selected checkpoint each evaluated over every item; with a
//! validation split, that is the only time the test split is read.

use std::time::{Duration, Instant};

use anyhow::Result;
use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::checkpoint::{self, Checkpoint};
use crate::config::{Experiment, ModelType, ScheduleConfig};
use crate::data::{self, Batcher, Dataset, Split, SplitName};
use crate::files::write_atomic;
use crate::models::{Mode, Model, nll, token_nll};
use crate::optim;
use crate::progress::Progress;
use crate::rng::{Stream, dropout_rng, rng};
use crate::rundir::{Metric, Row, RunDir, Summary};
use crate::sample::{self, SampleOptions};
use crate::stats;

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
#[allow(clippy::large_enum_variant)] // returned once per run
pub enum Ended<M> {
    /// All steps done (or stopped early), and evaluated on every item.
    Finished(M),
    /// A signal asked to stop; `last.ckpt` holds the state to resume from.
    Interrupted,
    /// Stopped at `Session::until`; `last.ckpt` holds the state to resume from.
    Paused,
}

/// Trains `model` (or, for `counts`, takes it as fitted), then evaluates it on every item.
/// `resume` is the checkpoint the model was loaded from, when the run goes on from one.
pub fn train<B: AutodiffBackend>(
    model: Model<B>,
    resume: Option<&Checkpoint>,
    session: &mut Session<B::Device>,
) -> Result<Ended<Model<B>>> {
    let ended = match session.experiment.model.kind {
        ModelType::Counts => {
            let state = State::new(session.experiment.seed);
            save(&model, Vec::new(), &state, true, session)?;
            Ended::Finished(model)
        }
        _ => {
            let schedule = &session.experiment.schedule;
            optim::with_optimizer(schedule, model, Optimize { resume, session })?
        }
    };
    session.progress.finish();
    let Ended::Finished(model) = ended else {
        return Ok(ended);
    };
    finish(&model, session)?;
    Ok(Ended::Finished(model))
}

/// The loop's state besides the model and the optimizer: what a checkpoint carries.
struct State {
    batcher: Batcher,
    stale_evaluations: usize,
}

impl State {
    fn new(seed: u64) -> Self {
        State {
            batcher: Batcher::new(seed),
            stale_evaluations: 0,
        }
    }
}

/// `optimize`, waiting for the experiment's optimizer.
struct Optimize<'a, 'b, D> {
    resume: Option<&'a Checkpoint>,
    session: &'a mut Session<'b, D>,
}

impl<B: AutodiffBackend> optim::WithOptimizer<B> for Optimize<'_, '_, B::Device> {
    type Output = Result<Ended<Model<B>>>;
    fn with<O: Optimizer<Model<B>, B>>(self, model: Model<B>, optimizer: O) -> Self::Output {
        optimize(model, optimizer, self.resume, self.session)
    }
}

/// The training loop, as nanoGPT's: a step, its log line, an evaluation and checkpoint every
/// `eval_every` steps (and at the last), samples every `sample_every`, until the last step, an
/// early stop, a signal or the step to pause at.
fn optimize<B: AutodiffBackend, O: Optimizer<Model<B>, B>>(
    mut model: Model<B>,
    optimizer: O,
    resume: Option<&Checkpoint>,
    session: &mut Session<B::Device>,
) -> Result<Ended<Model<B>>> {
    let (experiment, data, device) = (session.experiment, session.data, session.device.clone());
    let s = &experiment.schedule;
    let (mut optimizer, first, mut state) = restore(optimizer, resume, experiment.seed, &device)?;
    let mut clock = Clock::new(tokens_per_step(&model, s.batch_size, data.seq_len));
    // The step last.ckpt holds, so the end does not write the same checkpoint again.
    let mut saved_at = resume.map(|checkpoint| checkpoint.step);
    let last = session.until.map_or(s.steps, |until| until.min(s.steps));
    let mut ended = match last < s.steps {
        true => Ended::Paused,
        false => Ended::Finished(()),
    };
    for step in first..=last {
        let timer = Instant::now();
        let lr = optim::learning_rate(s, step - 1);
        let loss;
        (model, loss) = train_step(
            model,
            &mut optimizer,
            &mut state.batcher,
            step,
            experiment,
            data,
            &device,
        );
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
                ended = Ended::Finished(());
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
        let optimizer_bytes = checkpoint::encode::<B, _>(optimizer.to_record())?;
        save(&model, optimizer_bytes, &state, false, session)?;
    }
    Ok(match ended {
        Ended::Finished(()) => Ended::Finished(model),
        Ended::Interrupted => Ended::Interrupted,
        Ended::Paused => Ended::Paused,
    })
}

/// The optimizer, the first step to take and the loop's state: a checkpoint's (the optimizer's
/// state loaded from it), or a fresh start's.
fn restore<B: AutodiffBackend, O: Optimizer<Model<B>, B>>(
    optimizer: O,
    resume: Option<&Checkpoint>,
    seed: u64,
    device: &B::Device,
) -> Result<(O, usize, State)> {
    let Some(checkpoint) = resume else {
        return Ok((optimizer, 1, State::new(seed)));
    };
    let record = checkpoint::decode::<B, _>(&checkpoint.optimizer, device)?;
    let state = State {
        batcher: checkpoint.batcher.clone(),
        stale_evaluations: checkpoint.stale_evaluations,
    };
    Ok((optimizer.load_record(record), checkpoint.step + 1, state))
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
        session.run.metric(&Metric {
            step,
            split: "train",
            loss,
            lr,
            elapsed_s: session.started.elapsed().as_secs_f64(),
            tokens_per_s,
            row: Row::Batch,
        })?;
    }
    Ok(())
}

/// The periodic evaluation: estimate the losses, keep the model if the selection split
/// improved, and leave a checkpoint to resume from, should the process die. Whether to stop
/// early (no improvement in `early_stop_patience` evaluations).
fn evaluate_and_save<B: AutodiffBackend, O: Optimizer<Model<B>, B>>(
    model: &Model<B>,
    optimizer: &O,
    state: &mut State,
    step: usize,
    lr: f64,
    session: &mut Session<B::Device>,
) -> Result<bool> {
    let loss = estimate(&model.valid(), step, lr, session)?;
    let improved = improves(loss, session.summary.best_estimate);
    if improved {
        session.summary.best_estimate = Some(loss);
        session.summary.selected_step = Some(step);
        state.stale_evaluations = 0;
    } else {
        state.stale_evaluations += 1;
    }
    let optimizer_bytes = checkpoint::encode::<B, _>(optimizer.to_record())?;
    save(model, optimizer_bytes, state, improved, session)?;
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

/// Positions the model trains on per step: whole rows, or one example per row (the cnn).
pub fn tokens_per_step<B: Backend>(model: &Model<B>, batch_size: usize, seq_len: usize) -> usize {
    match model.trains_on_examples() {
        true => batch_size,
        false => batch_size * seq_len,
    }
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

/// Optimizer step number `step` (1-based) on the next batch from `batcher`: forward, loss,
/// backward, update. Returns the updated model and the batch's mean loss.
pub fn train_step<B: AutodiffBackend, O: Optimizer<Model<B>, B>>(
    model: Model<B>,
    optimizer: &mut O,
    batcher: &mut Batcher,
    step: usize,
    experiment: &Experiment,
    data: &Dataset,
    device: &B::Device,
) -> (Model<B>, StepLoss<B::InnerBackend>) {
    let s = &experiment.schedule;
    let dropout = |shard| dropout_rng(experiment.seed, step, shard);
    let (loss, grads) = if model.trains_on_examples() {
        let examples = batcher.next_examples(&data.train, s.batch_size);
        let (x, y) = data::example_batch::<B>(&examples, data.seq_len, device);
        let (loss, grads) = backward(&model, x, y, examples.len(), dropout(0));
        (StepLoss(vec![loss]), grads)
    } else {
        let items = batcher.next(&data.train, s.batch_size);
        let targets = data::target_count(&items);
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(model.batch_shards()))
            .collect();
        let part = |shard: usize| {
            let (x, y) = data::batch::<B>(parts[shard], data.seq_len, device);
            // Every part but the first on its own copy of the parameters: graphs that share
            // leaves are merged by burn's autodiff into one, which two threads cannot share.
            match shard {
                0 => backward(&model, x, y, targets, dropout(0)),
                _ => {
                    let replica = Model::from_inner(model.valid());
                    backward(&replica, x, y, targets, dropout(shard))
                }
            }
        };
        let mut results = match parts.len() {
            1 => vec![part(0)],
            n => (0..n).into_par_iter().map(part).collect(),
        };
        let (loss, mut grads) = results.remove(0);
        let mut sum = SumGradients {
            total: &mut grads,
            parts: results.iter_mut().map(|(_, grads)| grads).collect(),
        };
        model.visit(&mut sum);
        let losses = std::iter::once(loss).chain(results.into_iter().map(|(loss, _)| loss));
        (StepLoss(losses.collect()), grads)
    };
    let model = optimizer.step(optim::learning_rate(s, step - 1), model, grads);
    (model, loss)
}

/// Forward and backward on one part of a batch of `targets` targets in all: its share of the
/// batch's mean loss, and that share's gradients of `model`'s parameters.
fn backward<B: AutodiffBackend>(
    model: &Model<B>,
    x: Tensor<B, 2, Int>,
    y: Tensor<B, 2, Int>,
    targets: usize,
    mut dropout: rand_chacha::ChaCha8Rng,
) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
    let logits = model.forward(x, Mode::Train(&mut dropout));
    let (sum, _) = nll(logits, y);
    let count = Tensor::<B, 1>::from_floats([targets as f32], &sum.device());
    let loss = sum / count;
    let grads = GradientsParams::from_grads(loss.backward(), model);
    (loss.inner(), grads)
}

/// A step's loss, still on the device: its parts' shares of the batch's mean. Reading it waits
/// for the device to finish the step, so the loop reads it only when it needs the value.
pub struct StepLoss<B: Backend>(Vec<Tensor<B, 1>>);

impl<B: Backend> StepLoss<B> {
    /// The batch's mean loss: the parts' shares added in order (in f64, as read).
    pub fn value(self) -> f64 {
        let mut parts = self.0.into_iter().map(|t| t.into_scalar().elem::<f64>());
        let first = parts.next().unwrap_or(0.0);
        first + parts.sum::<f64>()
    }
}

/// Adds each part's gradient of every parameter to `total`'s, in the parts' order, so that the
/// sum does not depend on which thread finished first.
struct SumGradients<'a> {
    total: &'a mut GradientsParams,
    parts: Vec<&'a mut GradientsParams>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SumGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        for part in &mut self.parts {
            let Some(grad) = part.remove::<B::InnerBackend, D>(param.id) else {
                continue;
            };
            let sum = match self.total.remove::<B::InnerBackend, D>(param.id) {
                Some(total) => total + grad,
                None => grad,
            };
            self.total.register(param.id, sum);
        }
    }
}

/// Whether an estimate beats the best so far. A loss that is not a number never does, so a
/// diverged evaluation cannot become the best.
fn improves(loss: f64, best: Option<f64>) -> bool {
    loss.is_finite() && best.is_none_or(|best| loss < best)
}

/// Periodic estimate on at most `eval_batches × eval_batch_size` items of train and of the
/// selection split (the test split is left alone when val chooses). The items are drawn once
/// from the seed, the same at every evaluation, so that two estimates differ by their models
/// and not by their samples. Returns the selection split's loss.
fn estimate<B: Backend>(
    model: &Model<B>,
    step: usize,
    lr: f64,
    session: &mut Session<B::Device>,
) -> Result<f64> {
    let s = &session.experiment.schedule;
    let limit = s.eval_batches * s.eval_batch_size;
    let seed = session.experiment.seed;
    let selection = session.data.selection_split();
    let [_, val, test] = evaluate_splits(
        model,
        step,
        lr,
        Row::Estimate,
        &[SplitName::Train, selection],
        session,
        |order| {
            order.shuffle(&mut rng(seed, Stream::Evaluate, 0));
            order.truncate(limit);
        },
    )?;
    let chosen = match selection {
        SplitName::Val => val,
        _ => test,
    };
    Ok(chosen.expect("the selection split is not empty").loss)
}

/// The end of a finished run: the last model over every item of each split (the final rows of
/// metrics.csv), then the selected checkpoint over every val and test item, for the summary.
fn finish<B: AutodiffBackend>(model: &Model<B>, session: &mut Session<B::Device>) -> Result<()> {
    let step = session.summary.step;
    // The rate of the last update; a fitted model (counts, step 0) had none.
    let lr = match step {
        0 => 0.0,
        _ => optim::learning_rate(&session.experiment.schedule, step - 1),
    };
    let model = model.valid();
    let [train, val, test] = evaluate_splits(
        &model,
        step,
        lr,
        Row::Final,
        &SplitName::ALL,
        session,
        |_| {},
    )?;
    let summary = &mut session.summary;
    summary.final_train_loss = train.map(|e| e.loss);
    summary.final_val_loss = val.map(|e| e.loss);
    summary.test_loss_last = test.map(|e| e.loss);

    // A run without a periodic evaluation (no steps: counts, an import) selects its only model.
    let best_path = session.run.checkpoint_path("best");
    if !best_path.exists() {
        write_atomic(
            &best_path,
            &std::fs::read(session.run.checkpoint_path("last"))?,
        )?;
    }
    let best = Checkpoint::read(&best_path)?;
    let [val, test] = match best.step == step {
        true => [val, test],
        false => {
            let best_model = best.load_model(model, &session.device)?;
            let every = |name: SplitName, session: &Session<B::Device>| -> Result<_> {
                let split = session.data.split(name);
                let order: Vec<usize> = (0..split.len()).collect();
                let batch_size = session.experiment.schedule.eval_batch_size;
                let evaluation = evaluate(
                    &best_model,
                    split,
                    &order,
                    batch_size,
                    session.data,
                    &session.device,
                );
                if let Some(e) = evaluation {
                    finite(e.loss, name, best.step)?;
                }
                Ok(evaluation)
            };
            [
                every(SplitName::Val, session)?,
                every(SplitName::Test, session)?,
            ]
        }
    };
    let summary = &mut session.summary;
    summary.selected_step = Some(best.step);
    summary.val_loss = val.map(|e| e.loss);
    summary.test_loss = test.map(|e| e.loss);
    summary.test_loss_se = test.and_then(|e| e.se);
    let line = summary.selected_line();
    say(session, &line)
}

/// Evaluates the `which` splits on the items `select` keeps of each, records the losses in
/// metrics.csv and logs them on one line; a split not asked for, or empty, gives `None`.
fn evaluate_splits<B: Backend>(
    model: &Model<B>,
    step: usize,
    lr: f64,
    row: Row,
    which: &[SplitName],
    session: &mut Session<B::Device>,
    mut select: impl FnMut(&mut Vec<usize>),
) -> Result<[Option<Evaluation>; 3]> {
    let mut evaluations = [None; 3];
    let mut line = Vec::new();
    for (i, name) in SplitName::ALL.into_iter().enumerate() {
        if !which.contains(&name) {
            continue;
        }
        let split = session.data.split(name);
        let mut order: Vec<usize> = (0..split.len()).collect();
        select(&mut order);
        let batch_size = session.experiment.schedule.eval_batch_size;
        evaluations[i] = evaluate(
            model,
            split,
            &order,
            batch_size,
            session.data,
            &session.device,
        );
        if let Some(Evaluation { loss, .. }) = evaluations[i] {
            finite(loss, name, step)?;
            session.run.metric(&Metric {
                step,
                split: name.name(),
                loss,
                lr,
                elapsed_s: session.started.elapsed().as_secs_f64(),
                tokens_per_s: session.summary.tokens_per_s.unwrap_or(0.0),
                row,
            })?;
            line.push(format!("{} {loss:.4}", name.name()));
        }
    }
    let label = match row {
        Row::Final => "last model (nats per character, every item)".to_string(),
        _ => format!("step {step}"),
    };
    say(session, &format!("{label}: {}", line.join(" | ")))?;
    Ok(evaluations)
}

/// Fails the run on a loss that is not a number: like a diverged training loss, it would make
/// every figure after it meaningless (a counts model with no smoothing gives an unseen pair of
/// characters probability 0).
fn finite(loss: f64, split: SplitName, step: usize) -> Result<()> {
    match loss.is_finite() {
        true => Ok(()),
        false => anyhow::bail!(
            "step {step}: the {} loss is {loss}; the model gives some {} items probability 0 or \
             diverged (model.smoothing > 0 for counts; a lower schedule.learning_rate?)",
            split.name(),
            split.name()
        ),
    }
}

/// A loss over some items of a split, and how sure it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Token-weighted mean negative log-likelihood (nats per character).
    pub loss: f64,
    /// Its standard error with the items as the sampled units (`None` for a single item).
    pub se: Option<f64>,
}

/// Token-weighted mean negative log-likelihood over the items of `split` at `order`, in batches
/// of `batch_size`, with its standard error.
pub fn evaluate<B: Backend>(
    model: &Model<B>,
    split: &Split,
    order: &[usize],
    batch_size: usize,
    data: &Dataset,
    device: &B::Device,
) -> Option<Evaluation> {
    if order.is_empty() {
        return None;
    }
    let batch = |chunk: &[usize]| {
        let items: Vec<&[usize]> = chunk.iter().map(|&i| split.tokens[i].as_slice()).collect();
        let (x, y) = data::batch::<B>(&items, data.seq_len, device);
        let (nll, counted) = token_nll(model.forward(x, Mode::Eval), y);
        let per_item = nll.clone().sum_dim(1).into_data().to_vec::<f32>();
        let sum = nll.sum().into_scalar().elem::<f64>();
        let n = counted.sum().into_scalar().elem::<f64>();
        (sum, n, per_item.expect("f32 losses"))
    };
    // The batches are independent: on the CPU every thread of the pool takes some; their sums
    // are added in order all the same.
    let sums: Vec<(f64, f64, Vec<f32>)> = match crate::backend::is_cpu::<B>() {
        true => order.par_chunks(batch_size).map(batch).collect(),
        false => order.chunks(batch_size).map(batch).collect(),
    };
    let (total, count) = sums.iter().fold((0.0, 0.0), |(total, count), (sum, n, _)| {
        (total + sum, count + n)
    });
    let item_losses = sums
        .iter()
        .flat_map(|(_, _, items)| items)
        .map(|&l| l as f64);
    let item_lengths = order.iter().map(|&i| (split.tokens[i].len() + 1) as f64);
    let items: Vec<(f64, f64)> = item_losses.zip(item_lengths).collect();
    Some(Evaluation {
        loss: total / count,
        se: stats::ratio_standard_error(&items),
    })
}

/// Writes last.ckpt: the model, the optimizer's state and the loop's; and, when it is the `best`
/// so far, best.ckpt after it. last.ckpt says which step is the best, so a process killed
/// between the two leaves a pair that a resume can make whole (`repair_best`), whatever the
/// resume changes: best.ckpt never holds a step beyond the one resumed from.
fn save<B: AutodiffBackend>(
    model: &Model<B>,
    optimizer: Vec<u8>,
    state: &State,
    best: bool,
    session: &Session<B::Device>,
) -> Result<()> {
    let checkpoint = Checkpoint {
        step: session.summary.step,
        best_loss: session.summary.best_estimate,
        best_step: session.summary.selected_step,
        stale_evaluations: state.stale_evaluations,
        batcher: state.batcher.clone(),
        written: Some(session.run.written()),
        model: checkpoint::encode::<B::InnerBackend, _>(model.valid().into_record())?,
        optimizer,
    };
    checkpoint.save(&session.run.checkpoint_path("last"))?;
    if best {
        checkpoint.save(&session.run.checkpoint_path("best"))?;
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
        model,
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
