//! A finished run opened for inference: its configuration, its data (checked against the data it
//! was trained on) and the model of one of its checkpoints. `sample`, `score` and `export` start
//! here.

use std::path::Path;

use crate::checkpoint::Checkpoint;
use crate::config::Experiment;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::rundir::{read_config, read_summary};

/// Which checkpoint of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The one selected on validation (test without a validation split).
    Best,
    /// The latest.
    Last,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Best => "best",
            Which::Last => "last",
        }
    }
}

/// A trained run read back from its directory, to sample from or score with.
pub struct Trained {
    pub experiment: Experiment,
    pub data: Dataset,
    pub model: Model<burn::backend::Flex>,
}

impl Trained {
    /// Reads `dir`'s config.toml, its data and its `which` checkpoint.
    pub fn open(dir: &Path, which: Which) -> Result<Self> {
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
        let path = dir
            .join("checkpoints")
            .join(format!("{}.ckpt", which.name()));
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
