//! AdamW's update of one parameter: the two moments, then the parameter, a pass each.
//!
//! Burn's AdamW makes the update of fourteen tensor operations, each a pass over the parameter
//! and a new tensor; the optimizer took 7% of a Transformer step's time. Here each value is
//! rounded where burn's operations round it, in the same order, so the results are the same
//! bits (tested against burn's AdamW in tests/models.rs).

use std::any::Any;

use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{DType, TensorMetadata, TensorPrimitive};

use super::{contiguous, primitive, rewrap, tensor, values, vectorised, written};

/// The constants of one update, as burn's AdamW rounds them to f32.
#[derive(Clone, Copy, Debug)]
pub struct AdamWUpdate {
    pub betas: [f32; 2],
    pub epsilon: f32,
    /// 1 − βᵢᵗ at this update's time t: the moments' bias corrections.
    pub corrections: [f32; 2],
    pub learning_rate: f32,
    /// 1 − learning rate · weight decay: the decoupled weight decay's factor.
    pub decay: f32,
}

/// The moments after one AdamW update of `param` by `grad` (from those before it, `None` at the
/// first update) and the parameter after it, where the tensors are the CPU backend's f32
/// tensors; `None` elsewhere.
pub fn adamw_update<B: Backend, const D: usize>(
    update: &AdamWUpdate,
    param: &Tensor<B, D>,
    grad: &Tensor<B, D>,
    moments: Option<[&Tensor<B, D>; 2]>,
) -> Option<[Tensor<B, D>; 3]> {
    let (p, g) = (flex_f32(param)?, flex_f32(grad)?);
    let moments = match moments {
        Some([m, v]) => Some([flex_f32(m)?, flex_f32(v)?]),
        None => None,
    };
    let shape = p.shape();
    let [m, v, p] = vectorised(
        #[inline(always)]
        || {
            let [m, v] = next_moments(update, values(&g), moments.as_ref().map(|m| m.each_ref()));
            let p = next_param(update, values(&p), &m, &v);
            [m, v, p]
        },
    );
    let wrap = |x| {
        let x = rewrap::<B, _>(tensor(x, shape.clone()));
        Tensor::from_primitive(TensorPrimitive::Float(x))
    };
    Some([wrap(m), wrap(v), wrap(p)])
}

/// m = β₁·m + (1 − β₁)·g and v = β₂·v + (1 − β₂)·g², from zero moments at the first update.
#[inline(always)]
fn next_moments(u: &AdamWUpdate, g: &[f32], moments: Option<[&FlexTensor; 2]>) -> [Vec<f32>; 2] {
    let [b1, b2] = u.betas;
    let [f1, f2] = [1.0 - b1, 1.0 - b2];
    let n = g.len();
    match moments {
        Some([m, v]) => [
            written(n, values(m).iter().zip(g).map(|(&m, &g)| m * b1 + g * f1)),
            written(
                n,
                values(v).iter().zip(g).map(|(&v, &g)| v * b2 + g * g * f2),
            ),
        ],
        None => [
            written(n, g.iter().map(|&g| g * f1)),
            written(n, g.iter().map(|&g| g * g * f2)),
        ],
    }
}

/// p·(1 − lr·λ) − lr·m̂/(√v̂ + ε), with m̂ and v̂ the bias-corrected moments.
#[inline(always)]
fn next_param(u: &AdamWUpdate, p: &[f32], m: &[f32], v: &[f32]) -> Vec<f32> {
    let [c1, c2] = u.corrections;
    let step = |(&p, (&m, &v)): (&f32, (&f32, &f32))| {
        let delta = (m / c1) / ((v / c2).sqrt() + u.epsilon);
        p * u.decay - delta * u.learning_rate
    };
    written(p.len(), p.iter().zip(m.iter().zip(v)).map(step))
}

/// `x`'s values where it is a CPU backend's f32 tensor.
fn flex_f32<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Option<FlexTensor> {
    let x: Box<dyn Any> = Box::new(primitive(x));
    let x = contiguous(*x.downcast::<FlexTensor>().ok()?);
    (x.dtype() == DType::F32).then_some(x)
}
