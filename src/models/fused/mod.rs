//! Operations with a hand-written forward and backward pass on burn's CPU backend (`flex`).
//!
//! Burn composes linear layers, activations, layer norm, attention and the bag of words' running
//! average of many small tensor operations: each one a pass over memory, an allocation, often a
//! strided copy, and a node of the autodiff graph. At makemore's sizes that overhead, not the
//! arithmetic, dominates a step (figures in BENCHMARKS.md). Here each is one loop the compiler
//! vectorises, forward and back, on flex's f32 tensors, with or without autodiff; every other
//! backend (ndarray, CUDA) computes it with burn's own operations, the `fallback` each takes.
//!
//! | kernel | replaces | tested against |
//! | --- | --- | --- |
//! | `dense` (linear.rs) | `nn::Linear`'s matmul, bias add and their backward | burn's `Linear` |
//! | `product` (product.rs) | gemm's products for `dense` and the block, without its packing | gemm itself, bit for bit |
//! | `layer_norm` | `nn::LayerNorm` | burn's `LayerNorm` |
//! | `causal_attention` | slices, transposes, masked softmax, two batched products | burn's operations |
//! | `transformer_block` | a Transformer block's ten nodes (the kernels above and two residual adds), on the rows with a target only | the kernels op by op, and itself on every row, bit for bit; burn's operations |
//! | `causal_mean` | the product with a `[T, T]` averaging matrix | that product |
//! | `sigmoid`, `tanh`, `gelu`, `log_softmax` | burn's activations | f64 references |
//! | `adamw_update` | burn's AdamW's update of a parameter | burn's AdamW, bit for bit |
//!
//! Each is also checked, forward and backward, through whole training runs: every family on flex
//! and on ndarray agrees within 1e-4 (tests/backend.rs); the AVX2 and plain builds give the same
//! bits. **On a burn upgrade** re-check what this module reaches into, pinned by `=0.21.0`: the
//! autodiff internals (`Backward`, `Ops`, `OpsKind`, `Gradients`, `Checkpointer`), flex's
//! `FlexTensor` (its layout and `as_slice`), and the primitive types `on_cpu` downcasts to; then
//! run the tests above and `makemore bench`.

mod activations;
mod adamw;
mod attention;
mod block;
mod causal_mean;
mod layer_norm;
mod linear;
mod product;
mod rows;

use std::any::Any;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorPrimitive};

pub use activations::{gelu, log_softmax, sigmoid, tanh};
pub use adamw::{AdamWUpdate, adamw_update};
pub use attention::{causal_attention, square_keep, triangle_len};
pub use block::{BlockKeep, BlockLayers, transformer_block};
pub use causal_mean::causal_mean;
pub use layer_norm::layer_norm;
pub use linear::dense;

/// An operation on `N` f32 tensors and its backward pass.
trait CpuOp<const N: usize>: Clone + Send + std::fmt::Debug + 'static {
    /// What the backward pass needs of the forward pass.
    type State: Clone + Send + std::fmt::Debug + 'static;
    /// Whether `on_cpu` fuses it only as a node of the autodiff graph, and leaves plain
    /// tensors (evaluation, sampling) to the fallback.
    fn only_tracked(&self) -> bool {
        false
    }
    /// The output, and the state for the backward pass, from contiguous inputs.
    fn forward(&self, inputs: [&FlexTensor; N]) -> (FlexTensor, Self::State);
    /// The output alone, on plain tensors (no backward pass to come): an op may free what it
    /// computes on the way sooner than its state would hold it.
    fn forward_only(&self, inputs: [&FlexTensor; N]) -> FlexTensor {
        self.forward(inputs).0
    }
    /// The gradient of each input from that of the output (contiguous).
    fn backward(&self, state: Self::State, grad: &FlexTensor) -> [FlexTensor; N];
}

type CpuTensor = FloatTensor<Autodiff<Flex>>;

/// `op` on `inputs` where they are the CPU backend's f32 tensors; `None` elsewhere.
fn on_cpu<O: CpuOp<N>, B: Backend, const N: usize, const D: usize>(
    op: O,
    inputs: [FloatTensor<B>; N],
) -> Option<Tensor<B, D>> {
    let inputs = inputs.map(|x| Box::new(x) as Box<dyn Any>);
    let output = if inputs[0].is::<FlexTensor>() {
        if op.only_tracked() {
            return None;
        }
        let inputs = inputs.map(|x| contiguous(*x.downcast::<FlexTensor>().expect("one backend")));
        if inputs.iter().any(|x| x.dtype() != DType::F32) {
            return None;
        }
        rewrap::<B, _>(op.forward_only(inputs.each_ref()))
    } else if inputs[0].is::<CpuTensor>() {
        let inputs = inputs.map(|x| *x.downcast::<CpuTensor>().expect("one backend"));
        if inputs.iter().any(|x| x.primitive.dtype() != DType::F32) {
            return None;
        }
        rewrap::<B, _>(tracked(op, inputs))
    } else {
        return None;
    };
    Some(Tensor::from_primitive(TensorPrimitive::Float(output)))
}

/// The backend's own primitive, known here by its concrete type, back into one of `B`.
fn rewrap<B: Backend, T: Any>(primitive: T) -> FloatTensor<B> {
    let primitive: Box<dyn Any> = Box::new(primitive);
    *primitive
        .downcast::<FloatTensor<B>>()
        .expect("the primitive came from B")
}

/// `op` as one node of the autodiff graph.
fn tracked<O: CpuOp<N>, const N: usize>(op: O, inputs: [CpuTensor; N]) -> CpuTensor {
    let nodes = inputs.each_ref().map(|x| x.node.clone());
    let kind = Node(op.clone())
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful();
    let primitives = inputs.map(|x| contiguous(x.primitive));
    let (output, state) = op.forward(primitives.each_ref());
    match kind {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

#[derive(Debug)]
struct Node<O>(O);

impl<O: CpuOp<N>, const N: usize> Backward<Flex, N> for Node<O> {
    type State = O::State;

    fn backward(self, ops: Ops<O::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let input_grads = self.0.backward(ops.state, &grad);
        for (parent, grad) in ops.parents.into_iter().zip(input_grads) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// A tensor's float primitive, for `on_cpu`.
fn primitive<B: Backend, const D: usize>(x: &Tensor<B, D>) -> FloatTensor<B> {
    x.clone().into_primitive().tensor()
}

fn contiguous(x: FlexTensor) -> FlexTensor {
    match x.is_contiguous() {
        true => x,
        false => x.to_contiguous(),
    }
}

fn values(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The `n` items of `items`, in a vector allocated for them and not zeroed first: most kernels
/// write their outputs whole, and zeroing them before (`vec![0.0; n]`) took 5% of a Transformer
/// step.
#[inline(always)]
fn written<T>(n: usize, items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    append(&mut out, n, items);
    out
}

/// Appends the `n` items of `items` to `out`. Always inlined, so that within `vectorised` its
/// loop is compiled for AVX2 (`collect` and `extend` are not inlined there, and their loops
/// would not be): keep `items` a map of a few operations per element, which the compiler
/// inlines; the loop of a heavier one is left out of line, without AVX2.
#[inline(always)]
fn append<T>(out: &mut Vec<T>, n: usize, items: impl Iterator<Item = T>) {
    out.reserve(n);
    let len = out.len();
    let slots = out.spare_capacity_mut()[..n].iter_mut();
    // A fold, not a loop with a counter: the counter would be kept in memory, and the loop
    // would not vectorise.
    let count = slots.zip(items).fold(0, |count, (slot, item)| {
        slot.write(item);
        count + 1
    });
    assert!(count == n, "an item for every element");
    // SAFETY: the fold initialised the `count` = `n` elements after the first `len`.
    unsafe { out.set_len(len + n) };
}

/// `f` compiled for AVX2 where the CPU has it, so that its loops work on 8 lanes; `f` (a
/// closure marked `#[inline(always)]`) and what it calls must be inlined for that. Rust never
/// fuses a multiply and an add on its own, so both versions round every operation alike and
/// give identical results.
#[inline(always)]
fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Σ `x`, added in eight interleaved partial sums: a sum taken element by element waits on
/// each addition before the next, and does not vectorise.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    sum_of(x, |x| x)
}

/// Σ `f(x)` over `x`, added as `sum` adds.
#[inline(always)]
fn sum_of(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut partial = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        partial.iter_mut().zip(chunk).for_each(|(p, &x)| *p += f(x));
    }
    partial.iter().sum::<f32>() + rest
}

/// eˣ for x clamped to [−87, 88], where it and its power of two stay normal floats: σ is 0 or 1
/// to float precision beyond. Cephes' `expf` (within 2 ulp of libm's, and vectorisable):
/// eˣ = 2ⁿ·eʳ, n the nearest integer to x/ln 2, eʳ a degree-7 polynomial on |r| ≤ ln 2 / 2.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // n is also in the low bits of `shifted`, read there as an integer because a float-to-int
    // cast (`n as i32`, which saturates) does not vectorise.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    e_r * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests;
