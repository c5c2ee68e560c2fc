//! Batches: items padded into (input, target) tensors, the mlp's fixed-context examples, and the
//! data order (`Batcher`), whose state a checkpoint carries so that a resume draws the same
//! batches.

use burn::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{IGNORE, Split};
use crate::rng::{Stream, rng};

/// Inputs `[B, T]` (start token, then the item) and targets `[B, T]` (the item, the stop token,
/// then IGNORE) for the given items, on `device`.
pub fn batch<B: Backend>(
    items: &[&[usize]],
    seq_len: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    rows(
        items.iter().map(|&tokens| (tokens, None)),
        items.len(),
        seq_len,
        device,
    )
}

/// How many targets `batch` makes of `items`: each token, and the end after the last.
pub fn target_count(items: &[&[usize]]) -> usize {
    targets_per_row(items).iter().sum()
}

/// How many targets each row of `batch` has, at its first positions: the rest is padding.
pub fn targets_per_row(items: &[&[usize]]) -> Vec<usize> {
    items.iter().map(|tokens| tokens.len() + 1).collect()
}

/// One (context, next token) example per row: the item up to `position` as input, the token
/// at `position` (or the stop token) as the only target. Nothing after the target is in the row.
pub fn example_batch<B: Backend>(
    examples: &[(&[usize], usize)],
    seq_len: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    rows(
        examples
            .iter()
            .map(|&(tokens, position)| (tokens, Some(position))),
        examples.len(),
        seq_len,
        device,
    )
}

pub(super) fn rows<'a, B: Backend>(
    rows: impl Iterator<Item = (&'a [usize], Option<usize>)>,
    count: usize,
    seq_len: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let mut x = vec![0i32; count * seq_len];
    let mut y = vec![IGNORE; count * seq_len];
    for (row, (tokens, only)) in rows.enumerate() {
        let (x, y) = (&mut x[row * seq_len..], &mut y[row * seq_len..]);
        let end = only.unwrap_or(tokens.len());
        for (t, &token) in tokens[..end].iter().enumerate() {
            x[t + 1] = token as i32;
        }
        let target = |t: usize| tokens.get(t).map_or(0, |&token| token as i32);
        match only {
            Some(position) => y[position] = target(position),
            None => (0..=tokens.len()).for_each(|t| y[t] = target(t)),
        }
    }
    let shape = [count, seq_len];
    (
        Tensor::from_data(TensorData::new(x, shape), device),
        Tensor::from_data(TensorData::new(y, shape), device),
    )
}

/// Draws training batches uniformly with replacement, as makemore.py's sampler does; the whole
/// data order is a function of the seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batcher {
    rng: ChaCha8Rng,
}

impl Batcher {
    pub fn new(seed: u64) -> Self {
        Batcher {
            rng: rng(seed, Stream::Batches, 0),
        }
    }

    /// `batch_size` (context, next token) examples, uniformly over every position of every
    /// item, as the lectures draw them: (item tokens, position of the target).
    pub fn next_examples<'a>(
        &mut self,
        split: &'a Split,
        batch_size: usize,
    ) -> Vec<(&'a [usize], usize)> {
        let total = *split.example_ends.last().expect("a split with items");
        (0..batch_size)
            .map(|_| {
                let example = self.rng.random_range(0..total);
                let item = split.example_ends.partition_point(|&end| end <= example);
                let start = if item == 0 {
                    0
                } else {
                    split.example_ends[item - 1]
                };
                (split.tokens[item].as_slice(), example - start)
            })
            .collect()
    }

    pub fn next<'a>(&mut self, split: &'a Split, batch_size: usize) -> Vec<&'a [usize]> {
        (0..batch_size)
            .map(|_| split.tokens[self.rng.random_range(0..split.len())].as_slice())
            .collect()
    }
}
