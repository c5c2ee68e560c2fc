//! From a text file of items to encoded train / val / test splits and batches, with makemore's
//! semantics: items are stripped lines, the vocabulary is their sorted distinct characters plus
//! token 0 (start and stop), every item is padded to the longest item + 1.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use burn::prelude::*;
use rand::Rng;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{DatasetConfig, LongItems, Normalize};
use crate::error::{Error, Result};
use crate::rng::{Stream, rng};

/// Held-out splits below this many items are warned of: items' per-character losses spread by
/// about 0.4 nats (1,000 names under the README's first model: 0.42), so the standard error of
/// a mean over n items is about 0.4/√n, 0.04 at 100 and a tenth of a nat at 16.
const SMALL_SPLIT: usize = 100;

/// Targets at positions past an item's stop token; they count towards no loss.
pub const IGNORE: i32 = -1;

/// Characters to tokens: token 0 is start/stop, the others follow the sorted characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    chars: Vec<char>,
    index: HashMap<char, usize>,
}

impl Vocab {
    pub fn new(chars: Vec<char>) -> Self {
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i + 1)).collect();
        Vocab { chars, index }
    }

    /// Tokens including start/stop.
    pub fn size(&self) -> usize {
        self.chars.len() + 1
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The characters of `text` outside the vocabulary, in order.
    pub fn unknown(&self, text: &str) -> String {
        text.chars()
            .filter(|c| !self.index.contains_key(c))
            .collect()
    }

    pub fn encode(&self, item: &str) -> Option<Vec<usize>> {
        item.chars().map(|c| self.index.get(&c).copied()).collect()
    }

    pub fn decode(&self, tokens: &[usize]) -> String {
        tokens.iter().map(|&t| self.chars[t - 1]).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Val, SplitName::Test];

    pub fn name(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }
}

/// Held-out items that also occur in the training split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlap {
    pub val_items: usize,
    pub val_in_train: usize,
    pub test_items: usize,
    pub test_in_train: usize,
}

impl Overlap {
    /// A line for when held-out items also occur in train, above 1% of a split.
    pub fn warning(&self) -> Option<String> {
        let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
        let parts: Vec<String> = [
            ("val", self.val_in_train, self.val_items),
            ("test", self.test_in_train, self.test_items),
        ]
        .into_iter()
        .filter(|&(_, n, of)| share(n, of) > 0.01)
        .map(|(split, n, of)| format!("{n} of {of} {split} items"))
        .collect();
        (!parts.is_empty()).then(|| {
            format!(
                "warning: {} also occur in the training split (the data repeats items); dataset.dedup = true removes them",
                parts.join(" and ")
            )
        })
    }
}

/// Items of one split, encoded.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub items: Vec<String>,
    pub tokens: Vec<Vec<usize>>,
    /// Running count of (context, next token) examples: item i holds len + 1 of them.
    example_ends: Vec<usize>,
}

impl Split {
    fn new(items: Vec<String>, vocab: &Vocab) -> Self {
        let tokens: Vec<Vec<usize>> = items
            .iter()
            .map(|i| vocab.encode(i).expect("vocab covers every item"))
            .collect();
        let example_ends = tokens
            .iter()
            .scan(0, |end, t| {
                *end += t.len() + 1;
                Some(*end)
            })
            .collect();
        Split {
            items,
            tokens,
            example_ends,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub vocab: Vocab,
    /// Length of every encoded sequence: the longest item + 1 (the start token).
    pub seq_len: usize,
    pub train: Split,
    pub val: Split,
    pub test: Split,
    /// sha256 of the data file (and the test file, if any).
    pub data_hash: String,
    /// sha256 of the three splits' items in order: equal hashes mean comparable test losses.
    pub split_hash: String,
    /// Items dropped or cut for being longer than `dataset.max_len`.
    pub long_items: usize,
    /// What was done to the files' text that a user should hear of (a byte-order mark removed).
    pub notes: Vec<String>,
}

impl Dataset {
    pub fn load(config: &DatasetConfig) -> Result<Self> {
        let mut notes = Vec::new();
        let (items, mut hasher) = read_items(&config.path, config, &mut notes)?;
        let mut long_items = 0;
        let mut keep = |items: Vec<String>| {
            let items = if config.dedup { dedup(items) } else { items };
            let (kept, long) = limit_length(items, config.max_len, config.long_items);
            long_items += long;
            kept
        };
        let read = items.len();
        let mut items = keep(items);
        check_kept(&config.path, read, items.len(), config.max_len)?;
        let test_items = match &config.test_path {
            Some(path) => {
                let (test, test_hasher) = read_items(path, config, &mut notes)?;
                hasher.update(test_hasher.finalize());
                let read = test.len();
                let test = keep(test);
                check_kept(path, read, test.len(), config.max_len)?;
                Some(test)
            }
            None => None,
        };
        let data_hash = hex::encode(hasher.finalize());

        let chars: BTreeSet<char> = items
            .iter()
            .chain(test_items.iter().flatten())
            .flat_map(|i| i.chars())
            .collect();
        let vocab = Vocab::new(chars.into_iter().collect());
        let longest = items
            .iter()
            .chain(test_items.iter().flatten())
            .map(|i| i.chars().count())
            .max();

        // The permutation depends only on split_seed, so changing the training seed keeps the split.
        let mut rng = ChaCha8Rng::seed_from_u64(config.split_seed);
        items.shuffle(&mut rng);
        let n = items.len();
        let fraction = |f: f64| (f * n as f64) as usize;
        let test = match test_items {
            Some(test) => test,
            None => items.split_off(n - config.test_size.min(fraction(config.test_fraction))),
        };
        let val = items.split_off(items.len() - fraction(config.val_fraction).min(items.len()));
        if config.val_fraction > 0.0 && val.is_empty() {
            // Silently selecting on test instead would defeat what val_fraction asked for.
            return Err(Error::input(format!(
                "{}: dataset.val_fraction = {} of its {n} items is less than one item, so there \
                 would be no validation split; raise it to at least {}, or set it to 0 to \
                 select on the test split",
                config.path.display(),
                config.val_fraction,
                at_least_one_item(n)
            )));
        }
        let train = items;
        if train.is_empty() || test.is_empty() {
            return Err(Error::input(format!(
                "{}: the split leaves {} training and {} test items (of {n}, with {} for validation); \
                 both need at least one: add items or change dataset.test_size / test_fraction / val_fraction",
                config.path.display(),
                train.len(),
                test.len(),
                val.len()
            )));
        }

        let split_hash = {
            let mut h = Sha256::new();
            for (name, split) in [("train", &train), ("val", &val), ("test", &test)] {
                h.update(name);
                for item in split {
                    h.update(item.as_bytes());
                    h.update(b"\n");
                }
            }
            hex::encode(h.finalize())
        };
        Ok(Dataset {
            seq_len: longest.unwrap_or(0) + 1,
            train: Split::new(train, &vocab),
            val: Split::new(val, &vocab),
            test: Split::new(test, &vocab),
            vocab,
            data_hash,
            split_hash,
            long_items,
            notes,
        })
    }

    /// Every item's length in characters, shortest first.
    fn sorted_lengths(&self) -> Vec<usize> {
        let mut lengths: Vec<usize> = [&self.train, &self.val, &self.test]
            .iter()
            .flat_map(|split| split.tokens.iter().map(Vec::len))
            .collect();
        lengths.sort_unstable();
        lengths
    }

    /// The longest item's length and the length 99% of items do not exceed.
    pub fn longest_and_typical(&self) -> (usize, usize) {
        let lengths = self.sorted_lengths();
        match lengths.last() {
            Some(&longest) => (longest, lengths[(lengths.len() - 1) * 99 / 100]),
            None => (0, 0),
        }
    }

    /// How many items are longer than `length` characters.
    pub fn longer_than(&self, length: usize) -> usize {
        let lengths = self.sorted_lengths();
        lengths.len() - lengths.partition_point(|&l| l <= length)
    }

    /// A warning when the longest item is far beyond the rest: every batch is padded to it, so
    /// one long line can make training many times slower.
    pub fn length_warning(&self) -> Option<String> {
        let (longest, typical) = self.longest_and_typical();
        (longest > 64 && longest > 4 * typical.max(1)).then(|| {
            format!(
                "warning: the longest item has {longest} characters where 99% have at most {typical}; \
                 every batch is padded to the longest: dataset.max_len = N drops longer items \
                 (or cuts them, with dataset.long_items = \"truncate\")"
            )
        })
    }

    /// A warning for each held-out split too small for its loss to tell models apart: a mean over
    /// a few items moves by a tenth of a nat from one sample of items to the next.
    pub fn small_split_warnings(&self) -> Vec<String> {
        [SplitName::Val, SplitName::Test]
            .into_iter()
            .filter_map(|name| {
                let n = self.split(name).len();
                (n > 0 && n < SMALL_SPLIT).then(|| {
                    format!(
                        "warning: the {} split holds only {n} item{}: its loss is a mean over so \
                         few items that it says little (the end prints its standard error{}); \
                         more data, or a larger dataset.{}, gives a figure to trust",
                        name.name(),
                        if n == 1 { "" } else { "s" },
                        if n == 1 {
                            ", which one item cannot give"
                        } else {
                            ""
                        },
                        match name {
                            SplitName::Val => "val_fraction",
                            _ => "test_fraction (and test_size)",
                        }
                    )
                })
            })
            .collect()
    }

    /// The split that chooses the best checkpoint and when to stop: val when the data has one,
    /// else test (as makemore.py, whose test figure is then not a held-out one).
    pub fn selection_split(&self) -> SplitName {
        match self.val.is_empty() {
            true => SplitName::Test,
            false => SplitName::Val,
        }
    }

    pub fn split(&self, name: SplitName) -> &Split {
        match name {
            SplitName::Train => &self.train,
            SplitName::Val => &self.val,
            SplitName::Test => &self.test,
        }
    }

    /// How many val and test items also occur in the training split (a file that repeats
    /// items, as makemore's names.txt does, puts copies on both sides unless `dedup` is on).
    pub fn overlap(&self) -> Overlap {
        let train: HashSet<&str> = self.train.items.iter().map(String::as_str).collect();
        let in_train = |split: &Split| {
            split
                .items
                .iter()
                .filter(|i| train.contains(i.as_str()))
                .count()
        };
        Overlap {
            val_items: self.val.len(),
            val_in_train: in_train(&self.val),
            test_items: self.test.len(),
            test_in_train: in_train(&self.test),
        }
    }

    /// Every item of every split, to mark samples as in-train, in-test or new.
    pub fn membership<'a>(&'a self) -> Membership<'a> {
        let set = |split: &'a Split| split.items.iter().map(String::as_str).collect();
        Membership {
            train: set(&self.train),
            val: set(&self.val),
            test: set(&self.test),
        }
    }
}

pub struct Membership<'a> {
    train: HashSet<&'a str>,
    val: HashSet<&'a str>,
    test: HashSet<&'a str>,
}

impl Membership<'_> {
    pub fn mark(&self, item: &str) -> &'static str {
        if self.train.contains(item) {
            "in-train"
        } else if self.val.contains(item) {
            "in-val"
        } else if self.test.contains(item) {
            "in-test"
        } else {
            "new"
        }
    }
}

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
const BOM: &str = "\u{feff}";

/// The cleaned, non-blank lines of a UTF-8 file (a byte-order mark at its start removed, with a
/// note), and a hasher fed with the file's bytes.
fn read_items(
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
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(line).map_err(|e| {
            Error::input(format!(
                "{}:{}: not valid UTF-8 (byte {} of the line)",
                path.display(),
                number + 1,
                e.valid_up_to() + 1
            ))
        })?;
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
fn at_least_one_item(n: usize) -> f64 {
    let exact = 1.0 / n.max(1) as f64;
    let scale = 10f64.powi(1 - exact.log10().floor() as i32);
    (exact * scale).ceil() / scale
}

/// Refuses a `max_len` that left none of a file's `read` items: the split's own message would
/// point at the wrong setting.
fn check_kept(path: &Path, read: usize, kept: usize, max_len: usize) -> Result<()> {
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
fn limit_length(items: Vec<String>, max_len: usize, long: LongItems) -> (Vec<String>, usize) {
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

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

/// Inputs `[B, T]` (start token, then the item) and targets `[B, T]` (the item, the stop token,
/// then IGNORE) for the given items, on `device`.
pub fn batch<B: Backend>(
    items: &[&[usize]],
    seq_len: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    rows(
        items.iter().map(|&tokens| (tokens, None)),
        items.len(),
        seq_len,
        device,
    )
}

/// How many targets `batch` makes of `items`: each token, and the end after the last.
pub fn target_count(items: &[&[usize]]) -> usize {
    items.iter().map(|tokens| tokens.len() + 1).sum()
}

/// One (context, next token) example per row: the item up to `position` as input, the token
/// at `position` (or the stop token) as the only target. Nothing after the target is in the row.
pub fn example_batch<B: Backend>(
    examples: &[(&[usize], usize)],
    seq_len: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    rows(
        examples
            .iter()
            .map(|&(tokens, position)| (tokens, Some(position))),
        examples.len(),
        seq_len,
        device,
    )
}

fn rows<'a, B: Backend>(
    rows: impl Iterator<Item = (&'a [usize], Option<usize>)>,
    count: usize,
    seq_len: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let mut x = vec![0i32; count * seq_len];
    let mut y = vec![IGNORE; count * seq_len];
    for (row, (tokens, only)) in rows.enumerate() {
        let (x, y) = (&mut x[row * seq_len..], &mut y[row * seq_len..]);
        let end = only.unwrap_or(tokens.len());
        for (t, &token) in tokens[..end].iter().enumerate() {
            x[t + 1] = token as i32;
        }
        let target = |t: usize| tokens.get(t).map_or(0, |&token| token as i32);
        match only {
            Some(position) => y[position] = target(position),
            None => (0..=tokens.len()).for_each(|t| y[t] = target(t)),
        }
    }
    let shape = [count, seq_len];
    (
        Tensor::from_data(TensorData::new(x, shape), device),
        Tensor::from_data(TensorData::new(y, shape), device),
    )
}

/// Draws training batches uniformly with replacement, as makemore.py's sampler does; the whole
/// data order is a function of the seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batcher {
    rng: ChaCha8Rng,
}

impl Batcher {
    pub fn new(seed: u64) -> Self {
        Batcher {
            rng: rng(seed, Stream::Batches, 0),
        }
    }

    /// `batch_size` (context, next token) examples, uniformly over every position of every
    /// item, as the lectures draw them: (item tokens, position of the target).
    pub fn next_examples<'a>(
        &mut self,
        split: &'a Split,
        batch_size: usize,
    ) -> Vec<(&'a [usize], usize)> {
        let total = *split.example_ends.last().expect("a split with items");
        (0..batch_size)
            .map(|_| {
                let example = self.rng.random_range(0..total);
                let item = split.example_ends.partition_point(|&end| end <= example);
                let start = if item == 0 {
                    0
                } else {
                    split.example_ends[item - 1]
                };
                (split.tokens[item].as_slice(), example - start)
            })
            .collect()
    }

    pub fn next<'a>(&mut self, split: &'a Split, batch_size: usize) -> Vec<&'a [usize]> {
        (0..batch_size)
            .map(|_| split.tokens[self.rng.random_range(0..split.len())].as_slice())
            .collect()
    }
}
