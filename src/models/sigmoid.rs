//! σ(x) on the CPU backend without libm's scalar `expf`.
//!
//! Every gate, tanh (2σ(2x) − 1) and the GELU go through σ. Burn's CPU backend computes it one
//! `expf` call per element, and its autodiff keeps the input and computes σ again in the
//! backward pass. Here the CPU backend gets a loop the compiler vectorises (Cephes' `expf`
//! polynomial, within 2 ulp of libm's) and a backward pass from the kept output, σ(1 − σ).
//! Other backends (CUDA) use burn's own sigmoid.

use std::any::Any;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorMetadata, TensorPrimitive};

type CpuTensor = FloatTensor<Autodiff<Flex>>;

pub fn sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let TensorPrimitive::Float(primitive) = x.clone().into_primitive() else {
        return activation::sigmoid(x);
    };
    let primitive: Box<dyn Any> = Box::new(primitive);
    let primitive = match primitive.downcast::<FlexTensor>() {
        Ok(tensor) if tensor.dtype() == DType::F32 => return rewrap(forward(*tensor)),
        Ok(_) => return activation::sigmoid(x),
        Err(other) => other,
    };
    match primitive.downcast::<CpuTensor>() {
        Ok(tensor) if tensor.primitive.dtype() == DType::F32 => rewrap(tracked(*tensor)),
        _ => activation::sigmoid(x),
    }
}

/// The backend's own primitive, known here by its concrete type, back into a tensor of `B`.
fn rewrap<B: Backend, const D: usize, T: Any>(primitive: T) -> Tensor<B, D> {
    let primitive: Box<dyn Any> = Box::new(primitive);
    let primitive = primitive
        .downcast::<B::FloatTensorPrimitive>()
        .expect("the primitive came from B");
    Tensor::from_primitive(TensorPrimitive::Float(*primitive))
}

/// σ as an autodiff operation whose backward pass reads the output it kept.
#[derive(Debug)]
struct SigmoidBackward;

impl Backward<Flex, 1> for SigmoidBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let output = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = contiguous(grad);
            let (s, g) = (slice(&output), slice(&grad));
            let values = s.iter().zip(g).map(|(s, g)| g * s * (1.0 - s)).collect();
            FlexTensor::from_data(TensorData::new(values, output.shape()))
        });
    }
}

fn tracked(x: CpuTensor) -> CpuTensor {
    match SigmoidBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = forward(x.primitive);
            prep.finish(output.clone(), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive)),
    }
}

fn forward(x: FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let mut values = slice(&x).to_vec();
    sigmoid_in_place(&mut values);
    FlexTensor::from_data(TensorData::new(values, x.shape()))
}

fn contiguous(x: FlexTensor) -> FlexTensor {
    match x.is_contiguous() {
        true => x,
        false => x.to_contiguous(),
    }
}

fn slice(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn sigmoid_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { sigmoid_avx2(values) };
    }
    values.iter_mut().for_each(|v| *v = sigmoid_one(*v));
}

/// The same loop, compiled for 8 lanes. Rust never fuses a multiply and an add on its own, so
/// both versions round every operation alike and give identical results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sigmoid_avx2(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = sigmoid_one(*v));
}

#[inline(always)]
fn sigmoid_one(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// eˣ for x clamped to [−87, 88], where it and its power of two stay normal floats: σ is 0 or 1
/// to float precision beyond. Cephes' `expf`: eˣ = 2ⁿ·eʳ, n the nearest integer to x/ln 2, eʳ a
/// degree-7 polynomial on |r| ≤ ln 2 / 2.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_within_a_few_ulp() {
        for i in -16_000..=16_000 {
            let x = i as f32 * 0.005;
            let reference = 1.0 / (1.0 + (-x as f64).exp());
            let ours = sigmoid_one(x) as f64;
            assert!(
                (ours - reference).abs() <= 4.0 * f32::EPSILON as f64 * reference,
                "σ({x}) = {ours}, not {reference}"
            );
        }
        assert!(sigmoid_one(-200.0) < 1e-37 && sigmoid_one(200.0) == 1.0);
    }
}
