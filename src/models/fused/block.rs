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
    let weight = |layer: &Linear<B>| primitive(&layer.weight.val());
    let bias = |layer: &Linear<B>| layer.bias.as_ref().map(|bias| primitive(&bias.val()));
    let half = |norm: &LayerNorm<B>, first, second| -> Option<[FloatTensor<B>; 6]> {
        let beta = primitive(&norm.beta.as_ref()?.val());
        let gamma = primitive(&norm.gamma.val());
        Some([
            gamma,
            beta,
            weight(first),
            bias(first)?,
            weight(second),
            bias(second)?,
        ])
    };
    let attention = half(l.ln_1, l.c_attn, l.attention_proj)?;
    let mlp = half(l.ln_2, l.c_fc, l.mlp_proj)?;
    let inputs: Vec<_> = std::iter::once(primitive(x))
        .chain(attention)
        .chain(mlp)
        .collect();
    inputs.try_into().ok()
}

#[derive(Clone, Debug)]
struct Block {
    heads: usize,
    /// The residual branches' keep-factors of the live rows only.
    keep: BlockKeep,
    rows: Rows,
}

/// What the backward pass needs: γ of each norm, the four weight matrices, and what each
/// half's kernels need.
#[derive(Debug)]
struct Saved {
    gammas: [FlexTensor; 2],
    weights: [FlexTensor; 4],
    attention: AttentionSaved,
    mlp: MlpSaved,
}

/// Of x + attention(ln₁(x)): the norm's, its output (the projection's input), the attention's,
/// and its output (the output projection's input).
#[derive(Debug)]
struct AttentionSaved {
    ln: Normalised,
    h: Vec<f32>,
    attended: Attended,
    y: Vec<f32>,
}

/// Of x + mlp(ln₂(x)): the norm's, its output, the first layer's output and the GELU's gates,
/// and the GELU's output.
#[derive(Debug)]
struct MlpSaved {
    ln: Normalised,
    h: Vec<f32>,
    fc: Vec<f32>,
    gates: Vec<f32>,
    mlp: Vec<f32>,
}

/// A weight matrix's values and `[in, out]`.
fn matrix(weight: &FlexTensor) -> (&[f32], [usize; 2]) {
    (values(weight), [weight.shape()[0], weight.shape()[1]])
}

/// x·W + b of the rows of `x`.
fn linear(x: &[f32], weight: &FlexTensor, bias: &FlexTensor) -> Vec<f32> {
    let (w, shape) = matrix(weight);
    affine(x, w, shape, Some(values(bias)))
}

/// One half's inputs: a norm's γ and β, then two linear layers' weights and biases.
type Half<'a> = [&'a FlexTensor; 6];

/// The block's input, and each half's inputs.
fn halves(inputs: [&FlexTensor; 13]) -> (&FlexTensor, Half<'_>, Half<'_>) {
    let [x, rest @ ..] = inputs;
    let (attention, mlp) = rest.split_at(6);
    let six = "six inputs to a half";
    (
        x,
        attention.try_into().expect(six),
        mlp.try_into().expect(six),
    )
}

impl Block {
    /// x + attention(ln₁(x)) of the live rows `x`, and what its backward pass needs.
    fn attention_half(&self, x: &[f32], inputs: Half) -> (Vec<f32>, AttentionSaved) {
        let [gamma, beta, w_attn, b_attn, w_proj, b_proj] = inputs;
        let (h, ln) = normalise(x, values(gamma), values(beta));
        let qkv = linear(&h, w_attn, b_attn);
        let (c, keep) = (gamma.shape()[0], self.keep.weights.as_deref());
        let (y, attended) = attention(&qkv, &self.rows, 3 * c, self.heads, keep);
        let attention = linear(&y, w_proj, b_proj);
        let out = add(x, &attention, self.keep.attention.as_deref());
        (out, AttentionSaved { ln, h, attended, y })
    }

    /// x + mlp(ln₂(x)) of the live rows `x`, and what its backward pass needs.
    fn mlp_half(&self, x: &[f32], inputs: Half) -> (Vec<f32>, MlpSaved) {
        let [gamma, beta, w_fc, b_fc, w_proj, b_proj] = inputs;
        let (h, ln) = normalise(x, values(gamma), values(beta));
        let fc = linear(&h, w_fc, b_fc);
        let (mlp, gates) = gelu_forward(&fc);
        let out = add(x, &linear(&mlp, w_proj, b_proj), self.keep.mlp.as_deref());
        (
            out,
            MlpSaved {
                ln,
                h,
                fc,
                gates,
                mlp,
            },
        )
    }

    /// The live rows `out` `[live, C]` as the block's output `[B, T, C]`.
    fn padded(&self, out: &[f32], c: usize) -> FlexTensor {
        let shape = [self.rows.batch(), self.rows.t(), c];
        tensor(self.rows.scatter(out, c), shape)
    }
}

impl CpuOp<13> for Block {
    type State = Arc<Saved>;
    // On plain tensors (no autodiff graph to spare nodes of) and every row live, op by op does
    // the same work: the block runs there only where it skips dead rows.
    fn only_tracked(&self) -> bool {
        self.rows.live() == self.rows.padded_len()
    }

    fn forward(&self, inputs: [&FlexTensor; 13]) -> (FlexTensor, Arc<Saved>) {
        let (x, a, m) = halves(inputs);
        let c = x.shape()[2];
        let (x_2, attention) = self.attention_half(&self.rows.gather(values(x), c), a);
        let (out, mlp) = self.mlp_half(&x_2, m);
        let saved = Saved {
            gammas: [a[0], m[0]].map(FlexTensor::clone),
            weights: [a[2], a[4], m[2], m[4]].map(FlexTensor::clone),
            attention,
            mlp,
        };
        (self.padded(&out, c), Arc::new(saved))
    }

    // Each half's state is dropped as it returns: evaluation's peak memory is then one
    // half's, not the whole block's.
    fn forward_only(&self, inputs: [&FlexTensor; 13]) -> FlexTensor {
        let (x, a, m) = halves(inputs);
        let c = x.shape()[2];
        let (x_2, _) = self.attention_half(&self.rows.gather(values(x), c), a);
        let (out, _) = self.mlp_half(&x_2, m);
        self.padded(&out, c)
    }

    fn backward(&self, saved: Arc<Saved>, grad: &FlexTensor) -> [FlexTensor; 13] {
        let (s, rows) = (&*saved, &self.rows);
        let [w_attn, w_attn_proj, w_fc, w_mlp_proj] = &s.weights;
        let c = s.gammas[0].shape()[0];
        let g = &rows.gather(values(grad), c);
        let linear_backward = |x: &[f32], w, g: &[f32]| linear_backward(x, w, g, rows);
        let (a, m) = (&s.attention, &s.mlp);
        let (d_mlp_proj, d_mlp) = linear_backward(&m.mlp, w_mlp_proj, &dropped(g, &self.keep.mlp));
        let (d_fc, d_h_2) = linear_backward(&m.h, w_fc, &gelu_backward(&m.fc, &m.gates, &d_mlp));
        let [d_x_2, d_gamma_2, d_beta_2] = normalise_backward(&m.ln, values(&s.gammas[1]), &d_h_2);
        let d_x_2 = add(g, &d_x_2, None);
        let d_attention = dropped(&d_x_2, &self.keep.attention);
        let (d_attn_proj, d_y) = linear_backward(&a.y, w_attn_proj, &d_attention);
        let (d_attn, d_h_1) = linear_backward(&a.h, w_attn, &attention_backward(&a.attended, &d_y));
        let [d_x, d_gamma_1, d_beta_1] = normalise_backward(&a.ln, values(&s.gammas[0]), &d_h_1);
        let [gamma_1, beta_1, gamma_2, beta_2] =
            [d_gamma_1, d_beta_1, d_gamma_2, d_beta_2].map(vector);
        let [
            [w_attn, b_attn],
            [w_attn_proj, b_attn_proj],
            [w_fc, b_fc],
            [w_mlp_proj, b_mlp_proj],
        ] = [d_attn, d_attn_proj, d_fc, d_mlp_proj];
        let d_x = rows.scatter(&add(&d_x_2, &d_x, None), c);
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
