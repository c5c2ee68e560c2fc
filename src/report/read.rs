//! Reading run directories back for the report: every run below the given directories, once,
//! each as its summary, its configuration and its curves (the selection split's and train's
//! estimates), or why it cannot be read. *Invariant:* it never writes; hidden directories (a run being made) and links are
//! passed by.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Damaged, ReportRequest};
use crate::error::{Error, Result};
use crate::rundir::{self, Summary};

/// A run directory as read back.
#[derive(Debug, Clone)]
pub(super) struct Run {
    pub(super) dir: PathBuf,
    pub(super) summary: Summary,
    pub(super) config: BTreeMap<String, String>,
    /// (step, loss) of each evaluation of the selection split, the final ones included.
    pub(super) curve: Vec<(usize, f64)>,
    /// (step, loss) of train at the same evaluations, on as many items.
    pub(super) train_curve: Vec<(usize, f64)>,
}

pub(super) fn read_runs(
    dirs: &[PathBuf],
    request: &ReportRequest,
) -> Result<(Vec<Run>, Vec<Damaged>)> {
    let mut found = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(Error::input(format!(
                "{}: no such directory",
                dir.display()
            )));
        }
        find_runs(dir, &mut found);
    }
    // A run named twice (the same directory given twice, or inside another one given) is one run.
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|dir| seen.insert(dir.canonicalize().unwrap_or_else(|_| dir.clone())));
    let (mut runs, mut damaged) = (Vec::new(), Vec::new());
    for dir in found {
        match read_run(&dir) {
            Ok(run) => runs.push(run),
            Err(problem) => damaged.push(Damaged { dir, problem }),
        }
    }
    for (key, value) in &request.filters {
        if !runs.is_empty() && !runs.iter().any(|r| r.config.contains_key(key)) {
            return Err(Error::input(format!(
                "--filter {key}={value}: no run has the key {key}"
            )));
        }
        runs.retain(|r| r.config.get(key).is_some_and(|v| v == value));
    }
    for key in &request.by {
        if !runs.is_empty() && !runs.iter().any(|r| r.config.contains_key(key)) {
            return Err(Error::input(format!(
                "--by {key}: no run has the key {key}"
            )));
        }
    }
    Ok((runs, damaged))
}

/// Directories holding a summary.json or a config.toml, below `dir` (itself included).
pub(super) fn find_runs(dir: &Path, found: &mut Vec<PathBuf>) {
    if dir.join("summary.json").exists() || dir.join("config.toml").exists() {
        found.push(dir.to_path_buf());
        return;
    }
    for child in subdirectories(dir) {
        find_runs(&child, found);
    }
}

/// The directories in `dir`, sorted; not through links (`runs/<name>/latest` points at a run
/// that is listed anyway), nor hidden ones (a run directory being made).
pub(super) fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut children: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    children.sort();
    children
}

pub(super) fn read_run(dir: &Path) -> std::result::Result<Run, String> {
    let summary = rundir::read_summary(dir).map_err(|e| format!("{e:#}"))?;
    let experiment = rundir::read_config(dir).map_err(|e| format!("{e:#}"))?;
    // Strings as themselves, other values as TOML writes them.
    let config = experiment
        .flatten()
        .into_iter()
        .map(|(key, value)| match value {
            toml::Value::String(s) => (key, s),
            other => (key, other.to_string()),
        })
        .collect();
    let split = summary.selected_on().name();
    let (curve, train_curve) = read_curves(dir, split).map_err(|e| format!("{e:#}"))?;
    Ok(Run {
        dir: dir.to_path_buf(),
        summary,
        config,
        curve,
        train_curve,
    })
}

type Curve = Vec<(usize, f64)>;

/// (step, loss) of every row of `split` in the run's metrics.csv, and of train's estimates: an
/// evaluation writes train's row just before the selection split's, at the same step, where a
/// training batch's row (every 10th step) stands alone.
pub(super) fn read_curves(dir: &Path, split: &str) -> anyhow::Result<(Curve, Curve)> {
    let rows = rundir::metrics::read(dir)?;
    let mut train = Vec::new();
    for pair in rows.windows(2) {
        let [before, row] = pair else { continue };
        if before.split == "train" && row.split == split && before.step == row.step {
            train.push((before.step, before.loss));
        }
    }
    let selection = (rows.iter())
        .filter(|row| row.split == split)
        .map(|row| (row.step, row.loss))
        .collect();
    Ok((selection, train))
}

#[cfg(test)]
mod tests {
    use super::read_curves;

    /// Batch rows every 10th step, an evaluation (train then val) at 20 and at the end 30, the
    /// final rows (train, val, test) after it.
    #[test]
    fn train_estimates_are_the_rows_just_before_the_selection_split() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            "10,train,3.0",
            "20,train,2.9",
            "20,train,2.8",
            "20,val,2.85",
            "30,train,2.7",
            "30,train,2.6",
            "30,val,2.65",
            "30,train,2.55",
            "30,val,2.64",
            "30,test,2.66",
        ];
        let mut text = String::from("step,split,loss,lr,elapsed_s,tokens_per_s\n");
        for row in rows {
            text.push_str(&format!("{row},0.01,1.0,100.0\n"));
        }
        std::fs::write(dir.path().join("metrics.csv"), text).unwrap();
        let (val, train) = read_curves(dir.path(), "val").unwrap();
        assert_eq!(val, [(20, 2.85), (30, 2.65), (30, 2.64)]);
        assert_eq!(train, [(20, 2.8), (30, 2.6), (30, 2.55)]);
        let (test, train) = read_curves(dir.path(), "test").unwrap();
        assert_eq!(test, [(30, 2.66)]);
        assert_eq!(train, []);
    }
}
