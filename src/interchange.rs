//! Checkpoints that travel to and from makemore.py (PyTorch).
//!
//! `makemore export` writes a run's model as safetensors under makemore.py's state_dict names
//! and layouts, buffers included, so `model.load_state_dict(safetensors.torch.load_file(f))`
//! takes it. `makemore import` reads makemore.py's `model.pt` (or such a safetensors file) into a
//! new run directory. Our modules differ from makemore.py's only in a few names, in Linear weights
//! (`[in, out]` here, `[out, in]` in PyTorch) and in LayerNorm's `gamma`/`beta`
//! (`weight`/`bias`); burn-store's PyTorch adapters handle the last two.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::ParamId;
use burn::prelude::*;
use burn_store::{
    BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, TensorSnapshot,
    pytorch::PytorchReader,
};

use crate::config::{self, ModelConfig, ModelType, Override};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::models::Model;
use crate::trained::{Trained, Which};

/// Our parameter paths and makemore.py's, as prefixes; `{i}` stands for a layer's index.
fn renames(kind: ModelType) -> Result<&'static [(&'static str, &'static str)]> {
    Ok(match kind {
        ModelType::Bigram | ModelType::Counts | ModelType::Rnn | ModelType::Gru => &[],
        ModelType::Mlp => &[("hidden.", "mlp.0."), ("head.", "mlp.2.")],
        ModelType::Bow => &[
            ("c_fc.", "context_block.mlp.c_fc."),
            ("c_proj.", "context_block.mlp.c_proj."),
        ],
        ModelType::Transformer => &[
            ("wte.", "transformer.wte."),
            ("wpe.", "transformer.wpe."),
            ("ln_f.", "transformer.ln_f."),
            ("blocks.{i}.c_fc.", "transformer.h.{i}.mlp.c_fc."),
            ("blocks.{i}.c_proj.", "transformer.h.{i}.mlp.c_proj."),
            ("blocks.{i}.", "transformer.h.{i}."),
        ],
        ModelType::Lstm | ModelType::Cnn => {
            return Err(Error::input(format!(
                "makemore.py has no {} model; export and import handle bigram, counts (as bigram), \
                 mlp, rnn, gru, bow and transformer",
                kind.name()
            )));
        }
    })
}

/// `path` with the first matching prefix of `from` replaced by `to`, layer index carried over.
fn rename(path: &str, pairs: &[(&str, &str)], to_pytorch: bool) -> String {
    for &(ours, theirs) in pairs {
        let (from, to) = if to_pytorch {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        let Some((from_head, from_tail)) = from.split_once("{i}") else {
            if let Some(rest) = path.strip_prefix(from) {
                return format!("{to}{rest}");
            }
            continue;
        };
        let Some(after) = path.strip_prefix(from_head) else {
            continue;
        };
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if let (true, Some(rest)) = (digits > 0, after[digits..].strip_prefix(from_tail)) {
            return format!("{}{rest}", to.replace("{i}", &after[..digits]));
        }
    }
    path.to_string()
}

/// makemore.py's buffers, which are in its state_dict but are not parameters: the causal masks.
fn buffers(kind: ModelType, n_layer: usize, block_size: usize) -> Vec<(String, Vec<usize>)> {
    let t = block_size;
    match kind {
        ModelType::Transformer => (0..n_layer)
            .map(|i| (format!("transformer.h.{i}.attn.bias"), vec![1, 1, t, t]))
            .collect(),
        ModelType::Bow => vec![("context_block.cbow.bias".into(), vec![1, t, t])],
        _ => Vec::new(),
    }
}

/// A lower-triangular matrix of ones (the last two dimensions of `shape`), as makemore.py's
/// `torch.tril(torch.ones(T, T))`.
fn causal_mask(shape: &[usize]) -> Vec<f32> {
    let t = shape[shape.len() - 1];
    (0..t * t)
        .map(|k| if k % t <= k / t { 1.0 } else { 0.0 })
        .collect()
}

/// makemore.py's models take their sizes from the data; ours must match them to be exported.
fn check_exportable(trained: &Trained) -> Result<()> {
    let m = &trained.experiment.model;
    let block_size = m.context(trained.data.seq_len);
    if m.kind == ModelType::Mlp && (!m.blank_token || block_size != trained.data.seq_len) {
        return Err(Error::input(format!(
            "makemore.py's mlp sees the whole item (block_size = longest item + 1 = {}) and pads \
             with a <BLANK> token; this run has model.block_size = {block_size} and \
             model.blank_token = {}",
            trained.data.seq_len, m.blank_token
        )));
    }
    renames(m.kind).map(|_| ())
}

/// What `makemore export` was asked for.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The run directory (or an experiment's directory of runs: its newest).
    pub run: PathBuf,
    /// The file to write.
    pub safetensors: PathBuf,
    pub checkpoint: Which,
}

/// What an export wrote: how many tensors, of which model type.
pub struct Exported {
    pub tensors: usize,
    pub kind: &'static str,
}

/// Writes the model of a run (one of its checkpoints) as makemore.py's state_dict.
pub fn export(request: &ExportRequest) -> Result<Exported> {
    let (out, run) = (&request.safetensors, &request.run);
    let parent = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Error::input(format!(
            "{}: there is no directory {} to write it in",
            out.display(),
            parent.display()
        )));
    }
    let trained = Trained::open(run, request.checkpoint)?;
    check_exportable(&trained)?;
    let m = &trained.experiment.model;
    let pairs = renames(m.kind)?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        pytorch_snapshots(&trained.members[0], pairs)
            .into_iter()
            .map(|(name, snapshot)| {
                let data = snapshot_values(&snapshot, &name)?;
                Ok((name, snapshot.shape.to_vec(), data))
            })
            .collect::<Result<_>>()?;
    for (name, shape) in buffers(m.kind, m.n_layer, trained.data.seq_len) {
        let mask = causal_mask(&shape);
        tensors.push((name, shape, mask));
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, values)| {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .expect("shape and data agree");
            (name.clone(), view)
        })
        .collect::<Vec<_>>();
    let vocab: String = trained.data.vocab.chars().iter().collect();
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("makemore.type".to_string(), m.kind.name().to_string()),
        ("makemore.vocab".to_string(), vocab),
    ]);
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Failed(anyhow::anyhow!("{}: {e}", out.display())))?;
    write_atomic(out, &file)?;
    Ok(Exported {
        tensors: bytes.len(),
        kind: m.kind.name(),
    })
}

fn snapshot_values(snapshot: &TensorSnapshot, name: &str) -> Result<Vec<f32>> {
    snapshot
        .to_data()
        .map_err(|e| Error::Failed(anyhow::anyhow!("{name}: {e}")))?
        .convert::<f32>()
        .to_vec()
        .map_err(|e| Error::Failed(anyhow::anyhow!("{name}: {e:?}")))
}

/// What `makemore import` needs: the weights file, the model type, the data and any settings.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// makemore.py's state_dict (torch.save) or a safetensors file.
    pub weights: PathBuf,
    /// The model's type: bigram, mlp, rnn, gru, bow or transformer.
    pub kind: String,
    /// The items it was trained on (they fix the vocabulary and the block size).
    pub data: PathBuf,
    /// Settings the model was built with (--set model.n_embd=...) or for fine-tuning
    /// (--set schedule.steps=N); repeatable.
    pub sets: Vec<String>,
    /// Where the run directory goes.
    pub runs: PathBuf,
}

/// Turns makemore.py's checkpoint into a run directory: a run of `schedule.steps = 0` (unless
/// `--set` asks for fine-tuning steps) that starts from the file's weights and is evaluated on
/// every split. `sample`, `score` and `run --resume --set schedule.steps=N` take it as any run.
pub fn import(request: &ImportRequest) -> Result<crate::run::Outcome> {
    let flags = [
        Override::flag("model.type", request.kind.as_str(), "--type"),
        Override::flag("dataset.path", request.data.display().to_string(), "--data"),
        Override::flag(
            "schedule.steps",
            0,
            "import (no training unless --set asks)",
        ),
    ];
    let experiment =
        config::from_flags(&format!("import-{}", request.kind), &flags, &request.sets)?;
    renames(experiment.model.kind)?;
    let weights = Weights::read(&request.weights)?;
    // The file's tensors go into the model built on the CPU, whose record the run loads on its
    // own backend.
    let data = Dataset::load(&experiment.dataset)?;
    crate::run::check_memory(&experiment, &data)?;
    let device = Default::default();
    let model = Model::<Flex>::new(&experiment.model, &data, experiment.seed, &device);
    let model = weights.load_into(model, &experiment.model, &data)?;
    let record = crate::checkpoint::encode::<Flex, _>(model.into_record())?;
    crate::run::run_from(&experiment, &request.runs, &record)
}

/// The tensors of a weights file, by makemore.py's names, as f32.
pub struct Weights {
    file: PathBuf,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// The characters of the vocabulary, where the file says (our exports do).
    vocab: Option<String>,
}

impl Weights {
    /// Reads PyTorch's zip format (`torch.save`) or safetensors.
    pub fn read(path: &Path) -> Result<Self> {
        let bad = |e: String| Error::input(format!("{}: {e}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut vocab = None;
        let mut tensors = if bytes.starts_with(b"PK") {
            let reader = PytorchReader::new(path).map_err(|e| bad(e.to_string()))?;
            reader
                .into_tensors()
                .into_iter()
                .map(|(name, snapshot)| {
                    let values =
                        snapshot_values(&snapshot, &name).map_err(|e| bad(e.to_string()))?;
                    Ok((name, snapshot.shape.to_vec(), values))
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
                bad(format!(
                    "neither a PyTorch checkpoint (torch.save) nor safetensors: {e}"
                ))
            })?;
            vocab = header
                .metadata()
                .as_ref()
                .and_then(|m| m.get("makemore.vocab").cloned());
            let file =
                safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
            file.tensors()
                .into_iter()
                .map(|(name, view)| {
                    if view.dtype() != safetensors::Dtype::F32 {
                        return Err(bad(format!(
                            "{name}: {:?} tensors are not read; save the model as float32",
                            view.dtype()
                        )));
                    }
                    let values = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    Ok((name, view.shape().to_vec(), values))
                })
                .collect::<Result<Vec<_>>>()?
        };
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Weights {
            file: path.to_path_buf(),
            tensors,
            vocab,
        })
    }
}

impl Weights {
    /// `model` (freshly built for `data`) with every parameter taken from the file. The file must
    /// hold each parameter with its shape and nothing else but makemore.py's causal masks.
    fn load_into<B: Backend>(
        &self,
        mut model: Model<B>,
        config: &ModelConfig,
        data: &Dataset,
    ) -> Result<Model<B>> {
        let bad = |e: String| Error::input(format!("{}: {e}", self.file.display()));
        let pairs = renames(config.kind)?;
        let data_vocab: String = data.vocab.chars().iter().collect();
        if let Some(vocab) = self.vocab.as_ref().filter(|v| **v != data_vocab) {
            return Err(bad(format!(
                "its vocabulary is {vocab:?}, the data's is {data_vocab:?}"
            )));
        }
        let expected: HashMap<String, Vec<usize>> = pytorch_snapshots(&model, pairs)
            .into_iter()
            .map(|(name, snapshot)| (name, snapshot.shape.to_vec()))
            .collect();
        let masks: Vec<String> = buffers(config.kind, config.n_layer, data.seq_len)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let mut problems = Vec::new();
        for (name, shape, _) in &self.tensors {
            match expected.get(name) {
                Some(want) if want != shape => problems.push(format!(
                    "{name} has shape {shape:?}, this {} model needs {want:?}",
                    config.kind.name()
                )),
                None if !masks.contains(name) => problems.push(format!(
                    "{name} is not a parameter of makemore.py's {}",
                    config.kind.name()
                )),
                _ => {}
            }
        }
        let mut missing: Vec<&String> = expected
            .keys()
            .filter(|name| !self.tensors.iter().any(|(n, _, _)| n == *name))
            .collect();
        missing.sort();
        problems.extend(missing.iter().map(|name| format!("{name} is missing")));
        if !problems.is_empty() {
            return Err(bad(format!(
                "does not fit a {} model with these settings on this data (vocabulary of {}, \
                 block size {}); check --type and --set model.*:\n  {}",
                config.kind.name(),
                data.vocab.size(),
                data.seq_len,
                problems.join("\n  ")
            )));
        }
        let snapshots = self
            .tensors
            .iter()
            .filter(|(name, _, _)| expected.contains_key(name))
            .map(|(name, shape, values)| {
                let path = rename(name, pairs, false)
                    .split('.')
                    .map(String::from)
                    .collect();
                let data = TensorData::new(values.clone(), shape.clone());
                TensorSnapshot::from_data(data, path, Vec::new(), ParamId::new())
            })
            .collect();
        let result = model.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), true);
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(Error::Failed(anyhow::anyhow!(
                "{}: loading failed: {:?} {:?}",
                self.file.display(),
                result.errors,
                result.missing
            )));
        }
        Ok(model)
    }
}

/// The model's tensors as makemore.py names and lays them out.
fn pytorch_snapshots<B: Backend>(
    model: &Model<B>,
    pairs: &[(&str, &str)],
) -> Vec<(String, TensorSnapshot)> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|snapshot| (rename(&snapshot.full_path(), pairs, true), snapshot))
        .collect()
}
