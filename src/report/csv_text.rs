//! The report as CSV: one line per configuration, every figure unrounded, the columns
//! documented in the README.

use crate::error::{Error, Result};
use crate::rundir::Status;

use super::{Fate, Report, Row};

pub(super) const CSV_FIGURES: [&str; 36] = [
    "model_type",
    "params",
    "steps",
    "runs",
    "selected_on",
    "selection_loss_mean",
    "selection_loss_std",
    "selection_loss_ci95",
    "test_loss_mean",
    "test_loss_std",
    "test_loss_ci95",
    "test_loss_se",
    "p_vs_top",
    "tied_with_top",
    "test_loss_last_mean",
    "final_train_loss_mean",
    "test_logprob",
    "bits_per_char",
    "tokens_per_s",
    "wall_s",
    "failed",
    "running",
    "interrupted",
    "repeats",
    "val_items",
    "val_in_train",
    "test_items",
    "test_in_train",
    "status",
    "stopped",
    "rung",
    "rung_steps",
    "rung_loss",
    "rung_fate",
    "params_max",
    "configurations",
];

/// One line per configuration, every figure unrounded; the columns are documented in the README.
pub fn csv(report: &Report) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec!["group".into()];
    header.extend(report.columns.iter().cloned());
    header.extend(CSV_FIGURES.map(String::from));
    header.extend(csv_generation_header());
    header.extend(ENSEMBLE.map(String::from));
    let io = |e: csv::Error| Error::Failed(e.into());
    writer.write_record(&header).map_err(io)?;
    for row in &report.rows {
        let mut record = vec![row.group.to_string()];
        record.extend(
            report
                .columns
                .iter()
                .map(|c| row.keys.get(c).cloned().unwrap_or_default()),
        );
        record.extend(csv_figures(report, row));
        record.extend(csv_generation(report, row));
        record.extend(csv_ensemble(row));
        writer.write_record(&record).map_err(io)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::Failed(anyhow::anyhow!("{e}")))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields"))
}

/// The last columns: `report --ensemble`'s figures, empty without it.
const ENSEMBLE: [&str; 4] = [
    "ensemble_members",
    "ensemble_val_loss",
    "ensemble_test_loss",
    "ensemble_test_loss_se",
];

fn csv_ensemble(row: &Row) -> [String; 4] {
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let e = row.ensemble;
    [
        e.map_or(String::new(), |e| e.members.to_string()),
        num(e.and_then(|e| e.val_loss)),
        num(e.map(|e| e.test_loss)),
        num(e.and_then(|e| e.test_loss_se)),
    ]
}

/// The CSV's columns after `CSV_FIGURES`: the ranked figure, then each generation figure's
/// mean, std over seeds and a single run's standard error, and the best temperature.
fn csv_generation_header() -> Vec<String> {
    let figures = crate::generation::FIGURES.iter();
    let per_figure = figures.flat_map(|f| ["mean", "std", "se"].map(|s| format!("{f}_{s}")));
    [
        "rank_by",
        "ranked_mean",
        "ranked_std",
        "generation_temperature",
    ]
    .map(String::from)
    .into_iter()
    .chain(per_figure)
    .chain(["best_temperature".to_string()])
    .collect()
}

fn csv_generation(report: &Report, row: &Row) -> Vec<String> {
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let g = row.generation.as_ref();
    let per_figure = crate::generation::FIGURES.iter().flat_map(|f| {
        let stat = g.and_then(|g| g.figures.get(*f));
        let se = g.and_then(|g| g.se.get(*f)).copied();
        [num(stat.map(|s| s.mean)), num(stat.map(|s| s.std)), num(se)]
    });
    let rank_by: &str = report.rank_by.into();
    [
        rank_by.to_string(),
        num(row.ranked.map(|s| s.mean)),
        num(row.ranked.map(|s| s.std)),
        num(g.map(|g| g.temperature)),
    ]
    .into_iter()
    .chain(per_figure)
    .chain([num(row.best_temperature)])
    .collect()
}

pub(super) fn csv_figures(report: &Report, row: &Row) -> Vec<String> {
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let count = |v: Option<usize>| v.map_or(String::new(), |v| v.to_string());
    let group = report.groups.iter().find(|g| g.id == row.group);
    let overlap = group.and_then(|g| g.overlap);
    let not_done = |status: &str| row.not_done.get(status).copied().unwrap_or(0).to_string();
    let trial = row.search.as_ref();
    vec![
        row.model_type.clone(),
        row.params.to_string(),
        count(row.steps),
        row.runs.len().to_string(),
        group.map_or(String::new(), |g| g.selected_on.name().into()),
        num(row.selection_loss.map(|s| s.mean)),
        num(row.selection_loss.map(|s| s.std)),
        num(row.selection_loss.and_then(|s| s.ci95)),
        num(row.test_loss.map(|s| s.mean)),
        num(row.test_loss.map(|s| s.std)),
        num(row.test_loss.and_then(|s| s.ci95)),
        num(row.test_loss_se),
        num(row.p_vs_top),
        row.tied_with_top.map_or(String::new(), |t| t.to_string()),
        num(row.test_loss_last.map(|s| s.mean)),
        num(row.final_train_loss.map(|s| s.mean)),
        num(row.test_logprob),
        num(row.bits_per_char),
        num(row.tokens_per_s),
        num(row.wall_s),
        not_done(Status::Failed.name()),
        not_done(Status::Running.name()),
        not_done(Status::Interrupted.name()),
        row.repeats.len().to_string(),
        count(overlap.map(|o| o.val_items)),
        count(overlap.map(|o| o.val_in_train)),
        count(overlap.map(|o| o.test_items)),
        count(overlap.map(|o| o.test_in_train)),
        row.status.clone(),
        not_done(Fate::Stopped.name()),
        count(trial.map(|t| t.rung)),
        count(trial.map(|t| t.rung_steps)),
        num(trial.and_then(|t| t.rung_loss)),
        trial.map_or(String::new(), |t| t.fate.name().into()),
        row.params_max.to_string(),
        row.configurations.to_string(),
    ]
}
