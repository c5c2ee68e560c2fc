//! σ, tanh, the tanh GELU and log-softmax, each one pass over the tensor.
//!
//! Every gate, hidden layer, the Transformer's MLP and every loss go through one of these.
//! Burn's CPU backend computes them with libm's scalar `expf`/`tanhf` one element at a time
//! (GELU and log-softmax as several separate operations), and its autodiff keeps σ's input to
//! compute σ again in the backward pass. Here the backward pass works from what the forward
//! pass kept.

use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::TensorMetadata;
use burn::tensor::activation;

use super::{CpuOp, exp, on_cpu, primitive, sum, tensor, values, vectorised, written};

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
    on_cpu(Gelu, [primitive(&x)]).unwrap_or_else(|| activation::gelu_approximate(x))
}

/// log-softmax over the last dimension.
pub fn log_softmax<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    apply::<LogSoftmax, B, D>(x, |x| activation::log_softmax(x, D - 1))
}

/// A function of a tensor, one pass forward and one back.
trait Fused: Send + std::fmt::Debug + 'static {
    /// Whether the backward pass needs the input (else the output).
    const KEEPS_INPUT: bool;
    /// The output from the input; `row` is the length of the last dimension.
    fn forward(input: &[f32], row: usize) -> Vec<f32>;
    /// The gradient of the input from that of the output, given the kept tensor.
    fn backward(kept: &[f32], grad: &[f32], row: usize) -> Vec<f32>;
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

/// GELU keeps its input and its gate σ(u) for the backward pass, which then needs no exponential
/// and division per element of its own (BENCHMARKS.md has the timing).
#[derive(Clone, Debug)]
struct Gelu;

impl Gelu {
    /// 2√(2/π)
    const K: f32 = std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::SQRT_2;
    const A: f32 = 0.044_715;

    /// σ(u): GELU(x) = x·σ(u).
    #[inline(always)]
    fn gate(x: f32) -> f32 {
        sigmoid_one(x * (Gelu::K + Gelu::K * Gelu::A * x * x))
    }

    /// The derivative at x, whose gate is s.
    #[inline(always)]
    fn derivative(x: f32, s: f32) -> f32 {
        s + x * s * (1.0 - s) * (Gelu::K + 3.0 * Gelu::K * Gelu::A * x * x)
    }
}

impl CpuOp<1> for Gelu {
    /// The input and the gate of each element.
    type State = std::sync::Arc<(FlexTensor, Vec<f32>)>;

    fn forward(&self, [x]: [&FlexTensor; 1]) -> (FlexTensor, Self::State) {
        let (out, gates) = gelu_forward(values(x));
        let state = std::sync::Arc::new((x.clone(), gates));
        (tensor(out, x.shape()), state)
    }

    fn backward(&self, state: Self::State, grad: &FlexTensor) -> [FlexTensor; 1] {
        let (x, gates) = &*state;
        [tensor(
            gelu_backward(values(x), gates, values(grad)),
            x.shape(),
        )]
    }
}

/// GELU of each element of `input`, and its gate σ(u).
pub(super) fn gelu_forward(input: &[f32]) -> (Vec<f32>, Vec<f32>) {
    vectorised(
        #[inline(always)]
        || {
            let gates = written(input.len(), input.iter().map(|&x| Gelu::gate(x)));
            let out = input.iter().zip(&gates).map(|(&x, &s)| x * s);
            (written(input.len(), out), gates)
        },
    )
}

/// The gradient of GELU's input from that of its output, given the input and the gates.
pub(super) fn gelu_backward(input: &[f32], gates: &[f32], grad: &[f32]) -> Vec<f32> {
    vectorised(
        #[inline(always)]
        || {
            let terms = grad.iter().zip(input.iter().zip(gates));
            let grad = terms.map(|(&g, (&x, &s))| g * Gelu::derivative(x, s));
            written(gates.len(), grad)
        },
    )
}

impl<P: Pointwise> Fused for P {
    const KEEPS_INPUT: bool = P::KEEPS_INPUT;
    #[inline(always)]
    fn forward(input: &[f32], _: usize) -> Vec<f32> {
        written(input.len(), input.iter().map(|&x| P::value(x)))
    }
    #[inline(always)]
    fn backward(kept: &[f32], grad: &[f32], _: usize) -> Vec<f32> {
        let terms = grad.iter().zip(kept);
        written(grad.len(), terms.map(|(&g, &k)| g * P::derivative(k)))
    }
}

/// x − max − ln Σ eˣ⁻ᵐᵃˣ along each row; its backward is g − softmax · Σ g, the softmax being
/// the exponential of the kept output.
#[derive(Debug)]
struct LogSoftmax;

impl Fused for LogSoftmax {
    const KEEPS_INPUT: bool = false;
    // Each loop that calls `exp` writes an element per element, so that it vectorises. Its
    // rows are short (the vocabulary), written in two passes each: zeroed first.
    #[inline(always)]
    fn forward(input: &[f32], row: usize) -> Vec<f32> {
        let mut output = vec![0.0; input.len()];
        for (x, out) in input.chunks_exact(row).zip(output.chunks_exact_mut(row)) {
            let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            out.iter_mut().zip(x).for_each(|(o, &v)| *o = exp(v - max));
            let log_sum = sum(out).ln();
            out.iter_mut()
                .zip(x)
                .for_each(|(o, &v)| *o = v - max - log_sum);
        }
        output
    }
    #[inline(always)]
    fn backward(kept: &[f32], grad: &[f32], row: usize) -> Vec<f32> {
        let mut grad = grad.to_vec();
        for (log_p, g) in kept.chunks_exact(row).zip(grad.chunks_exact_mut(row)) {
            let total = sum(g);
            g.iter_mut()
                .zip(log_p)
                .for_each(|(g, &l)| *g -= exp(l) * total);
        }
        grad
    }
}

/// `F` as an operation of the CPU backend.
#[derive(Debug)]
struct Activation<F>(std::marker::PhantomData<F>);

impl<F> Clone for Activation<F> {
    fn clone(&self) -> Self {
        Activation(std::marker::PhantomData)
    }
}

impl<F: Fused> CpuOp<1> for Activation<F> {
    /// The input or the output of the forward pass, as `F::KEEPS_INPUT` says.
    type State = FlexTensor;

    fn forward(&self, [x]: [&FlexTensor; 1]) -> (FlexTensor, FlexTensor) {
        let out = vectorised(
            #[inline(always)]
            || F::forward(values(x), last_dim(x)),
        );
        let out = tensor(out, x.shape());
        let kept = if F::KEEPS_INPUT {
            x.clone()
        } else {
            out.clone()
        };
        (out, kept)
    }

    fn backward(&self, kept: FlexTensor, grad: &FlexTensor) -> [FlexTensor; 1] {
        let grad = vectorised(
            #[inline(always)]
            || F::backward(values(&kept), values(grad), last_dim(&kept)),
        );
        [tensor(grad, kept.shape())]
    }
}

/// `F` on the CPU backend, `fallback` elsewhere.
fn apply<F: Fused, B: Backend, const D: usize>(
    x: Tensor<B, D>,
    fallback: fn(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    on_cpu(Activation::<F>(std::marker::PhantomData), [primitive(&x)])
        .unwrap_or_else(|| fallback(x))
}

fn last_dim(x: &FlexTensor) -> usize {
    let shape = x.shape();
    match shape.num_dims() {
        0 => 1,
        d => shape[d - 1].max(1),
    }
}

#[inline(always)]
fn sigmoid_one(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
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
            close(x * Gelu::gate(x), gelu(xd), "gelu", x);
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
            close(Gelu::derivative(x, Gelu::gate(x)), numeric, "gelu'", x);
        }
        assert!(sigmoid_one(-200.0) < 1e-37 && sigmoid_one(200.0) == 1.0);
    }

    /// `F` forward and backward, compiled for the CPU's baseline.
    #[inline(never)]
    fn plain<F: Fused>(x: &[f32], row: usize) -> (Vec<f32>, Vec<f32>) {
        let out = F::forward(x, row);
        let grad = F::backward(&out, x, row);
        (out, grad)
    }

    /// `F` forward and backward, compiled for AVX2 where the CPU has it.
    fn fast<F: Fused>(x: &[f32], row: usize) -> (Vec<f32>, Vec<f32>) {
        vectorised(
            #[inline(always)]
            || {
                let out = F::forward(x, row);
                let grad = F::backward(&out, x, row);
                (out, grad)
            },
        )
    }

    /// Rust never contracts a multiply and an add, so the 8-lane code must round as the plain
    /// code does: the same bits, not merely close ones. (Where the CPU lacks AVX2 both are the
    /// plain code and this proves nothing; CI's and our machines have it.)
    #[test]
    fn avx2_and_plain_code_give_the_same_bits() {
        let x: Vec<f32> = (0..27 * 400)
            .map(|i| (i as f32 * 0.618).sin() * 95.0)
            .collect();
        let bits = |(a, b): (Vec<f32>, Vec<f32>)| {
            (a.iter().chain(&b).map(|v| v.to_bits())).collect::<Vec<u32>>()
        };
        type Both = fn(&[f32], usize) -> (Vec<f32>, Vec<f32>);
        let cases: [(&str, Both, Both); 3] = [
            ("sigmoid", plain::<Sigmoid>, fast::<Sigmoid>),
            ("tanh", plain::<Tanh>, fast::<Tanh>),
            ("log_softmax", plain::<LogSoftmax>, fast::<LogSoftmax>),
        ];
        for (name, plain, fast) in cases {
            assert_eq!(bits(plain(&x, 27)), bits(fast(&x, 27)), "{name}");
        }
        let gelu_plain: Vec<u32> = x.iter().map(|&v| (v * Gelu::gate(v)).to_bits()).collect();
        let gelu_fast: Vec<u32> = vectorised(
            #[inline(always)]
            || x.iter().map(|&v| (v * Gelu::gate(v)).to_bits()).collect(),
        );
        assert_eq!(gelu_plain, gelu_fast, "gelu");
    }

    /// Log-softmax of two rows and its backward against f64 references.
    #[test]
    fn log_softmax_and_its_gradient_match_f64_references() {
        let x = [0.5f32, -1.25, 3.0, 0.0, -40.0, 2.5, 2.5, 1.0];
        let grad = [0.1f32, -0.2, 0.3, 0.05, 1.0, 0.0, -1.0, 0.5];
        let out = LogSoftmax::forward(&x, 4);
        let back = LogSoftmax::backward(&out, &grad, 4);
        for r in 0..2 {
            let row: Vec<f64> = x[r * 4..r * 4 + 4].iter().map(|&v| v as f64).collect();
            let log_sum = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            let g: Vec<f64> = grad[r * 4..r * 4 + 4].iter().map(|&v| v as f64).collect();
            let total: f64 = g.iter().sum();
            for i in 0..4 {
                let log_p = row[i] - log_sum;
                let expected = g[i] - log_p.exp() * total;
                assert!(
                    (out[r * 4 + i] as f64 - log_p).abs() < 1e-5,
                    "log p {r},{i}"
                );
                assert!(
                    (back[r * 4 + i] as f64 - expected).abs() < 1e-5,
                    "grad {r},{i}"
                );
            }
        }
    }
}
