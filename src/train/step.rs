//! One optimizer step: the next batch, forward and backward (on parts of the batch in parallel
//! where the model allows, each part's gradients summed in order), the update. *Invariant:* the
//! numbers do not depend on the thread count.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rayon::prelude::*;

use crate::config::Experiment;
use crate::data::{self, Batcher, Dataset};
use crate::models::{Mode, Model, nll};
use crate::optim::{self, ModelOptimizer};
use crate::rng::dropout_rng;

/// Positions the model trains on per step: whole rows, or one example per row (the cnn).
pub fn tokens_per_step<B: Backend>(model: &Model<B>, batch_size: usize, seq_len: usize) -> usize {
    match model.trains_on_examples() {
        true => batch_size,
        false => batch_size * seq_len,
    }
}

/// Optimizer step number `step` (1-based) on the next batch from `batcher`: forward, loss,
/// backward, update. Returns the updated model and the batch's mean loss.
pub fn train_step<B: AutodiffBackend>(
    model: Model<B>,
    optimizer: &mut ModelOptimizer<B>,
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
        let (loss, grads) = backward(&model, (x, y, None), examples.len(), dropout(0));
        (StepLoss(vec![loss]), grads)
    } else {
        let items = batcher.next(&data.train, s.batch_size);
        let targets = data::target_count(&items);
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(model.batch_shards()))
            .collect();
        let part = |shard: usize| {
            let (x, y) = data::batch::<B>(parts[shard], data.seq_len, device);
            let rows = data::targets_per_row(parts[shard]);
            let batch = (x, y, Some(rows.as_slice()));
            // Every part but the first on its own copy of the parameters: graphs that share
            // leaves are merged by burn's autodiff into one, which two threads cannot share.
            match shard {
                0 => backward(&model, batch, targets, dropout(0)),
                _ => {
                    let replica = Model::from_inner(model.valid());
                    backward(&replica, batch, targets, dropout(shard))
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

/// Inputs, targets, and for rows of whole items how many targets each row has.
type Part<'a, B> = (Tensor<B, 2, Int>, Tensor<B, 2, Int>, Option<&'a [usize]>);

/// Forward and backward on one part of a batch of `targets` targets in all: its share of the
/// batch's mean loss, and that share's gradients of `model`'s parameters.
pub(super) fn backward<B: AutodiffBackend>(
    model: &Model<B>,
    (x, y, rows): Part<B>,
    targets: usize,
    mut dropout: rand_chacha::ChaCha8Rng,
) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
    let mode = Mode::Train {
        dropout: &mut dropout,
        targets: rows,
    };
    let logits = model.forward(x, mode);
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
pub(super) struct SumGradients<'a> {
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
