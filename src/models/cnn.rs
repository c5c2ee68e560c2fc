//! The hierarchical convolutional model of the makemore lectures, part 5 (after WaveNet): the
//! context of 2^n_layer previous tokens is embedded, then each layer fuses neighbouring pairs
//! (flatten 2 consecutive → linear without bias → BatchNorm → tanh) until one vector is left.

use burn::module::{Param, RunningState};
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use super::init::Init;
use super::shift_right;
use super::{dense, tanh};
use crate::config::ModelConfig;

#[derive(Module, Debug)]
pub struct Cnn<B: Backend> {
    wte: Embedding<B>,
    layers: Vec<Layer<B>>,
    head: Linear<B>,
}

#[derive(Module, Debug)]
struct Layer<B: Backend> {
    linear: Linear<B>,
    norm: BatchNorm<B>,
}

/// The lecture's BatchNorm1d: batch statistics (unbiased variance) while training, running
/// statistics (momentum 0.1) otherwise.
#[derive(Module, Debug)]
struct BatchNorm<B: Backend> {
    gamma: Param<Tensor<B, 1>>,
    beta: Param<Tensor<B, 1>>,
    running_mean: RunningState<Tensor<B, 1>>,
    running_var: RunningState<Tensor<B, 1>>,
}

const MOMENTUM: f64 = 0.1;
const EPS: f64 = 1e-5;

impl<B: Backend> Cnn<B> {
    /// How many numbers the BatchNorm running means and variances hold.
    pub fn running_statistics(&self) -> usize {
        self.layers
            .iter()
            .map(|layer| 2 * layer.norm.gamma.dims()[0])
            .sum()
    }

    pub fn new(config: &ModelConfig, vocab_size: usize, init: &mut Init<B>) -> Self {
        let (e, h) = (config.n_embd, config.n_embd2);
        let device = init.device();
        let wte = init.embedding(vocab_size, e);
        let layers = (0..config.n_layer)
            .map(|i| Layer {
                linear: lecture_linear(init, 2 * if i == 0 { e } else { h }, h, 1.0),
                norm: BatchNorm::new(h, device),
            })
            .collect();
        let head = Linear {
            bias: Some(init.constant([vocab_size], 0.0)),
            ..lecture_linear(init, h, vocab_size, 0.1)
        };
        Cnn { wte, layers, head }
    }

    /// How many tokens a position reads: itself and those before it, 2^n_layer in all.
    pub(super) fn context(&self) -> usize {
        1 << self.layers.len()
    }

    /// Evaluating, every position of every row. Training, where each row holds one example
    /// (see `Model::trains_on_examples`), only the row's last real position, where its target
    /// is: the others get zero logits, and their targets are ignored anyway.
    pub fn forward(&self, idx: Tensor<B, 2, Int>, training: bool) -> Tensor<B, 3> {
        let [b, t] = idx.dims();
        let device = idx.device();
        let context = self.context();
        // Row (b, t) of the contexts: the tokens at t - context + 1 ..= t, oldest first, with start
        // tokens before the sequence (the lecture pads with '.').
        let shifted = (0..context)
            .rev()
            .map(|k| shift_right(idx.clone(), k, 0))
            .collect();
        let contexts = Tensor::stack::<3>(shifted, 2);
        if !training {
            let logits = self.hierarchy(contexts.reshape([b * t, context]), false);
            let [_, v] = logits.dims();
            return logits.reshape([b, t, v]);
        }
        // The last real position: the start, then the non-zero tokens.
        let last = idx.not_equal_elem(0).int().sum_dim(1).reshape([b, 1, 1]);
        let examples = contexts
            .gather(1, last.clone().expand([b, 1, context]))
            .reshape([b, context]);
        let logits = self.hierarchy(examples, true);
        let [_, v] = logits.dims();
        let at_last = Tensor::arange(0..t as i64, &device)
            .reshape([1, t, 1])
            .equal(last)
            .float();
        at_last * logits.reshape([b, 1, v])
    }

    /// Contexts `[N, context]` → logits `[N, V]`.
    fn hierarchy(&self, contexts: Tensor<B, 2, Int>, training: bool) -> Tensor<B, 2> {
        let mut x = self.wte.forward(contexts);
        for layer in &self.layers {
            let [n, l, c] = x.dims();
            x = tanh(
                layer
                    .norm
                    .forward(dense(&layer.linear, x.reshape([n, l / 2, 2 * c])), training),
            );
        }
        let [n, _, h] = x.dims();
        self.head.forward(x.reshape([n, h]))
    }
}

/// The lecture's Linear without bias: weights from N(0, 1/fan_in), times `scale`.
fn lecture_linear<B: Backend>(
    init: &mut Init<B>,
    d_in: usize,
    d_out: usize,
    scale: f64,
) -> Linear<B> {
    Linear {
        weight: init.normal([d_in, d_out], scale / (d_in as f64).sqrt()),
        bias: None,
    }
}

impl<B: Backend> BatchNorm<B> {
    fn new(features: usize, device: &B::Device) -> Self {
        BatchNorm {
            gamma: Param::from_tensor(Tensor::ones([features], device)),
            beta: Param::from_tensor(Tensor::zeros([features], device)),
            running_mean: RunningState::new(Tensor::zeros([features], device)),
            running_var: RunningState::new(Tensor::ones([features], device)),
        }
    }

    /// `x` is `[N, L, C]`: statistics over N and L, per channel.
    fn forward(&self, x: Tensor<B, 3>, training: bool) -> Tensor<B, 3> {
        let [n, l, c] = x.dims();
        let (mean, var) = if training {
            let mean = x.clone().mean_dim(0).mean_dim(1);
            let count = (n * l) as f64;
            let var = (x.clone() - mean.clone())
                .powi_scalar(2)
                .sum_dim(0)
                .sum_dim(1)
                .div_scalar(count - 1.0);
            let update = |state: &RunningState<Tensor<B, 1>>, stat: &Tensor<B, 3>| {
                let stat = stat.clone().detach().reshape([c]);
                state.update(
                    (state.value_sync().mul_scalar(1.0 - MOMENTUM) + stat.mul_scalar(MOMENTUM))
                        .detach(),
                );
            };
            update(&self.running_mean, &mean);
            update(&self.running_var, &var);
            (mean, var)
        } else {
            (
                self.running_mean.value().reshape([1, 1, c]),
                self.running_var.value().reshape([1, 1, c]),
            )
        };
        let normalised = (x - mean) / (var + EPS).sqrt();
        normalised * self.gamma.val().reshape([1, 1, c]) + self.beta.val().reshape([1, 1, c])
    }
}
