//! summary.json: what happened, kept up to date while the run goes on; its type and its one
//! reader.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::data::{Overlap, SplitName};
use crate::generation::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Status {
    Running,
    Done,
    Failed,
    Interrupted,
}

impl Status {
    /// As summary.json writes it.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Which weights of a step: the trained ones, or their running average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Weights {
    Trained,
    Average,
}

/// `summary.json`: what happened, kept up to date while the run goes on.
///
/// The best checkpoint is chosen on `selected_on` (val when the data has a validation split);
/// `test_loss` is that checkpoint's loss over every test item, computed once at the end. Older
/// run directories wrote `best_test_loss` and `final_test_loss`: they read as `best_estimate`
/// and `test_loss_last`, selected on test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub status: Status,
    pub name: String,
    pub model_type: String,
    pub params: usize,
    pub step: usize,
    pub steps: usize,
    #[serde(default)]
    pub selected_on: Option<SplitName>,
    /// The step of the checkpoint in `checkpoints/best.ckpt`.
    #[serde(default)]
    pub selected_step: Option<usize>,
    /// With weight averaging (`schedule.ema_decay`), which weights of the selected step the
    /// selection chose: `trained` or `average`, the better estimate of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_weights: Option<Weights>,
    /// The best periodic estimate of the selection split's loss: what chose the checkpoint.
    #[serde(alias = "best_test_loss")]
    pub best_estimate: Option<f64>,
    /// At the selected checkpoint, over every item.
    #[serde(default)]
    pub val_loss: Option<f64>,
    #[serde(default)]
    pub test_loss: Option<f64>,
    /// The standard error of `test_loss`, with the test items as the sampled units.
    #[serde(default)]
    pub test_loss_se: Option<f64>,
    /// The last model's losses over every item.
    #[serde(alias = "final_test_loss")]
    pub test_loss_last: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    #[serde(default)]
    pub overlap: Option<Overlap>,
    /// The generation metrics of the selected checkpoint at `sampling.temperature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<Metrics>,
    /// The same at each of `generation.temperatures`, coolest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frontier: Vec<Metrics>,
    pub ms_per_step: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub wall_s: f64,
    pub backend: String,
    pub version: String,
    pub config_hash: String,
    pub data_hash: String,
    pub split_hash: String,
    pub started_at: String,
    pub updated_at: String,
    pub error: Option<String>,
}

impl Summary {
    /// The split that chose the checkpoint; runs from before the choice was recorded chose on test.
    pub fn selected_on(&self) -> SplitName {
        self.selected_on.unwrap_or(SplitName::Test)
    }

    /// What runs are ranked by: the selection split's loss at the selected checkpoint over every
    /// item (older runs: their best test estimate).
    pub fn selection_loss(&self) -> Option<f64> {
        match self.selected_on() {
            SplitName::Val => self.val_loss,
            _ => self.test_loss.or(self.best_estimate),
        }
    }

    /// Which checkpoint was selected, on what, and its figures over every item, for people.
    pub fn selected_line(&self) -> String {
        let loss = |l: Option<f64>| l.map_or("-".into(), |l| format!("{l:.4}"));
        let se = self
            .test_loss_se
            .map_or(String::new(), |se| format!(" ± {se:.4}"));
        let items = self.overlap.map_or(String::new(), |o| match o.test_items {
            1 => " (1 test item: no standard error)".to_string(),
            n => format!(" ({n} test items)"),
        });
        let weights = match self.selected_weights {
            Some(Weights::Average) => " (the weight average)",
            _ => "",
        };
        format!(
            "selected on {} at step {}{weights}: val {} | test {}{se}{items}",
            self.selected_on().name(),
            self.selected_step.unwrap_or(0),
            loss(self.val_loss),
            loss(self.test_loss),
        )
    }

    /// The headline figure: the selected checkpoint's test loss (older runs: the last model's).
    pub fn headline_test_loss(&self) -> Option<f64> {
        self.test_loss.or(self.test_loss_last)
    }
}

/// `run`'s summary.json.
pub fn read_summary(run: &Path) -> anyhow::Result<Summary> {
    let path = run.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid summary: {}",
            path.display(),
            crate::config::plain_words(&e.to_string())
        )
    })
}
