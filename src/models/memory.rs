//! What a configuration will ask of memory, worked out from its sizes before anything is
//! allocated: a width or a batch of 10^9 must be refused with a message, not end the process
//! with the allocator's abort.
//!
//! The figures are estimates of the largest terms (weight matrices and embeddings; the
//! activations a step keeps for its backward pass), meant to tell "fits" from "cannot fit", not
//! to budget to the byte. The parameter estimate is checked against the models' own counts.

use crate::config::{Experiment, ModelConfig, ModelType};

/// Parameters (weights and embeddings; biases and norms are small beside them).
pub fn parameters(model: &ModelConfig, vocab: usize, seq_len: usize) -> u128 {
    let [v, t, c, h, l] =
        [vocab, seq_len, model.n_embd, model.n_embd2, model.n_layer].map(|n| n as u128);
    match model.kind {
        ModelType::Bigram | ModelType::Counts => v * v,
        ModelType::Mlp => (v + 1) * c + block_size(model, seq_len) * c * h + h * v,
        ModelType::Cnn => v * c + 2 * c * h + 2 * h * h * l.saturating_sub(1) + h * v,
        ModelType::Rnn | ModelType::Gru | ModelType::Lstm => {
            v * c + gates(model.kind) * (c + h) * h + h * v
        }
        ModelType::Bow => (v + t) * c + 2 * c * h + c * v,
        ModelType::Transformer => (v + t) * c + 12 * l * c * c + c * v,
    }
}

/// Floats a training step keeps per position of a batch for its backward pass.
fn activations_per_position(model: &ModelConfig, vocab: usize, seq_len: usize) -> u128 {
    let [v, t, c, h, l] =
        [vocab, seq_len, model.n_embd, model.n_embd2, model.n_layer].map(|n| n as u128);
    let logits = 3 * v;
    logits
        + match model.kind {
            ModelType::Bigram | ModelType::Counts => 0,
            ModelType::Mlp => 2 * (block_size(model, seq_len) * c + h),
            ModelType::Cnn => 8 * (c + h) * l.max(1),
            ModelType::Rnn | ModelType::Gru | ModelType::Lstm => {
                4 * (gates(model.kind) + 1) * (c + h)
            }
            ModelType::Bow => 8 * (c + h),
            ModelType::Transformer => l * (20 * c + 2 * model.n_head.max(1) as u128 * t),
        }
}

fn gates(kind: ModelType) -> u128 {
    match kind {
        ModelType::Gru => 3,
        ModelType::Lstm => 4,
        _ => 1,
    }
}

fn block_size(model: &ModelConfig, seq_len: usize) -> u128 {
    model.context(seq_len) as u128
}

/// Bytes a run of `experiment` needs at its peak: f32 parameters, their gradients and two
/// optimizer moments (and their average, with `schedule.ema_decay`), and the activations of the
/// largest of a training batch, an evaluation batch and the samples drawn at once.
pub fn training_bytes(experiment: &Experiment, vocab: usize, seq_len: usize) -> u128 {
    let copies = match experiment.schedule.ema_decay > 0.0 {
        true => 5,
        false => 4,
    };
    let floats = copies * parameters(&experiment.model, vocab, seq_len)
        + positions(experiment, seq_len)
            * activations_per_position(&experiment.model, vocab, seq_len);
    4 * floats
}

/// Bytes of the host's memory a run needs however its model runs (on a GPU too): the batches'
/// tokens and targets, built on the host before they are copied, and the samples' text.
pub fn host_bytes(experiment: &Experiment, seq_len: usize) -> u128 {
    let per_position = 2 * 4 + 8;
    positions(experiment, seq_len) * per_position
}

/// Positions in the largest batch the model sees.
fn positions(experiment: &Experiment, seq_len: usize) -> u128 {
    let s = &experiment.schedule;
    let batch = s
        .batch_size
        .max(s.eval_batch_size)
        .max(experiment.sampling.count)
        .max(experiment.generation.count.min(crate::sample::BATCH)) as u128;
    match experiment.model.kind {
        // The cnn trains on examples, one target per row of its context.
        ModelType::Cnn => batch * (1u128 << experiment.model.n_layer.min(64)),
        _ => batch * seq_len as u128,
    }
}

/// Memory the system can give this process now, in bytes, where the system says (Linux).
pub fn available_bytes() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether `needed` bytes fit in what the system can give now (yes where it cannot say), and
/// that amount in words ("20.3 GiB", "unknown").
pub fn fits(needed: u128) -> (bool, String) {
    let available = available_bytes();
    let words = available.map_or("unknown".into(), human);
    (available.is_none_or(|a| needed <= a), words)
}

/// "1.2 GiB", "340 MiB": for messages.
pub fn human(bytes: u128) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    match bytes as f64 {
        b if b >= GIB => format!("{:.1} GiB", b / GIB),
        b => format!("{:.0} MiB", (b / (1u64 << 20) as f64).max(1.0)),
    }
}
