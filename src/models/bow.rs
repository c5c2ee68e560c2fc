//! makemore.py's bag of words: each position averages the embeddings of itself and every
//! earlier position (attention with equal weights), then an MLP, both with residuals.

use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use super::init::Init;
use super::{add_positions, causal_mean, dense, tanh};
use crate::config::ModelConfig;

#[derive(Module, Debug)]
pub struct Bow<B: Backend> {
    wte: Embedding<B>,
    wpe: Embedding<B>,
    c_fc: Linear<B>,
    c_proj: Linear<B>,
    lm_head: Linear<B>,
}

impl<B: Backend> Bow<B> {
    pub fn new(
        config: &ModelConfig,
        vocab_size: usize,
        block_size: usize,
        init: &mut Init<B>,
    ) -> Self {
        Bow {
            wte: init.embedding(vocab_size, config.n_embd),
            wpe: init.embedding(block_size, config.n_embd),
            c_fc: init.linear(config.n_embd, config.n_embd2, true),
            c_proj: init.linear(config.n_embd2, config.n_embd, true),
            lm_head: init.linear(config.n_embd, vocab_size, true),
        }
    }

    pub fn forward(&self, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let x = add_positions(self.wte.forward(idx), &self.wpe);
        let x = x.clone() + causal_mean(x, average);
        let x = x.clone() + dense(&self.c_proj, tanh(dense(&self.c_fc, x)));
        dense(&self.lm_head, x)
    }
}

impl<B: Backend> Bow<B> {
    /// One position of `forward` in evaluation: the next-token logits `[count, V]` after
    /// `tokens` `[count]` at position `t`, where `sum` holds the sum of positions 0..t's
    /// embeddings (`None` for t = 0) and takes position t's: the running sum `causal_mean` keeps,
    /// added in the same order.
    pub(super) fn decode(
        &self,
        tokens: Tensor<B, 1, Int>,
        t: usize,
        sum: &mut Option<Tensor<B, 2>>,
    ) -> Tensor<B, 2> {
        let c = self.wte.weight.dims()[1];
        let position = self.wpe.weight.val().slice([t..t + 1, 0..c]);
        let x = self.wte.weight.val().select(0, tokens) + position;
        let total = match sum.take() {
            Some(total) => total + x.clone(),
            None => x.clone(),
        };
        let mean = total.clone().mul_scalar(1.0 / (t + 1) as f32);
        *sum = Some(total);
        let x = x + mean;
        let x = x.clone() + dense(&self.c_proj, tanh(dense(&self.c_fc, x)));
        dense(&self.lm_head, x)
    }
}

/// Each position's mean with every earlier one, as a product with the averaging matrix (row i:
/// 1/(i+1) on columns 0..=i): what `causal_mean` computes in one pass on the CPU.
pub(super) fn average<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [_, t, _] = x.dims();
    let weights: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 1.0 / (i + 1) as f32 } else { 0.0 }))
        .collect();
    let average = Tensor::<B, 2>::from_data(TensorData::new(weights, [t, t]), &x.device());
    average.unsqueeze::<3>().matmul(x)
}
