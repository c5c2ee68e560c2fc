//! Reading a data file's items: one per line, UTF-8 (a leading byte-order mark removed, with a
//! note), cleaned as `dataset.normalize` and `lowercase` say, blank lines skipped, long ones
//! dropped or cut, duplicates removed where asked.

use std::collections::HashSet;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::{DatasetConfig, LongItems, Normalize};
use crate::error::{Error, Result};

/// An item as the dataset options make it: Unicode-normalised, lower-cased, stripped. Items to
/// score go through it too, so that they meet the model's vocabulary as its data did.
pub fn clean(config: &DatasetConfig, line: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let line: String = match config.normalize {
        Normalize::None => line.to_string(),
        Normalize::Nfc => line.nfc().collect(),
        Normalize::Nfkc => line.nfkc().collect(),
    };
    let line = match config.lowercase {
        true => line.to_lowercase(),
        false => line,
    };
    line.trim().to_string()
}

/// The byte-order mark some editors write at the start of a UTF-8 file: not text.
pub(super) const BOM: &str = "\u{feff}";

/// The cleaned, non-blank lines of a UTF-8 file (a byte-order mark at its start removed, with a
/// note), and a hasher fed with the file's bytes.
pub(super) fn read_items(
    path: &Path,
    config: &DatasetConfig,
    notes: &mut Vec<String>,
) -> Result<(Vec<String>, Sha256)> {
    if path.is_dir() {
        return Err(Error::input(format!(
            "{}: is a directory, not a data file",
            path.display()
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::input(format!("{}: cannot read: {e}", path.display())))?;
    let mut items = Vec::new();
    for (number, line) in utf8_lines(&bytes, &path.display().to_string())?
        .into_iter()
        .enumerate()
    {
        let line = match line.strip_prefix(BOM) {
            Some(rest) if number == 0 => {
                notes.push(format!(
                    "{}: removed the byte-order mark (U+FEFF) at its start; it is not part of the first item",
                    path.display()
                ));
                rest
            }
            _ => line,
        };
        let item = clean(config, line);
        if !item.is_empty() {
            items.push(item);
        }
    }
    if items.is_empty() {
        return Err(Error::input(format!(
            "{}: holds no items (empty or only blank lines)",
            path.display()
        )));
    }
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    Ok((items, hasher))
}

/// The smallest fraction of `n` items with two significant digits that is one item at least
/// (1/n rounded up: 0.025 of 40, 0.00034 of 3,000).
pub(super) fn at_least_one_item(n: usize) -> f64 {
    let exact = 1.0 / n.max(1) as f64;
    let scale = 10f64.powi(1 - exact.log10().floor() as i32);
    (exact * scale).ceil() / scale
}

/// Refuses a `max_len` that left none of a file's `read` items: the split's own message would
/// point at the wrong setting.
pub(super) fn check_kept(path: &Path, read: usize, kept: usize, max_len: usize) -> Result<()> {
    if kept > 0 || read == 0 || max_len == 0 {
        return Ok(());
    }
    Err(Error::input(format!(
        "{}: dataset.max_len = {max_len} drops every one of its {read} items (all are longer); \
         raise it, or set dataset.long_items = \"truncate\" to cut them instead",
        path.display()
    )))
}

/// Items within `max_len` characters (0: no limit), and how many were dropped or cut.
pub(super) fn limit_length(
    items: Vec<String>,
    max_len: usize,
    long: LongItems,
) -> (Vec<String>, usize) {
    if max_len == 0 {
        return (items, 0);
    }
    let mut count = 0;
    let kept = items
        .into_iter()
        .filter_map(|item| {
            if item.chars().count() <= max_len {
                return Some(item);
            }
            count += 1;
            match long {
                LongItems::Drop => None,
                LongItems::Truncate => Some(item.chars().take(max_len).collect()),
            }
        })
        .collect();
    (kept, count)
}

pub(super) fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

/// The lines of `bytes` (the newline that ends the last line starts no line of its own), each
/// checked to be UTF-8; an error names `source`, the line and the byte. The one line reader, for
/// data files and for what `score` reads from standard input.
pub fn utf8_lines<'a>(bytes: &'a [u8], source: &str) -> Result<Vec<&'a str>> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let lines = bytes.split(|&b| b == b'\n').enumerate();
    lines
        .map(|(number, line)| {
            std::str::from_utf8(line).map_err(|e| {
                Error::input(format!(
                    "{source}:{}: not valid UTF-8 (byte {} of the line)",
                    number + 1,
                    e.valid_up_to() + 1
                ))
            })
        })
        .collect()
}
