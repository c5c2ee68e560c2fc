//! The report as text: a table for the terminal (tied rows marked in colour), Markdown and CSV.
//! (JSON is serde's of `Report`.)

use std::path::PathBuf;

use crate::config::ModelType;
use crate::data::SplitName;
use crate::error::{Error, Result};
use crate::rundir::Status;
use crate::stats::Stat;

use super::{Fate, Group, Report, Row};

/// "mean±std (n)" over seeds.
pub(super) fn fmt_stat(stat: Option<Stat>) -> String {
    match stat {
        None => "-".into(),
        Some(Stat { mean, n: 1, .. }) => format!("{mean:.4}"),
        Some(Stat { mean, std, n, .. }) => format!("{mean:.4}±{std:.4} ({n})"),
    }
}

/// The headline test cell: over seeds as `fmt_stat`, or one run's loss ± its standard error.
pub(super) fn fmt_test(row: &Row) -> String {
    match (row.test_loss, row.test_loss_se) {
        (Some(Stat { mean, n: 1, .. }), Some(se)) => format!("{mean:.4}±{se:.4} se"),
        (stat, _) => fmt_stat(stat),
    }
}

pub(super) fn fmt_vs_top(row: &Row) -> String {
    match (row.p_vs_top, row.tied_with_top) {
        (Some(p), Some(true)) => format!("tie p={p:.2}"),
        (Some(p), _) if p < 0.001 => "p<0.001".into(),
        (Some(p), _) => format!("p={p:.3}"),
        _ => "-".into(),
    }
}

/// The last part of a dotted key, to keep the terminal table narrow.
pub(super) fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

pub(super) const FIGURES: [&str; 13] = [
    "model", "params", "steps", "rung", "rung val", "val", "test", "95% CI", "vs top", "train",
    "wall", "runs", "run",
];

/// A column's title: the key's last part, or the whole key where that would be ambiguous.
pub(super) fn title(report: &Report, key: &str) -> String {
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
pub(super) fn cells(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
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

pub(super) fn all_cells(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
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
pub(super) fn which_runs(runs: &[PathBuf]) -> String {
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

pub(super) fn group_title(report: &Report, group: &Group) -> String {
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
pub(super) fn legend(report: &Report) -> String {
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

pub(super) fn damaged_lines(report: &Report, out: &mut String) {
    for damaged in &report.damaged {
        out.push_str(&format!(
            "damaged: {}: {}\n",
            damaged.dir.display(),
            damaged.problem
        ));
    }
}

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
