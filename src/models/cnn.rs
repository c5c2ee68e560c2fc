//! The hierarchical convolutional model of the makemore lectures, part 5 (after WaveNet): the
//! context of 2^n_layer previous tokens is embedded, then each layer fuses neighbouring pairs
//! (flatten 2 consecutive → linear without bias → BatchNorm → tanh) until one vector is left.

use burn::module::{Param, RunningState};
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use super::dense;
use super::init::Init;
use super::shift_right;
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
/// statistics (momentum 0.1) otherwise. Statistics count only real positions: those past an
/// item's stop token are padding and must not shift them.
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

    pub fn forward(&self, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, t] = idx.dims();
        let device = idx.device();
        let context = 1 << self.layers.len();
        // Row (b, t) of the contexts: the tokens at t - context + 1 ..= t, oldest first, with start
        // tokens before the sequence (the lecture pads with '.').
        let shifted = (0..context)
            .rev()
            .map(|k| shift_right(idx.clone(), k, 0))
            .collect();
        let contexts = Tensor::stack::<3>(shifted, 2).reshape([b * t, context]);
        // Real positions: the start, then every non-zero token (0 elsewhere is padding).
        let real = idx
            .not_equal_elem(0)
            .float()
            .slice_assign([0..b, 0..1], Tensor::ones([b, 1], &device));
        let real = real.reshape([b * t, 1, 1]);

        let mut x = self.wte.forward(contexts);
        for layer in &self.layers {
            let [n, l, c] = x.dims();
            let fused = dense(&layer.linear, x.reshape([n, l / 2, 2 * c]));
            x = layer.norm.forward(fused, real.clone()).tanh();
        }
        let [n, _, h] = x.dims();
        let logits = self.head.forward(x.reshape([n, h]));
        let [_, v] = logits.dims();
        logits.reshape([b, t, v])
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

    /// `x` is `[N, L, C]`; `weights` `[N, 1, 1]` is 1 for real rows and 0 for padding.
    fn forward(&self, x: Tensor<B, 3>, weights: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, l, c] = x.dims();
        let (mean, var) = if B::ad_enabled(&x.device()) {
            let count = weights.clone().sum().mul_scalar(l as f64);
            let mean = (x.clone() * weights.clone()).sum_dim(0).sum_dim(1)
                / count.clone().reshape([1, 1, 1]);
            let centred = x.clone() - mean.clone();
            let var = (centred.powi_scalar(2) * weights).sum_dim(0).sum_dim(1)
                / (count - 1.0).reshape([1, 1, 1]);
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
