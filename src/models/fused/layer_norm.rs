//! Layer normalisation over the last dimension, one pass over the rows each way.
//!
//! Burn's autodiff builds it from a mean, a variance, a subtraction, a division, a scale and a
//! shift, each with its backward pass; the Transformer runs nine of them a step.

use burn::backend::flex::FlexTensor;
use burn::nn::LayerNorm;
use burn::prelude::*;
use burn::tensor::TensorMetadata;

use super::{CpuOp, append, on_cpu, primitive, sum, sum_of, tensor, values, vectorised};

/// burn's `LayerNormConfig` default, which every LayerNorm here is made with.
const EPSILON: f32 = 1e-5;

/// `norm` applied to `x`: each row of the last dimension less its mean, over its standard
/// deviation (with ε = 1e-5), times γ, plus β.
pub fn layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let Some(beta) = &norm.beta else {
        return norm.forward(x);
    };
    let inputs = [
        primitive(&x),
        primitive(&norm.gamma.val()),
        primitive(&beta.val()),
    ];
    on_cpu(Normalise, inputs).unwrap_or_else(|| norm.forward(x))
}

#[derive(Clone, Debug)]
struct Normalise;

impl CpuOp<3> for Normalise {
    /// What the backward pass needs, and γ.
    type State = (std::sync::Arc<Normalised>, FlexTensor);

    fn forward(&self, [x, gamma, beta]: [&FlexTensor; 3]) -> (FlexTensor, Self::State) {
        let (out, normalised) = normalise(values(x), values(gamma), values(beta));
        let state = (std::sync::Arc::new(normalised), gamma.clone());
        (tensor(out, x.shape()), state)
    }

    fn backward(&self, (normalised, gamma): Self::State, grad: &FlexTensor) -> [FlexTensor; 3] {
        let [dx, d_gamma, d_beta] = normalise_backward(&normalised, values(&gamma), values(grad));
        let c = d_gamma.len();
        [
            tensor(dx, grad.shape()),
            tensor(d_gamma, [c]),
            tensor(d_beta, [c]),
        ]
    }
}

/// What the backward pass needs of the forward pass: the normalised rows x̂ (before γ and β)
/// and 1/σ of each row.
#[derive(Debug)]
pub(super) struct Normalised {
    x_hat: Vec<f32>,
    inv_std: Vec<f32>,
}

/// Each row of `x` (rows of γ's length) normalised, times γ, plus β.
pub(super) fn normalise(x: &[f32], gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Normalised) {
    let (n, c) = (x.len(), gamma.len());
    let (mut x_hat, mut out) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut inv_std = Vec::with_capacity(n / c);
    vectorised(
        #[inline(always)]
        || {
            for x in x.chunks_exact(c) {
                let (mean, row_inv_std) = moments(x);
                append(&mut x_hat, c, x.iter().map(|&x| (x - mean) * row_inv_std));
                let row = &x_hat[x_hat.len() - c..];
                let affine = row.iter().zip(gamma).zip(beta);
                append(&mut out, c, affine.map(|((&x, &g), &b)| x * g + b));
                inv_std.push(row_inv_std);
            }
        },
    );
    (out, Normalised { x_hat, inv_std })
}

/// dx, dγ and dβ: dβ = Σ g and dγ = Σ g·x̂ over rows; dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) / σ
/// with ĝ = g·γ.
pub(super) fn normalise_backward(
    Normalised { x_hat, inv_std }: &Normalised,
    gamma: &[f32],
    grad: &[f32],
) -> [Vec<f32>; 3] {
    let c = gamma.len();
    let mut dx = Vec::with_capacity(x_hat.len());
    let (mut d_gamma, mut d_beta) = (vec![0.0; c], vec![0.0; c]);
    let (mut g_hat, mut gx) = (vec![0.0; c], vec![0.0; c]);
    vectorised(
        #[inline(always)]
        || {
            let rows = grad.chunks_exact(c).zip(x_hat.chunks_exact(c));
            for ((g, x_hat), &inv_std) in rows.zip(inv_std) {
                for (((db, dg), &g), &x) in d_beta.iter_mut().zip(&mut d_gamma).zip(g).zip(x_hat) {
                    *db += g;
                    *dg += g * x;
                }
                g_hat
                    .iter_mut()
                    .zip(g.iter().zip(gamma))
                    .for_each(|(gh, (&g, &gamma))| *gh = g * gamma);
                let mean_g = sum(&g_hat) / c as f32;
                gx.iter_mut()
                    .zip(g_hat.iter().zip(x_hat))
                    .for_each(|(gx, (&g, &x))| *gx = g * x);
                let mean_gx = sum(&gx) / c as f32;
                let terms = g_hat.iter().zip(x_hat);
                let row = terms.map(|(&g, &x)| (g - mean_g - x * mean_gx) * inv_std);
                append(&mut dx, c, row);
            }
        },
    );
    [dx, d_gamma, d_beta]
}

/// The mean of `x` and 1/σ.
#[inline(always)]
fn moments(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let var = sum_of(x, |x| (x - mean) * (x - mean)) / n;
    (mean, 1.0 / (var + EPSILON).sqrt())
}
