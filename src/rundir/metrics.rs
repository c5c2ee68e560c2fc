//! metrics.csv: a row per figure a run logs (every 10th training batch, each evaluation, the last
//! model over every item). Its one format and its one reading rule, for every command.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// A row of metrics.csv, in its columns' order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub step: usize,
    /// `train`, `val` or `test`.
    pub split: String,
    pub loss: f64,
    pub lr: f64,
    pub elapsed_s: f64,
    pub tokens_per_s: f64,
}

/// What a row of metrics.csv is, for its TensorBoard tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A training batch's loss, with the learning rate and the speed.
    Batch,
    /// A periodic estimate on a split (makemore.py's `Loss/train`, `Loss/test`).
    Estimate,
    /// The last model over every item of a split.
    Final,
}

pub const FILE: &str = "metrics.csv";

/// The rows of `run`'s metrics.csv, in order; none before the file exists (a run directory
/// appears with its config and summary, the file right after). A row that does not read is an
/// error naming its line, except the last line when a kill cut it short (no newline at its
/// end): it is left out.
pub fn read(run: &Path) -> anyhow::Result<Vec<MetricRow>> {
    let path = run.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        read => read.with_context(|| format!("cannot read {}", path.display()))?,
    };
    let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    let mut rows = Vec::new();
    for (i, row) in csv::Reader::from_reader(whole.as_bytes())
        .deserialize()
        .enumerate()
    {
        // Line 1 is the header.
        rows.push(row.with_context(|| format!("{}: line {}", path.display(), i + 2))?);
    }
    Ok(rows)
}

/// The lowest estimate of `split` at or before `steps`: the first row of that split at each
/// step (a finished run's final rows, over every item, come after the last estimate's).
pub fn best_estimate(rows: &[MetricRow], split: &str, steps: usize) -> Option<f64> {
    let mut best: Option<f64> = None;
    let mut last_step = None;
    for row in rows.iter().filter(|r| r.split == split && r.step <= steps) {
        if last_step != Some(row.step) {
            last_step = Some(row.step);
            best = Some(best.map_or(row.loss, |b| b.min(row.loss)));
        }
    }
    best
}

/// The lowest estimate a run's selection could choose at or before `steps`: of `split`, its
/// trained weights, or of `<split>_ema`, their average (`schedule.ema_decay`).
pub fn best_selectable(rows: &[MetricRow], split: &str, steps: usize) -> Option<f64> {
    let average = best_estimate(rows, &format!("{split}_ema"), steps);
    let trained = best_estimate(rows, split, steps);
    match (trained, average) {
        (Some(t), Some(a)) => Some(t.min(a)),
        (t, a) => t.or(a),
    }
}

/// The header: `MetricRow`'s fields (a test holds them together), written before the first row
/// whether the file is started empty or written whole.
pub const HEADER: [&str; 6] = ["step", "split", "loss", "lr", "elapsed_s", "tokens_per_s"];

/// `rows` as a whole metrics.csv (its header first).
pub fn to_csv(rows: &[MetricRow]) -> anyhow::Result<Vec<u8>> {
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    out.write_record(HEADER)?;
    for row in rows {
        out.serialize(row)?;
    }
    out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: usize, split: &str, loss: f64) -> MetricRow {
        MetricRow {
            step,
            split: split.into(),
            loss,
            lr: 0.0,
            elapsed_s: 0.0,
            tokens_per_s: 0.0,
        }
    }

    /// The final row at the last step (over every item) is not an estimate.
    #[test]
    fn the_best_estimate_takes_the_first_row_of_a_step() {
        let rows = [
            row(0, "val", 3.0),
            row(10, "train", 1.0),
            row(10, "val", 2.5),
            row(20, "val", 2.6),
            row(20, "val", 2.0),
        ];
        assert_eq!(best_estimate(&rows, "val", 20), Some(2.5));
        assert_eq!(best_estimate(&rows, "val", 5), Some(3.0));
        assert_eq!(best_estimate(&rows, "test", 20), None);
    }

    /// The header names the fields serde reads rows by.
    #[test]
    fn the_header_is_the_rows_fields() {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.serialize(row(0, "val", 3.0)).unwrap();
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next(), Some(HEADER.join(",").as_str()));
        let whole = String::from_utf8(to_csv(&[row(0, "val", 3.0)]).unwrap()).unwrap();
        assert_eq!(whole, text);
    }

    #[test]
    fn a_torn_last_line_is_left_out_and_a_bad_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let header = HEADER.join(",");
        std::fs::write(
            dir.path().join(FILE),
            format!("{header}\n0,val,3,0,0,0\n1,va"),
        )
        .unwrap();
        assert_eq!(read(dir.path()).unwrap(), [row(0, "val", 3.0)]);
        std::fs::write(dir.path().join(FILE), format!("{header}\n0,val,x,0,0,0\n")).unwrap();
        let error = format!("{:#}", read(dir.path()).unwrap_err());
        assert!(error.contains("metrics.csv: line 2"), "{error}");
    }
}
