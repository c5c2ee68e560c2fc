//! The model families, one file each, behind one enum the training loop drives.

mod bigram;
mod bow;
mod cnn;
mod decode;
pub mod ensemble;
mod fused;
mod init;
pub mod memory;
pub mod mlp;
mod recurrent;
mod transformer;

use burn::prelude::*;

pub use bigram::Bigram;
pub use bow::Bow;
pub use cnn::Cnn;
pub use decode::Decoder;
pub use fused::{AdamWUpdate, adamw_update};
use fused::{
    BlockKeep, BlockLayers, causal_attention, causal_mean, dense, gelu, layer_norm, log_softmax,
    sigmoid, square_keep, tanh, transformer_block, triangle_len,
};
pub use init::Init;
pub use mlp::Mlp;
pub use recurrent::Recurrent;
pub use transformer::Transformer;

use crate::config::{ModelConfig, ModelType};
use crate::data::Dataset;

/// How a forward pass runs. The caller says so: a model cannot tell from the backend (a model on
/// an autodiff backend may be evaluated, and one off it is never trained).
pub enum Mode<'a> {
    /// Evaluating or sampling: nothing is dropped; the cnn's BatchNorm uses its running
    /// statistics.
    Eval,
    /// Evaluating rows of whole items, of which `targets` says as `Train`'s does how many first
    /// positions have a target: `Eval`, the rest skipped by the Transformer.
    Evaluate(&'a [usize]),
    /// One training batch: dropout masks come from `dropout` (the step's generator, so a
    /// resumed run draws the same ones); the cnn takes each row as one example
    /// (`trains_on_examples`), normalises with the batch's statistics and updates its running
    /// ones. `targets`, for rows of whole items (`data::batch`), says how many of each row's
    /// first positions have a target (`data::targets_per_row`): the Transformer skips the rest.
    Train {
        dropout: &'a mut rand_chacha::ChaCha8Rng,
        targets: Option<&'a [usize]>,
    },
}

// One model lives per run, so the size gap between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model<B: Backend> {
    Bigram(Bigram<B>),
    Mlp(Mlp<B>),
    Cnn(Cnn<B>),
    Recurrent(Recurrent<B>),
    Bow(Bow<B>),
    Transformer(Transformer<B>),
}

impl<B: Backend> Model<B> {
    /// A freshly initialised model of the configured family (`counts` comes fitted).
    pub fn new(config: &ModelConfig, data: &Dataset, seed: u64, device: &B::Device) -> Self {
        let vocab_size = data.vocab.size();
        let mut init = Init::new(seed, device);
        match config.kind {
            ModelType::Bigram => Model::Bigram(Bigram::new(vocab_size, &init)),
            ModelType::Counts => Model::Bigram(Bigram::from_counts(
                &data.train,
                vocab_size,
                config.smoothing,
                &init,
            )),
            ModelType::Mlp => {
                let block_size = config.context(data.seq_len);
                Model::Mlp(Mlp::new(config, vocab_size, block_size, &mut init))
            }
            ModelType::Cnn => Model::Cnn(Cnn::new(config, vocab_size, &mut init)),
            ModelType::Rnn | ModelType::Gru | ModelType::Lstm => {
                Model::Recurrent(Recurrent::new(config, vocab_size, &mut init))
            }
            ModelType::Bow => Model::Bow(Bow::new(config, vocab_size, data.seq_len, &mut init)),
            ModelType::Transformer => Model::Transformer(Transformer::new(
                config,
                vocab_size,
                data.seq_len,
                &mut init,
            )),
        }
    }

    /// Whether training feeds this model one (context, next token) example per row instead of
    /// whole items. The cnn's BatchNorm takes statistics across the rows of a batch: over whole
    /// items, a position would see the item's later characters, its own targets, through them.
    pub fn trains_on_examples(&self) -> bool {
        matches!(self, Model::Cnn(_))
    }

    /// How many parts a training batch is split into, each with its own forward and backward,
    /// on its own thread where the CPU backend has more than one. The parts' gradients are
    /// summed in order, so the numbers do not depend on the thread count. Only the Transformer's
    /// step is long enough for a second core to pay for the hand-over (BENCHMARKS.md: the batch
    /// in two halves); the cnn's BatchNorm needs the whole batch in one forward; on a GPU the
    /// parts would only launch every kernel twice.
    pub fn batch_shards(&self) -> usize {
        match self {
            Model::Transformer(_) if crate::backend::is_cpu::<B>() => 2,
            _ => 1,
        }
    }

    /// Trained parameters, as PyTorch counts them: burn's `num_params` also counts BatchNorm's
    /// running statistics, which are state, not parameters.
    pub fn parameters(&self) -> usize {
        let state = match self {
            Model::Cnn(m) => m.running_statistics(),
            _ => 0,
        };
        self.num_params() - state
    }

    /// This model with the weights of `record`, which must be of the same family and shapes:
    /// a checkpoint of another model, or one whose configuration was edited since, is refused.
    pub fn load_checked(self, record: ModelRecord<B>) -> Result<Self, String> {
        let same_family = matches!(
            (&self, &record),
            (Model::Bigram(_), ModelRecord::Bigram(_))
                | (Model::Mlp(_), ModelRecord::Mlp(_))
                | (Model::Cnn(_), ModelRecord::Cnn(_))
                | (Model::Recurrent(_), ModelRecord::Recurrent(_))
                | (Model::Bow(_), ModelRecord::Bow(_))
                | (Model::Transformer(_), ModelRecord::Transformer(_))
        );
        if !same_family {
            return Err("it holds another model family than the configuration's".into());
        }
        let expected = shapes(&self);
        let loaded = self.load_record(record);
        let found = shapes(&loaded);
        match found == expected {
            true => Ok(loaded),
            false => Err(format!(
                "its parameter shapes {found:?} differ from the configuration's {expected:?}"
            )),
        }
    }

    /// `[B, T]` tokens → `[B, T, V]` next-token log-probabilities in evaluation: `forward`'s
    /// logits normalised, where rows of whole items may say how many of their first positions
    /// have a target (`Mode::Evaluate`; the rest may then hold anything). The bigram's depend
    /// on the current token alone, so it normalises its table's rows once instead of a row per
    /// position (the same values: each row is normalised on its own).
    pub fn log_probs(&self, idx: Tensor<B, 2, Int>, targets: Option<&[usize]>) -> Tensor<B, 3> {
        let mode = targets.map_or(Mode::Eval, Mode::Evaluate);
        match self {
            Model::Bigram(m) => m.log_probs(idx),
            _ => normalise(self.forward(idx, mode)),
        }
    }

    /// `[B, T]` tokens → `[B, T, V]` next-token logits; position t depends on tokens ≤ t only.
    pub fn forward(&self, idx: Tensor<B, 2, Int>, mode: Mode) -> Tensor<B, 3> {
        match self {
            Model::Bigram(m) => m.forward(idx),
            Model::Mlp(m) => m.forward(idx),
            Model::Cnn(m) => m.forward(idx, matches!(mode, Mode::Train { .. })),
            Model::Recurrent(m) => m.forward(idx),
            Model::Bow(m) => m.forward(idx),
            Model::Transformer(m) => m.forward(idx, mode),
        }
    }
}

/// Every parameter's shape, in the order burn visits them.
fn shapes<B: Backend>(model: &Model<B>) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            self.0.push(param.shape().dims::<D>().to_vec());
        }
    }
    let mut visitor = Shapes(Vec::new());
    model.visit(&mut visitor);
    visitor.0
}

/// The negative log-likelihood of each target `[B, T]`, 0 where the target is `data::IGNORE`,
/// and which targets count (1.0) or not (0.0).
pub fn token_nll<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    target_nll(normalise(logits), targets)
}

/// `log_softmax` of `[B, T, V]` logits over V, position by position.
fn normalise<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, t, v] = logits.dims();
    log_softmax(logits.reshape([b * t, v])).reshape([b, t, v])
}

/// `token_nll` from `[B, T, V]` log-probabilities instead of logits.
pub fn target_nll<B: Backend>(
    log_probs: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let [b, t, v] = log_probs.dims();
    let log_probs = log_probs.reshape([b * t, v]);
    let targets = targets.reshape([b * t, 1]);
    let counted = targets.clone().greater_equal_elem(0);
    let picked = log_probs.gather(1, targets.clamp_min(0));
    let nll = picked.neg().mask_fill(counted.clone().bool_not(), 0.0);
    (nll.reshape([b, t]), counted.float().reshape([b, t]))
}

/// Summed negative log-likelihood of the targets, and how many targets count. Divide one by the
/// other for makemore's mean cross-entropy.
pub fn nll<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let (nll, counted) = token_nll(logits, targets);
    (nll.sum(), counted.sum())
}

/// `idx` moved k positions later along time, with `pad` in the k positions it leaves at the start.
fn shift_right<B: Backend>(idx: Tensor<B, 2, Int>, k: usize, pad: usize) -> Tensor<B, 2, Int> {
    let [b, t] = idx.dims();
    if k == 0 {
        return idx;
    }
    let padding = Tensor::full([b, k.min(t)], pad as i32, &idx.device());
    if k >= t {
        return padding;
    }
    Tensor::cat(vec![padding, idx.slice([0..b, 0..t - k])], 1)
}

/// Whether a layer that reads token embeddings should multiply every token's embedding once
/// and look the rows up (a table of `tokens` rows), rather than multiply each of the batch's
/// `positions` embeddings: the table does less arithmetic when there are fewer tokens than
/// positions, as with makemore's vocabularies at training batch sizes.
fn per_token_tables(tokens: usize, positions: usize) -> bool {
    tokens < positions
}

/// Token embeddings `[B, T, C]` plus the embeddings of positions 0..T from `wpe`. Added as
/// `[B, T·C] + [1, T·C]`: burn's CPU backend has a vectorised path for a row shared by every
/// row, but walks a `[1, T, C]` broadcast element by element, many times slower.
fn add_positions<B: Backend>(tokens: Tensor<B, 3>, wpe: &burn::nn::Embedding<B>) -> Tensor<B, 3> {
    let [b, t, c] = tokens.dims();
    let positions = Tensor::arange(0..t as i64, &tokens.device()).unsqueeze::<2>();
    let positions = wpe.forward(positions).reshape([1, t * c]);
    (tokens.reshape([b, t * c]) + positions).reshape([b, t, c])
}
