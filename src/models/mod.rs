//! The model families, one file each, behind one enum the training loop drives.

mod bigram;
mod init;
mod mlp;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

pub use bigram::Bigram;
pub use init::Init;
pub use mlp::Mlp;

use crate::config::{ModelConfig, ModelType};
use crate::data::Dataset;
use crate::error::{Error, Result};

// One model lives per run, so the size gap between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model<B: Backend> {
    Bigram(Bigram<B>),
    Mlp(Mlp<B>),
}

impl<B: Backend> Model<B> {
    /// A freshly initialised model of the configured family (`counts` comes fitted).
    pub fn new(
        config: &ModelConfig,
        data: &Dataset,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        let vocab_size = data.vocab.size();
        let mut init = Init::new(seed, device);
        Ok(match config.kind {
            ModelType::Bigram => Model::Bigram(Bigram::new(vocab_size, &init)),
            ModelType::Counts => Model::Bigram(Bigram::from_counts(
                &data.train,
                vocab_size,
                config.smoothing,
                &init,
            )),
            ModelType::Mlp => {
                let block_size = if config.block_size == 0 {
                    data.seq_len
                } else {
                    config.block_size
                };
                Model::Mlp(Mlp::new(config, vocab_size, block_size, &mut init))
            }
            other => {
                return Err(Error::input(format!(
                    "model.type = \"{}\" is not implemented yet; available: bigram, counts, mlp",
                    other.name()
                )));
            }
        })
    }

    /// `[B, T]` tokens → `[B, T, V]` next-token logits; position t depends on tokens ≤ t only.
    pub fn forward(&self, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        match self {
            Model::Bigram(m) => m.forward(idx),
            Model::Mlp(m) => m.forward(idx),
        }
    }
}

/// Summed negative log-likelihood of the targets, and how many targets count (those not
/// `data::IGNORE`). Divide one by the other for makemore's mean cross-entropy.
pub fn nll<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [b, t, v] = logits.dims();
    let log_probs = log_softmax(logits.reshape([b * t, v]), 1);
    let targets = targets.reshape([b * t, 1]);
    let counted = targets.clone().greater_equal_elem(0);
    let picked = log_probs.gather(1, targets.clamp_min(0));
    let nll = picked.neg().mask_fill(counted.clone().bool_not(), 0.0);
    (nll.sum(), counted.float().sum())
}
