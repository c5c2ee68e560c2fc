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
        .map(|item| {
            let tokens = data.vocab.encode(item).ok_or_else(|| {
                Error::input(format!(
                    "{item:?}: has characters outside the model's vocabulary"
                ))
            })?;
            if tokens.len() + 1 > data.seq_len {
                return Err(Error::input(format!(
                    "{item:?}: longer than the model's {} characters",
                    data.seq_len - 1
                )));
            }
            Ok(tokens)
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
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreRequest {
    /// The run directory (or an experiment's directory of runs: its newest).
    pub run: PathBuf,
    /// Items to score; read from standard input, one per line, when none are given.
    pub items: Vec<String>,
    #[arg(long, value_enum, default_value_t = Which::Best)]
    pub checkpoint: Which,
}

/// Each item of the request (or of standard input) with its log-probability, total and per
/// character.
pub fn score(request: &ScoreRequest) -> Result<Vec<(String, f64, f64)>> {
    let trained = Trained::open(&request.run, request.checkpoint)?;
    let items = match request.items.is_empty() {
        true => read_items(std::io::stdin().lock())?,
        false => request.items.clone(),
    };
    let scores = scores(&trained, &items)?;
    Ok(items
        .into_iter()
        .zip(scores)
        .map(|(item, (total, per_char))| (item, total, per_char))
        .collect())
}

/// The items of `input`, one per line: stripped, blank lines left out. A line that is not UTF-8
/// (or a read that fails) stops with an error that names it, rather than dropping what follows.
fn read_items(input: impl std::io::BufRead) -> Result<Vec<String>> {
    let mut items = Vec::new();
    for (number, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(|e| Error::input(format!("standard input: cannot read: {e}")))?;
        let line = String::from_utf8(line).map_err(|e| {
            Error::input(format!(
                "standard input:{}: not valid UTF-8 (byte {} of the line)",
                number + 1,
                e.utf8_error().valid_up_to() + 1
            ))
        })?;
        let item = line.trim();
        if !item.is_empty() {
            items.push(item.to_string());
        }
    }
    Ok(items)
}
