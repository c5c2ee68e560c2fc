//! The report as text: a table for the terminal (tied rows marked in colour) and Markdown.
//! (CSV is `csv_text.rs`'s; JSON is serde's of `Report`.)

use std::path::PathBuf;

use crate::config::ModelType;
use crate::data::SplitName;
use crate::stats::Stat;

use super::{Generated, Group, PLAUSIBLE_GAP, Report, Row};

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

/// An ensemble's val and test (± its standard error, and how many members).
fn ensemble_cells(row: &Row) -> [String; 2] {
    let Some(e) = row.ensemble else {
        return ["-".into(), "-".into()];
    };
    let val = e.val_loss.map_or("-".into(), |v| format!("{v:.4}"));
    let se = e
        .test_loss_se
        .map_or(String::new(), |se| format!("±{se:.4} se"));
    [val, format!("{:.4}{se} ({})", e.test_loss, e.members)]
}

/// A generation figure over seeds as `fmt_stat` (to `decimals`, times `scale`), or one run's
/// ± its standard error.
fn fmt_generated(generated: Option<&Generated>, name: &str, scale: f64, decimals: usize) -> String {
    let Some(g) = generated else {
        return "-".into();
    };
    let Some(stat) = g.figures.get(name) else {
        return "-".into();
    };
    let (mean, std) = (stat.mean * scale, stat.std * scale);
    match (stat.n, g.se.get(name)) {
        (1, Some(se)) => format!("{mean:.decimals$}±{:.decimals$} se", se * scale),
        (1, None) => format!("{mean:.decimals$}"),
        (n, _) => format!("{mean:.decimals$}±{std:.decimals$} ({n})"),
    }
}

/// The generation cells of a row: new, copied, held-out hits per 1,000, distinct, judge gap,
/// length TV, and the frontier's best temperature.
fn generation_cells(row: &Row) -> [String; 7] {
    let g = row.generation.as_ref();
    [
        fmt_generated(g, "new", 1.0, 3),
        fmt_generated(g, "copied", 1.0, 3),
        fmt_generated(g, "held_out", 1000.0, 1),
        fmt_generated(g, "distinct", 1.0, 3),
        fmt_generated(g, "judge_gap", 1.0, 3),
        fmt_generated(g, "length_tv", 1.0, 3),
        row.best_temperature.map_or("-".into(), |t| t.to_string()),
    ]
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

pub(super) const FIGURES: [&str; 22] = [
    "model",
    "params",
    "steps",
    "rung",
    "rung val",
    "val",
    "test",
    "95% CI",
    "vs top",
    "train",
    "ensemble val",
    "ensemble test",
    "new",
    "copied",
    "hits/1k",
    "distinct",
    "gap",
    "len TV",
    "best T",
    "wall",
    "runs",
    "run",
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
                (row.ranked.and_then(|s| s.ci95))
                    .filter(|_| row.configurations == 1)
                    .map_or("-".into(), |ci| format!("±{ci:.4}")),
                fmt_vs_top(row),
                fmt_stat(row.final_train_loss.map(|s| Stat { n: 1, ..s })),
            ]);
            cells.extend(ensemble_cells(row));
            cells.extend(generation_cells(row));
            cells.extend([
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
         val: at each run's selected checkpoint (the best by val); test: that checkpoint's test \
         loss, evaluated once; train: the last model's; mean±std (runs) over seeds, one run ± the \
         standard error over the test items (se)\n",
    );
    out.push_str(&format!(
        "ranked by {}; 95% CI: half-width of the 95% confidence interval of the ranked figure's \
         mean (Student t); vs top: Welch's t-test of it against the group's first row, tie when \
         p ≥ 0.05\n",
        report.rank_by.describe()
    ));
    if report.rows.iter().any(|r| r.generation.is_some()) {
        out.push_str(&generation_legend(report));
    }
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

/// One line per generation figure.
fn generation_legend(report: &Report) -> String {
    let mut out = String::from(
        "samples drawn from the selected checkpoint at sampling.temperature (generation.count of \
         them, a fixed stream), one run ± its standard error (se: binomial for shares, over \
         items for the judge):\n\
         new: share of samples that are no item of the data file; copied: share equal to a \
         training item; hits/1k: per 1,000 samples, those equal to a val or test item not in \
         train (real items never seen); distinct: share of distinct samples\n\
         gap: nats per character of the new samples minus of the test items, both under an \
         independent judge (an interpolated Kneser-Ney character n-gram of generation.judge_order, \
         fitted on train): near 0 is as plausible as real held-out items, above is less\n\
         len TV: total variation distance between the samples' lengths and the test items'\n",
    );
    if report.rows.iter().any(|r| r.best_temperature.is_some()) {
        out.push_str(&format!(
            "best T: of generation.temperatures, the one with the most new samples among those whose \
             gap is at most {PLAUSIBLE_GAP} nats per character (mean over seeds)\n"
        ));
    }
    if report.rows.iter().any(|r| r.ensemble.is_some()) {
        out.push_str(
            "ensemble val, test: the row's runs as one model (their selected checkpoints, each \
             next-character distribution the mean of theirs), over every item, test ± its \
             standard error over the test items (se), (members)\n",
        );
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
            if colour && first && row.ranked.is_some() {
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
