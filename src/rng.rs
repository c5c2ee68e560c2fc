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
}

/// The generator for `stream` at `step` (0 where there is one stream for the whole run).
pub fn rng(seed: u64, stream: Stream, step: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((stream as u64) << 48) | step as u64);
    rng
}
