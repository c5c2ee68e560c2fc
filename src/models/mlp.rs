//! makemore.py's MLP after Bengio et al. 2003: embed the previous `block_size` tokens,
//! concatenate, one tanh hidden layer, logits.

use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use super::init::Init;
use super::{dense, tanh};
use super::{per_token_tables, shift_right};
use crate::config::ModelConfig;
use crate::data::Dataset;

/// A warning when the default context (`block_size = 0`: the longest item + 1) is set by a few
/// long items: every position of every item then embeds and multiplies that many tokens, so the
/// hidden layer's work grows with the longest item, not the typical one.
pub fn context_warning(config: &ModelConfig, data: &Dataset) -> Option<String> {
    if config.block_size != 0 {
        return None;
    }
    let (longest, typical) = data.longest_and_typical();
    let (context, enough) = (longest + 1, typical + 1);
    // A context a third longer than the typical item's makes the layer a third slower.
    (3 * context > 4 * enough && context > 16).then(|| {
        format!(
            "warning: the mlp's context is {context} tokens (model.block_size = 0: the longest \
             item + 1), set by {} longer than {typical} characters, where 99% have at most \
             {typical}; its hidden layer multiplies context × n_embd × n_embd2 at every \
             position, so model.block_size = {enough} makes that layer {:.1}× cheaper (and \
             dataset.max_len = {typical} drops the long items)",
            match data.longer_than(typical) {
                1 => "the one item".to_string(),
                n => format!("the {n} items"),
            },
            context as f64 / enough as f64
        )
    })
}

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
        let [b, t] = idx.dims();
        let [tokens, _] = self.wte.weight.dims();
        // Context k of position t is the token at t - k, or the pad before the sequence starts.
        let contexts = (0..self.block_size).map(|k| shift_right(idx.clone(), k, self.pad));
        // The hidden layer's input is a concatenation of embeddings, so its product splits into
        // one per context slot, and each of those takes only `tokens` distinct values.
        let pre_activation = if per_token_tables(tokens, b * t) {
            let table = self.slot_tables();
            let [_, n_hidden] = table.dims();
            let summed = contexts
                .enumerate()
                .map(|(k, context)| {
                    let rows = context.add_scalar((k * tokens) as i64).reshape([b * t]);
                    table.clone().select(0, rows)
                })
                .reduce(|sum, slot| sum + slot)
                .expect("block_size ≥ 1");
            let bias = self
                .hidden
                .bias
                .as_ref()
                .expect("the hidden layer has a bias");
            (summed + bias.val().unsqueeze()).reshape([b, t, n_hidden])
        } else {
            let x = Tensor::cat(contexts.map(|c| self.wte.forward(c)).collect(), 2);
            dense(&self.hidden, x)
        };
        dense(&self.head, tanh(pre_activation))
    }

    /// The logits `[count, V]` of the last position of `window` `[count, w]`, alone: `forward`'s
    /// last position, through the embeddings' product (one position needs no tables).
    pub(super) fn decode(&self, window: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [count, w] = window.dims();
        // Slot k reads the token k places back, or the pad before the sequence starts.
        let slot = |k: usize| match k < w {
            true => window.clone().slice([0..count, w - 1 - k..w - k]),
            false => Tensor::full([count, 1], self.pad as i32, &window.device()),
        };
        let x = Tensor::cat(
            (0..self.block_size)
                .map(|k| self.wte.forward(slot(k)))
                .collect(),
            2,
        );
        let logits = dense(&self.head, tanh(dense(&self.hidden, x)));
        let [_, _, v] = logits.dims();
        logits.reshape([count, v])
    }

    /// How many tokens a position reads: itself and `block_size - 1` before it.
    pub(super) fn block_size(&self) -> usize {
        self.block_size
    }

    /// Row `k · tokens + v`: what token v in context slot k adds to the hidden layer's input.
    fn slot_tables(&self) -> Tensor<B, 2> {
        let [tokens, n_embd] = self.wte.weight.dims();
        let [_, n_hidden] = self.hidden.weight.dims();
        let slots = self
            .hidden
            .weight
            .val()
            .reshape([self.block_size, n_embd, n_hidden]);
        self.wte
            .weight
            .val()
            .unsqueeze::<3>()
            .matmul(slots)
            .reshape([self.block_size * tokens, n_hidden])
    }
}
