//! Generating items from a model, one token at a time, and the `makemore sample` command.

use std::path::PathBuf;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SamplingConfig;
use crate::data::{Dataset, Vocab};
use crate::error::{Error, Result};
use crate::generation::{self, Judge, Metrics};
use crate::models::Model;
use crate::models::ensemble::EnsembleDecoder;
use crate::trained::{Trained, Which};

#[derive(Debug, Clone, Copy)]
pub struct SampleOptions {
    /// Below 1 sharper, above 1 more adventurous; 0 takes the likeliest character every time
    /// (greedy: every sample is the same).
    pub temperature: f64,
    /// Draw from the k most likely characters only; 0 = all.
    pub top_k: usize,
    /// Draw from the most likely characters that make up this much probability (of what top-k
    /// left); 1 = all.
    pub top_p: f64,
    /// No sample ends before it has this many characters (the stop token is held back).
    pub min_len: usize,
    /// A sample is cut at this many characters; 0 = as long as the model's items.
    pub max_len: usize,
}

impl SampleOptions {
    /// The options of an experiment's `[sampling]`: what a run samples with.
    pub fn of(sampling: &SamplingConfig) -> Self {
        SampleOptions {
            temperature: sampling.temperature,
            top_k: sampling.top_k,
            top_p: sampling.top_p,
            min_len: sampling.min_len,
            max_len: sampling.max_len,
        }
    }
}

/// `count` items, each grown from the start token and `prefix` until the model emits the stop
/// token or the sequence reaches `seq_len` (or the item `options.max_len` characters). The
/// model is the ensemble of `members` (one model: itself).
#[allow(clippy::too_many_arguments)]
pub fn generate<B: Backend>(
    members: &[Model<B>],
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
    let end = match options.max_len {
        0 => seq_len,
        n => seq_len.min(n + 1),
    };
    if count == 0 || start.len() >= end {
        return vec![vocab.decode(prefix); count];
    }
    // Each position is fed once: the model carries what it needs of the earlier ones.
    let mut decoder = EnsembleDecoder::new(members);
    let mut logits = None;
    for &token in &start {
        logits = Some(decoder.next(members, &vec![token; count], device));
    }
    for t in start.len()..end {
        let last = logits.take().expect("the position before t was fed");
        let mut probs = probabilities(last, v, options.temperature);
        // The item so far has t - 1 characters: too short to end, its stop token is held back.
        let hold_stop = t - 1 < options.min_len;
        for (row, sequence) in sequences.iter_mut().enumerate() {
            let probs = &mut probs[row * v..(row + 1) * v];
            if hold_stop {
                probs[0] = 0.0;
            }
            let next = match (done[row], options.temperature == 0.0) {
                (true, _) => 0,
                (false, true) => likeliest(probs),
                (false, false) => draw(probs, options, rng),
            };
            done[row] |= next == 0;
            sequence.push(next as i32);
        }
        if done.iter().all(|&d| d) || t + 1 == end {
            break;
        }
        let fed: Vec<i32> = sequences.iter().map(|s| s[t]).collect();
        logits = Some(decoder.next(members, &fed, device));
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

/// The next-token distribution of each row of `logits` `[count, v]` at `temperature`, flat; at 0
/// the logits themselves, whose largest is all greedy decoding needs.
fn probabilities<B: Backend>(logits: Tensor<B, 2>, v: usize, temperature: f64) -> Vec<f32> {
    if temperature == 0.0 {
        return logits.into_data().to_vec().expect("f32 logits");
    }
    let probs = softmax(logits.clone().div_scalar(temperature), 1);
    let probs: Vec<f32> = probs.into_data().to_vec().expect("f32 probabilities");
    match probs.iter().all(|p| p.is_finite()) {
        true => probs,
        false => {
            let logits: Vec<f32> = logits.into_data().to_vec().expect("f32 logits");
            cold_softmax(&logits, v, temperature)
        }
    }
}

/// The likeliest token (the lowest of equals): the limit of sampling as the temperature falls.
fn likeliest(scores: &[f32]) -> usize {
    let mut best = 0;
    for (token, &score) in scores.iter().enumerate() {
        if score > scores[best] {
            best = token;
        }
    }
    best
}

/// The softmax of each row of `logits` at a temperature too low for f32 (`logits / t`
/// overflows): in f64, from each row's largest logit, so that the limit is the argmax (the
/// largest logits share the probability) and never NaN.
fn cold_softmax(logits: &[f32], v: usize, t: f64) -> Vec<f32> {
    logits
        .chunks(v)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let weights: Vec<f64> = row.iter().map(|&l| ((l as f64 - max) / t).exp()).collect();
            let total: f64 = weights.iter().sum();
            weights.into_iter().map(move |w| (w / total) as f32)
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

/// The most samples drawn at once: memory stays bounded for any count.
pub const BATCH: usize = 1024;

/// `count` items from the start token and `prefix`, drawn `BATCH` at a time from one stream.
pub fn generate_many<B: Backend>(
    members: &[Model<B>],
    data: &Dataset,
    count: usize,
    prefix: &[usize],
    options: SampleOptions,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Vec<String> {
    let mut items = Vec::with_capacity(count);
    while items.len() < count {
        let batch = (count - items.len()).min(BATCH);
        let (vocab, seq_len) = (&data.vocab, data.seq_len);
        items.extend(generate(
            members, vocab, seq_len, batch, prefix, options, rng, device,
        ));
    }
    items
}

/// What `makemore sample` was asked for.
#[derive(Debug, Clone)]
pub struct SampleRequest {
    /// The run directory (or an experiment's directory of runs: its newest); more than one: an
    /// ensemble of their models.
    pub runs: Vec<PathBuf>,
    /// How many.
    pub count: usize,
    pub options: SampleOptions,
    /// Every sample starts with this text.
    pub prefix: String,
    /// Random seed (default: the run's).
    pub seed: Option<u64>,
    pub checkpoint: Which,
    /// Only items that are not in the data (train, val or test).
    pub new_only: bool,
    /// Tag each sample in-train, in-val, in-test or new.
    pub mark: bool,
    /// Measure every draw (`generation::measure`).
    pub stats: bool,
}

/// Draws `request.count` samples from the run and hands each to `out` as it is drawn, with its
/// mark: in-train, in-val, in-test or new. `note` hears first whether the model is a partial one.
/// With `request.stats`, returns the generation metrics of every draw (those `--new-only` left
/// out too: they are what the model generates).
pub fn sample(
    request: &SampleRequest,
    note: impl FnOnce(&str),
    mut out: impl FnMut(&str, &str),
) -> Result<Option<Metrics>> {
    check(&request.options)?;
    let trained = Trained::open_ensemble(&request.runs, request.checkpoint)?;
    if let Some(partial) = &trained.partial {
        note(partial);
    }
    let data = &trained.data;
    let prefix = encode_prefix(&request.prefix, data)?;
    let mut rng = ChaCha8Rng::seed_from_u64(request.seed.unwrap_or(trained.experiment.seed));
    let membership = data.membership();
    let device = Default::default();
    // --new-only keeps drawing; give up after this many draws rather than loop for ever.
    let limit = request.count.saturating_mul(100).max(1000);
    let (mut given, mut drawn, mut every) = (0, 0, Vec::new());
    while given < request.count && drawn < limit {
        let wanted = match request.new_only {
            true => (request.count - given).max(16),
            false => request.count - given,
        };
        // Drawn and handed out a batch at a time, so that any count streams in bounded memory.
        let batch = wanted.min(BATCH);
        let items = generate(
            &trained.members,
            &data.vocab,
            data.seq_len,
            batch,
            &prefix,
            request.options,
            &mut rng,
            &device,
        );
        drawn += batch;
        if request.stats {
            every.extend(items.iter().cloned());
        }
        for item in items {
            let mark = membership.mark(&item);
            if given == request.count || (request.new_only && mark != "new") {
                continue;
            }
            given += 1;
            out(&item, mark);
        }
    }
    if given < request.count {
        return Err(Error::input(format!(
            "only {given} new items in {drawn} draws; the model mostly repeats its training data (try a higher --temperature)"
        )));
    }
    let judge = || {
        Judge::fit(
            &data.train.tokens,
            data.vocab.size(),
            trained.experiment.generation.judge_order,
        )
    };
    Ok(request
        .stats
        .then(|| generation::measure(&every, request.options.temperature, data, &judge())))
}

fn check(o: &SampleOptions) -> Result<()> {
    if !(o.temperature >= 0.0 && o.temperature.is_finite()) {
        return Err(Error::input(format!(
            "--temperature must be a finite number ≥ 0 (0: the likeliest character every time), got {}",
            o.temperature
        )));
    }
    if o.max_len > 0 && o.min_len > o.max_len {
        return Err(Error::input(format!(
            "--min-len {} is above --max-len {}",
            o.min_len, o.max_len
        )));
    }
    if !(o.top_p > 0.0 && o.top_p <= 1.0) {
        return Err(Error::input(format!(
            "--top-p must be in (0, 1], got {}",
            o.top_p
        )));
    }
    Ok(())
}

/// The tokens of `prefix`, which must leave room for at least one more character.
fn encode_prefix(prefix: &str, data: &Dataset) -> Result<Vec<usize>> {
    let tokens = data.vocab.encode(prefix).ok_or_else(|| {
        Error::input(format!(
            "--prefix {prefix:?}: characters not in the vocabulary: {:?}",
            data.vocab.unknown(prefix)
        ))
    })?;
    if tokens.len() + 1 >= data.seq_len {
        return Err(Error::input(format!(
            "--prefix {prefix:?} is too long: items are at most {} characters",
            data.seq_len - 1
        )));
    }
    Ok(tokens)
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
            min_len: 0,
            max_len: 0,
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
