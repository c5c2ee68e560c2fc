//! `makemore report`: one row per configuration, seeds aggregated, ranked by test loss, and
//! runs on different data or splits never ranked together without saying so.

mod plot;

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::rundir::{self, Status, Summary};

/// Keys that never tell configurations apart: `seed` is what gets aggregated, the rest name
/// things (the data itself is identified by its hash).
const NOT_CONFIGURATION: [&str; 4] = ["seed", "name", "dataset.path", "dataset.test_path"];

#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub format: Format,
    pub by: Vec<String>,
    pub filters: Vec<(String, String)>,
    pub top: Option<usize>,
    pub plot: Option<PathBuf>,
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
    /// (step, test loss) of each evaluation, the final one included.
    curve: Vec<(usize, f64)>,
}

/// Mean, sample standard deviation and count of one figure over a configuration's runs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Stat {
    fn of(values: impl Iterator<Item = Option<f64>>) -> Option<Stat> {
        let values: Vec<f64> = values.flatten().collect();
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stat {
            mean,
            std: var.sqrt(),
            n,
        })
    }
}

/// One configuration: the runs that agree on everything but the seed (or on the `--by` keys).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Runs with the same data and split share a group; only rows of one group are comparable.
    pub group: usize,
    pub keys: BTreeMap<String, String>,
    pub model_type: String,
    pub params: usize,
    pub steps: usize,
    pub runs: Vec<PathBuf>,
    pub seeds: Vec<String>,
    pub best_test_loss: Option<Stat>,
    pub final_test_loss: Option<Stat>,
    pub final_val_loss: Option<Stat>,
    pub final_train_loss: Option<Stat>,
    /// makemore.py's "test logprob": minus the mean best test loss.
    pub test_logprob: Option<f64>,
    pub bits_per_char: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub wall_s: f64,
    /// "done", or the count of each status when they differ ("done 2, failed 1").
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: usize,
    pub data_hash: String,
    pub split_hash: String,
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
    pub damaged: Vec<Damaged>,
}

pub fn report_command(dirs: &[PathBuf], request: &ReportRequest) -> Result<()> {
    let report = build(dirs, request)?;
    let text = match request.format {
        Format::Table => table(&report, std::io::stdout().is_terminal()),
        Format::Md => markdown(&report),
        Format::Csv => csv(&report)?,
        Format::Json => serde_json::to_string_pretty(&report).expect("a report serialises") + "\n",
    };
    print!("{text}");
    if let Some(path) = &request.plot {
        let curves = curves(dirs, request)?;
        plot::draw(path, &report, &curves)
            .map_err(|e| Error::Failed(anyhow::anyhow!("{}: {e}", path.display())))?;
        eprintln!("plot: {}", path.display());
    }
    Ok(())
}

/// Reads every run below `dirs` and builds the ranked rows.
pub fn build(dirs: &[PathBuf], request: &ReportRequest) -> Result<Report> {
    let (runs, damaged) = read_runs(dirs, request)?;
    let groups = groups(&runs);
    let columns = if request.by.is_empty() {
        varying_keys(&runs, &groups)
    } else {
        request.by.clone()
    };
    let mut rows: Vec<Row> = aggregate(&runs, &columns, &groups);
    rows.sort_by(|a, b| {
        let loss = |r: &Row| r.best_test_loss.map_or(f64::INFINITY, |s| s.mean);
        (a.group, loss(a))
            .partial_cmp(&(b.group, loss(b)))
            .expect("losses are not NaN")
    });
    if let Some(top) = request.top {
        let mut kept = BTreeMap::<usize, usize>::new();
        rows.retain(|r| {
            let n = kept.entry(r.group).or_default();
            *n += 1;
            *n <= top
        });
    }
    Ok(Report {
        columns,
        groups,
        rows,
        damaged,
    })
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
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    children.sort();
    for child in children {
        find_runs(&child, found);
    }
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
    let curve = read_curve(dir).map_err(|e| format!("metrics.csv: {e}"))?;
    Ok(Run {
        dir: dir.to_path_buf(),
        summary,
        config,
        curve,
    })
}

fn read_curve(dir: &Path) -> std::result::Result<Vec<(usize, f64)>, String> {
    let mut reader = csv::Reader::from_path(dir.join("metrics.csv")).map_err(|e| e.to_string())?;
    let mut curve = Vec::new();
    for record in reader.records() {
        // A run killed mid-line leaves a partial last line: keep what is whole.
        let Ok(record) = record else { break };
        let parsed = (record.get(0).map(str::parse), record.get(2).map(str::parse));
        if let (Some("test"), (Some(Ok(step)), Some(Ok(loss)))) = (record.get(1), parsed) {
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
    let pairs: BTreeSet<(&str, &str)> = runs
        .iter()
        .map(|r| (r.summary.data_hash.as_str(), r.summary.split_hash.as_str()))
        .collect();
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, (data, split))| Group {
            id: i + 1,
            data_hash: data.into(),
            split_hash: split.into(),
        })
        .collect()
}

fn aggregate(runs: &[Run], columns: &[String], groups: &[Group]) -> Vec<Row> {
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
        .map(|((group, _), mut runs)| {
            runs.sort_by(|a, b| {
                (a.config.get("seed"), &a.dir).cmp(&(b.config.get("seed"), &b.dir))
            });
            let first = &runs[0].summary;
            let stat =
                |f: fn(&Summary) -> Option<f64>| Stat::of(runs.iter().map(|r| f(&r.summary)));
            let best = stat(|s| s.best_test_loss);
            let mut statuses = BTreeMap::<&str, usize>::new();
            for run in &runs {
                *statuses.entry(status_name(run.summary.status)).or_default() += 1;
            }
            let status = match statuses.len() {
                1 => statuses.keys().next().expect("one").to_string(),
                _ => statuses
                    .iter()
                    .map(|(s, n)| format!("{s} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            Row {
                group,
                keys: columns
                    .iter()
                    .map(|c| {
                        (
                            c.clone(),
                            runs[0].config.get(c).cloned().unwrap_or_default(),
                        )
                    })
                    .collect(),
                model_type: first.model_type.clone(),
                params: first.params,
                steps: runs.iter().map(|r| r.summary.step).max().unwrap_or(0),
                runs: runs.iter().map(|r| r.dir.clone()).collect(),
                seeds: runs
                    .iter()
                    .map(|r| r.config.get("seed").cloned().unwrap_or_default())
                    .collect(),
                best_test_loss: best,
                final_test_loss: stat(|s| s.final_test_loss),
                final_val_loss: stat(|s| s.final_val_loss),
                final_train_loss: stat(|s| s.final_train_loss),
                test_logprob: best.map(|s| -s.mean),
                bits_per_char: best.map(|s| s.mean / std::f64::consts::LN_2),
                tokens_per_s: stat(|s| s.tokens_per_s).map(|s| s.mean),
                wall_s: runs.iter().map(|r| r.summary.wall_s).sum::<f64>() / runs.len() as f64,
                status,
            }
        })
        .collect()
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Running => "running",
        Status::Done => "done",
        Status::Failed => "failed",
        Status::Interrupted => "interrupted",
    }
}

/// The test-loss curves of each row's runs, for the plot: per row, the runs' (step, loss) lists.
fn curves(
    dirs: &[PathBuf],
    request: &ReportRequest,
) -> Result<BTreeMap<PathBuf, Vec<(usize, f64)>>> {
    let (runs, _) = read_runs(dirs, request)?;
    Ok(runs.into_iter().map(|r| (r.dir, r.curve)).collect())
}

fn fmt_stat(stat: Option<Stat>) -> String {
    match stat {
        None => "-".into(),
        Some(Stat { mean, n: 1, .. }) => format!("{mean:.4}"),
        Some(Stat { mean, std, n }) => format!("{mean:.4}±{std:.4} ({n})"),
    }
}

/// The last part of a dotted key, to keep the terminal table narrow.
fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

const FIGURES: [&str; 10] = [
    "model",
    "params",
    "steps",
    "test (best)",
    "test",
    "val",
    "train",
    "tok/s",
    "wall",
    "status",
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
    let mut header: Vec<String> = report.columns.iter().map(|c| title(report, c)).collect();
    header.extend(FIGURES.map(String::from));
    let rows = report
        .rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> = report
                .columns
                .iter()
                .map(|c| row.keys.get(c).cloned().unwrap_or_default())
                .collect();
            cells.extend([
                row.model_type.clone(),
                row.params.to_string(),
                row.steps.to_string(),
                fmt_stat(row.best_test_loss),
                fmt_stat(row.final_test_loss.map(|s| Stat { n: 1, ..s })),
                fmt_stat(row.final_val_loss.map(|s| Stat { n: 1, ..s })),
                fmt_stat(row.final_train_loss.map(|s| Stat { n: 1, ..s })),
                row.tokens_per_s
                    .map_or("-".into(), |t| format!("{:.0}k", t / 1e3)),
                crate::progress::format_duration(row.wall_s),
                row.status.clone(),
            ]);
            cells
        })
        .collect();
    (header, rows)
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

pub fn table(report: &Report, colour: bool) -> String {
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
            // The best row of each group, in bold green on a colour terminal.
            if colour && first && row.best_test_loss.is_some() {
                out.push_str(&format!("\x1b[1;32m{text}\x1b[0m\n"));
            } else {
                out.push_str(&text);
                out.push('\n');
            }
            first = false;
        }
        out.push('\n');
    }
    out.push_str(
        "loss: nats per character, lower is better; test (best) is mean±std (runs) over seeds\n",
    );
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

/// One line per configuration; the columns are documented in the README.
pub fn csv(report: &Report) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec!["group".into()];
    header.extend(report.columns.iter().cloned());
    header.extend(
        [
            "model_type",
            "params",
            "steps",
            "runs",
            "best_test_loss_mean",
            "best_test_loss_std",
            "final_test_loss_mean",
            "final_test_loss_std",
            "final_val_loss_mean",
            "final_train_loss_mean",
            "test_logprob",
            "bits_per_char",
            "tokens_per_s",
            "wall_s",
            "status",
        ]
        .map(String::from),
    );
    let io = |e: csv::Error| Error::Failed(e.into());
    writer.write_record(&header).map_err(io)?;
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for row in &report.rows {
        let mut record = vec![row.group.to_string()];
        record.extend(
            report
                .columns
                .iter()
                .map(|c| row.keys.get(c).cloned().unwrap_or_default()),
        );
        record.extend([
            row.model_type.clone(),
            row.params.to_string(),
            row.steps.to_string(),
            row.runs.len().to_string(),
            num(row.best_test_loss.map(|s| s.mean)),
            num(row.best_test_loss.map(|s| s.std)),
            num(row.final_test_loss.map(|s| s.mean)),
            num(row.final_test_loss.map(|s| s.std)),
            num(row.final_val_loss.map(|s| s.mean)),
            num(row.final_train_loss.map(|s| s.mean)),
            num(row.test_logprob),
            num(row.bits_per_char),
            num(row.tokens_per_s),
            row.wall_s.to_string(),
            row.status.clone(),
        ]);
        writer.write_record(&record).map_err(io)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::Failed(anyhow::anyhow!("{e}")))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields"))
}
