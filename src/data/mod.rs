//! From a text file of items to encoded train / val / test splits and batches, with makemore's
//! semantics: items are stripped lines, the vocabulary is their sorted distinct characters plus
//! token 0 (start and stop), every item is padded to the longest item + 1.

mod batches;
mod read;

use std::collections::{BTreeSet, HashMap, HashSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::DatasetConfig;
use crate::error::{Error, Result};
pub use batches::{Batcher, batch, example_batch, target_count, targets_per_row};
use read::{at_least_one_item, check_kept, dedup, limit_length, read_items};
pub use read::{clean, utf8_lines};

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

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Val, SplitName::Test];

    pub fn name(self) -> &'static str {
        self.into()
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

/// The items' split: the test items (`test_items`, or drawn first), then val, from a
/// permutation that depends on `split_seed` only, so changing the training seed keeps it.
fn split(
    mut items: Vec<String>,
    test_items: Option<Vec<String>>,
    config: &DatasetConfig,
) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
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
    Ok((train, val, test))
}

/// What identifies a split: its items, split by split.
fn split_hash(train: &[String], val: &[String], test: &[String]) -> String {
    let mut h = Sha256::new();
    for (name, split) in [("train", train), ("val", val), ("test", test)] {
        h.update(name);
        for item in split {
            h.update(item.as_bytes());
            h.update(b"\n");
        }
    }
    hex::encode(h.finalize())
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

    /// Targets in all: each item's tokens and its end (one per (context, next) example).
    pub fn targets(&self) -> usize {
        self.example_ends.last().copied().unwrap_or(0)
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
        let items = keep(items);
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
        let (train, val, test) = split(items, test_items, config)?;
        Ok(Dataset {
            data_hash,
            long_items,
            notes,
            ..Dataset::from_splits(train, val, test)
        })
    }

    /// A dataset of these splits: the vocabulary of every character in them, no data file.
    pub fn from_splits(train: Vec<String>, val: Vec<String>, test: Vec<String>) -> Self {
        let all = || train.iter().chain(&val).chain(&test);
        let chars: BTreeSet<char> = all().flat_map(|i| i.chars()).collect();
        let vocab = Vocab::new(chars.into_iter().collect());
        let longest = all().map(|i| i.chars().count()).max();
        let split_hash = split_hash(&train, &val, &test);
        Dataset {
            seq_len: longest.unwrap_or(0) + 1,
            train: Split::new(train, &vocab),
            val: Split::new(val, &vocab),
            test: Split::new(test, &vocab),
            vocab,
            data_hash: String::new(),
            split_hash,
            long_items: 0,
            notes: Vec::new(),
        }
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
