//! `makemore score`: how likely the model finds each item ("how name-like is this?").

use std::path::Path;

use crate::data;
use crate::error::{Error, Result};
use crate::models::token_nll;
use crate::trained::Trained;

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
        let (nll, counted) = token_nll(trained.model.forward(x), y);
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

/// Prints `item <tab> total log-prob <tab> per character` for each item, from the arguments or,
/// when there are none, from standard input (one per line).
/// Stripped, non-blank lines; a line that is not UTF-8 (or a read that fails) stops with an
/// error that names it, rather than dropping what follows.
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

pub fn score_command(dir: &Path, checkpoint: &str, items: Vec<String>) -> Result<()> {
    let trained = Trained::open(dir, checkpoint)?;
    let items: Vec<String> = if items.is_empty() {
        read_items(std::io::stdin().lock())?
    } else {
        items
    };
    for (item, (total, per_char)) in items.iter().zip(scores(&trained, &items)?) {
        println!("{item}\t{total:.4}\t{per_char:.4}");
    }
    Ok(())
}
