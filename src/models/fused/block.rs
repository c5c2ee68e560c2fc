//! A pre-LayerNorm Transformer block, x + attention(ln₁(x)) and then + mlp(ln₂(·)), as one node
//! of the autodiff graph.
//!
//! Op by op (`layer_norm`, `dense`, `causal_attention`, `gelu` and burn's adds) a block is ten
//! nodes, each with its graph merge, registration and gradient bookkeeping, and its residual
//! sums and their gradients' sums go through burn's own adds. Here the same kernels run one
//! after the other on plain vectors, in the same order and rounded alike: the same bits as op
//! by op (tested). Only the live rows are computed (`Rows`): the padding after each item's end
//! is dead, and its output and gradient are zero.

use std::sync::Arc;

use burn::backend::flex::FlexTensor;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::TensorMetadata;
use burn::tensor::ops::FloatTensor;

use super::activations::{gelu_backward, gelu_forward};
use super::attention::{Saved as Attended, attention, attention_backward};
use super::layer_norm::{Normalised, normalise, normalise_backward};
use super::linear::{affine, bias_grad, input_grad, weight_grad};
use super::rows::Rows;
use super::{CpuOp, on_cpu, primitive, tensor, values, vectorised, written};

/// One block's layers.
pub struct BlockLayers<'a, B: Backend> {
    pub ln_1: &'a LayerNorm<B>,
    /// Queries, keys and values of all heads in one projection.
    pub c_attn: &'a Linear<B>,
    pub attention_proj: &'a Linear<B>,
    pub ln_2: &'a LayerNorm<B>,
    pub c_fc: &'a Linear<B>,
    pub mlp_proj: &'a Linear<B>,
    pub heads: usize,
}

/// Dropout's keep-factors for one block while training: the attention weights' (as
/// `causal_attention` takes them), then the attention's and the MLP's outputs' before each joins
/// the residual stream.
#[derive(Clone, Debug, Default)]
pub struct BlockKeep {
    pub weights: Option<Arc<[f32]>>,
    pub attention: Option<Arc<[f32]>>,
    pub mlp: Option<Arc<[f32]>>,
}

/// The block on `x` `[B, T, C]`, of which the first `live[b]` rows of each item b are computed
/// (all where `None`) and the rest are zero; `fallback` computes it op by op, every row, on
/// other backends and on tensors without autodiff.
pub fn transformer_block<B: Backend>(
    x: Tensor<B, 3>,
    layers: &BlockLayers<B>,
    keep: &BlockKeep,
    live: Option<&[usize]>,
    fallback: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [b, t, c] = x.dims();
    let rows = rows_to_compute([b, t, c], live);
    let live_rows = |keep: &Option<Arc<[f32]>>| keep.as_ref().map(|k| rows.gather(k, c).into());
    let op = Block {
        heads: layers.heads,
        keep: BlockKeep {
            weights: keep.weights.clone(),
            attention: live_rows(&keep.attention),
            mlp: live_rows(&keep.mlp),
        },
        rows,
    };
    match inputs(&x, layers) {
        Some(inputs) => on_cpu(op, inputs).unwrap_or_else(|| fallback(x)),
        None => fallback(x),
    }
}

/// The rows of `[B, T, C]` the block computes: the `live` ones, unless so few that gemm would
/// take one of its small-product kernels (gemm-common 0.19: at most 256 outputs, or at most 2
/// terms to a sum), which add in another order than its kernel for all the rows.
fn rows_to_compute([b, t, c]: [usize; 3], live: Option<&[usize]>) -> Rows {
    match live.map(|live| Rows::new(t, live.to_vec())) {
        Some(rows) if rows.live() > 2 && rows.live() * c > 256 => rows,
        _ => Rows::all(b, t),
    }
}

/// `x` and the parameters, in `Block`'s order; `None` where a layer lacks its bias or β.
fn inputs<B: Backend>(x: &Tensor<B, 3>, l: &BlockLayers<B>) -> Option<[FloatTensor<B>; 13]> {
    let gamma = |norm: &LayerNorm<B>| primitive(&norm.gamma.val());
    let beta = |norm: &LayerNorm<B>| norm.beta.as_ref().map(|beta| primitive(&beta.val()));
    let weight = |layer: &Linear<B>| primitive(&layer.weight.val());
    let bias = |layer: &Linear<B>| layer.bias.as_ref().map(|bias| primitive(&bias.val()));
    Some([
        primitive(x),
        gamma(l.ln_1),
        beta(l.ln_1)?,
        weight(l.c_attn),
        bias(l.c_attn)?,
        weight(l.attention_proj),
        bias(l.attention_proj)?,
        gamma(l.ln_2),
        beta(l.ln_2)?,
        weight(l.c_fc),
        bias(l.c_fc)?,
        weight(l.mlp_proj),
        bias(l.mlp_proj)?,
    ])
}

#[derive(Clone, Debug)]
struct Block {
    heads: usize,
    /// The residual branches' keep-factors of the live rows only.
    keep: BlockKeep,
    rows: Rows,
}

/// What the backward pass needs: γ of each norm, the four weight matrices, and what each
/// kernel's backward pass needs, the linear layers' inputs among them.
#[derive(Debug)]
struct Saved {
    gammas: [FlexTensor; 2],
    weights: [FlexTensor; 4],
    ln_1: Normalised,
    h_1: Vec<f32>,
    attended: Attended,
    y: Vec<f32>,
    ln_2: Normalised,
    h_2: Vec<f32>,
    fc: Vec<f32>,
    gates: Vec<f32>,
    mlp: Vec<f32>,
}

/// A weight matrix's values and `[in, out]`.
fn matrix(weight: &FlexTensor) -> (&[f32], [usize; 2]) {
    (values(weight), [weight.shape()[0], weight.shape()[1]])
}

impl CpuOp<13> for Block {
    type State = Arc<Saved>;
    // Without a backward pass to come, op by op frees each kernel's state as soon as it
    // returns, where the block holds all of them at once: 10% more memory at the peak of a run
    // on evaluation's large batches. Where it skips dead rows, they more than make up for it.
    fn only_tracked(&self) -> bool {
        self.rows.live() == self.rows.padded_len()
    }

    fn forward(&self, inputs: [&FlexTensor; 13]) -> (FlexTensor, Arc<Saved>) {
        let [
            x,
            gamma_1,
            beta_1,
            w_attn,
            b_attn,
            w_attn_proj,
            b_attn_proj,
            gamma_2,
            beta_2,
            w_fc,
            b_fc,
            w_mlp_proj,
            b_mlp_proj,
        ] = inputs;
        let linear = |x: &[f32], w, b| {
            let (w, shape) = matrix(w);
            affine(x, w, shape, Some(values(b)))
        };
        let (rows, c) = (&self.rows, gamma_1.shape()[0]);
        let x = rows.gather(values(x), c);
        let (h_1, ln_1) = normalise(&x, values(gamma_1), values(beta_1));
        let qkv = linear(&h_1, w_attn, b_attn);
        let keep = self.keep.weights.as_deref();
        let (y, attended) = attention(&qkv, rows, 3 * c, self.heads, keep);
        let attention = linear(&y, w_attn_proj, b_attn_proj);
        let x_2 = add(&x, &attention, self.keep.attention.as_deref());
        let (h_2, ln_2) = normalise(&x_2, values(gamma_2), values(beta_2));
        let fc = linear(&h_2, w_fc, b_fc);
        let (mlp, gates) = gelu_forward(&fc);
        let out = add(
            &x_2,
            &linear(&mlp, w_mlp_proj, b_mlp_proj),
            self.keep.mlp.as_deref(),
        );
        let saved = Saved {
            gammas: [gamma_1, gamma_2].map(FlexTensor::clone),
            weights: [w_attn, w_attn_proj, w_fc, w_mlp_proj].map(FlexTensor::clone),
            ln_1,
            h_1,
            attended,
            y,
            ln_2,
            h_2,
            fc,
            gates,
            mlp,
        };
        let shape = [rows.batch(), rows.t(), c];
        (tensor(rows.scatter(&out, c), shape), Arc::new(saved))
    }

    fn backward(&self, saved: Arc<Saved>, grad: &FlexTensor) -> [FlexTensor; 13] {
        let (s, rows) = (&*saved, &self.rows);
        let [w_attn, w_attn_proj, w_fc, w_mlp_proj] = &s.weights;
        let g = &rows.gather(values(grad), s.gammas[0].shape()[0]);
        let linear_backward = |x: &[f32], w, g: &[f32]| linear_backward(x, w, g, rows);
        let (d_mlp_proj, d_mlp) = linear_backward(&s.mlp, w_mlp_proj, &dropped(g, &self.keep.mlp));
        let (d_fc, d_h_2) = linear_backward(&s.h_2, w_fc, &gelu_backward(&s.fc, &s.gates, &d_mlp));
        let [d_x_2, d_gamma_2, d_beta_2] =
            normalise_backward(&s.ln_2, values(&s.gammas[1]), &d_h_2);
        let d_x_2 = add(g, &d_x_2, None);
        let d_attention = dropped(&d_x_2, &self.keep.attention);
        let (d_attn_proj, d_y) = linear_backward(&s.y, w_attn_proj, &d_attention);
        let (d_attn, d_h_1) =
            linear_backward(&s.h_1, w_attn, &attention_backward(&s.attended, &d_y));
        let [d_x, d_gamma_1, d_beta_1] = normalise_backward(&s.ln_1, values(&s.gammas[0]), &d_h_1);
        let [gamma_1, beta_1, gamma_2, beta_2] =
            [d_gamma_1, d_beta_1, d_gamma_2, d_beta_2].map(vector);
        let [
            [w_attn, b_attn],
            [w_attn_proj, b_attn_proj],
            [w_fc, b_fc],
            [w_mlp_proj, b_mlp_proj],
        ] = [d_attn, d_attn_proj, d_fc, d_mlp_proj];
        let d_x = rows.scatter(&add(&d_x_2, &d_x, None), s.gammas[0].shape()[0]);
        [
            tensor(d_x, grad.shape()),
            gamma_1,
            beta_1,
            w_attn,
            b_attn,
            w_attn_proj,
            b_attn_proj,
            gamma_2,
            beta_2,
            w_fc,
            b_fc,
            w_mlp_proj,
            b_mlp_proj,
        ]
    }
}

/// A linear layer's weight and bias gradients, and its input's, from its input `x`, its
/// weight, and its output's gradient, on the live `rows`.
fn linear_backward(
    x: &[f32],
    weight: &FlexTensor,
    grad: &[f32],
    rows: &Rows,
) -> ([FlexTensor; 2], Vec<f32>) {
    let (w, [k, n]) = matrix(weight);
    let dx = input_grad(w, [k, n], grad);
    // The weight's gradient sums over the rows, and gemm sums up to 512 of them in one pass
    // (gemm-common's `kernel_params`): over the live rows, the same sums in the same order as
    // over all rows, the dead ones adding zeros. Past 512 rows gemm splits them into passes by
    // their count, so there the dead rows stay in, and the sums stay those of all rows.
    let dw = match rows.padded_len() <= 512 {
        true => weight_grad(x, [k, n], grad),
        false => weight_grad(&rows.scatter(x, k), [k, n], &rows.scatter(grad, n)),
    };
    ([tensor(dw, [k, n]), vector(bias_grad(grad, n))], dx)
}

/// A vector's values as a 1-D tensor.
fn vector(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    tensor(values, [n])
}

/// `x` + `branch`·keep, element by element (`branch` alone without keep-factors): a residual
/// sum, the branch dropped out while training, or the two gradients of a tensor used twice.
fn add(x: &[f32], branch: &[f32], keep: Option<&[f32]>) -> Vec<f32> {
    vectorised(
        #[inline(always)]
        || match keep {
            Some(keep) => {
                let kept = branch.iter().zip(keep).map(|(&b, &k)| b * k);
                written(x.len(), x.iter().zip(kept).map(|(&x, b)| x + b))
            }
            None => written(x.len(), x.iter().zip(branch).map(|(&x, &b)| x + b)),
        },
    )
}

/// The gradient `grad` through dropout's keep-factors, where there are any.
fn dropped<'a>(grad: &'a [f32], keep: &Option<Arc<[f32]>>) -> std::borrow::Cow<'a, [f32]> {
    match keep {
        Some(keep) => std::borrow::Cow::Owned(vectorised(
            #[inline(always)]
            || {
                written(
                    grad.len(),
                    grad.iter().zip(keep.iter()).map(|(&g, &k)| g * k),
                )
            },
        )),
        None => std::borrow::Cow::Borrowed(grad),
    }
}
