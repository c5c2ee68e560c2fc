//! Checkpoints: one self-contained file each (`best.ckpt`, `last.ckpt`), written atomically.
//!
//! A checkpoint holds the model, the optimizer state, the step, the best selection loss and the
//! data-order generator: everything a run needs to go on where it stopped.

use std::path::Path;

use anyhow::Context;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use serde::{Deserialize, Serialize};

use crate::data::Batcher;
use crate::files::write_atomic;
use crate::models::Model;
use crate::rundir::Written;

#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    /// Optimizer steps taken.
    pub step: usize,
    /// The best periodic estimate of the selection split's loss (val, else test) so far.
    #[serde(alias = "best_test_loss")]
    pub best_loss: Option<f64>,
    /// The step of that estimate: best.ckpt's (absent in older checkpoints).
    #[serde(default)]
    pub best_step: Option<usize>,
    /// Evaluations since the best one, for early stopping.
    pub stale_evaluations: usize,
    /// The data-order generator, so a resumed run draws the batches an uninterrupted one would.
    pub batcher: Batcher,
    /// The lines of metrics.csv and samples.txt written before it (absent in older checkpoints).
    #[serde(default)]
    pub written: Option<Written>,
    #[serde(with = "serde_bytes")]
    pub model: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub optimizer: Vec<u8>,
    /// The weight average's record (`schedule.ema_decay`), encoded as `model` is; in last.ckpt
    /// only, where a resume goes on from it.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub average: Option<Vec<u8>>,
    /// Whether the best step's weights are the average's rather than the trained ones: in
    /// last.ckpt, which of the two the selection chose at `best_step`; in best.ckpt, that
    /// `model` holds the average.
    #[serde(default)]
    pub best_average: bool,
}

fn recorder() -> NamedMpkBytesRecorder<FullPrecisionSettings> {
    NamedMpkBytesRecorder::default()
}

pub fn encode<B: Backend, R: Record<B>>(record: R) -> anyhow::Result<Vec<u8>> {
    Ok(recorder().record(record, ())?)
}

pub fn decode<B: Backend, R: Record<B>>(bytes: &[u8], device: &B::Device) -> anyhow::Result<R> {
    Ok(recorder().load(bytes.to_vec(), device)?)
}

impl Checkpoint {
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        write_atomic(path, &rmp_serde::to_vec_named(self)?)
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        rmp_serde::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid checkpoint (damaged, or not written by makemore): {}",
                path.display(),
                crate::config::plain_words(&e.to_string())
            )
        })
    }

    /// Makes `dir`'s best.ckpt the step that this checkpoint, its last.ckpt, says is the best,
    /// when that is its own step: a process killed between writing the two left the older one.
    pub fn repair_best(&self, dir: &Path) -> anyhow::Result<()> {
        let best = dir.join("checkpoints").join("best.ckpt");
        if self.best_step != Some(self.step)
            || Checkpoint::read(&best).is_ok_and(|b| b.step == self.step)
        {
            return Ok(());
        }
        self.best().save(&best)
    }

    /// best.ckpt as written from this checkpoint, last.ckpt at the best step: its `model` the
    /// weights the selection chose (the average's, when it won), and no average to resume.
    pub fn best(&self) -> Checkpoint {
        let chosen = self.best_average.then(|| self.average.clone()).flatten();
        Checkpoint {
            model: chosen.unwrap_or_else(|| self.model.clone()),
            average: None,
            batcher: self.batcher.clone(),
            optimizer: self.optimizer.clone(),
            ..*self
        }
    }

    /// `model` with this checkpoint's weights; it must be of the same architecture.
    pub fn load_model<B: Backend>(
        &self,
        model: Model<B>,
        device: &B::Device,
    ) -> anyhow::Result<Model<B>> {
        load_weights(model, &self.model, device)
    }
}

/// `model` with the weights `bytes` hold (a model's record as `encode` writes it, on any
/// backend); they must be of the same architecture.
pub fn load_weights<B: Backend>(
    model: Model<B>,
    bytes: &[u8],
    device: &B::Device,
) -> anyhow::Result<Model<B>> {
    const MISMATCH: &str = "the checkpoint does not match the run's configured model";
    let record = decode(bytes, device).context(MISMATCH)?;
    model
        .load_checked(record)
        .map_err(|why| anyhow::anyhow!("{MISMATCH}: {why}"))
}
