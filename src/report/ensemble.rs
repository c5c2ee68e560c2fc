//! `report --ensemble`: each configuration's finished runs as one ensemble (`models::ensemble`),
//! its val and test figures computed once over every item, the test figure with its standard
//! error over the test items. The only part of the report that opens models.

use crate::data::SplitName;
use crate::error::Result;
use crate::score::split_loss;
use crate::trained::{Trained, Which};

use super::Row;

/// An ensemble's figures over every item.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct EnsembleFigures {
    /// How many runs' selected checkpoints it averages.
    pub members: usize,
    pub val_loss: Option<f64>,
    pub test_loss: f64,
    pub test_loss_se: Option<f64>,
}

/// Each row of two runs or more gets its ensemble's figures.
pub(super) fn add(rows: &mut [Row]) -> Result<()> {
    for row in rows.iter_mut().filter(|row| row.runs.len() > 1) {
        let ensemble = Trained::open_ensemble(&row.runs, Which::Best)?;
        let val = match ensemble.data.val.tokens.is_empty() {
            true => None,
            false => Some(split_loss(&ensemble, SplitName::Val)?.loss),
        };
        let test = split_loss(&ensemble, SplitName::Test)?;
        row.ensemble = Some(EnsembleFigures {
            members: row.runs.len(),
            val_loss: val,
            test_loss: test.loss,
            test_loss_se: test.se,
        });
    }
    Ok(())
}
