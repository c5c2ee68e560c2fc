//! Generating items from a model, one token at a time, and the `makemore sample` command.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Vocab;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::trained::Trained;

#[derive(Debug, Clone, Copy)]
pub struct SampleOptions {
    pub temperature: f64,
    /// Keep only the k most likely tokens; 0 = all.
    pub top_k: usize,
    /// Keep the most likely tokens whose probabilities add up to at least p; 1 = all.
    pub top_p: f64,
}

/// `count` items, each grown from the start token and `prefix` until the model emits the stop
/// token or the sequence reaches `seq_len`.
#[allow(clippy::too_many_arguments)]
pub fn generate<B: Backend>(
    model: &Model<B>,
    vocab: &Vocab,
    seq_len: usize,
    count: usize,
    prefix: &[usize],
    options: SampleOptions,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Vec<String> {
    let v = vocab.size();
    let start: Vec<i32> = std::iter::once(0)
        .chain(prefix.iter().map(|&t| t as i32))
        .collect();
    let mut sequences = vec![start.clone(); count];
    let mut done = vec![false; count];
    for t in start.len()..seq_len {
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
                draw(&probs[row * v..(row + 1) * v], options, rng)
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

/// One token from `probs`, restricted to the top-k and then the top-p most likely.
fn draw(probs: &[f32], options: SampleOptions, rng: &mut ChaCha8Rng) -> usize {
    let mut candidates: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if options.top_k > 0 {
        candidates.truncate(options.top_k);
    }
    if options.top_p < 1.0 {
        // Of what top-k left, renormalised (as Hugging Face's samplers chain the two).
        let left: f64 = candidates.iter().map(|c| c.1 as f64).sum();
        let mut mass = 0.0;
        let keep = candidates
            .iter()
            .position(|c| {
                mass += c.1 as f64;
                mass >= options.top_p * left
            })
            .map_or(candidates.len(), |i| i + 1);
        candidates.truncate(keep);
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

/// What `makemore sample` was asked for.
#[derive(Debug, Clone)]
pub struct SampleRequest {
    pub count: usize,
    pub options: SampleOptions,
    pub prefix: String,
    pub seed: Option<u64>,
    pub checkpoint: String,
    pub new_only: bool,
    pub mark: bool,
}

/// Draws and prints samples from the run in `dir`, one per line.
pub fn sample_command(dir: &Path, request: &SampleRequest) -> Result<()> {
    let o = request.options;
    if !(o.temperature > 0.0 && o.temperature.is_finite()) {
        return Err(Error::input(format!(
            "--temperature must be > 0, got {}",
            o.temperature
        )));
    }
    if !(o.top_p > 0.0 && o.top_p <= 1.0) {
        return Err(Error::input(format!(
            "--top-p must be in (0, 1], got {}",
            o.top_p
        )));
    }
    let trained = Trained::open(dir, &request.checkpoint)?;
    let data = &trained.data;
    let prefix = data.vocab.encode(&request.prefix).ok_or_else(|| {
        let unknown: String = request
            .prefix
            .chars()
            .filter(|c| !data.vocab.chars().contains(c))
            .collect();
        Error::input(format!(
            "--prefix {:?}: characters not in the vocabulary: {unknown:?}",
            request.prefix
        ))
    })?;
    if prefix.len() + 1 >= data.seq_len {
        return Err(Error::input(format!(
            "--prefix {:?} is too long: items are at most {} characters",
            request.prefix,
            data.seq_len - 1
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(request.seed.unwrap_or(trained.experiment.seed));
    let membership = data.membership();
    let device = Default::default();
    // --new-only keeps drawing; give up after this many draws rather than loop for ever.
    let limit = request.count.saturating_mul(100).max(1000);
    let (mut printed, mut drawn) = (0, 0);
    while printed < request.count && drawn < limit {
        let batch = if request.new_only {
            (request.count - printed).max(16)
        } else {
            request.count
        };
        let items = generate(
            &trained.model,
            &data.vocab,
            data.seq_len,
            batch,
            &prefix,
            o,
            &mut rng,
            &device,
        );
        drawn += batch;
        for item in items {
            let mark = membership.mark(&item);
            if printed == request.count || (request.new_only && mark != "new") {
                continue;
            }
            printed += 1;
            match request.mark {
                true => println!("{item}\t{mark}"),
                false => println!("{item}"),
            }
        }
    }
    if printed < request.count {
        return Err(Error::input(format!(
            "only {printed} new items in {drawn} draws; the model mostly repeats its training data (try a higher --temperature)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How often each token of `probs` is drawn in 20,000 draws.
    fn frequencies(probs: &[f32], top_k: usize, top_p: f64) -> Vec<f64> {
        let options = SampleOptions {
            temperature: 1.0,
            top_k,
            top_p,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = vec![0.0; probs.len()];
        for _ in 0..20_000 {
            counts[draw(probs, options, &mut rng)] += 1.0 / 20_000.0;
        }
        counts
    }

    fn assert_near(got: &[f64], expected: &[f64]) {
        let near = got.iter().zip(expected).all(|(g, e)| (g - e).abs() < 0.015);
        assert!(near, "drew {got:?}, expected {expected:?}");
    }

    /// Top-p keeps the fewest most likely tokens whose mass reaches p, and draws among them in
    /// proportion to their probabilities.
    #[test]
    fn top_p_keeps_the_smallest_nucleus_and_renormalises() {
        let probs = [0.05, 0.5, 0.3, 0.15];
        assert_near(&frequencies(&probs, 0, 1.0), &[0.05, 0.5, 0.3, 0.15]);
        assert_near(&frequencies(&probs, 0, 0.45), &[0.0, 1.0, 0.0, 0.0]);
        assert_near(&frequencies(&probs, 0, 1e-9), &[0.0, 1.0, 0.0, 0.0]);
        assert_near(&frequencies(&probs, 0, 0.7), &[0.0, 0.625, 0.375, 0.0]);
        assert_near(
            &frequencies(&probs, 0, 0.9),
            &[0.0, 0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95],
        );
        // After top-k, p is a share of what is left: 0.5 of top-2's 0.8 is 0.625 < 0.7.
        assert_near(&frequencies(&probs, 2, 0.7), &[0.0, 0.625, 0.375, 0.0]);
        assert_near(&frequencies(&probs, 2, 0.6), &[0.0, 1.0, 0.0, 0.0]);
    }

    /// Top-k keeps the k most likely, ties going to the lower token.
    #[test]
    fn top_k_keeps_the_k_most_likely() {
        let probs = [0.25, 0.25, 0.25, 0.25];
        assert_near(&frequencies(&probs, 2, 1.0), &[0.5, 0.5, 0.0, 0.0]);
        assert_near(&frequencies(&[0.1, 0.6, 0.3], 1, 1.0), &[0.0, 1.0, 0.0]);
    }
}
