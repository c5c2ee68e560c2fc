//! The experiment: every setting of one run, with defaults that reproduce makemore.py.
//!
//! `load` builds it from the layers (defaults → file → environment → `--set`); `validate` rejects
//! inconsistent values before any work starts; `to_toml` writes the fully resolved form that a run
//! directory keeps as `config.toml`.

mod load;
mod validate;

pub use validate::Invalid;
use validate::json_leaves;
pub mod starter;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub use load::{
    Loaded, Override, did_you_mean, from_flags, line_of, load, load_with, on_data, plain_words,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    /// Seeds initialisation, batch order and sampling; the split has its own seed.
    pub seed: u64,
    pub dataset: DatasetConfig,
    pub model: ModelConfig,
    pub backend: BackendConfig,
    pub schedule: ScheduleConfig,
    pub sampling: SamplingConfig,
    #[serde(default, skip_serializing_if = "GenerationConfig::is_default")]
    pub generation: GenerationConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub path: PathBuf,
    pub test_size: usize,
    pub test_fraction: f64,
    pub val_fraction: f64,
    pub split_seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_path: Option<PathBuf>,
    pub dedup: bool,
    /// Items longer than this many characters are dropped or cut (0 = every item whole): one
    /// very long line would pad every batch to its length. Left out of config.toml when 0, so that
    /// the configuration hashes of experiments without it do not change; `long_items` too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_len: usize,
    #[serde(default, skip_serializing_if = "LongItems::is_drop")]
    pub long_items: LongItems,
    /// Lower-case every item (after `normalize`). Off, and left out of config.toml, by default,
    /// as `normalize`: the text is what the file holds.
    #[serde(default, skip_serializing_if = "is_false")]
    pub lowercase: bool,
    #[serde(default, skip_serializing_if = "Normalize::is_none")]
    pub normalize: Normalize,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Unicode normalisation of each item: the same letter written as one code point or as a base
/// and a combining accent is one character of the vocabulary after it, two before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    #[default]
    None,
    /// Canonical composition: `e` + U+0301 becomes `é`.
    Nfc,
    /// Compatibility composition as well: `ﬁ` becomes `fi`, full-width letters plain ones.
    Nfkc,
}

impl Normalize {
    fn is_none(&self) -> bool {
        *self == Normalize::None
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What `dataset.max_len` does to a longer item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongItems {
    /// Leave it out.
    #[default]
    Drop,
    /// Keep its first `max_len` characters (the model learns that it ends there).
    Truncate,
}

impl LongItems {
    fn is_drop(&self) -> bool {
        *self == LongItems::Drop
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ModelType {
    Bigram,
    Counts,
    Mlp,
    Cnn,
    Rnn,
    Lstm,
    Gru,
    Bow,
    Transformer,
}

impl ModelType {
    pub const ALL: [ModelType; 9] = [
        ModelType::Bigram,
        ModelType::Counts,
        ModelType::Mlp,
        ModelType::Cnn,
        ModelType::Rnn,
        ModelType::Lstm,
        ModelType::Gru,
        ModelType::Bow,
        ModelType::Transformer,
    ];

    /// The family called `name` on a command line (`--model mlp`), or what the names are.
    pub fn from_name(name: &str) -> Result<Self, String> {
        if let Some(&kind) = Self::ALL.iter().find(|kind| kind.name() == name) {
            return Ok(kind);
        }
        let names = Self::ALL.map(ModelType::name);
        let guess =
            did_you_mean(name, &names).map_or(String::new(), |g| format!("; did you mean {g:?}?"));
        Err(format!(
            "{name:?} is not a model type{guess} (they are: {})",
            names.join(", ")
        ))
    }

    /// Whether the family reads the dotted `key`: a report leaves a key's cell blank for a model
    /// it does not configure (a Transformer has no `block_size`). Keys outside `[model]` apply to
    /// every family.
    pub fn uses(self, key: &str) -> bool {
        use ModelType::*;
        match key {
            "model.n_head" | "model.dropout" => self == Transformer,
            "model.n_layer" => matches!(self, Transformer | Cnn),
            "model.n_embd" => !matches!(self, Bigram | Counts),
            "model.n_embd2" => matches!(self, Mlp | Cnn | Rnn | Lstm | Gru | Bow),
            "model.block_size" | "model.blank_token" => self == Mlp,
            "model.smoothing" => self == Counts,
            _ => true,
        }
    }

    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(rename = "type")]
    pub kind: ModelType,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub n_embd2: usize,
    /// Context length of the mlp; 0 means the longest item + 1, as makemore.py does.
    pub block_size: usize,
    /// mlp: give positions before the start their own <BLANK> embedding (makemore.py); `false`
    /// pads them with the start token instead, as the lecture does.
    pub blank_token: bool,
    /// counts: add-k smoothing.
    pub smoothing: f64,
    /// transformer: the probability of zeroing an activation while training (0 = off, as
    /// makemore.py).
    pub dropout: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub name: BackendName,
    /// Which GPU, for `cuda`.
    pub device: usize,
    /// 0 = all cores.
    pub threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// burn's `flex`, with our fused kernels.
    Cpu,
    /// burn's `ndarray`: the CPU with burn's own operations only.
    Ndarray,
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    Constant,
    Step,
    Cosine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Optimizer steps; 0 trains nothing and only evaluates the starting model (an import's).
    pub steps: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    /// sgd only.
    pub momentum: f64,
    pub lr_schedule: LrSchedule,
    pub warmup_steps: usize,
    /// cosine: the rate it decays to.
    pub min_lr: f64,
    /// step: the learning rate is multiplied by `gamma` at each of these steps.
    pub milestones: Vec<usize>,
    pub gamma: f64,
    pub eval_every: usize,
    pub eval_batches: usize,
    pub eval_batch_size: usize,
    pub sample_every: usize,
    pub early_stop_patience: usize,
    /// Weight averaging: after each step the average keeps this share of itself and takes the
    /// rest from the trained weights (an exponential moving average); 0 = off. Left out of
    /// config.toml at 0, so that older runs keep their hashes.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub ema_decay: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    pub count: usize,
    /// 0: the likeliest character every time.
    pub temperature: f64,
    /// 0 = off.
    pub top_k: usize,
    /// The fewest likeliest characters holding this much probability; 1 = off. Left out of
    /// config.toml at its default, as `min_len` and `max_len`, so that older runs' configuration
    /// hashes stay.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub top_p: f64,
    /// No sample ends before this many characters.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_len: usize,
    /// Samples are cut at this many characters; 0 = the longest item's length.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_len: usize,
}

/// The generation metrics measured at the end of a run (`generation/`): how many samples at
/// `sampling.temperature`, at which other temperatures (the frontier), and the judge's n-gram
/// order. Left out of config.toml at its defaults, so that older runs keep their hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationConfig {
    /// Samples drawn at each temperature; 0 = no generation metrics.
    pub count: usize,
    /// The frontier: temperatures measured besides `sampling.temperature`.
    pub temperatures: Vec<f64>,
    /// The plausibility judge's order: an n-gram of this many characters (context + 1).
    pub judge_order: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            count: 1000,
            temperatures: Vec::new(),
            judge_order: 5,
        }
    }
}

impl GenerationConfig {
    fn is_default(&self) -> bool {
        *self == GenerationConfig::default()
    }
}

fn one() -> f64 {
    1.0
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

fn is_one(x: &f64) -> bool {
    *x == 1.0
}

/// A flag's whole number that must be at least 1 (`--top 0` would show nothing, `--max-parallel
/// 0` would run nothing).
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number ≥ 1, got {text:?}")),
    }
}

/// A run's or a sweep's name becomes one directory below `--runs`: it must be one path
/// component that stays there.
pub fn check_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    match bad {
        true => Err(format!(
            "must be a non-empty name without '/', '\\' or control characters, and not '.' or '..', got {name:?}"
        )),
        false => Ok(()),
    }
}

impl Experiment {
    /// makemore.py's defaults, with a finite number of steps.
    pub fn defaults(name: &str) -> Self {
        Experiment {
            name: name.to_string(),
            seed: 3407,
            dataset: DatasetConfig {
                path: PathBuf::from("names.txt"),
                test_size: 1000,
                test_fraction: 0.1,
                val_fraction: 0.0,
                split_seed: 42,
                test_path: None,
                dedup: false,
                max_len: 0,
                long_items: LongItems::Drop,
                lowercase: false,
                normalize: Normalize::None,
            },
            model: ModelConfig {
                kind: ModelType::Transformer,
                n_layer: 4,
                n_head: 4,
                n_embd: 64,
                n_embd2: 64,
                block_size: 0,
                blank_token: true,
                smoothing: 1.0,
                dropout: 0.0,
            },
            backend: BackendConfig {
                name: BackendName::Cpu,
                device: 0,
                threads: 0,
            },
            schedule: ScheduleConfig {
                steps: 10_000,
                batch_size: 32,
                optimizer: OptimizerKind::Adamw,
                learning_rate: 5e-4,
                weight_decay: 0.01,
                betas: [0.9, 0.99],
                eps: 1e-8,
                momentum: 0.0,
                lr_schedule: LrSchedule::Constant,
                warmup_steps: 0,
                min_lr: 0.0,
                milestones: Vec::new(),
                gamma: 0.1,
                eval_every: 500,
                eval_batches: 10,
                eval_batch_size: 100,
                sample_every: 200,
                early_stop_patience: 0,
                ema_decay: 0.0,
            },
            sampling: SamplingConfig {
                count: 10,
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_len: 0,
                max_len: 0,
            },
            generation: GenerationConfig::default(),
        }
    }

    /// Every setting by its dotted key (`schedule.steps`), for comparing experiments.
    pub fn flatten(&self) -> BTreeMap<String, toml::Value> {
        flatten(toml::Value::try_from(self).expect("an experiment is a TOML table"))
    }

    /// Every setting's dotted key; unlike `flatten`, for any values (one beyond TOML's integers
    /// too, as an error message needs them).
    pub fn keys(&self) -> Vec<String> {
        let value = serde_json::to_value(self).expect("an experiment serialises to JSON");
        let mut leaves = Vec::new();
        json_leaves("", &value, &mut leaves);
        leaves.into_iter().map(|(key, _)| key).collect()
    }

    /// A hash of what determines the results: the resolved configuration without its name, its
    /// data paths (the data is identified by its own hash) and the device and thread count
    /// (which do not change the numbers: checked bit for bit on the CPU for 1 and 2 threads).
    pub fn identity_hash(&self) -> String {
        let mut identity = self.clone();
        identity.name.clear();
        identity.dataset.path = PathBuf::new();
        identity.dataset.test_path = None;
        identity.backend.device = 0;
        identity.backend.threads = 0;
        hex::encode(Sha256::digest(identity.to_toml()))
    }

    /// The resolved experiment as TOML; `makemore run` on this text reproduces the run.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an experiment always serialises to TOML")
    }
}

impl ModelConfig {
    /// The mlp's context for items of `seq_len` positions (the longest item + 1): `block_size`,
    /// or all of them when it is 0.
    pub fn context(&self, seq_len: usize) -> usize {
        match self.block_size {
            0 => seq_len,
            n => n,
        }
    }
}

/// The leaves of a TOML value by dotted key: `{model = {n_embd = 64}}` gives `model.n_embd`.
pub fn flatten(value: toml::Value) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, value: toml::Value, out: &mut BTreeMap<String, toml::Value>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let key = match prefix {
                        "" => key,
                        _ => format!("{prefix}.{key}"),
                    };
                    walk(&key, value, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}
