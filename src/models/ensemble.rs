//! Ensembles: several trained models as one, whose next-character distribution is the mean of
//! theirs. The mean is returned as log-probabilities, which serve as its logits (their softmax
//! is the mean). One model's mean is its own distribution: its logits pass through untouched,
//! so that an ensemble of one scores and samples exactly as the model.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::{Decoder, Mode, Model};

/// The logits of the mean of the distributions that `logits` (one tensor per member, the
/// vocabulary last) give: `log(Σ softmax(l_i) / n)`, computed from each member's
/// log-probabilities shifted by their largest, so that nothing overflows.
pub fn mean_distribution<B: Backend, const D: usize>(logits: Vec<Tensor<B, D>>) -> Tensor<B, D> {
    let n = logits.len();
    assert!(n > 0, "an ensemble has members");
    if n == 1 {
        return logits.into_iter().next().expect("one member");
    }
    let log_probs: Vec<Tensor<B, D>> = logits.into_iter().map(|l| log_softmax(l, D - 1)).collect();
    let largest = (log_probs.iter().cloned())
        .reduce(|a, b| a.max_pair(b))
        .expect("members")
        // A character every member rules out stays ruled out, without ∞ − ∞.
        .clamp_min(-1e30);
    let sum = (log_probs.into_iter())
        .map(|l| (l - largest.clone()).exp())
        .reduce(|a, b| a + b)
        .expect("members");
    sum.log() + largest - (n as f64).ln()
}

/// The ensemble's logits at every position, as `Model::forward` in evaluation gives one model's.
pub fn forward<B: Backend>(members: &[Model<B>], x: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    let logits = members.iter().map(|m| m.forward(x.clone(), Mode::Eval));
    mean_distribution(logits.collect())
}

/// Each member's decoder, fed the same tokens: the ensemble one position at a time.
pub struct EnsembleDecoder<B: Backend>(Vec<Decoder<B>>);

impl<B: Backend> EnsembleDecoder<B> {
    pub fn new(members: &[Model<B>]) -> Self {
        EnsembleDecoder(members.iter().map(Model::decoder).collect())
    }

    /// The ensemble's next-token logits `[count, V]` after `tokens`, one per sequence.
    pub fn next(
        &mut self,
        members: &[Model<B>],
        tokens: &[i32],
        device: &B::Device,
    ) -> Tensor<B, 2> {
        let logits = (self.0.iter_mut().zip(members)).map(|(d, m)| d.next(m, tokens, device));
        mean_distribution(logits.collect())
    }
}
