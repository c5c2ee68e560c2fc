//! The bag of words' average of each position with every earlier one, as running sums.
//!
//! As a product with a `[T, T]` averaging matrix it is one small matrix product per item, and two
//! more per item in the backward pass; running sums along the sequence do the same in one pass
//! each way.

use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::TensorMetadata;

use super::{CpuOp, on_cpu, primitive, tensor, values, vectorised};

/// `x` `[B, T, C]` → the mean of positions 0..=t at each position t. `fallback` computes it with
/// burn's operations, on other backends.
pub fn causal_mean<B: Backend>(
    x: Tensor<B, 3>,
    fallback: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 3> {
    on_cpu(CausalMean, [primitive(&x)]).unwrap_or_else(|| fallback(x))
}

#[derive(Clone, Debug)]
struct CausalMean;

impl CpuOp<1> for CausalMean {
    /// The input's shape.
    type State = burn::tensor::Shape;

    fn forward(&self, [x]: [&FlexTensor; 1]) -> (FlexTensor, Self::State) {
        let shape = x.shape();
        let (t, c) = (shape[1], shape[2]);
        let mut out = values(x).to_vec();
        // s_i = s_(i-1) + x_i, y_i = s_i / (i+1)
        running_sums(
            &mut out,
            t,
            c,
            false,
            #[inline(always)]
            |s, x, w| {
                *s += *x;
                *x = *s * w;
            },
        );
        let out = tensor(out, shape.clone());
        (out, shape)
    }

    /// dx_j = Σ_{i ≥ j} g_i / (i + 1): a running sum from the end.
    fn backward(&self, shape: Self::State, grad: &FlexTensor) -> [FlexTensor; 1] {
        let (t, c) = (shape[1], shape[2]);
        let mut dx = values(grad).to_vec();
        running_sums(
            &mut dx,
            t,
            c,
            true,
            #[inline(always)]
            |s, g, w| {
                *s += *g * w;
                *g = *s;
            },
        );
        [tensor(dx, shape)]
    }
}

/// For each item `[T, C]` of `x`, its rows from the first or (`backwards`) from the last:
/// `step(sum, element, 1/(i+1))` on each element of row i, with one running sum per column.
#[inline(always)]
fn running_sums(
    x: &mut [f32],
    t: usize,
    c: usize,
    backwards: bool,
    step: impl Fn(&mut f32, &mut f32, f32),
) {
    vectorised(
        #[inline(always)]
        || {
            for item in x.chunks_exact_mut(t * c) {
                let mut sum = vec![0.0; c];
                for k in 0..t {
                    let i = if backwards { t - 1 - k } else { k };
                    let w = 1.0 / (i + 1) as f32;
                    for (s, x) in sum.iter_mut().zip(&mut item[i * c..(i + 1) * c]) {
                        step(s, x, w);
                    }
                }
            }
        },
    );
}
