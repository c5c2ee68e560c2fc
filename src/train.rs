//! The training loop, written once against burn's `AutodiffBackend`.
//!
//! Step-based, as makemore.py: each step draws a random batch, takes one optimizer step, and
//! every `eval_every` steps estimates the losses, keeps the best checkpoint by test loss and may
//! stop early. The run ends with an evaluation over every item of each split.

use std::time::{Duration, Instant};

use anyhow::Result;
use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::checkpoint::{self, Checkpoint};
use crate::config::{Experiment, ModelType, OptimizerKind};
use crate::data::{self, Batcher, Dataset, Split};
use crate::models::{Model, nll};
use crate::optim;
use crate::progress::Progress;
use crate::rng::{Stream, dropout_rng, rng, with_dropout};
use crate::rundir::{RunDir, Summary, write_atomic};
use crate::sample::{self, SampleOptions};

/// What a training run needs besides the model, and the summary it keeps up to date.
pub struct Session<'a, D> {
    pub experiment: &'a Experiment,
    pub data: &'a Dataset,
    pub run: &'a mut RunDir,
    pub summary: Summary,
    pub progress: Progress,
    pub device: D,
    pub started: Instant,
}

/// How training ended.
#[allow(clippy::large_enum_variant)] // returned once per run
pub enum Ended<B: Backend> {
    /// All steps done (or stopped early), and evaluated on every item.
    Finished(Model<B>),
    /// A signal asked to stop; `last.ckpt` holds the state to resume from.
    Interrupted,
}

/// Trains `model` (or, for `counts`, takes it as fitted), then evaluates it on every item.
/// `resume` is the checkpoint the model was loaded from, when the run goes on from one.
pub fn train<B: AutodiffBackend>(
    model: Model<B>,
    resume: Option<&Checkpoint>,
    session: &mut Session<B::Device>,
) -> Result<Ended<B>> {
    let s = &session.experiment.schedule;
    let ended = match (session.experiment.model.kind, s.optimizer) {
        (ModelType::Counts, _) => {
            let state = State::new(session.experiment.seed);
            save(&model, Vec::new(), &state, session)?;
            Ended::Finished(model)
        }
        (_, OptimizerKind::Adamw) => {
            let optimizer = optim::Halves::new(|| optim::adamw(s).init(), &model);
            optimize(model, optimizer, resume, session)?
        }
        (_, OptimizerKind::Sgd) => {
            let optimizer = optim::Halves::new(|| optim::sgd(s).init(), &model);
            optimize(model, optimizer, resume, session)?
        }
    };
    session.progress.finish();
    let Ended::Finished(model) = ended else {
        return Ok(Ended::Interrupted);
    };
    finish(&model, session)?;
    // The final model may beat every periodic estimate (or there was none): then it is the best.
    let final_test = session
        .summary
        .final_test_loss
        .expect("the test split is never empty");
    if session
        .summary
        .best_test_loss
        .is_none_or(|best| final_test < best)
    {
        session.summary.best_test_loss = Some(final_test);
        promote_last_to_best(session)?;
    }
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

fn optimize<B: AutodiffBackend, O: Optimizer<Model<B>, B>>(
    mut model: Model<B>,
    mut optimizer: O,
    resume: Option<&Checkpoint>,
    session: &mut Session<B::Device>,
) -> Result<Ended<B>> {
    let (experiment, data, device) = (session.experiment, session.data, session.device.clone());
    let s = &experiment.schedule;
    // Positions the model trains on per step: whole rows, or one example per row.
    let tokens_per_step = match model.trains_on_examples() {
        true => s.batch_size,
        false => s.batch_size * data.seq_len,
    } as f64;
    let (first, mut state) = match resume {
        Some(checkpoint) => {
            optimizer =
                optimizer.load_record(checkpoint::decode::<B, _>(&checkpoint.optimizer, &device)?);
            let state = State {
                batcher: checkpoint.batcher.clone(),
                stale_evaluations: checkpoint.stale_evaluations,
            };
            (checkpoint.step + 1, state)
        }
        None => (1, State::new(experiment.seed)),
    };
    let mut step_time = Duration::ZERO;
    let mut interrupted = false;
    // The step last.ckpt holds, so the end does not write the same checkpoint again.
    let mut saved_at = resume.map(|checkpoint| checkpoint.step);
    for step in first..=s.steps {
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
        step_time += timer.elapsed();

        let timed = (step + 1 - first) as f64;
        let tokens_per_s = tokens_per_step * timed / step_time.as_secs_f64();
        session.summary.step = step;
        session.summary.ms_per_step = Some(step_time.as_secs_f64() * 1e3 / timed);
        session.summary.tokens_per_s = Some(tokens_per_s);
        session.progress.step(step, loss, tokens_per_s);
        if step % 10 == 0 || step == s.steps {
            let elapsed = session.started.elapsed().as_secs_f64();
            session
                .run
                .metric(step, "train", loss, lr, elapsed, tokens_per_s)?;
        }
        if step % s.sample_every == 0 {
            record_samples(&model.valid(), step, session)?;
        }
        if step % s.eval_every == 0 {
            let test = estimate(&model.valid(), step, lr, session)?;
            let improved = session
                .summary
                .best_test_loss
                .is_none_or(|best| test < best);
            if improved {
                session.summary.best_test_loss = Some(test);
                state.stale_evaluations = 0;
            } else {
                state.stale_evaluations += 1;
            }
            // Every evaluation leaves a checkpoint to resume from, should the process die.
            let optimizer_bytes = checkpoint::encode::<B, _>(optimizer.to_record())?;
            save(&model, optimizer_bytes, &state, session)?;
            saved_at = Some(step);
            if improved {
                promote_last_to_best(session)?;
            }
            session.run.write_summary(&session.summary)?;
            if s.early_stop_patience > 0 && state.stale_evaluations >= s.early_stop_patience {
                let stale = state.stale_evaluations;
                say(
                    session,
                    &format!(
                        "step {step}: no test improvement in {stale} evaluations, stopping early"
                    ),
                )?;
                break;
            }
        }
        if crate::signals::interrupted() {
            say(
                session,
                &format!("step {step}: interrupted, saving a checkpoint to resume from"),
            )?;
            interrupted = true;
            break;
        }
    }
    if saved_at != Some(session.summary.step) {
        let optimizer_bytes = checkpoint::encode::<B, _>(optimizer.to_record())?;
        save(&model, optimizer_bytes, &state, session)?;
    }
    Ok(if interrupted {
        Ended::Interrupted
    } else {
        Ended::Finished(model)
    })
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
) -> (Model<B>, f64) {
    let s = &experiment.schedule;
    let dropout = |shard| dropout_rng(experiment.seed, step, shard);
    let (loss, grads) = if model.trains_on_examples() {
        let examples = batcher.next_examples(&data.train, s.batch_size);
        let (x, y) = data::example_batch::<B>(&examples, data.seq_len, device);
        backward(&model, x, y, examples.len(), dropout(0))
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
        (
            loss + results.iter().map(|(loss, _)| loss).sum::<f64>(),
            grads,
        )
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
    dropout: rand_chacha::ChaCha8Rng,
) -> (f64, GradientsParams) {
    let logits = with_dropout(dropout, || model.forward(x));
    let (sum, _) = nll(logits, y);
    let count = Tensor::<B, 1>::from_floats([targets as f32], &sum.device());
    let loss = sum / count;
    let grads = GradientsParams::from_grads(loss.backward(), model);
    (loss.into_scalar().elem(), grads)
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

/// Periodic estimate on `eval_batches` random batches of each split; returns the test loss.
fn estimate<B: Backend>(
    model: &Model<B>,
    step: usize,
    lr: f64,
    session: &mut Session<B::Device>,
) -> Result<f64> {
    let s = &session.experiment.schedule;
    let limit = s.eval_batches * s.eval_batch_size;
    let mut rng = rng(session.experiment.seed, Stream::Evaluate, step);
    let [_, _, test] =
        evaluate_splits(model, step, lr, &format!("step {step}"), session, |order| {
            order.shuffle(&mut rng);
            order.truncate(limit);
        })?;
    Ok(test.expect("the test split is never empty"))
}

/// The exact loss over every item of each split, recorded as the final figures.
fn finish<B: AutodiffBackend>(model: &Model<B>, session: &mut Session<B::Device>) -> Result<()> {
    let step = session.summary.step;
    // The rate of the last update; a fitted model (counts, step 0) had none.
    let lr = match step {
        0 => 0.0,
        _ => optim::learning_rate(&session.experiment.schedule, step - 1),
    };
    let [train, val, test] = evaluate_splits(
        &model.valid(),
        step,
        lr,
        "final (every item)",
        session,
        |_| {},
    )?;
    session.summary.final_train_loss = train;
    session.summary.final_val_loss = val;
    session.summary.final_test_loss = test;
    Ok(())
}

/// Evaluates train, val and test on the items `select` keeps of each, records the losses in
/// metrics.csv and logs them on one line; an empty split gives `None`.
fn evaluate_splits<B: Backend>(
    model: &Model<B>,
    step: usize,
    lr: f64,
    label: &str,
    session: &mut Session<B::Device>,
    mut select: impl FnMut(&mut Vec<usize>),
) -> Result<[Option<f64>; 3]> {
    let mut losses = [None; 3];
    let mut line = Vec::new();
    for (i, (split_name, split)) in splits(session.data).into_iter().enumerate() {
        let mut order: Vec<usize> = (0..split.len()).collect();
        select(&mut order);
        let batch_size = session.experiment.schedule.eval_batch_size;
        losses[i] = evaluate(
            model,
            split,
            &order,
            batch_size,
            session.data,
            &session.device,
        );
        if let Some(loss) = losses[i] {
            let elapsed = session.started.elapsed().as_secs_f64();
            let tokens_per_s = session.summary.tokens_per_s.unwrap_or(0.0);
            session
                .run
                .metric(step, split_name, loss, lr, elapsed, tokens_per_s)?;
            line.push(format!("{split_name} {loss:.4}"));
        }
    }
    say(session, &format!("{label}: {}", line.join(" | ")))?;
    Ok(losses)
}

fn splits(data: &Dataset) -> [(&'static str, &Split); 3] {
    [
        ("train", &data.train),
        ("val", &data.val),
        ("test", &data.test),
    ]
}

/// Token-weighted mean negative log-likelihood over the items of `split` at `order`, in batches
/// of `batch_size`.
pub fn evaluate<B: Backend>(
    model: &Model<B>,
    split: &Split,
    order: &[usize],
    batch_size: usize,
    data: &Dataset,
    device: &B::Device,
) -> Option<f64> {
    if order.is_empty() {
        return None;
    }
    let batch = |chunk: &[usize]| {
        let items: Vec<&[usize]> = chunk.iter().map(|&i| split.tokens[i].as_slice()).collect();
        let (x, y) = data::batch::<B>(&items, data.seq_len, device);
        let (sum, n) = nll(model.forward(x), y);
        (
            sum.into_scalar().elem::<f64>(),
            n.into_scalar().elem::<f64>(),
        )
    };
    // The batches are independent: on the CPU every thread of the pool takes some; their sums
    // are added in order all the same.
    let sums: Vec<(f64, f64)> = match crate::backend::is_cpu::<B>() {
        true => order.par_chunks(batch_size).map(batch).collect(),
        false => order.chunks(batch_size).map(batch).collect(),
    };
    let (total, count) = sums.iter().fold((0.0, 0.0), |(total, count), (sum, n)| {
        (total + sum, count + n)
    });
    Some(total / count)
}

/// Writes last.ckpt: the model, the optimizer's state and the loop's.
fn save<B: AutodiffBackend>(
    model: &Model<B>,
    optimizer: Vec<u8>,
    state: &State,
    session: &Session<B::Device>,
) -> Result<()> {
    let checkpoint = Checkpoint {
        step: session.summary.step,
        best_test_loss: session.summary.best_test_loss,
        stale_evaluations: state.stale_evaluations,
        batcher: state.batcher.clone(),
        written: Some(session.run.written()),
        model: checkpoint::encode::<B::InnerBackend, _>(model.valid().into_record())?,
        optimizer,
    };
    checkpoint.save(&session.run.checkpoint_path("last"))
}

/// The model just saved as last.ckpt is the best so far: best.ckpt becomes a copy of it.
fn promote_last_to_best<D>(session: &Session<D>) -> Result<()> {
    let last = std::fs::read(session.run.checkpoint_path("last"))?;
    write_atomic(&session.run.checkpoint_path("best"), &last)
}

/// Draws `sampling.count` items, marks each in-train / in-test / new and appends them to
/// samples.txt.
pub fn record_samples<B: Backend>(
    model: &Model<B>,
    step: usize,
    session: &mut Session<B::Device>,
) -> Result<Vec<(String, &'static str)>> {
    let (experiment, data) = (session.experiment, session.data);
    let options = SampleOptions {
        temperature: experiment.sampling.temperature,
        top_k: experiment.sampling.top_k,
        top_p: 1.0,
    };
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
