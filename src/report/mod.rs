//! `makemore report`: one row per configuration, finished seeds aggregated with how sure each
//! figure is, ranked by the selection split's loss (val when there is one) or by the figure asked
//! for, and runs on different data or splits never ranked together without saying so.

mod aggregate;
mod csv_text;
mod ensemble;
mod fit;
mod html;
mod parallel;
mod plot;
mod rank;
mod read;
mod search;
mod text;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::data::{Overlap, SplitName};
use crate::error::{Error, Result};
use crate::stats::Stat;
use aggregate::{aggregate, groups, varying_keys};
pub use csv_text::csv;
pub use ensemble::EnsembleFigures;
pub use rank::{PLAUSIBLE_GAP, RankBy};
use read::{Run, read_runs};
pub use search::{Fate, RungSummary, Search, TrialRung};
pub use text::{markdown, table};

/// What `makemore report` was asked for.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// Directories to look for runs in (below them, at any depth).
    pub dirs: Vec<PathBuf>,
    pub format: Format,
    /// Aggregate by these configuration keys only (comma-separated dotted keys).
    pub by: Vec<String>,
    /// Keep only runs whose KEY has VALUE (repeatable), e.g. --filter model.type=gru.
    pub filters: Vec<(String, String)>,
    /// The best N rows of each group.
    pub top: Option<usize>,
    /// Also draw the selection-loss curves and the best losses into this SVG file.
    pub plot: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page to this file.
    pub html: Option<PathBuf>,
    /// What the rows of a group are ranked by.
    pub rank_by: RankBy,
    /// Add each configuration's ensemble of its finished runs (`EnsembleFigures`).
    pub ensemble: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::VariantNames, strum::IntoStaticStr,
)]
#[strum(serialize_all = "lowercase")]
pub enum Format {
    Table,
    Md,
    Csv,
    Json,
}

/// One configuration: the runs that agree on everything but the seed (or on the `--by` keys).
/// Only finished runs enter the figures; a configuration hash and seed counts once (the newest).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Runs with the same data and split share a group; only rows of one group are comparable.
    pub group: usize,
    pub keys: BTreeMap<String, String>,
    pub model_type: String,
    /// The fewest and the most parameters among its runs (they differ where `--by` merged
    /// configurations of different sizes).
    pub params: usize,
    pub params_max: usize,
    /// How many configurations (seed aside) its finished runs hold: more than 1 only where
    /// `--by` merged runs that differ in other keys; its figures then spread over those.
    pub configurations: usize,
    /// The most steps among the counted runs (a stopped search trial's: its rung's).
    pub steps: Option<usize>,
    /// The finished runs the figures rest on, and their seeds.
    pub runs: Vec<PathBuf>,
    pub seeds: Vec<String>,
    /// The selection split's loss at each run's selected checkpoint.
    pub selection_loss: Option<Stat>,
    /// What the rows are ranked by (`--rank-by`; the selection loss unless asked otherwise).
    pub ranked: Option<Stat>,
    /// The headline: the test loss at each run's selected checkpoint.
    pub test_loss: Option<Stat>,
    /// A single run's standard error of its test loss, over the test items.
    pub test_loss_se: Option<f64>,
    pub test_loss_last: Option<Stat>,
    pub final_train_loss: Option<Stat>,
    /// The generation metrics at `sampling.temperature` of each run's selected checkpoint.
    pub generation: Option<Generated>,
    /// The same at every temperature its runs measured, coolest first.
    pub frontier: Vec<Generated>,
    /// The frontier's temperature with the most new samples among those the judge finds
    /// plausible (`rank::best_temperature`).
    pub best_temperature: Option<f64>,
    /// Welch's test of the ranked figure against the group's top row (at least 2 runs each).
    pub p_vs_top: Option<f64>,
    /// Whether the difference from the top row is not significant (p ≥ 0.05).
    pub tied_with_top: Option<bool>,
    /// makemore.py's "test logprob": minus the mean test loss.
    pub test_logprob: Option<f64>,
    pub bits_per_char: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub wall_s: Option<f64>,
    /// Runs that did not finish (failed, running, interrupted), counted but not averaged.
    pub not_done: BTreeMap<String, usize>,
    /// Older finished runs of a configuration hash and seed that a newer run replaces.
    pub repeats: Vec<PathBuf>,
    /// "3 done", with the others and the repeats when there are any.
    pub status: String,
    /// Where the row's trial stands in a successive-halving search, when it is one.
    pub search: Option<TrialRung>,
    /// Its runs as one ensemble, with `--ensemble` and two runs or more.
    pub ensemble: Option<EnsembleFigures>,
}

/// A configuration's generation metrics at one temperature, over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub temperature: f64,
    /// Each figure by `Metrics::figures`' name: mean±std over the runs that measured it.
    pub figures: BTreeMap<String, Stat>,
    /// A single run's standard error of each figure (several runs: their spread says it).
    pub se: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: usize,
    pub data_hash: String,
    pub split_hash: String,
    /// The split its runs chose their checkpoints on.
    pub selected_on: SplitName,
    pub overlap: Option<Overlap>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Damaged {
    pub dir: PathBuf,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rank_by: RankBy,
    /// The configuration keys the rows differ in (or the `--by` keys).
    pub columns: Vec<String>,
    pub groups: Vec<Group>,
    pub rows: Vec<Row>,
    /// The successive-halving searches among the directories.
    pub searches: Vec<Search>,
    pub damaged: Vec<Damaged>,
}

/// The p-value at or above which a row counts as tied with the top row.
const TIE_P: f64 = 0.05;

/// Reads every run below the request's directories and ranks them; draws the plot if asked.
pub fn report(request: &ReportRequest) -> Result<Report> {
    let (runs, mut damaged) = read_runs(&request.dirs, request)?;
    let searches = search::find(&request.dirs, &mut damaged);
    let mut report = build_from(&runs, searches, damaged, request);
    if request.ensemble {
        ensemble::add(&mut report.rows)?;
    }
    let (mut curves, mut train) = (plot::Curves::new(), plot::Curves::new());
    for run in runs {
        train.insert(run.dir.clone(), run.train_curve);
        curves.insert(run.dir, run.curve);
    }
    let failed = |path: &PathBuf| {
        let path = path.display().to_string();
        move |e: Box<dyn std::error::Error>| Error::Failed(anyhow::anyhow!("{path}: {e}"))
    };
    if let Some(path) = &request.plot {
        plot::draw(path, &report, &curves).map_err(failed(path))?;
    }
    if let Some(path) = &request.html {
        let page = html::page(&report, &curves, &train).map_err(failed(path))?;
        crate::files::write_atomic(path, page.as_bytes()).map_err(Error::Failed)?;
    }
    Ok(report)
}

/// The report as text in `format`; a table in `colour` marks the tied rows.
pub fn render(report: &Report, format: Format, colour: bool) -> Result<String> {
    Ok(match format {
        Format::Table => table(report, colour),
        Format::Md => markdown(report),
        Format::Csv => csv(report)?,
        Format::Json => serde_json::to_string_pretty(report).expect("a report serialises") + "\n",
    })
}

fn build_from(
    runs: &[Run],
    (searches, trials): search::Searches,
    damaged: Vec<Damaged>,
    request: &ReportRequest,
) -> Report {
    let groups = groups(runs);
    let columns = if request.by.is_empty() {
        varying_keys(runs, &groups)
    } else {
        request.by.clone()
    };
    let mut rows: Vec<Row> = aggregate(runs, &columns, &groups, &trials, request.rank_by);
    let by_rank = rank::by_rank(request.rank_by);
    rows.sort_by(|a, b| a.group.cmp(&b.group).then(by_rank(a, b)));
    rank::compare_with_top(&mut rows);
    if let Some(top) = request.top {
        let mut kept = BTreeMap::<usize, usize>::new();
        rows.retain(|r| {
            let n = kept.entry(r.group).or_default();
            *n += 1;
            *n <= top
        });
    }
    Report {
        rank_by: request.rank_by,
        columns,
        groups,
        rows,
        searches,
        damaged,
    }
}
