//! A finished run opened for inference: its configuration, its data (checked against the data it
//! was trained on) and the model of one of its checkpoints; or several runs of the same data and
//! split, opened as one ensemble. `sample`, `score` and `export` start here.

use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;
use crate::config::Experiment;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::rundir::{Status, Summary, read_config, read_summary};

/// Which checkpoint of a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::VariantNames, strum::IntoStaticStr,
)]
#[strum(serialize_all = "lowercase")]
pub enum Which {
    /// The one selected on validation (test without a validation split).
    Best,
    /// The latest.
    Last,
}

impl Which {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A trained run read back from its directory, to sample from or score with; or an ensemble of
/// several, whose next-character distribution is the mean of theirs (`models::ensemble`).
pub struct Trained {
    /// The (first) run's.
    pub experiment: Experiment,
    pub data: Dataset,
    /// Each run's model: one, or an ensemble's members.
    pub members: Vec<Model<burn::backend::Flex>>,
    /// Why a model is not a finished run's, when one is not ("the run is still training: …"),
    /// for the command to say beside its output.
    pub partial: Option<String>,
}

impl Trained {
    /// Reads `dir`'s config.toml, its data and its `which` checkpoint.
    pub fn open(dir: &Path, which: Which) -> Result<Self> {
        let experiment = read_config(dir)
            .map_err(|e| Error::input(format!("{}: not a run directory: {e:#}", dir.display())))?;
        let data = Dataset::load(&experiment.dataset)?;
        // The model's tokens are the characters of the data it was trained on: other data would
        // decode them wrongly and mark samples against the wrong splits.
        let summary = read_summary(dir).ok();
        if let Some(summary) = &summary
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
        if !path.exists() {
            return Err(Error::input(no_checkpoint(
                dir,
                &path,
                &experiment,
                summary.as_ref(),
            )));
        }
        let device = Default::default();
        let fresh = Model::new(&experiment.model, &data, experiment.seed, &device);
        let model = Checkpoint::read(&path)
            .and_then(|checkpoint| checkpoint.load_model(fresh, &device))
            .map_err(|e| Error::input(format!("{e:#}")))?;
        let partial = summary.and_then(|s| partial(dir, &s));
        Ok(Trained {
            experiment,
            data,
            members: vec![model],
            partial,
        })
    }

    /// The runs at `dirs` as one ensemble (one run: that run). They must have been trained on
    /// the same data, cleaned and split alike: the same characters mean the same tokens, and the
    /// held-out items are held out from every member.
    pub fn open_ensemble(dirs: &[PathBuf], which: Which) -> Result<Self> {
        let (first, others) = dirs.split_first().expect("at least one run");
        let mut ensemble = Trained::open(first, which)?;
        for dir in others {
            let other = Trained::open(dir, which)?;
            if let Some(why) = differs(&ensemble.data, &other.data) {
                return Err(Error::input(format!(
                    "{} cannot join {} in an ensemble: {why}",
                    dir.display(),
                    first.display()
                )));
            }
            ensemble.members.extend(other.members);
            ensemble.partial = match (ensemble.partial, other.partial) {
                (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
                (a, b) => a.or(b),
            };
        }
        Ok(ensemble)
    }
}

/// How two runs' data differ, where it does in a way an ensemble cannot mix.
fn differs(a: &Dataset, b: &Dataset) -> Option<&'static str> {
    if a.data_hash != b.data_hash {
        Some("they were trained on different data")
    } else if a.vocab.chars() != b.vocab.chars() || a.seq_len != b.seq_len {
        Some("their vocabularies differ (dataset.lowercase, normalize or the item length)")
    } else if a.split_hash != b.split_hash {
        Some("their train/val/test splits differ (dataset.split_seed, val_fraction, test_size …)")
    } else {
        None
    }
}

/// Why a run has no checkpoint at `path` to open, and when it will, if it will.
fn no_checkpoint(
    dir: &Path,
    path: &Path,
    experiment: &Experiment,
    summary: Option<&Summary>,
) -> String {
    let (shown, every) = (dir.display(), experiment.schedule.eval_every);
    match summary.map(|s| (s.status, s.step, s.steps)) {
        Some((Status::Running, step, steps)) if step < every => format!(
            "{shown}: the run is training and has no checkpoint yet; its first comes with its \
             first evaluation, at step {} (schedule.eval_every = {every})",
            every.min(steps)
        ),
        Some((Status::Interrupted | Status::Failed, step, _)) if step < every => format!(
            "{shown}: the run has no checkpoint: it stopped at step {step}, before its first (at \
             step {every}); makemore run --resume {shown} goes on",
        ),
        Some((status, step, _)) => format!(
            "{}: no such checkpoint, though the run ({} at step {step}) wrote one; were its \
             checkpoints moved or deleted?",
            path.display(),
            status.name()
        ),
        None => format!("{shown}: no checkpoint and no readable summary.json: not a trained run"),
    }
}

/// A line for a model read from a run that is not done: still training, or stopped early.
fn partial(dir: &Path, summary: &Summary) -> Option<String> {
    let (dir, step, steps) = (dir.display(), summary.step, summary.steps);
    match summary.status {
        Status::Done => None,
        Status::Running => Some(format!(
            "note: {dir} is still training (step {step} of {steps}): this is its model so far"
        )),
        status => Some(format!(
            "note: {dir} is {} at step {step} of {steps}: this is a partial model",
            status.name()
        )),
    }
}
