//! The fused kernels against burn's operations and f64 references, and the helpers' contracts.

/// Distance in units in the last place between two positive floats.
fn ulps(a: f32, b: f32) -> u32 {
    a.to_bits().abs_diff(b.to_bits())
}

/// `exp` against f64's, rounded to f32, at every 64th float of its range [−87, 88] (about
/// 34 million points); beyond it the input is clamped.
#[test]
fn exp_is_within_one_ulp_over_its_range() {
    let mut worst = (0, 0.0f32);
    let negative =
        (0..=(-87.0f32).to_bits() - 0x8000_0000).map(|b| f32::from_bits(b | 0x8000_0000));
    let positive = (0..=88.0f32.to_bits()).map(f32::from_bits);
    for x in negative.chain(positive).step_by(64) {
        let error = ulps(super::exp(x), (x as f64).exp() as f32);
        if error > worst.0 {
            worst = (error, x);
        }
    }
    assert!(worst.0 <= 1, "{} ulps at {}", worst.0, worst.1);
    assert_eq!(super::exp(-1000.0), super::exp(-87.0));
    assert_eq!(super::exp(f32::INFINITY), super::exp(88.0));
}

/// `append` adds exactly the items given, after what the vector held, and refuses an
/// iterator that runs short rather than leave elements unwritten.
#[test]
fn append_writes_every_element_or_refuses() {
    let mut out = vec![1.0, 2.0];
    super::append(&mut out, 3, [3.0, 4.0, 5.0, 6.0].into_iter());
    assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(super::written(2, (0..).map(|i| i as f32)), [0.0, 1.0]);
    let short = std::panic::catch_unwind(|| {
        let mut out = vec![1.0f32];
        super::append(&mut out, 3, [2.0, 3.0].into_iter());
    });
    assert!(short.is_err(), "two items for three elements");
}

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use std::sync::Arc;

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::gelu_approximate;

use super::linear::by_rows;
use super::{BlockKeep, BlockLayers, transformer_block};
use super::{causal_attention, causal_mean, dense, gelu, layer_norm, triangle_len};
use crate::models::bow::average;
use crate::models::transformer::attend;

type B = Autodiff<Flex>;

/// How close, relative, a kernel and burn's operations must agree.
const CLOSE: f32 = 1e-5;

fn random<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

fn assert_close<C: Backend, const D: usize>(
    ours: Tensor<C, D>,
    theirs: Tensor<C, D>,
    what: &str,
    tolerance: f32,
) {
    let (ours, theirs) = (
        ours.into_data().to_vec::<f32>().unwrap(),
        theirs.into_data(),
    );
    let theirs = theirs.to_vec::<f32>().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{what}: sizes");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            (a - b).abs() <= tolerance * (1.0 + b.abs()),
            "{what}[{i}]: {a} vs {b}"
        );
    }
}

/// `fused` and `reference` of the same parameters and input give the same output and the
/// same gradients of the input, of `params` and of `matrices`, for a loss that weighs
/// every output. Each runs forward and back before the other starts: burn frees the
/// graph behind a backward pass. Values agree within `tolerance`, relative (0: the same values).
fn check<const D: usize, const E: usize>(
    tolerance: f32,
    what: &str,
    input: Tensor<B, D>,
    params: &[Tensor<B, 1>],
    matrices: &[Tensor<B, 2>],
    fused: impl Fn(Tensor<B, D>) -> Tensor<B, E>,
    reference: impl Fn(Tensor<B, D>) -> Tensor<B, E>,
) {
    let weights = random::<E>(fused(input.clone()).dims());
    let run = |f: &dyn Fn(Tensor<B, D>) -> Tensor<B, E>| {
        let input = input.clone().detach().require_grad();
        let out = f(input.clone());
        let grads = (out.clone() * weights.clone()).sum().backward();
        let grad_1 = |p: &Tensor<B, 1>| p.grad(&grads).expect("a parameter's gradient");
        let grad_2 = |p: &Tensor<B, 2>| p.grad(&grads).expect("a matrix's gradient");
        (
            out,
            input.grad(&grads).expect("the input's gradient"),
            params.iter().map(grad_1).collect::<Vec<_>>(),
            matrices.iter().map(grad_2).collect::<Vec<_>>(),
        )
    };
    let (ours, theirs) = (run(&fused), run(&reference));
    assert_close(ours.0, theirs.0, &format!("{what} output"), tolerance);
    assert_close(
        ours.1,
        theirs.1,
        &format!("{what} input gradient"),
        tolerance,
    );
    for (i, (a, b)) in ours.2.into_iter().zip(theirs.2).enumerate() {
        assert_close(a, b, &format!("{what} parameter {i} gradient"), tolerance);
    }
    for (i, (a, b)) in ours.3.into_iter().zip(theirs.3).enumerate() {
        assert_close(a, b, &format!("{what} matrix {i} gradient"), tolerance);
    }
}

#[test]
fn attention_matches_burns_operations() {
    // 3 items × 3 heads: 9 lanes, one more than a block of 8.
    let qkv = random([3, 7, 3 * 12]);
    let fused = |x| causal_attention(x, 3, None, |_| panic!("the CPU backend fuses it"));
    check(CLOSE, "attention", qkv, &[], &[], fused, |x| {
        attend(x, 3, None)
    });
}

/// With dropout's keep-factors (every tenth weight dropped, the rest scaled as by p = 0.1),
/// the weights times them weigh the values, forward and back.
#[test]
fn attention_with_dropout_matches_burns_operations() {
    let (batch, heads, t) = (3, 3, 7);
    let keep: Vec<f32> = (0..triangle_len(batch, heads, t))
        .map(|i| if i % 10 == 3 { 0.0 } else { 1.0 / 0.9 })
        .collect();
    let keep: std::sync::Arc<[f32]> = keep.into();
    let qkv = random([batch, t, 3 * 12]);
    let fused = |x| {
        causal_attention(x, heads, Some(keep.clone()), |_| {
            panic!("the CPU backend fuses it")
        })
    };
    check(CLOSE, "attention with dropout", qkv, &[], &[], fused, |x| {
        attend(x, heads, Some(&keep))
    });
}

/// A Transformer block as one node gives the same bits, forward and back, as its kernels
/// op by op, and agrees with burn's own operations; with dropout's keep-factors too.
#[test]
fn transformer_block_is_its_operations_op_by_op() {
    let (batch, t) = (3, 7);
    let block = TestBlock::new(12, 3);
    for keep in [BlockKeep::default(), block.dropout(batch, t)] {
        let x = random([batch, t, block.c]);
        let fused = |x| block.fused(x, &keep, None);
        let (ours, burns) = (false, true);
        let op_by_op = |x| block_by_ops(x, &block.layers(), &keep, ours);
        check(
            0.0,
            "block",
            x.clone(),
            &block.params(),
            &block.matrices(),
            fused,
            op_by_op,
        );
        let reference = |x| block_by_ops(x, &block.layers(), &keep, burns);
        check(
            CLOSE,
            "block",
            x,
            &block.params(),
            &block.matrices(),
            fused,
            reference,
        );
    }
}

/// Computing only each item's first rows, where the loss looks, gives those rows the same bits
/// as computing every row, and every gradient the same bits; with dropout, with an item of
/// one row and one of all, past the 512 rows that gemm sums in one pass, and with live rows
/// so few (21 of 12 each) that gemm would sum their products in another order.
#[test]
fn transformer_block_on_live_rows_is_the_block_on_all() {
    let block = TestBlock::new(12, 3);
    for (batch, t) in [(8, 7), (40, 14), (5, 7)] {
        let live: Vec<usize> = (0..batch).map(|b| [1, t, 3, t - 2, 5][b % 5]).collect();
        let mask = (0..batch * t).map(|r| f32::from(r % t < live[r / t]));
        let mask =
            Tensor::<B, 1>::from_floats(mask.collect::<Vec<_>>().as_slice(), &Default::default())
                .reshape([batch, t, 1]);
        for keep in [BlockKeep::default(), block.dropout(batch, t)] {
            let x = random([batch, t, block.c]);
            let on_live = |x| block.fused(x, &keep, Some(&live)) * mask.clone();
            let on_all = |x| block.fused(x, &keep, None) * mask.clone();
            let (params, matrices) = (block.params(), block.matrices());
            check(0.0, "live rows", x, &params, &matrices, on_live, on_all);
        }
    }
}

/// A block's layers with random parameters, `c` wide with `heads` heads.
struct TestBlock {
    c: usize,
    heads: usize,
    norms: [LayerNorm<B>; 2],
    /// Queries-keys-values, the attention's projection, the MLP's two.
    linears: [Linear<B>; 4],
}

impl TestBlock {
    fn new(c: usize, heads: usize) -> Self {
        let norm = || {
            let mut norm = LayerNormConfig::new(c).init::<B>(&Default::default());
            norm.gamma = Param::from_tensor(random([c]));
            norm.beta = Some(Param::from_tensor(random([c])));
            norm
        };
        let linear = |(i, o)| LinearConfig::new(i, o).init::<B>(&Default::default());
        TestBlock {
            c,
            heads,
            norms: [norm(), norm()],
            linears: [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)].map(linear),
        }
    }

    fn layers(&self) -> BlockLayers<'_, B> {
        let [ln_1, ln_2] = &self.norms;
        let [c_attn, attention_proj, c_fc, mlp_proj] = &self.linears;
        BlockLayers {
            ln_1,
            c_attn,
            attention_proj,
            ln_2,
            c_fc,
            mlp_proj,
            heads: self.heads,
        }
    }

    /// γ and β of both norms, then the linear layers' biases.
    fn params(&self) -> Vec<Tensor<B, 1>> {
        let norms = self
            .norms
            .iter()
            .flat_map(|n| [n.gamma.val(), n.beta.as_ref().unwrap().val()]);
        let biases = self.linears.iter().map(|l| l.bias.as_ref().unwrap().val());
        norms.chain(biases).collect()
    }

    fn matrices(&self) -> Vec<Tensor<B, 2>> {
        self.linears.iter().map(|l| l.weight.val()).collect()
    }

    /// Keep-factors for `[batch, t, c]`: every tenth dropped, the rest scaled as by p = 0.1.
    fn dropout(&self, batch: usize, t: usize) -> BlockKeep {
        let factors = |n: usize| -> Option<Arc<[f32]>> {
            let keep = (0..n).map(|i| if i % 10 == 3 { 0.0 } else { 1.0 / 0.9 });
            Some(keep.collect())
        };
        BlockKeep {
            weights: factors(triangle_len(batch, self.heads, t)),
            attention: factors(batch * t * self.c),
            mlp: factors(batch * t * self.c),
        }
    }

    fn fused(&self, x: Tensor<B, 3>, keep: &BlockKeep, live: Option<&[usize]>) -> Tensor<B, 3> {
        transformer_block(x, &self.layers(), keep, live, |_| {
            panic!("fused on the CPU")
        })
    }
}

/// A Transformer block op by op: with the fused kernels, or with burn's operations.
fn block_by_ops(
    x: Tensor<B, 3>,
    l: &BlockLayers<B>,
    keep: &BlockKeep,
    burns: bool,
) -> Tensor<B, 3> {
    let norm = |n: &LayerNorm<B>, x| {
        if burns {
            n.forward(x)
        } else {
            layer_norm(n, x)
        }
    };
    let linear = |layer: &Linear<B>, x| {
        if burns {
            by_rows(layer, x)
        } else {
            dense(layer, x)
        }
    };
    let dropped = |x: Tensor<B, 3>, keep: &Option<Arc<[f32]>>| match keep {
        Some(keep) => {
            x.clone() * Tensor::from_data(TensorData::new(keep.to_vec(), x.shape()), &x.device())
        }
        None => x,
    };
    let qkv = linear(l.c_attn, norm(l.ln_1, x.clone()));
    let y = match burns {
        true => attend(qkv, l.heads, keep.weights.as_deref()),
        false => causal_attention(qkv, l.heads, keep.weights.clone(), |_| unreachable!()),
    };
    let x = x + dropped(linear(l.attention_proj, y), &keep.attention);
    let h = linear(l.c_fc, norm(l.ln_2, x.clone()));
    let h = if burns { gelu_approximate(h) } else { gelu(h) };
    x + dropped(linear(l.mlp_proj, h), &keep.mlp)
}

#[test]
fn causal_mean_matches_the_averaging_product() {
    let fused = |x| causal_mean(x, |_| panic!("the CPU backend fuses it"));
    check(
        CLOSE,
        "causal mean",
        random([3, 7, 5]),
        &[],
        &[],
        fused,
        average,
    );
}

#[test]
fn layer_norm_matches_burns() {
    let mut norm = LayerNormConfig::new(10).init::<B>(&Default::default());
    norm.gamma = Param::from_tensor(random([10]));
    norm.beta = Some(Param::from_tensor(random([10])));
    let params = [norm.gamma.val(), norm.beta.as_ref().unwrap().val()];
    let x = random([4, 5, 10]);
    check(
        CLOSE,
        "layer norm",
        x,
        &params,
        &[],
        |x| layer_norm(&norm, x),
        |x| norm.forward(x),
    );
}

#[test]
fn linear_matches_burns() {
    for bias in [true, false] {
        let layer = LinearConfig::new(6, 9)
            .with_bias(bias)
            .init::<B>(&Default::default());
        let params: Vec<_> = layer.bias.iter().map(|b| b.val()).collect();
        let x = random([4, 5, 6]);
        let matrices = [layer.weight.val()];
        check(
            CLOSE,
            "linear",
            x,
            &params,
            &matrices,
            |x| dense(&layer, x),
            |x| by_rows(&layer, x),
        );
    }
}

/// The product kernel against gemm itself, bit for bit: every orientation of a and b the dense
/// layers use (x·W, g·Wᵀ, xᵀ·g), with and without a start, on shapes with partial tiles of rows
/// and columns, from 3 to 512 terms, and large enough to be split among threads; and where gemm
/// sums otherwise, gemm's own result.
#[test]
fn product_sums_as_gemm_does() {
    use super::product::{Matrix, by_gemm, product, sums_as_gemm};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut values = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| rng.random_range(-1.0f32..1.0) * 2f32.powi(rng.random_range(-8..8)))
            .collect()
    };
    let shapes = [
        [2, 3, 200],
        [11, 64, 27],
        [7, 7, 64],
        [30, 115, 9],
        [17, 256, 17],
        [115, 64, 192],
        [115, 256, 64],
        [64, 115, 192],
        [200, 256, 192],
        [31, 512, 40],
        // gemm's other paths: more than 512 terms, at most 256 outputs, 2 terms, one column
        [40, 513, 24],
        [16, 64, 16],
        [50, 2, 50],
        [300, 30, 1],
    ];
    for [m, k, n] in shapes {
        let (a, b, start) = (values(m * k), values(k * n), values(n));
        for (a_t, b_t, with_start) in (0..8).map(|i| (i & 1 == 1, i & 2 == 2, i & 4 == 4)) {
            let a = match a_t {
                true => Matrix::rows(&a, k, m).t(),
                false => Matrix::rows(&a, m, k),
            };
            let b = match b_t {
                true => Matrix::rows(&b, n, k).t(),
                false => Matrix::rows(&b, k, n),
            };
            let start = with_start.then_some(start.as_slice());
            let bits = |x: Vec<f32>| x.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            assert!(
                bits(product(a, b, start)) == bits(by_gemm(a, b, start)),
                "{m}×{k}·{k}×{n}, aᵀ {a_t}, bᵀ {b_t}, start {with_start}"
            );
        }
    }
    assert_eq!(
        shapes.map(sums_as_gemm).iter().filter(|&&own| own).count(),
        10,
        "the kernel computes the first ten (with a transposed, at least)"
    );
}
