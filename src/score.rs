//! `makemore score`: how likely the model finds each item ("how name-like is this?").

use std::path::PathBuf;

use crate::data;
use crate::error::{Error, Result};
use crate::models::{Mode, token_nll};
use crate::trained::{Trained, Which};

/// The log-probability of each item (its characters and its end), total and per character.
pub fn scores(trained: &Trained, items: &[String]) -> Result<Vec<(f64, f64)>> {
    let data = &trained.data;
    let encoded = items
        .iter()
        .map(|item| match unscorable(trained, item) {
            Some(why) => Err(Error::input(format!("{item:?}: {why}"))),
            None => Ok(data.vocab.encode(item).expect("checked: in the vocabulary")),
        })
        .collect::<Result<Vec<_>>>()?;
    let device = Default::default();
    let mut scores = Vec::with_capacity(items.len());
    for chunk in encoded.chunks(256) {
        let rows: Vec<&[usize]> = chunk.iter().map(Vec::as_slice).collect();
        let (x, y) = data::batch::<burn::backend::Flex>(&rows, data.seq_len, &device);
        let (nll, counted) = token_nll(trained.model.forward(x, Mode::Eval), y);
        let (nll, counted): (Vec<f32>, Vec<f32>) = (
            nll.sum_dim(1).into_data().to_vec().expect("f32"),
            counted.sum_dim(1).into_data().to_vec().expect("f32"),
        );
        scores.extend(
            nll.iter()
                .zip(&counted)
                .map(|(&n, &c)| (-n as f64, -n as f64 / c as f64)),
        );
    }
    Ok(scores)
}

/// What `makemore score` was asked for.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    /// The run directory (or an experiment's directory of runs: its newest).
    pub run: PathBuf,
    /// Items to score; read from standard input, one per line, when none are given.
    pub items: Vec<String>,
    pub checkpoint: Which,
    /// Leave out the lines the model cannot score (characters outside its vocabulary, longer
    /// than its items, blank) instead of printing them without figures and exiting with 2.
    pub skip_unknown: bool,
}

/// One line of input: the item as the model's data would hold it, and its log-probability
/// (total, per character), or why it has none.
pub struct Line {
    pub item: String,
    pub score: std::result::Result<(f64, f64), String>,
}

/// What `score` found: a line per input line (but those `--skip-unknown` leaves out), and a note
/// when the model is not a finished run's.
pub struct Scored {
    pub lines: Vec<Line>,
    pub skipped: usize,
    pub partial: Option<String>,
}

/// Each item of the request (or each line of standard input) with its log-probability, total
/// and per character, cleaned as the run's data was (`dataset.lowercase`, `normalize`).
pub fn score(request: &ScoreRequest) -> Result<Scored> {
    let trained = Trained::open(&request.run, request.checkpoint)?;
    let raw = match request.items.is_empty() {
        true => read_lines(std::io::stdin().lock())?,
        false => request.items.clone(),
    };
    let items: Vec<String> = raw
        .iter()
        .map(|line| data::clean(&trained.experiment.dataset, line))
        .collect();
    let why: Vec<Option<String>> = items.iter().map(|i| unscorable(&trained, i)).collect();
    let scorable: Vec<String> = (items.iter().zip(&why))
        .filter(|(_, why)| why.is_none())
        .map(|(item, _)| item.clone())
        .collect();
    let mut found = scores(&trained, &scorable)?.into_iter();
    let mut lines = Vec::with_capacity(items.len());
    let mut skipped = 0;
    for (item, why) in items.into_iter().zip(why) {
        let score = match why {
            None => Ok(found.next().expect("a score for each scorable item")),
            Some(why) => Err(why),
        };
        if request.skip_unknown && score.is_err() {
            skipped += 1;
            continue;
        }
        lines.push(Line { item, score });
    }
    Ok(Scored {
        lines,
        skipped,
        partial: trained.partial,
    })
}

/// Why the model cannot score `item`, if it cannot.
fn unscorable(trained: &Trained, item: &str) -> Option<String> {
    let data = &trained.data;
    if item.is_empty() {
        return Some("a blank line is no item".into());
    }
    let unknown = data.vocab.unknown(item);
    if !unknown.is_empty() {
        return Some(format!(
            "{unknown:?}: characters outside the model's vocabulary"
        ));
    }
    let length = item.chars().count();
    (length + 1 > data.seq_len).then(|| {
        format!(
            "{length} characters, longer than the model's {}",
            data.seq_len - 1
        )
    })
}

/// Standard input's lines, blank ones too (so that output lines match input lines), each
/// checked to be UTF-8.
fn read_lines(mut input: impl std::io::Read) -> Result<Vec<String>> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| Error::input(format!("standard input: cannot read: {e}")))?;
    let lines = data::utf8_lines(&bytes, "standard input")?;
    Ok(lines.into_iter().map(str::to_string).collect())
}
