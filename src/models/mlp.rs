//! makemore.py's MLP after Bengio et al. 2003: embed the previous `block_size` tokens,
//! concatenate, one tanh hidden layer, logits.

use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use super::init::Init;
use super::shift_right;
use super::{dense, tanh};
use crate::config::ModelConfig;

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    wte: Embedding<B>,
    hidden: Linear<B>,
    head: Linear<B>,
    block_size: usize,
    /// The token that stands for positions before the start of the sequence.
    pad: usize,
}

impl<B: Backend> Mlp<B> {
    pub fn new(
        config: &ModelConfig,
        vocab_size: usize,
        block_size: usize,
        init: &mut Init<B>,
    ) -> Self {
        // makemore.py adds a <BLANK> token after the vocabulary; the lecture pads with token 0.
        let (embeddings, pad) = if config.blank_token {
            (vocab_size + 1, vocab_size)
        } else {
            (vocab_size, 0)
        };
        Mlp {
            wte: init.embedding(embeddings, config.n_embd),
            hidden: init.linear(block_size * config.n_embd, config.n_embd2, true),
            head: init.linear(config.n_embd2, vocab_size, true),
            block_size,
            pad,
        }
    }

    pub fn forward(&self, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        // Context k of position t is the token at t - k, or the pad before the sequence starts.
        let contexts = (0..self.block_size)
            .map(|k| self.wte.forward(shift_right(idx.clone(), k, self.pad)))
            .collect();
        let x = Tensor::cat(contexts, 2);
        dense(&self.head, tanh(dense(&self.hidden, x)))
    }
}
