//! Generating items from a model, one token at a time, as makemore.py does.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::Vocab;
use crate::models::Model;

#[derive(Debug, Clone, Copy)]
pub struct SampleOptions {
    pub temperature: f64,
    /// Keep only the k most likely tokens; 0 = all.
    pub top_k: usize,
}

/// `count` items, each grown from the start token until the model emits the stop token or the
/// sequence reaches `seq_len`.
pub fn generate<B: Backend>(
    model: &Model<B>,
    vocab: &Vocab,
    seq_len: usize,
    count: usize,
    options: SampleOptions,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Vec<String> {
    let v = vocab.size();
    let mut sequences = vec![vec![0i32]; count];
    let mut done = vec![false; count];
    for t in 1..seq_len {
        if count == 0 || done.iter().all(|&d| d) {
            break;
        }
        let flat: Vec<i32> = sequences.iter().flatten().copied().collect();
        let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [count, t]), device);
        let last = model
            .forward(idx)
            .slice([0..count, t - 1..t, 0..v])
            .reshape([count, v]);
        let probs = softmax(last.div_scalar(options.temperature), 1);
        let probs: Vec<f32> = probs.into_data().to_vec().expect("f32 probabilities");
        for (row, sequence) in sequences.iter_mut().enumerate() {
            let next = if done[row] {
                0
            } else {
                draw(&probs[row * v..(row + 1) * v], options.top_k, rng)
            };
            done[row] |= next == 0;
            sequence.push(next as i32);
        }
    }
    sequences
        .iter()
        .map(|s| {
            let tokens: Vec<usize> = s[1..]
                .iter()
                .take_while(|&&t| t != 0)
                .map(|&t| t as usize)
                .collect();
            vocab.decode(&tokens)
        })
        .collect()
}

/// One token from `probs`, restricted to the `top_k` most likely when `top_k` > 0.
fn draw(probs: &[f32], top_k: usize, rng: &mut ChaCha8Rng) -> usize {
    let mut candidates: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    if top_k > 0 && top_k < candidates.len() {
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        candidates.truncate(top_k);
    }
    let total: f32 = candidates.iter().map(|c| c.1).sum();
    let mut target = rng.random::<f32>() * total;
    for &(token, p) in &candidates {
        if target < p {
            return token;
        }
        target -= p;
    }
    candidates.last().map_or(0, |c| c.0)
}
