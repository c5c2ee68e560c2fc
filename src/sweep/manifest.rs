//! A sweep directory's own files: `grid.toml` (the grid as resolved) and `trials.csv` (each
//! trial's standing), their one writer and their one reader (`recorded`, for the report).

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::halving::Halving;
use super::standing::{standing, state_name};
use super::{Grid, search};
use crate::error::Result;
use crate::files::write_atomic;

const GRID: &str = "grid.toml";
const TRIALS: &str = "trials.csv";

/// A row of trials.csv.
#[derive(Debug, Serialize, Deserialize)]
struct TrialRow {
    index: usize,
    id: String,
    /// pending, running, done, interrupted, failed, or unreadable.
    status: String,
    run_dir: String,
    overrides: String,
}

/// Writes `grid.toml`, the grid as resolved (what `recorded` reads back).
pub fn write_grid(grid: &Grid, dir: &Path) -> Result<()> {
    write_atomic(&dir.join(GRID), grid.resolved.as_bytes())?;
    Ok(())
}

/// `trials.csv`: one line per trial of the current grid, rewritten whole (and atomically) from
/// what is on disk, so it is consistent whichever worker wrote it last.
///
/// Workers read the states and write the file under one lock: without it a worker that read
/// another's trial as running could rename its file over the one written after that trial ended.
pub fn write(grid: &Grid, dir: &Path) -> Result<()> {
    let lock_path = dir.join("trials.lock");
    let lock = fs::File::create(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| anyhow::anyhow!("cannot lock {}: {e}", lock_path.display()))?;
    let mut out = csv::Writer::from_writer(Vec::new());
    for trial in &grid.trials {
        let status = match standing(dir, trial) {
            Ok(state) => state_name(state),
            Err(_) => "unreadable",
        };
        out.serialize(TrialRow {
            index: trial.index,
            id: trial.id.clone(),
            status: status.to_string(),
            run_dir: dir.join(&trial.id).display().to_string(),
            overrides: trial.describe(),
        })
        .map_err(anyhow::Error::from)?;
    }
    let bytes = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(&dir.join(TRIALS), &bytes)?;
    drop(lock);
    Ok(())
}

/// A halving search as its sweep directory records it: the settings of `grid.toml`'s `[search]`
/// and the trial ids of `trials.csv`, in index order.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub halving: Halving,
    pub ids: Vec<String>,
}

/// The halving search recorded in `dir`: `None` when `dir` holds no sweep or a sweep of another
/// kind, an error saying which file is wrong.
pub fn recorded(dir: &Path) -> Option<std::result::Result<Recorded, String>> {
    let grid_file = dir.join(GRID);
    let text = fs::read_to_string(&grid_file).ok()?;
    let problem = |e: &dyn std::fmt::Display| format!("{}: {e}", grid_file.display());
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => return Some(Err(problem(&e))),
    };
    let search = table.get("search")?.as_table()?;
    if search.get("method")?.as_str()? != "halving" {
        return None;
    }
    let place = |key: &str| format!("{} [search] {key}", grid_file.display());
    let halving = match search::parse(search, &place) {
        Ok(parsed) => parsed.halving?,
        Err(e) => return Some(Err(e.to_string())),
    };
    Some(trial_ids(dir).map(|ids| Recorded { halving, ids }))
}

/// The trials' ids in trials.csv, ordered by their index.
fn trial_ids(dir: &Path) -> std::result::Result<Vec<String>, String> {
    let file = dir.join(TRIALS);
    let problem = |e: &dyn std::fmt::Display| format!("{}: {e}", file.display());
    let mut reader = csv::Reader::from_path(&file).map_err(|e| problem(&e))?;
    let mut rows: Vec<TrialRow> = reader
        .deserialize()
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| problem(&e))?;
    rows.sort_by_key(|row| row.index);
    Ok(rows.into_iter().map(|row| row.id).collect())
}
