//! A linear layer along the last dimension, x·W + b, as one matrix product each way.
//!
//! Burn's autodiff runs it as a product, a broadcast addition of the bias and, around it, the
//! reshapes of a 3-D input to rows and back, each a node with its own backward pass; and the
//! CPU backend allocates every product's output zeroed and then copies it once more to align
//! it. Here the bias is the product's starting value and the output is written in place.

use burn::backend::flex::FlexTensor;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::TensorMetadata;

use super::product::{Matrix, product};
use super::{CpuOp, on_cpu, primitive, tensor, values, vectorised};

/// `layer` applied along the last dimension of `x`.
pub fn dense<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let weight = primitive(&layer.weight.val());
    let fused = match &layer.bias {
        Some(bias) => on_cpu(Dense, [primitive(&x), weight, primitive(&bias.val())]),
        None => on_cpu(Dense, [primitive(&x), weight]),
    };
    fused.unwrap_or_else(|| by_rows(layer, x))
}

/// `layer` applied to `x` as one `[rows, in]` matrix: burn's `Linear` on a 3-D input multiplies
/// batch by batch and builds one weight gradient per batch element before summing them.
pub(super) fn by_rows<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let mut dims = x.dims();
    let y = layer.forward(x.reshape([-1, dims[D - 1] as i32]));
    dims[D - 1] = y.dims()[1];
    y.reshape(dims)
}

#[derive(Clone, Debug)]
struct Dense;

/// The layer's input and weight.
type Saved = (FlexTensor, FlexTensor);

impl CpuOp<2> for Dense {
    type State = Saved;

    fn forward(&self, [x, weight]: [&FlexTensor; 2]) -> (FlexTensor, Saved) {
        (forward(x, weight, None), (x.clone(), weight.clone()))
    }

    fn backward(&self, (x, weight): Saved, grad: &FlexTensor) -> [FlexTensor; 2] {
        backward(&x, &weight, grad)
    }
}

impl CpuOp<3> for Dense {
    type State = Saved;

    fn forward(&self, [x, weight, bias]: [&FlexTensor; 3]) -> (FlexTensor, Saved) {
        let out = forward(x, weight, Some(values(bias)));
        (out, (x.clone(), weight.clone()))
    }

    fn backward(&self, (x, weight): Saved, grad: &FlexTensor) -> [FlexTensor; 3] {
        let [dx, dw] = backward(&x, &weight, grad);
        let n = weight.shape()[1];
        [dx, dw, tensor(bias_grad(values(grad), n), [n])]
    }
}

fn shape_of(weight: &FlexTensor) -> [usize; 2] {
    [weight.shape()[0], weight.shape()[1]]
}

fn forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&[f32]>) -> FlexTensor {
    let out = affine(values(x), values(weight), shape_of(weight), bias);
    let mut shape = x.shape();
    let last = shape.num_dims() - 1;
    shape[last] = weight.shape()[1];
    tensor(out, shape)
}

fn backward(x: &FlexTensor, weight: &FlexTensor, grad: &FlexTensor) -> [FlexTensor; 2] {
    let [k, n] = shape_of(weight);
    let dx = input_grad(values(weight), [k, n], values(grad));
    let dw = weight_grad(values(x), [k, n], values(grad));
    [tensor(dx, x.shape()), tensor(dw, [k, n])]
}

/// x·W (+ b) for the rows of `x`, W `[k, n]` row after row.
pub(super) fn affine(
    x: &[f32],
    weight: &[f32],
    [k, n]: [usize; 2],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let w = Matrix::rows(weight, k, n);
    product(Matrix::rows(x, x.len() / k, k), w, bias)
}

/// dx = g·Wᵀ, for `affine`'s gradient `grad`.
pub(super) fn input_grad(weight: &[f32], [k, n]: [usize; 2], grad: &[f32]) -> Vec<f32> {
    let g = Matrix::rows(grad, grad.len() / n, n);
    product(g, Matrix::rows(weight, k, n).t(), None)
}

/// dW = xᵀ·g, for `affine`'s rows of `x` and gradient `grad`.
pub(super) fn weight_grad(x: &[f32], [k, n]: [usize; 2], grad: &[f32]) -> Vec<f32> {
    let m = x.len() / k;
    product(Matrix::rows(x, m, k).t(), Matrix::rows(grad, m, n), None)
}

/// db = Σ g over the rows of `grad` (rows of `n`), in row order.
pub(super) fn bias_grad(grad: &[f32], n: usize) -> Vec<f32> {
    let mut db = vec![0.0; n];
    vectorised(
        #[inline(always)]
        || {
            for row in grad.chunks_exact(n) {
                db.iter_mut().zip(row).for_each(|(d, &g)| *d += g);
            }
        },
    );
    db
}
