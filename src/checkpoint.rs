//! Checkpoints: one self-contained file each (`best.ckpt`, `last.ckpt`), written atomically.
//!
//! A checkpoint holds the model, the optimizer state, the step, the best selection loss and the
//! data-order generator: everything a run needs to go on where it stopped.

use std::path::Path;

use anyhow::Context;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use serde::{Deserialize, Serialize};

use crate::config::Experiment;
use crate::data::{Batcher, Dataset};
use crate::error::{Error, Result};
use crate::models::Model;
use crate::rundir::{Written, read_config, read_summary, write_atomic};

#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    /// Optimizer steps taken.
    pub step: usize,
    /// The best periodic estimate of the selection split's loss (val, else test) so far.
    #[serde(alias = "best_test_loss")]
    pub best_loss: Option<f64>,
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

    /// `model` with this checkpoint's weights; it must be of the same architecture.
    pub fn load_model<B: Backend>(
        &self,
        model: Model<B>,
        device: &B::Device,
    ) -> anyhow::Result<Model<B>> {
        const MISMATCH: &str = "the checkpoint does not match the run's configured model";
        let record = decode(&self.model, device).context(MISMATCH)?;
        model
            .load_checked(record)
            .map_err(|why| anyhow::anyhow!("{MISMATCH}: {why}"))
    }
}

/// A trained run read back from its directory, to sample from or score with.
pub struct Trained {
    pub experiment: Experiment,
    pub data: Dataset,
    pub model: Model<burn::backend::Flex>,
}

impl Trained {
    /// Reads `dir`'s config.toml, its data and the `which` ("best" or "last") checkpoint.
    pub fn open(dir: &Path, which: &str) -> Result<Self> {
        let experiment = read_config(dir)
            .map_err(|e| Error::input(format!("{}: not a run directory: {e:#}", dir.display())))?;
        let data = Dataset::load(&experiment.dataset)?;
        // The model's tokens are the characters of the data it was trained on: other data would
        // decode them wrongly and mark samples against the wrong splits.
        if let Ok(summary) = read_summary(dir)
            && summary.data_hash != data.data_hash
        {
            return Err(Error::input(format!(
                "{}: {} changed since the run was trained (its sha256 was {}, now {}); point dataset.path in {} at the data it was trained on",
                dir.display(),
                experiment.dataset.path.display(),
                &summary.data_hash[..12.min(summary.data_hash.len())],
                &data.data_hash[..12],
                dir.join("config.toml").display()
            )));
        }
        let path = dir.join("checkpoints").join(format!("{which}.ckpt"));
        let device = Default::default();
        let fresh = Model::new(&experiment.model, &data, experiment.seed, &device);
        let model = Checkpoint::read(&path)
            .and_then(|checkpoint| checkpoint.load_model(fresh, &device))
            .map_err(|e| Error::input(format!("{e:#}")))?;
        Ok(Trained {
            experiment,
            data,
            model,
        })
    }
}
