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
    /// The normalised rows x̂ (before γ and β), 1/σ of each row, and γ.
    type State = (FlexTensor, Vec<f32>, FlexTensor);

    fn forward(&self, [x, gamma, beta]: [&FlexTensor; 3]) -> (FlexTensor, Self::State) {
        let (x_values, gamma_values, beta_values) = (values(x), values(gamma), values(beta));
        let (n, c) = (x_values.len(), gamma_values.len());
        let (mut normalised, mut out) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut inv_std = Vec::with_capacity(n / c);
        vectorised(
            #[inline(always)]
            || {
                for x in x_values.chunks_exact(c) {
                    let (mean, row_inv_std) = moments(x);
                    let x_hat = x.iter().map(|&x| (x - mean) * row_inv_std);
                    append(&mut normalised, c, x_hat);
                    let x_hat = &normalised[normalised.len() - c..];
                    let affine = x_hat.iter().zip(gamma_values).zip(beta_values);
                    append(&mut out, c, affine.map(|((&x, &g), &b)| x * g + b));
                    inv_std.push(row_inv_std);
                }
            },
        );
        let shape = x.shape();
        let normalised = tensor(normalised, shape.clone());
        let out = tensor(out, shape);
        (out, (normalised, inv_std, gamma.clone()))
    }

    /// dβ = Σ g and dγ = Σ g·x̂ over rows; dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) / σ with ĝ = g·γ.
    fn backward(
        &self,
        (normalised, inv_std, gamma): Self::State,
        grad: &FlexTensor,
    ) -> [FlexTensor; 3] {
        let (x_hat, gamma_values) = (values(&normalised), values(&gamma));
        let c = gamma_values.len();
        let mut dx = Vec::with_capacity(x_hat.len());
        let (mut d_gamma, mut d_beta) = (vec![0.0; c], vec![0.0; c]);
        let (mut g_hat, mut gx) = (vec![0.0; c], vec![0.0; c]);
        vectorised(
            #[inline(always)]
            || {
                let rows = values(grad).chunks_exact(c).zip(x_hat.chunks_exact(c));
                for ((g, x_hat), &inv_std) in rows.zip(&inv_std) {
                    for (((db, dg), &g), &x) in
                        d_beta.iter_mut().zip(&mut d_gamma).zip(g).zip(x_hat)
                    {
                        *db += g;
                        *dg += g * x;
                    }
                    g_hat
                        .iter_mut()
                        .zip(g.iter().zip(gamma_values))
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
        let dx = tensor(dx, normalised.shape());
        [dx, tensor(d_gamma, [c]), tensor(d_beta, [c])]
    }
}

/// The mean of `x` and 1/σ.
#[inline(always)]
fn moments(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let var = sum_of(x, |x| (x - mean) * (x - mean)) / n;
    (mean, 1.0 / (var + EPSILON).sqrt())
}
