//! `makemore score`: how likely the model finds each item ("how name-like is this?").

use std::path::PathBuf;

use crate::data::{self, SplitName};
use crate::error::{Error, Result};
use crate::models::{ensemble, token_nll};
use crate::stats;
use crate::trained::{Trained, Which};

/// The log-probability of each item (its characters and its end), total and per character.
pub fn scores(trained: &Trained, items: &[String]) -> Result<Vec<(f64, f64)>> {
    Ok(character_scores(trained, items)?
        .iter()
        .map(|positions| total_and_mean(positions))
        .collect())
}

/// The log-probability of each character of each item, its end last: what the model (or the
/// ensemble, the mean of its members' distributions at each position) gives it after the
/// characters before it.
pub fn character_scores(trained: &Trained, items: &[String]) -> Result<Vec<Vec<f64>>> {
    let data = &trained.data;
    let encoded = items
        .iter()
        .map(|item| match unscorable(trained, item) {
            Some(why) => Err(Error::input(format!("{item:?}: {why}"))),
            None => Ok(data.vocab.encode(item).expect("checked: in the vocabulary")),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(token_scores(trained, &encoded))
}

/// An item's log-probability, total and per character, from its characters'.
fn total_and_mean(positions: &[f64]) -> (f64, f64) {
    let total: f64 = positions.iter().sum();
    (total, total / positions.len() as f64)
}

/// `character_scores` of items already encoded, each short enough for the model.
fn token_scores(trained: &Trained, encoded: &[Vec<usize>]) -> Vec<Vec<f64>> {
    let data = &trained.data;
    let device = Default::default();
    let mut scores = Vec::with_capacity(encoded.len());
    for chunk in encoded.chunks(256) {
        let rows: Vec<&[usize]> = chunk.iter().map(Vec::as_slice).collect();
        let (x, y) = data::batch::<burn::backend::Flex>(&rows, data.seq_len, &device);
        let logits = ensemble::forward(&trained.members, x);
        let (nll, _) = token_nll(logits, y);
        let nll: Vec<f32> = nll.into_data().to_vec().expect("f32");
        // Row i's positions are its characters and its end; the rest is padding.
        let per_row = nll.len() / chunk.len();
        for (item, row) in chunk.iter().zip(nll.chunks(per_row)) {
            scores.push(row[..item.len() + 1].iter().map(|&n| -n as f64).collect());
        }
    }
    scores
}

/// A split's loss over every item (nats per character), with its standard error over the items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitLoss {
    pub split: SplitName,
    pub items: usize,
    pub loss: f64,
    pub se: Option<f64>,
}

/// The model's (or ensemble's) loss over every item of `split` of the data it was trained on:
/// the figure a run's summary gives, for any model `score` opens.
pub fn split_loss(trained: &Trained, split: SplitName) -> Result<SplitLoss> {
    let tokens = &trained.data.split(split).tokens;
    if tokens.is_empty() {
        return Err(Error::input(format!(
            "the {} split of {} is empty",
            split.name(),
            trained.experiment.dataset.path.display()
        )));
    }
    // Each item's summed loss and its characters, its end counted.
    let items: Vec<(f64, f64)> = (token_scores(trained, tokens).iter())
        .map(|positions| (-positions.iter().sum::<f64>(), positions.len() as f64))
        .collect();
    let (loss, characters) = items
        .iter()
        .fold((0.0, 0.0), |(l, n), &(il, ic)| (l + il, n + ic));
    Ok(SplitLoss {
        split,
        items: items.len(),
        loss: loss / characters,
        se: stats::ratio_standard_error(&items),
    })
}

/// What `makemore score` was asked for.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    /// The run directory (or an experiment's directory of runs: its newest); more than one: an
    /// ensemble of their models.
    pub runs: Vec<PathBuf>,
    /// Items to score; read from standard input, one per line, when none are given.
    pub items: Vec<String>,
    /// Score every item of this split of the run's data instead, as one figure (`split_loss`).
    pub split: Option<SplitName>,
    /// Print each character's log-probability too.
    pub characters: bool,
    pub checkpoint: Which,
    /// Leave out the lines the model cannot score (characters outside its vocabulary, longer
    /// than its items, blank) instead of printing them without figures and exiting with 2.
    pub skip_unknown: bool,
}

/// One line of input: the item as the model's data would hold it, and its log-probability, or
/// why it has none.
pub struct Line {
    pub item: String,
    pub score: std::result::Result<ItemScore, String>,
}

/// An item's log-probability: in all, per character, and of each character (its end last).
pub struct ItemScore {
    pub total: f64,
    pub per_char: f64,
    pub characters: Vec<f64>,
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
    let trained = Trained::open_ensemble(&request.runs, request.checkpoint)?;
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
    let mut found = character_scores(&trained, &scorable)?.into_iter();
    let mut lines = Vec::with_capacity(items.len());
    let mut skipped = 0;
    for (item, why) in items.into_iter().zip(why) {
        let score = match why {
            None => {
                let characters = found.next().expect("a score for each scorable item");
                let (total, per_char) = total_and_mean(&characters);
                Ok(ItemScore {
                    total,
                    per_char,
                    characters,
                })
            }
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

/// `request.split`'s loss over every item, and a note when a model is not a finished run's.
pub fn score_split(request: &ScoreRequest) -> Result<(SplitLoss, Option<String>)> {
    let split = request.split.expect("a split asked for");
    let trained = Trained::open_ensemble(&request.runs, request.checkpoint)?;
    Ok((split_loss(&trained, split)?, trained.partial))
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
