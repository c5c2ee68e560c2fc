//! σ, tanh and the tanh GELU, each one pass over the tensor on the CPU backend.
//!
//! Every gate, hidden layer and the Transformer's MLP go through one of these. Burn's CPU backend
//! computes them with libm's scalar `expf`/`tanhf` one element at a time (GELU as six separate
//! operations), and its autodiff keeps σ's input to compute σ again in the backward pass. Here
//! the CPU backend gets one loop the compiler vectorises (Cephes' `expf` polynomial, within 2
//! ulp of libm's) and a backward pass from what the forward pass kept. Other backends (CUDA) use
//! burn's own functions.

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

/// σ(x) = 1 / (1 + e⁻ˣ).
pub fn sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    apply::<Sigmoid, B, D>(x, activation::sigmoid)
}

/// tanh(x) = 2σ(2x) − 1.
pub fn tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    apply::<Tanh, B, D>(x, Tensor::tanh)
}

/// makemore.py's NewGELU, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) = x·σ(u) with
/// u = 2√(2/π)·(x + 0.044715·x³).
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    apply::<Gelu, B, D>(x, activation::gelu_approximate)
}

/// An elementwise function and its derivative, given the tensor the forward pass kept.
trait Pointwise: Send + std::fmt::Debug + 'static {
    /// Whether the backward pass needs the input (else the output).
    const KEEPS_INPUT: bool;
    fn value(x: f32) -> f32;
    /// The derivative at an element, from the kept input or output there.
    fn derivative(kept: f32) -> f32;
}

#[derive(Debug)]
struct Sigmoid;

impl Pointwise for Sigmoid {
    const KEEPS_INPUT: bool = false;
    fn value(x: f32) -> f32 {
        sigmoid_one(x)
    }
    fn derivative(s: f32) -> f32 {
        s * (1.0 - s)
    }
}

#[derive(Debug)]
struct Tanh;

impl Pointwise for Tanh {
    const KEEPS_INPUT: bool = false;
    fn value(x: f32) -> f32 {
        2.0 * sigmoid_one(2.0 * x) - 1.0
    }
    fn derivative(t: f32) -> f32 {
        1.0 - t * t
    }
}

#[derive(Debug)]
struct Gelu;

impl Gelu {
    /// 2√(2/π)
    const K: f32 = std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::SQRT_2;
    const A: f32 = 0.044_715;
}

impl Pointwise for Gelu {
    const KEEPS_INPUT: bool = true;
    fn value(x: f32) -> f32 {
        x * sigmoid_one(x * (Gelu::K + Gelu::K * Gelu::A * x * x))
    }
    fn derivative(x: f32) -> f32 {
        let s = sigmoid_one(x * (Gelu::K + Gelu::K * Gelu::A * x * x));
        s + x * s * (1.0 - s) * (Gelu::K + 3.0 * Gelu::K * Gelu::A * x * x)
    }
}

type CpuTensor = FloatTensor<Autodiff<Flex>>;

/// `P` on the CPU backend's f32 tensors, with and without autodiff; `fallback` elsewhere.
fn apply<P: Pointwise, B: Backend, const D: usize>(
    x: Tensor<B, D>,
    fallback: fn(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    let TensorPrimitive::Float(primitive) = x.clone().into_primitive() else {
        return fallback(x);
    };
    let primitive: Box<dyn Any> = Box::new(primitive);
    let primitive = match primitive.downcast::<FlexTensor>() {
        Ok(tensor) if tensor.dtype() == DType::F32 => return rewrap(map::<P>(*tensor)),
        Ok(_) => return fallback(x),
        Err(other) => other,
    };
    match primitive.downcast::<CpuTensor>() {
        Ok(tensor) if tensor.primitive.dtype() == DType::F32 => rewrap(tracked::<P>(*tensor)),
        _ => fallback(x),
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

#[derive(Debug)]
struct PointwiseBackward<P>(std::marker::PhantomData<P>);

impl<P: Pointwise> Backward<Flex, 1> for PointwiseBackward<P> {
    /// The input or the output of the forward pass, as `P::KEEPS_INPUT` says.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let kept = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let mut values = slice(&contiguous(grad)).to_vec();
            for_each(&mut values, slice(&kept), |g, k| g * P::derivative(k));
            FlexTensor::from_data(TensorData::new(values, kept.shape()))
        });
    }
}

fn tracked<P: Pointwise>(x: CpuTensor) -> CpuTensor {
    match PointwiseBackward::<P>(std::marker::PhantomData)
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let input = contiguous(x.primitive);
            let output = map::<P>(input.clone());
            let kept = if P::KEEPS_INPUT {
                input
            } else {
                output.clone()
            };
            prep.finish(kept, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(map::<P>(x.primitive)),
    }
}

fn map<P: Pointwise>(x: FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let mut values = slice(&x).to_vec();
    for_each(&mut values, slice(&x), |_, x| P::value(x));
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

/// `out[i] = f(out[i], with[i])`, vectorised where the CPU allows.
#[inline(always)]
fn for_each(out: &mut [f32], with: &[f32], f: impl Fn(f32, f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { for_each_avx2(out, with, f) };
    }
    out.iter_mut().zip(with).for_each(|(o, w)| *o = f(*o, *w));
}

/// The same loop, compiled for 8 lanes. Rust never fuses a multiply and an add on its own, so
/// both versions round every operation alike and give identical results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn for_each_avx2(out: &mut [f32], with: &[f32], f: impl Fn(f32, f32) -> f32) {
    out.iter_mut().zip(with).for_each(|(o, w)| *o = f(*o, *w));
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

    /// Each function and its derivative against f64 references, over [-80, 80].
    #[test]
    fn values_and_derivatives_match_f64_references() {
        let sigma = |x: f64| 1.0 / (1.0 + (-x).exp());
        let gelu = |x: f64| {
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
            0.5 * x * (1.0 + u.tanh())
        };
        let close = |ours: f32, reference: f64, what: &str, x: f32| {
            let tolerance = 8.0 * f32::EPSILON as f64 * reference.abs() + 1e-6;
            let error = (ours as f64 - reference).abs();
            assert!(error <= tolerance, "{what}({x}) = {ours}, not {reference}");
        };
        for i in -16_000..=16_000 {
            let x = i as f32 * 0.005;
            let xd = x as f64;
            close(Sigmoid::value(x), sigma(xd), "σ", x);
            close(Tanh::value(x), xd.tanh(), "tanh", x);
            close(Gelu::value(x), gelu(xd), "gelu", x);
            let ds = sigma(xd) * (1.0 - sigma(xd));
            close(Sigmoid::derivative(Sigmoid::value(x)), ds, "σ'", x);
            close(
                Tanh::derivative(Tanh::value(x)),
                1.0 - xd.tanh().powi(2),
                "tanh'",
                x,
            );
            let h = 1e-4;
            let numeric = (gelu(xd + h) - gelu(xd - h)) / (2.0 * h);
            close(Gelu::derivative(x), numeric, "gelu'", x);
        }
        assert!(sigmoid_one(-200.0) < 1e-37 && sigmoid_one(200.0) == 1.0);
    }
}
