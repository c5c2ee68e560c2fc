//! A table of next-token logits indexed by the current token: makemore.py's `Bigram`, trained by
//! gradient descent from zeros, and the first lecture's model, fitted by counting.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::embedding;

use super::init::Init;
use super::log_softmax;
use crate::data::Split;

#[derive(Module, Debug)]
pub struct Bigram<B: Backend> {
    logits: Param<Tensor<B, 2>>,
}

impl<B: Backend> Bigram<B> {
    /// makemore.py starts the table at zero: every next token equally likely.
    pub fn new(vocab_size: usize, init: &Init<B>) -> Self {
        Bigram {
            logits: init.constant([vocab_size, vocab_size], 0.0),
        }
    }

    /// The maximum-likelihood table with add-k smoothing: log((N(a→b) + k) / Σ_c (N(a→c) + k)).
    pub fn from_counts(train: &Split, vocab_size: usize, k: f64, init: &Init<B>) -> Self {
        let mut counts = vec![0u64; vocab_size * vocab_size];
        for tokens in &train.tokens {
            let sequence = std::iter::once(0)
                .chain(tokens.iter().copied())
                .chain(std::iter::once(0));
            let mut previous = None;
            for token in sequence {
                if let Some(p) = previous {
                    counts[p * vocab_size + token] += 1;
                }
                previous = Some(token);
            }
        }
        let log_probs = counts
            .chunks(vocab_size)
            .flat_map(|row| {
                let total: f64 = row.iter().map(|&n| n as f64 + k).sum();
                row.iter()
                    .map(move |&n| ((n as f64 + k) / total).ln() as f32)
            })
            .collect();
        let table = Tensor::from_data(
            TensorData::new(log_probs, [vocab_size, vocab_size]),
            init.device(),
        );
        Bigram {
            logits: Param::from_tensor(table),
        }
    }

    /// `[B, T]` tokens → `[B, T, V]` logits; position t sees token t only.
    pub fn forward(&self, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        embedding(self.logits.val(), idx)
    }

    /// `[B, T]` tokens → `[B, T, V]` log-probabilities: the rows of the normalised table.
    pub fn log_probs(&self, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        embedding(log_softmax(self.logits.val()), idx)
    }
}
