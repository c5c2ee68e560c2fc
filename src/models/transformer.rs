//! makemore.py's Transformer, exactly GPT-2's shape: token and position embeddings, `n_layer`
//! pre-LayerNorm blocks of causal multi-head self-attention and a 4× MLP with the tanh GELU, a
//! final LayerNorm, and an output head without bias.

use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::init::Init;
use super::{
    BlockKeep, BlockLayers, Mode, add_positions, causal_attention, dense, gelu, layer_norm,
    square_keep, transformer_block, triangle_len,
};
use crate::config::ModelConfig;

#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    wte: Embedding<B>,
    wpe: Embedding<B>,
    blocks: Vec<Block<B>>,
    ln_f: LayerNorm<B>,
    lm_head: Linear<B>,
    dropout: f64,
}

#[derive(Module, Debug)]
struct Block<B: Backend> {
    ln_1: LayerNorm<B>,
    attn: CausalSelfAttention<B>,
    ln_2: LayerNorm<B>,
    c_fc: Linear<B>,
    c_proj: Linear<B>,
}

#[derive(Module, Debug)]
struct CausalSelfAttention<B: Backend> {
    /// Queries, keys and values of all heads in one projection.
    c_attn: Linear<B>,
    c_proj: Linear<B>,
    n_head: usize,
}

impl<B: Backend> Transformer<B> {
    pub fn new(
        config: &ModelConfig,
        vocab_size: usize,
        block_size: usize,
        init: &mut Init<B>,
    ) -> Self {
        let c = config.n_embd;
        let layer_norm = |init: &Init<B>| LayerNormConfig::new(c).init(init.device());
        Transformer {
            wte: init.embedding(vocab_size, c),
            wpe: init.embedding(block_size, c),
            blocks: (0..config.n_layer)
                .map(|_| Block {
                    ln_1: layer_norm(init),
                    attn: CausalSelfAttention {
                        c_attn: init.linear(c, 3 * c, true),
                        c_proj: init.linear(c, c, true),
                        n_head: config.n_head,
                    },
                    ln_2: layer_norm(init),
                    c_fc: init.linear(c, 4 * c, true),
                    c_proj: init.linear(4 * c, c, true),
                })
                .collect(),
            ln_f: layer_norm(init),
            lm_head: init.linear(c, vocab_size, false),
            dropout: config.dropout,
        }
    }

    pub fn forward(&self, idx: Tensor<B, 2, Int>, mode: Mode) -> Tensor<B, 3> {
        let (rng, live) = match mode {
            Mode::Train { dropout, targets } => (Some(dropout), targets),
            Mode::Evaluate(targets) => (None, Some(targets)),
            Mode::Eval => (None, None),
        };
        let mut drop = Dropout {
            p: self.dropout,
            rng,
        };
        let mut x = drop.apply(add_positions(self.wte.forward(idx), &self.wpe));
        for block in &self.blocks {
            x = block.forward(x, &mut drop, live);
        }
        dense(&self.lm_head, layer_norm(&self.ln_f, x))
    }
}

/// One layer's keys and values of the positions decoded so far, `[count, n_head, t, hs]` each.
#[derive(Default)]
pub struct Cache<B: Backend> {
    kv: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
}

impl<B: Backend> Transformer<B> {
    /// One position of `forward` in evaluation: the next-token logits `[count, V]` after
    /// `tokens` `[count]` at position `t`, where `caches` hold positions 0..t (one per layer,
    /// made empty for t = 0) and take position t's keys and values.
    pub fn decode(
        &self,
        tokens: Tensor<B, 1, Int>,
        t: usize,
        caches: &mut Vec<Cache<B>>,
    ) -> Tensor<B, 2> {
        let [count] = tokens.dims();
        caches.resize_with(self.blocks.len(), Cache::default);
        let c = self.wte.weight.dims()[1];
        let position = self.wpe.weight.val().slice([t..t + 1, 0..c]);
        let mut x = self.wte.weight.val().select(0, tokens) + position;
        for (block, cache) in self.blocks.iter().zip(caches) {
            let attention = block.attn.decode(layer_norm(&block.ln_1, x.clone()), cache);
            x = x + attention;
            let mlp = gelu(dense(&block.c_fc, layer_norm(&block.ln_2, x.clone())));
            x = x.clone() + dense(&block.c_proj, mlp);
        }
        debug_assert_eq!(x.dims(), [count, c]);
        dense(&self.lm_head, layer_norm(&self.ln_f, x))
    }
}

impl<B: Backend> CausalSelfAttention<B> {
    /// `x` `[count, C]` of one new position attending to itself and every cached one.
    fn decode(&self, x: Tensor<B, 2>, cache: &mut Cache<B>) -> Tensor<B, 2> {
        let qkv = dense(&self.c_attn, x);
        let [count, c3] = qkv.dims();
        let c = c3 / 3;
        let hs = c / self.n_head;
        // [count, C] → [count, nh, 1, hs]
        let head = |i: usize| {
            qkv.clone()
                .slice([0..count, i * c..(i + 1) * c])
                .reshape([count, self.n_head, 1, hs])
        };
        let (q, k, v) = (head(0), head(1), head(2));
        let (keys, values) = match cache.kv.take() {
            Some((keys, values)) => (
                Tensor::cat(vec![keys, k], 2),
                Tensor::cat(vec![values, v], 2),
            ),
            None => (k, v),
        };
        let scores = q
            .matmul(keys.clone().swap_dims(2, 3))
            .div_scalar((hs as f64).sqrt());
        let y = softmax(scores, 3)
            .matmul(values.clone())
            .reshape([count, c]);
        cache.kv = Some((keys, values));
        dense(&self.c_proj, y)
    }
}

impl<B: Backend> Block<B> {
    /// One node of the autodiff graph on the CPU backend, computing the first `live[b]` rows of
    /// each item b only, `by_ops` elsewhere. Dropout's factors are drawn in the order `by_ops`
    /// uses them, for every row.
    fn forward(&self, x: Tensor<B, 3>, drop: &mut Dropout, live: Option<&[usize]>) -> Tensor<B, 3> {
        let [b, t, c] = x.dims();
        let keep = BlockKeep {
            weights: drop
                .keep(triangle_len(b, self.attn.n_head, t))
                .map(Arc::from),
            attention: drop.keep(b * t * c).map(Arc::from),
            mlp: drop.keep(b * t * c).map(Arc::from),
        };
        let layers = BlockLayers {
            ln_1: &self.ln_1,
            c_attn: &self.attn.c_attn,
            attention_proj: &self.attn.c_proj,
            ln_2: &self.ln_2,
            c_fc: &self.c_fc,
            mlp_proj: &self.c_proj,
            heads: self.attn.n_head,
        };
        transformer_block(x, &layers, &keep, live, |x| self.by_ops(x, &keep))
    }

    fn by_ops(&self, x: Tensor<B, 3>, keep: &BlockKeep) -> Tensor<B, 3> {
        let attention = self
            .attn
            .forward(layer_norm(&self.ln_1, x.clone()), &keep.weights);
        let x = x + dropped(attention, keep.attention.as_deref().map(<[f32]>::to_vec));
        let mlp = dense(
            &self.c_proj,
            gelu(dense(&self.c_fc, layer_norm(&self.ln_2, x.clone()))),
        );
        x + dropped(mlp, keep.mlp.as_deref().map(<[f32]>::to_vec))
    }
}

impl<B: Backend> CausalSelfAttention<B> {
    fn forward(&self, x: Tensor<B, 3>, keep: &Option<Arc<[f32]>>) -> Tensor<B, 3> {
        let qkv = dense(&self.c_attn, x);
        let y = causal_attention(qkv, self.n_head, keep.clone(), |qkv| {
            attend(qkv, self.n_head, keep.as_deref())
        });
        dense(&self.c_proj, y)
    }
}

/// Causal attention `[B, T, 3C]` → `[B, T, C]` of burn's operations, the weights multiplied by
/// `keep` for dropout: what `causal_attention` computes in one pass on the CPU.
pub(super) fn attend<B: Backend>(
    qkv: Tensor<B, 3>,
    n_head: usize,
    keep: Option<&[f32]>,
) -> Tensor<B, 3> {
    let [b, t, c3] = qkv.dims();
    let c = c3 / 3;
    let hs = c / n_head;
    // [B, T, C] → [B, nh, T, hs]
    let heads = |i: usize| {
        qkv.clone()
            .slice([0..b, 0..t, i * c..(i + 1) * c])
            .reshape([b, t, n_head, hs])
            .swap_dims(1, 2)
    };
    let (q, k, v) = (heads(0), heads(1), heads(2));
    let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((hs as f64).sqrt());
    let future = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, &scores.device()).unsqueeze::<4>();
    let mut attention = softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3);
    if let Some(keep) = keep {
        let device = attention.device();
        attention = attention * square_keep(keep, [b, n_head, t], &device);
    }
    attention.matmul(v).swap_dims(1, 2).reshape([b, t, c])
}

/// Dropout with probability `p` while training: masks from the step's generator. Without one
/// (evaluating, sampling) nothing is dropped.
struct Dropout<'a> {
    p: f64,
    rng: Option<&'a mut ChaCha8Rng>,
}

impl Dropout<'_> {
    /// `n` keep-factors (0, or 1/(1-p) with probability 1-p) while dropping; `None` otherwise.
    fn keep(&mut self, n: usize) -> Option<Vec<f32>> {
        let rng = self.rng.as_deref_mut().filter(|_| self.p > 0.0)?;
        Some(crate::rng::dropout_mask(rng, n, self.p))
    }

    /// `x` with each activation zeroed with probability `p` and the rest scaled by 1/(1-p).
    fn apply<B: Backend, const D: usize>(&mut self, x: Tensor<B, D>) -> Tensor<B, D> {
        let keep = self.keep(x.shape().num_elements());
        dropped(x, keep)
    }
}

/// `x` times dropout's keep-factors, where there are any.
fn dropped<B: Backend, const D: usize>(x: Tensor<B, D>, keep: Option<Vec<f32>>) -> Tensor<B, D> {
    match keep {
        Some(keep) => {
            let keep = Tensor::from_data(TensorData::new(keep, x.shape()), &x.device());
            x * keep
        }
        None => x,
    }
}
