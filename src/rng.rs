//! Every random draw of a run comes from the run's seed, through one stream per purpose, so that
//! changing how often one thing happens (evaluating, sampling) never moves another (the data order).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Init = 1,
    Batches = 2,
    Evaluate = 3,
    Sample = 4,
    Dropout = 5,
    /// The generation metrics' samples (`generation/`), the same at every temperature.
    Generate = 6,
}

/// The generator for `stream` at `step` (0 where there is one stream for the whole run).
pub fn rng(seed: u64, stream: Stream, step: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((stream as u64) << 48) | step as u64);
    rng
}

/// The dropout generator for part `shard` of the batch of `step`: part 0's is the step's stream
/// of `Stream::Dropout`, the others' sit above every step's (2³² of them).
pub fn dropout_rng(seed: u64, step: usize, shard: usize) -> ChaCha8Rng {
    rng(seed, Stream::Dropout, step | shard << 32)
}

/// `n` keep-factors for dropout with probability `p`: 0 or 1/(1-p), one 32-bit draw from `rng`
/// each, dropped when it is below p·2³².
pub fn dropout_mask(rng: &mut ChaCha8Rng, n: usize, p: f64) -> Vec<f32> {
    use rand::Rng;
    let keep = (1.0 / (1.0 - p)) as f32;
    let below = (p * 2f64.powi(32)).round() as u64;
    let mut draws = vec![0u32; n];
    rng.fill(&mut draws[..]);
    // u32 to f32 in place: the same size, so the collection reuses the draws' memory.
    draws
        .into_iter()
        .map(|draw| if u64::from(draw) < below { 0.0 } else { keep })
        .collect()
}
