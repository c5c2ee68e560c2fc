//! `makemore report`: one row per configuration, finished seeds aggregated with how sure each
//! figure is, ranked by the selection split's loss (val when there is one), and runs on different
//! data or splits never ranked together without saying so.

mod plot;
mod search;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::ModelType;
use crate::data::{Overlap, SplitName};
use crate::error::{Error, Result};
use crate::rundir::{self, Status, Summary};
use crate::stats::{self, Stat};
pub use search::{Fate, RungSummary, Search, TrialRung};

/// Keys that never tell configurations apart: `seed` is what gets aggregated, the paths and names
/// name things (the data itself is identified by its hash), and the device and thread count do
/// not change the numbers (as for the configuration hash).
const NOT_CONFIGURATION: [&str; 6] = [
    "seed",
    "name",
    "dataset.path",
    "dataset.test_path",
    "backend.device",
    "backend.threads",
];

/// What `makemore report` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportRequest {
    /// Directories to look for runs in (below them, at any depth).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Aggregate by these configuration keys only (comma-separated dotted keys).
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// Keep only runs whose KEY has VALUE (repeatable), e.g. --filter model.type=gru.
    #[arg(long = "filter", value_name = "KEY=VALUE", value_parser = key_value)]
    pub filters: Vec<(String, String)>,
    /// The best N rows of each group.
    #[arg(long, value_parser = crate::config::at_least_one)]
    pub top: Option<usize>,
    /// Also draw the selection-loss curves and the best losses into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

fn key_value(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "expected KEY=VALUE".to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Md,
    Csv,
    Json,
}

/// A run directory as read back.
#[derive(Debug, Clone)]
struct Run {
    dir: PathBuf,
    summary: Summary,
    config: BTreeMap<String, String>,
    /// (step, loss) of each evaluation of the selection split, the final ones included.
    curve: Vec<(usize, f64)>,
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
    /// What the rows are ranked by: the selection split's loss at each run's selected checkpoint.
    pub selection_loss: Option<Stat>,
    /// The headline: the test loss at each run's selected checkpoint.
    pub test_loss: Option<Stat>,
    /// A single run's standard error of its test loss, over the test items.
    pub test_loss_se: Option<f64>,
    pub test_loss_last: Option<Stat>,
    pub final_train_loss: Option<Stat>,
    /// Welch's test of the selection loss against the group's top row (at least 2 runs each).
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
    let report = build_from(&runs, searches, damaged, request);
    if let Some(path) = &request.plot {
        let curves = runs.into_iter().map(|r| (r.dir, r.curve)).collect();
        plot::draw(path, &report, &curves)
            .map_err(|e| Error::Failed(anyhow::anyhow!("{}: {e}", path.display())))?;
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
    (searches, trials): search::Found,
    damaged: Vec<Damaged>,
    request: &ReportRequest,
) -> Report {
    let groups = groups(runs);
    let columns = if request.by.is_empty() {
        varying_keys(runs, &groups)
    } else {
        request.by.clone()
    };
    let mut rows: Vec<Row> = aggregate(runs, &columns, &groups, &trials);
    rows.sort_by(|a, b| a.group.cmp(&b.group).then(by_rank(a, b)));
    compare_with_top(&mut rows);
    if let Some(top) = request.top {
        let mut kept = BTreeMap::<usize, usize>::new();
        rows.retain(|r| {
            let n = kept.entry(r.group).or_default();
            *n += 1;
            *n <= top
        });
    }
    Report {
        columns,
        groups,
        rows,
        searches,
        damaged,
    }
}

/// Rows by their selection loss; then the trials a search stopped, the later rung first and
/// within a rung by what the search ranked them by.
fn by_rank(a: &Row, b: &Row) -> std::cmp::Ordering {
    let loss = |r: &Row| r.selection_loss.map_or(f64::INFINITY, |s| s.mean);
    let rung = |r: &Row| r.search.as_ref().map(|t| t.rung);
    let rung_loss = |r: &Row| {
        let loss = r.search.as_ref().and_then(|t| t.rung_loss);
        loss.unwrap_or(f64::INFINITY)
    };
    (loss(a).total_cmp(&loss(b)))
        .then(rung(b).cmp(&rung(a)))
        .then(rung_loss(a).total_cmp(&rung_loss(b)))
}

/// Welch's test of each row's selection loss against the top row of its group. A row that
/// merges configurations (`--by`) is no sample of one configuration's seeds: it gets no test.
fn compare_with_top(rows: &mut [Row]) {
    // The group and the top row's figure (none where the top row merges configurations).
    let mut top: Option<(usize, Option<Stat>)> = None;
    for row in rows.iter_mut() {
        let Some(stat) = row.selection_loss else {
            continue;
        };
        let own = (row.configurations == 1).then_some(stat);
        match top {
            Some((group, best)) if group == row.group => {
                if let (Some(stat), Some(best)) = (own, best) {
                    row.p_vs_top = stats::welch_p(&stat, &best);
                    row.tied_with_top = row.p_vs_top.map(|p| p >= TIE_P);
                }
            }
            _ => top = Some((row.group, own)),
        }
    }
}

fn read_runs(dirs: &[PathBuf], request: &ReportRequest) -> Result<(Vec<Run>, Vec<Damaged>)> {
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
fn find_runs(dir: &Path, found: &mut Vec<PathBuf>) {
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
fn subdirectories(dir: &Path) -> Vec<PathBuf> {
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

fn read_run(dir: &Path) -> std::result::Result<Run, String> {
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
    let curve = read_curve(dir, split).map_err(|e| format!("metrics.csv: {e}"))?;
    Ok(Run {
        dir: dir.to_path_buf(),
        summary,
        config,
        curve,
    })
}

fn read_curve(dir: &Path, split: &str) -> std::result::Result<Vec<(usize, f64)>, String> {
    let mut reader = csv::Reader::from_path(dir.join("metrics.csv")).map_err(|e| e.to_string())?;
    let mut curve = Vec::new();
    for record in reader.records() {
        // A run killed mid-line leaves a partial last line: keep what is whole.
        let Ok(record) = record else { break };
        let parsed = (record.get(0).map(str::parse), record.get(2).map(str::parse));
        if let (Some(name), (Some(Ok(step)), Some(Ok(loss)))) = (record.get(1), parsed)
            && name == split
        {
            curve.push((step, loss));
        }
    }
    Ok(curve)
}

/// Configuration keys whose values differ between runs of one group (between groups, the
/// data or the split differ anyway and the groups are shown apart).
fn varying_keys(runs: &[Run], groups: &[Group]) -> Vec<String> {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.config.keys()).collect();
    let varies = |key: &str| {
        groups.iter().any(|g| {
            let values: BTreeSet<Option<&String>> = runs
                .iter()
                .filter(|r| {
                    r.summary.data_hash == g.data_hash && r.summary.split_hash == g.split_hash
                })
                .map(|r| r.config.get(key))
                .collect();
            values.len() > 1
        })
    };
    keys.into_iter()
        .filter(|k| !NOT_CONFIGURATION.contains(&k.as_str()) && varies(k))
        .cloned()
        .collect()
}

fn groups(runs: &[Run]) -> Vec<Group> {
    let mut first: BTreeMap<(&str, &str), &Summary> = BTreeMap::new();
    for run in runs {
        let key = (
            run.summary.data_hash.as_str(),
            run.summary.split_hash.as_str(),
        );
        first.entry(key).or_insert(&run.summary);
    }
    first
        .into_iter()
        .enumerate()
        .map(|(i, ((data, split), summary))| Group {
            id: i + 1,
            data_hash: data.into(),
            split_hash: split.into(),
            selected_on: summary.selected_on(),
            overlap: runs
                .iter()
                .filter(|r| r.summary.data_hash == data && r.summary.split_hash == split)
                .find_map(|r| r.summary.overlap),
        })
        .collect()
}

fn aggregate(
    runs: &[Run],
    columns: &[String],
    groups: &[Group],
    trials: &BTreeMap<PathBuf, TrialRung>,
) -> Vec<Row> {
    let group_of = |run: &Run| {
        groups
            .iter()
            .find(|g| {
                g.data_hash == run.summary.data_hash && g.split_hash == run.summary.split_hash
            })
            .map_or(0, |g| g.id)
    };
    // The columns are every key that varies (or the --by keys): runs that agree on them agree
    // on everything but the seed (or on what --by asked for) and are aggregated.
    let mut configurations: BTreeMap<(usize, Vec<String>), Vec<&Run>> = BTreeMap::new();
    for run in runs {
        let key = columns
            .iter()
            .map(|c| run.config.get(c).cloned().unwrap_or_default())
            .collect();
        configurations
            .entry((group_of(run), key))
            .or_default()
            .push(run);
    }
    configurations
        .into_iter()
        .map(|((group, _), runs)| row(group, columns, runs, trials))
        .collect()
}

/// The finished runs that count, newest first within a configuration hash (which includes the
/// seed), and the older ones they replace.
fn counted_and_repeats(runs: &[&Run]) -> (Vec<Run>, Vec<PathBuf>) {
    let mut done: Vec<&Run> = runs
        .iter()
        .copied()
        .filter(|r| r.summary.status == Status::Done)
        .collect();
    done.sort_by(|a, b| (&b.summary.started_at, &b.dir).cmp(&(&a.summary.started_at, &a.dir)));
    let mut seen = BTreeSet::new();
    let (mut counted, mut repeats) = (Vec::new(), Vec::new());
    for run in done {
        match seen.insert(run.summary.config_hash.as_str()) {
            true => counted.push(run.clone()),
            false => repeats.push(run.dir.clone()),
        }
    }
    counted.sort_by(|a, b| (a.config.get("seed"), &a.dir).cmp(&(b.config.get("seed"), &b.dir)));
    repeats.sort();
    (counted, repeats)
}

fn row(
    group: usize,
    columns: &[String],
    runs: Vec<&Run>,
    trials: &BTreeMap<PathBuf, TrialRung>,
) -> Row {
    let (counted, repeats) = counted_and_repeats(&runs);
    let search = runs
        .iter()
        .filter_map(|r| trials.get(&r.dir))
        .max_by_key(|t| t.rung)
        .cloned();
    let mut not_done = BTreeMap::<String, usize>::new();
    for run in runs.iter().filter(|r| r.summary.status != Status::Done) {
        // A search's trial paused at its rung was stopped, not interrupted.
        let status = match trials.get(&run.dir).map(|t| t.fate) {
            Some(Fate::Stopped) => "stopped",
            _ => run.summary.status.name(),
        };
        *not_done.entry(status.to_string()).or_default() += 1;
    }
    let stat = |f: fn(&Summary) -> Option<f64>| {
        let values: Vec<f64> = counted.iter().filter_map(|r| f(&r.summary)).collect();
        Stat::of(&values)
    };
    let test = stat(Summary::headline_test_loss);
    let described = counted.first().unwrap_or(runs[0]);
    let configurations: BTreeSet<Vec<(&String, &String)>> = counted
        .iter()
        .map(|r| {
            (r.config.iter())
                .filter(|(k, _)| !NOT_CONFIGURATION.contains(&k.as_str()))
                .collect()
        })
        .collect();
    let params = counted.iter().map(|r| r.summary.params);
    let mean_of = |f: fn(&Summary) -> Option<f64>| stat(f).map(|s| s.mean);
    Row {
        group,
        keys: columns
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    described.config.get(c).cloned().unwrap_or_default(),
                )
            })
            .collect(),
        model_type: described.summary.model_type.clone(),
        params: params.clone().min().unwrap_or(described.summary.params),
        params_max: params.max().unwrap_or(described.summary.params),
        configurations: configurations.len().max(1),
        // A stopped trial's steps are its rung's.
        steps: (counted.iter().map(|r| r.summary.step).max())
            .or(search.as_ref().map(|t| t.rung_steps)),
        runs: counted.iter().map(|r| r.dir.clone()).collect(),
        seeds: counted
            .iter()
            .map(|r| r.config.get("seed").cloned().unwrap_or_default())
            .collect(),
        selection_loss: stat(Summary::selection_loss),
        test_loss: test,
        test_loss_se: match counted.as_slice() {
            [only] => only.summary.test_loss_se,
            _ => None,
        },
        test_loss_last: stat(|s| s.test_loss_last),
        final_train_loss: stat(|s| s.final_train_loss),
        p_vs_top: None,
        tied_with_top: None,
        test_logprob: test.map(|s| -s.mean),
        bits_per_char: test.map(|s| s.mean / std::f64::consts::LN_2),
        tokens_per_s: mean_of(|s| s.tokens_per_s),
        wall_s: mean_of(|s| Some(s.wall_s)),
        status: status_text(
            counted.len(),
            &not_done,
            repeats.len(),
            configurations.len(),
        ),
        not_done,
        repeats,
        search,
    }
}

/// "3 done", then the unfinished runs by status, the repeats and the configurations a `--by` row
/// merged: "2 done; failed 1; 1 repeat; 2 configurations".
fn status_text(
    done: usize,
    not_done: &BTreeMap<String, usize>,
    repeats: usize,
    configurations: usize,
) -> String {
    let mut parts = vec![format!("{done} done")];
    if !not_done.is_empty() {
        let others: Vec<String> = not_done.iter().map(|(s, n)| format!("{s} {n}")).collect();
        parts.push(others.join(", "));
    }
    if repeats > 0 {
        parts.push(format!(
            "{repeats} repeat{}",
            if repeats > 1 { "s" } else { "" }
        ));
    }
    if configurations > 1 {
        parts.push(format!("{configurations} configurations"));
    }
    parts.join("; ")
}

/// "mean±std (n)" over seeds.
fn fmt_stat(stat: Option<Stat>) -> String {
    match stat {
        None => "-".into(),
        Some(Stat { mean, n: 1, .. }) => format!("{mean:.4}"),
        Some(Stat { mean, std, n, .. }) => format!("{mean:.4}±{std:.4} ({n})"),
    }
}

/// The headline test cell: over seeds as `fmt_stat`, or one run's loss ± its standard error.
fn fmt_test(row: &Row) -> String {
    match (row.test_loss, row.test_loss_se) {
        (Some(Stat { mean, n: 1, .. }), Some(se)) => format!("{mean:.4}±{se:.4} se"),
        (stat, _) => fmt_stat(stat),
    }
}

fn fmt_vs_top(row: &Row) -> String {
    match (row.p_vs_top, row.tied_with_top) {
        (Some(p), Some(true)) => format!("tie p={p:.2}"),
        (Some(p), _) if p < 0.001 => "p<0.001".into(),
        (Some(p), _) => format!("p={p:.3}"),
        _ => "-".into(),
    }
}

/// The last part of a dotted key, to keep the terminal table narrow.
fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

const FIGURES: [&str; 13] = [
    "model", "params", "steps", "rung", "rung val", "val", "test", "95% CI", "vs top", "train",
    "wall", "runs", "run",
];

/// A column's title: the key's last part, or the whole key where that would be ambiguous.
fn title(report: &Report, key: &str) -> String {
    let name = short(key);
    let clashes =
        FIGURES.contains(&name) || report.columns.iter().filter(|c| short(c) == name).count() > 1;
    if clashes {
        key.to_string()
    } else {
        name.to_string()
    }
}

/// Cells of the rows, for the table and markdown formats; columns empty in every row are left out.
fn cells(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let (header, rows) = all_cells(report);
    let keep: Vec<bool> = (0..header.len())
        .map(|i| rows.iter().any(|r| r[i] != "-"))
        .collect();
    let pick = |cells: Vec<String>| -> Vec<String> {
        cells
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c)
            .collect()
    };
    (pick(header), rows.into_iter().map(pick).collect())
}

fn all_cells(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    // The model column says the type.
    let columns: Vec<&String> = report
        .columns
        .iter()
        .filter(|c| c.as_str() != "model.type")
        .collect();
    let mut header: Vec<String> = columns.iter().map(|c| title(report, c)).collect();
    header.extend(FIGURES.map(String::from));
    let rows = report
        .rows
        .iter()
        .map(|row| {
            let kind = ModelType::from_name(&row.model_type).ok();
            let mut cells: Vec<String> = columns
                .iter()
                .map(|c| match kind.is_none_or(|k| k.uses(c)) {
                    true => row.keys.get(*c).cloned().unwrap_or_default(),
                    false => "-".into(),
                })
                .collect();
            let on_val = report
                .groups
                .iter()
                .any(|g| g.id == row.group && g.selected_on == SplitName::Val);
            cells.extend([
                row.model_type.clone(),
                match row.params == row.params_max {
                    true => row.params.to_string(),
                    false => format!("{}-{}", row.params, row.params_max),
                },
                row.steps.map_or("-".into(), |s| s.to_string()),
                row.search
                    .as_ref()
                    .map_or("-".into(), |t| format!("{} {}", t.rung, t.fate.name())),
                (row.search.as_ref().and_then(|t| t.rung_loss))
                    .map_or("-".into(), |loss| format!("{loss:.4}")),
                if on_val {
                    fmt_stat(row.selection_loss)
                } else {
                    "-".into()
                },
                fmt_test(row),
                (row.selection_loss.and_then(|s| s.ci95))
                    .filter(|_| row.configurations == 1)
                    .map_or("-".into(), |ci| format!("±{ci:.4}")),
                fmt_vs_top(row),
                fmt_stat(row.final_train_loss.map(|s| Stat { n: 1, ..s })),
                row.wall_s
                    .map_or("-".into(), crate::progress::format_duration),
                row.status.clone(),
                which_runs(&row.runs),
            ]);
            cells
        })
        .collect();
    (header, rows)
}

/// Which runs a row rests on, short: the first's last two path parts (`grid/83e5b2c74932`,
/// `mlp/20261203-190429-3e280f`), and how many more.
fn which_runs(runs: &[PathBuf]) -> String {
    let Some(first) = runs.first() else {
        return "-".into();
    };
    let parts: Vec<String> = first
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let short: Vec<&str> = parts.iter().rev().map(String::as_str).collect();
    match runs.len() {
        1 => short.join("/"),
        n => format!("{} +{}", short.join("/"), n - 1),
    }
}

fn group_title(report: &Report, group: &Group) -> String {
    let apart = if report.groups.len() > 1 {
        ": not comparable with the other groups"
    } else {
        ""
    };
    let short_hash = |h: &str| h.chars().take(12).collect::<String>();
    format!(
        "group {} (data {}, split {}){apart}",
        group.id,
        short_hash(&group.data_hash),
        short_hash(&group.split_hash)
    )
}

/// What the figures mean, and each group's caveats: selection on test, held-out items in train.
fn legend(report: &Report) -> String {
    let mut out = String::from(
        "losses in nats per character, lower is better, over every item of a split; only finished runs \
         are averaged, a configuration and seed once (the newest)\n\
         val: at each run's selected checkpoint (the best by val), what rows are ranked by; test: that \
         checkpoint's test loss, evaluated once; train: the last model's; mean±std (runs) over seeds, \
         one run ± the standard error over the test items (se)\n\
         95% CI: half-width of the 95% confidence interval of the ranked figure's mean (Student t); \
         vs top: Welch's t-test against the group's first row, tie when p ≥ 0.05\n",
    );
    if report.rows.iter().any(|r| r.configurations > 1) {
        out.push_str(
            "N configurations (runs): the row merges runs that differ in more than its keys (--by): \
             its mean±std spreads over those configurations, not over seeds of one, and params \
             gives their range\n",
        );
    }
    for group in &report.groups {
        if group.selected_on == SplitName::Test {
            out.push_str(&format!(
                "group {}: selected on test (no validation split, or runs from before selection on val): \
                 its test figures chose the checkpoints and are not held out; set dataset.val_fraction\n",
                group.id
            ));
        }
        if let Some(warning) = group.overlap.and_then(|o| o.warning()) {
            out.push_str(&format!("group {}: {warning}\n", group.id));
        }
    }
    if !report.searches.is_empty() {
        out.push_str(
            "rung: the last rung of a successive-halving search that a trial reached (promoted from \
             each one before) and what became of it there (stopped: not promoted, its run paused at \
             the rung's steps); rung val: its best validation estimate up to those steps, what the \
             search ranked by\n",
        );
    }
    for search in &report.searches {
        out.push_str(&search.describe());
    }
    out
}

pub fn table(report: &Report, colour: bool) -> String {
    if report.rows.is_empty() && report.damaged.is_empty() {
        return "no runs found (a run directory holds summary.json and config.toml)\n".into();
    }
    let (header, rows) = cells(report);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Two spaces between columns, one where two would not fit a 100-column terminal.
    let gap = match widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1) {
        0..=100 => "  ",
        _ => " ",
    };
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join(gap).trim_end().to_string()
    };
    let mut out = String::new();
    for group in &report.groups {
        out.push_str(&group_title(report, group));
        out.push('\n');
        out.push_str(&line(&header));
        out.push('\n');
        let mut first = true;
        for (row, cells) in report
            .rows
            .iter()
            .zip(&rows)
            .filter(|(r, _)| r.group == group.id)
        {
            let text = line(cells);
            // The top row of each group, in bold green on a colour terminal.
            if colour && first && row.selection_loss.is_some() {
                out.push_str(&format!("\x1b[1;32m{text}\x1b[0m\n"));
            } else {
                out.push_str(&text);
                out.push('\n');
            }
            first = false;
        }
        out.push('\n');
    }
    out.push_str(&legend(report));
    damaged_lines(report, &mut out);
    out
}

pub fn markdown(report: &Report) -> String {
    let (header, rows) = cells(report);
    let mut out = String::new();
    for group in &report.groups {
        out.push_str(&format!("**{}**\n\n", group_title(report, group)));
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
        for (_, cells) in report
            .rows
            .iter()
            .zip(&rows)
            .filter(|(r, _)| r.group == group.id)
        {
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push('\n');
    }
    out.push_str(&legend(report));
    damaged_lines(report, &mut out);
    out
}

fn damaged_lines(report: &Report, out: &mut String) {
    for damaged in &report.damaged {
        out.push_str(&format!(
            "damaged: {}: {}\n",
            damaged.dir.display(),
            damaged.problem
        ));
    }
}

const CSV_FIGURES: [&str; 36] = [
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
        writer.write_record(&record).map_err(io)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::Failed(anyhow::anyhow!("{e}")))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields"))
}

fn csv_figures(report: &Report, row: &Row) -> Vec<String> {
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
