//! `makemore check`: what a file would run, validated and sized, without running anything. An
//! experiment file gives its resolved form; a sweep file (grid or search) every trial it
//! resolves to, as `sweep --dry-run` would run them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::{self, Experiment};
use crate::data::Dataset;
use crate::error::Result;
use crate::models::{Model, memory};
use crate::sweep::{self, Trial};
use crate::{backend, run};

/// One experiment as it would run: its model's size and memory, and what its data warns of.
pub struct Sized {
    /// The model's parameters, counted on the model itself (absent when it would not fit in
    /// memory: it is not built then).
    pub params: Option<usize>,
    /// The memory estimate, in words ("needs about 38 MiB of memory (…); 22.9 GiB available"),
    /// its figure alone, and whether it fits.
    pub memory: String,
    pub needs: String,
    pub fits: bool,
    /// The data's warnings and notes, as `run` prints them.
    pub data_lines: Vec<String>,
}

pub enum Checked {
    Experiment {
        experiment: Box<Experiment>,
        sized: Sized,
    },
    Sweep {
        file: PathBuf,
        name: String,
        /// "grid", "random search" or "successive halving".
        kind: &'static str,
        trials: Vec<(Trial, Sized)>,
    },
}

/// Checks `file` with `sets` applied: an experiment, or a sweep when it names a base
/// `experiment` (or has `[grid]`, `[search]`, `[set]` or `[[trial]]`).
pub fn check(file: &Path, sets: &[String]) -> Result<Checked> {
    if !is_sweep(file) {
        let experiment = config::load(file, sets)?.experiment;
        backend::select(&experiment.backend)?;
        let data = Dataset::load(&experiment.dataset)?;
        let sized = size(&experiment, &data);
        return Ok(Checked::Experiment {
            experiment: Box::new(experiment),
            sized,
        });
    }
    let grid = sweep::load_grid(file, sets)?;
    let kind = match &grid.halving {
        Some(_) => "successive halving",
        None if grid.resolved.contains("[search]") => "random search",
        None => "grid",
    };
    // Trials mostly share their data: read each distinct dataset once.
    let mut datasets: HashMap<String, Dataset> = HashMap::new();
    let mut trials = Vec::with_capacity(grid.trials.len());
    for trial in grid.trials {
        let key = toml::to_string(&trial.experiment.dataset).expect("a dataset serialises");
        if !datasets.contains_key(&key) {
            datasets.insert(key.clone(), Dataset::load(&trial.experiment.dataset)?);
        }
        let sized = size(&trial.experiment, &datasets[&key]);
        trials.push((trial, sized));
    }
    Ok(Checked::Sweep {
        file: grid.file,
        name: grid.name,
        kind,
        trials,
    })
}

/// Whether `file` is a sweep file: a TOML table with the keys only a sweep has. A file that does
/// not parse is left to the experiment loader, whose message places the error.
fn is_sweep(file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    ["experiment", "grid", "search", "set", "trial"]
        .iter()
        .any(|key| table.contains_key(*key))
}

/// The model's real size (built on the CPU, as `run` builds it) and its memory estimate.
fn size(experiment: &Experiment, data: &Dataset) -> Sized {
    let (fits, memory) = run::memory_line(experiment, data);
    let params = fits.then(|| {
        let device = Default::default();
        Model::<burn::backend::Flex>::new(&experiment.model, data, experiment.seed, &device)
            .parameters()
    });
    let needs = memory::training_bytes(experiment, data.vocab.size(), data.seq_len);
    Sized {
        params,
        memory,
        needs: memory::human(needs),
        fits,
        data_lines: run::data_lines(experiment, data),
    }
}
