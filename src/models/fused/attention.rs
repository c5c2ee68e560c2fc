//! Causal multi-head self-attention from the joint query-key-value projection.
//!
//! Burn composes it of three slices, four transposes with their copies, two batched products of
//! small (T×T) matrices, a mask and a softmax, each with its backward pass. Here every (item,
//! head) pair is one lane of
//! a vector of 8: the queries, keys and values of 8 heads are gathered side by side, so each
//! step of the attention is one vector operation for 8 heads at once, kept in registers, no
//! sum runs along a vector, and the masked half of the scores is never computed. Dropout on the
//! attention weights (training only) multiplies them by keep-factors drawn for the triangle.

use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::TensorMetadata;

use std::sync::Arc;

use super::rows::Rows;
use super::{CpuOp, append, exp, on_cpu, primitive, tensor, values, vectorised};

/// `qkv` `[B, T, 3C]` (queries, keys and values of all heads side by side, as one linear
/// layer makes them) → `[B, T, C]`: each head's softmax(q·kᵀ/√hs)·v over positions ≤ t, the
/// heads side by side. `keep`, for dropout, multiplies the weights after the softmax: one
/// factor per (item, head, i, j ≤ i), in that order (`triangle_keep`). `fallback` computes it
/// with burn's operations, on other backends.
pub fn causal_attention<B: Backend>(
    qkv: Tensor<B, 3>,
    heads: usize,
    keep: Option<Arc<[f32]>>,
    fallback: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 3> {
    on_cpu(CausalAttention { heads, keep }, [primitive(&qkv)]).unwrap_or_else(|| fallback(qkv))
}

/// The keep-factors of `causal_attention` for `[B, heads, T, T]` weights, 0 above the
/// diagonal: dropout with burn's operations.
pub fn square_keep<B: Backend>(
    keep: &[f32],
    [batch, heads, t]: [usize; 3],
    device: &B::Device,
) -> Tensor<B, 4> {
    let mut square = vec![0.0; batch * heads * t * t];
    let triangles = keep.chunks_exact(row_start(t));
    for (square, keep) in square.chunks_exact_mut(t * t).zip(triangles) {
        for i in 0..t {
            square[i * t..][..=i].copy_from_slice(&keep[row_start(i)..][..=i]);
        }
    }
    Tensor::from_data(TensorData::new(square, [batch, heads, t, t]), device)
}

/// How many keep-factors `causal_attention` takes for `[B, T, 3C]` with `heads` heads.
pub fn triangle_len(batch: usize, heads: usize, t: usize) -> usize {
    batch * heads * row_start(t)
}

#[derive(Clone, Debug)]
struct CausalAttention {
    heads: usize,
    keep: Option<Arc<[f32]>>,
}

/// A value of 8 (item, head) pairs side by side.
type Lanes = [f32; LANES];
const LANES: usize = 8;

/// Sizes, and where things are in the arrays of lanes. Those hold blocks of 8 lanes one after
/// the other: `[blocks, T, hs]` for queries, keys, values and their gradients, `[blocks,
/// T(T+1)/2]` for the attention weights of the causal triangle. Rows past an item's live ones
/// (`Rows`) hold zeros, and a block computes the positions up to its longest item's end only.
#[derive(Clone, Debug)]
struct Layout {
    rows: Rows,
    t: usize,
    c: usize,
    heads: usize,
    hs: usize,
    blocks: usize,
}

impl Layout {
    /// Of the live `rows` of `[B, T, 3C]` queries, keys and values.
    fn new(rows: &Rows, c3: usize, heads: usize) -> Self {
        let c = c3 / 3;
        Layout {
            rows: rows.clone(),
            t: rows.t(),
            c,
            heads,
            hs: c / heads,
            blocks: (rows.batch() * heads).div_ceil(LANES),
        }
    }

    /// Lanes of one block's `[T, hs]`.
    fn per_block(&self) -> usize {
        self.t * self.hs
    }

    fn triangle(&self) -> usize {
        row_start(self.t)
    }

    /// Where head `h` of item `b` is: its block, and its lane there.
    fn lane(&self, b: usize, h: usize) -> (usize, usize) {
        let lane = b * self.heads + h;
        (lane / LANES, lane % LANES)
    }

    /// Where head h of item b starts in the live rows of `[B, T, parts·C]`, at position 0 and
    /// part `part`.
    fn start(&self, (b, h): (usize, usize), part: usize, parts: usize) -> usize {
        (self.rows.start(b) * parts + part) * self.c + h * self.hs
    }

    /// The (item, head) pair in a lane, if any: lanes past the last pair hold zeros.
    fn pair(&self, block: usize, lane: usize) -> Option<(usize, usize)> {
        let pair = block * LANES + lane;
        let pairs = self.rows.batch() * self.heads;
        (pair < pairs).then_some((pair / self.heads, pair % self.heads))
    }

    /// The positions a block computes: up to the end of its longest item.
    fn positions(&self, block: usize) -> usize {
        let items = (0..LANES).filter_map(|lane| self.pair(block, lane));
        items.map(|(b, _)| self.rows.len(b)).max().unwrap_or(0)
    }

    /// The parts of the live rows of `[B, T, P·C]` to `[blocks, T, hs]` each, written in
    /// order, 8 rows read side by side. Runs within `vectorised`.
    #[inline(always)]
    fn gather<const P: usize>(&self, from: &[f32]) -> [Vec<Lanes>; P] {
        let zeros = vec![0.0; self.hs];
        let stride = P * self.c;
        // A loop, not `array::from_fn`: a closure passed there is not inlined here, and its
        // loops would not be compiled for AVX2.
        let mut parts = [(); P].map(|_| Vec::with_capacity(self.blocks * self.per_block()));
        for (part, to) in parts.iter_mut().enumerate() {
            for block in 0..self.blocks {
                let mut rows: [&[f32]; LANES] = [&zeros; LANES];
                let positions = self.positions(block);
                for i in 0..positions {
                    for (lane, row) in rows.iter_mut().enumerate() {
                        *row = match self.pair(block, lane) {
                            Some(pair) if i < self.rows.len(pair.0) => {
                                &from[self.start(pair, part, P) + i * stride..][..self.hs]
                            }
                            _ => &zeros,
                        };
                    }
                    let lanes = (0..self.hs).map(|d| {
                        let mut lanes = [0.0; LANES];
                        for (x, row) in lanes.iter_mut().zip(&rows) {
                            *x = row[d];
                        }
                        lanes
                    });
                    append(to, self.hs, lanes);
                }
                let past = (self.t - positions) * self.hs;
                append(to, past, std::iter::repeat_n([0.0; LANES], past));
            }
        }
        parts
    }

    /// The inverse of `gather`, live rows only, written in order. Runs within `vectorised`.
    #[inline(always)]
    fn scatter<const P: usize>(&self, from: &[Vec<Lanes>; P]) -> Vec<f32> {
        let mut to = Vec::with_capacity(self.rows.live() * P * self.c);
        for b in 0..self.rows.batch() {
            for i in 0..self.rows.len(b) {
                for from in from {
                    for h in 0..self.heads {
                        let (block, lane) = self.lane(b, h);
                        let row = &from[(block * self.t + i) * self.hs..][..self.hs];
                        append(&mut to, self.hs, row.iter().map(|x| x[lane]));
                    }
                }
            }
        }
        to
    }

    /// `keep`, a triangle per (item, head) in order, to `[blocks, T(T+1)/2]`; lanes past the
    /// last head keep nothing.
    fn gather_triangles(&self, keep: &[f32]) -> Vec<Lanes> {
        let triangle = self.triangle();
        let mut to = vec![[0.0; LANES]; self.blocks * triangle];
        for (pair, keep) in keep.chunks_exact(triangle).enumerate() {
            let (block, lane) = (pair / LANES, pair % LANES);
            for (to, &k) in to[block * triangle..][..triangle].iter_mut().zip(keep) {
                to[lane] = k;
            }
        }
        to
    }

    fn scale(&self) -> f32 {
        1.0 / (self.hs as f32).sqrt()
    }
}

/// What the backward pass needs: the queries, keys and values and the attention weights.
#[derive(Debug)]
pub(super) struct Saved {
    layout: Layout,
    qkv: [Vec<Lanes>; 3],
    weights: Vec<Lanes>,
    dropped: Option<Dropped>,
}

/// With dropout: the keep-factors, and the weights multiplied by them (what weighs the values).
#[derive(Debug)]
struct Dropped {
    keep: Vec<Lanes>,
    kept: Vec<Lanes>,
}

impl CpuOp<1> for CausalAttention {
    type State = Arc<Saved>;

    fn forward(&self, [qkv]: [&FlexTensor; 1]) -> (FlexTensor, Self::State) {
        let [b, t, c3] = qkv.shape().dims();
        let rows = Rows::all(b, t);
        let (out, saved) = attention(values(qkv), &rows, c3, self.heads, self.keep.as_deref());
        (tensor(out, [b, t, c3 / 3]), Arc::new(saved))
    }

    fn backward(&self, saved: Self::State, grad: &FlexTensor) -> [FlexTensor; 1] {
        let l = &saved.layout;
        let shape = [l.rows.batch(), l.t, 3 * l.c];
        [tensor(attention_backward(&saved, values(grad)), shape)]
    }
}

/// `causal_attention` of the live `rows` of `qkv` `[B, T, c3]`, row after row: those of `[B, T,
/// C]`, and what its backward pass needs.
pub(super) fn attention(
    qkv: &[f32],
    rows: &Rows,
    c3: usize,
    heads: usize,
    keep: Option<&[f32]>,
) -> (Vec<f32>, Saved) {
    let l = Layout::new(rows, c3, heads);
    let mut weights = vec![[0.0; LANES]; l.blocks * l.triangle()];
    let mut y = vec![[0.0; LANES]; l.blocks * l.per_block()];
    let mut dropped = keep.map(|keep| Dropped {
        keep: l.gather_triangles(keep),
        kept: vec![[0.0; LANES]; l.blocks * l.triangle()],
    });
    let (qkv, out) = vectorised(
        #[inline(always)]
        || {
            let qkv = l.gather::<3>(qkv);
            for (block, (weights, y)) in weights
                .chunks_exact_mut(l.triangle())
                .zip(y.chunks_exact_mut(l.per_block()))
                .enumerate()
            {
                let [q, k, v] = qkv.each_ref().map(|x| block_of(&l, x, block));
                let dropout = dropped.as_mut().map(|d| {
                    let triangle = |x| triangle_of(&l, x, block);
                    (
                        triangle(&d.keep),
                        &mut d.kept[block * l.triangle()..][..l.triangle()],
                    )
                });
                forward(&l, l.positions(block), [q, k, v], weights, dropout, y)
            }
            (qkv, l.scatter(&[y]))
        },
    );
    let saved = Saved {
        layout: l,
        qkv,
        weights,
        dropped,
    };
    (out, saved)
}

/// The gradient of `attention`'s `qkv`, row after row, from that of its output.
pub(super) fn attention_backward(saved: &Saved, grad: &[f32]) -> Vec<f32> {
    let l = &saved.layout;
    let mut grads = [(); 3].map(|_| vec![[0.0; LANES]; l.blocks * l.per_block()]);
    // The scores' gradients of one block, kept for dk's sums by columns.
    let mut ds = vec![[0.0; LANES]; l.triangle()];
    vectorised(
        #[inline(always)]
        || {
            let [g] = l.gather::<1>(grad);
            for block in 0..l.blocks {
                let [q, k, v] = saved.qkv.each_ref().map(|x| block_of(l, x, block));
                let weights = triangle_of(l, &saved.weights, block);
                let dropout = (saved.dropped.as_ref())
                    .map(|d| [&d.keep, &d.kept].map(|x| triangle_of(l, x, block)));
                let [dq, dk, dv] = grads.each_mut().map(|x| block_of_mut(l, x, block));
                let g = block_of(l, &g, block);
                let t = l.positions(block);
                backward(l, t, [q, k, v], weights, dropout, g, &mut ds, [dq, dk, dv]);
            }
            l.scatter(&grads)
        },
    )
}

fn block_of<'a>(l: &Layout, x: &'a [Lanes], block: usize) -> &'a [Lanes] {
    &x[block * l.per_block()..][..l.per_block()]
}

fn triangle_of<'a>(l: &Layout, x: &'a [Lanes], block: usize) -> &'a [Lanes] {
    &x[block * l.triangle()..][..l.triangle()]
}

fn block_of_mut<'a>(l: &Layout, x: &'a mut [Lanes], block: usize) -> &'a mut [Lanes] {
    &mut x[block * l.per_block()..][..l.per_block()]
}

#[inline(always)]
fn mul(a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|l| a[l] * b[l])
}

#[inline(always)]
fn mul_add(acc: Lanes, a: Lanes, b: Lanes) -> Lanes {
    std::array::from_fn(|l| acc[l] + a[l] * b[l])
}

/// `out[c]` = Σ over `terms` (w, row) of w · row[c·`stride`], every sum in the terms' order.
/// Every product of the attention is one of these: a few outputs at a time, their sums kept in
/// registers, with loops of fixed length inside (the triangle's rows are short and of every
/// length, so loops along them would mostly be spent entering and leaving).
#[inline(always)]
fn combine<'a>(
    out: &mut [Lanes],
    stride: usize,
    terms: impl Iterator<Item = (&'a Lanes, &'a [Lanes])> + Clone,
) {
    let mut c = 0;
    let mut chunks = out.chunks_exact_mut(WIDE);
    for out in &mut chunks {
        out.copy_from_slice(&sums::<WIDE>(terms.clone(), c, stride));
        c += WIDE;
    }
    for out in chunks.into_remainder() {
        [*out] = sums::<1>(terms.clone(), c, stride);
        c += 1;
    }
}

/// Outputs `combine` computes together: with the weight and a row, 6 of the 16 vector registers.
const WIDE: usize = 4;

#[inline(always)]
fn sums<'a, const R: usize>(
    terms: impl Iterator<Item = (&'a Lanes, &'a [Lanes])>,
    c: usize,
    stride: usize,
) -> [Lanes; R] {
    let mut acc = [[0.0; LANES]; R];
    for (w, row) in terms {
        for (r, acc) in acc.iter_mut().enumerate() {
            *acc = mul_add(*acc, *w, row[(c + r) * stride]);
        }
    }
    acc
}

/// Where row i of a causal triangle (its entries j ≤ i) starts, the rows one after the other.
#[inline(always)]
fn row_start(i: usize) -> usize {
    i * (i + 1) / 2
}

/// Row i of `m` `[T, hs]`.
#[inline(always)]
fn row(m: &[Lanes], i: usize, hs: usize) -> &[Lanes] {
    &m[i * hs..][..hs]
}

/// `out[j]` = x · row j of `m` `[T, hs]`, for j < `out.len()`.
#[inline(always)]
fn against_rows(out: &mut [Lanes], x: &[Lanes], m: &[Lanes], hs: usize) {
    combine(out, hs, x.iter().enumerate().map(|(d, x)| (x, &m[d..])));
}

/// `out` = Σ_j `w[j]` · row j of `m` `[T, hs]`.
#[inline(always)]
fn weighted_rows(out: &mut [Lanes], w: &[Lanes], m: &[Lanes], hs: usize) {
    combine(
        out,
        1,
        w.iter().enumerate().map(|(j, w)| (w, row(m, j, hs))),
    );
}

/// Scores of query i on keys j ≤ i, their softmax over j, and y_i = Σ_j w_ij·v_j, for one
/// block of `[T, hs]` lanes and its first `t` positions; `weights` the block's triangle. With
/// `dropout` (the block's keep-factors, and a triangle for the weights times them) y_i = Σ_j
/// w_ij·keep_ij·v_j.
#[inline(always)]
fn forward(
    l: &Layout,
    t: usize,
    [q, k, v]: [&[Lanes]; 3],
    weights: &mut [Lanes],
    mut dropout: Option<(&[Lanes], &mut [Lanes])>,
    y: &mut [Lanes],
) {
    let (hs, scale) = (l.hs, l.scale());
    for i in 0..t {
        let at = row_start(i);
        let w = &mut weights[at..][..=i];
        against_rows(w, row(q, i, hs), k, hs);
        let mut max = [f32::NEG_INFINITY; LANES];
        for w in w.iter() {
            max.iter_mut().zip(w).for_each(|(m, &s)| *m = m.max(s));
        }
        let mut sum = [0.0; LANES];
        for w in w.iter_mut() {
            for ((s, &m), total) in w.iter_mut().zip(&max).zip(&mut sum) {
                *s = exp((*s - m) * scale);
                *total += *s;
            }
        }
        for w in w.iter_mut() {
            w.iter_mut().zip(&sum).for_each(|(s, &total)| *s /= total);
        }
        let w: &[Lanes] = match &mut dropout {
            Some((keep, kept)) => {
                let kept = &mut kept[at..][..=i];
                for ((kept, w), keep) in kept.iter_mut().zip(w.iter()).zip(&keep[at..]) {
                    *kept = mul(*w, *keep);
                }
                kept
            }
            None => w,
        };
        weighted_rows(&mut y[i * hs..][..hs], w, v, hs);
    }
}

/// With w the weights and g the output's gradient: dw_ij = g_i·v_j, the scores' gradient
/// ds_ij = w_ij·(dw_ij − Σ_j' w_ij'·dw_ij')·scale, dq_i = Σ_j ds_ij·k_j, and then by columns
/// dk_j = Σ_i ds_ij·q_i and dv_j = Σ_i w_ij·g_i; for one block, as `forward`. With `dropout`
/// (keep-factors, and the weights times them) dw_ij = g_i·v_j·keep_ij and dv_j = Σ_i
/// w_ij·keep_ij·g_i. The gradients past position `t` are zero, and stay so.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward<'a>(
    l: &Layout,
    t: usize,
    [q, k, v]: [&'a [Lanes]; 3],
    weights: &'a [Lanes],
    dropout: Option<[&'a [Lanes]; 2]>,
    g: &'a [Lanes],
    ds: &'a mut [Lanes],
    [dq, dk, dv]: [&mut [Lanes]; 3],
) {
    let (hs, scale) = (l.hs, l.scale());
    for i in 0..t {
        let at = row_start(i);
        let (w, ds) = (&weights[at..][..=i], &mut ds[at..][..=i]);
        against_rows(ds, row(g, i, hs), v, hs);
        if let Some([keep, _]) = dropout {
            ds.iter_mut()
                .zip(&keep[at..])
                .for_each(|(ds, &keep)| *ds = mul(*ds, keep));
        }
        let mut mean = [0.0; LANES];
        for (ds, w) in ds.iter().zip(w) {
            mean = mul_add(mean, *w, *ds);
        }
        for (ds, w) in ds.iter_mut().zip(w) {
            for ((ds, &w), &m) in ds.iter_mut().zip(w).zip(&mean) {
                *ds = w * (*ds - m) * scale;
            }
        }
        weighted_rows(&mut dq[i * hs..][..hs], ds, k, hs);
    }
    let ds = &*ds;
    let kept = dropout.map_or(weights, |[_, kept]| kept);
    for j in 0..t {
        // Column j of a triangle (its entries i ≥ j), and the rows i ≥ j of `[T, hs]`.
        let column = |tri: &'a [Lanes]| (j..t).map(move |i| &tri[row_start(i) + j]);
        let rows = |m: &'a [Lanes]| (j..t).map(move |i| row(m, i, hs));
        combine(&mut dk[j * hs..][..hs], 1, column(ds).zip(rows(q)));
        combine(&mut dv[j * hs..][..hs], 1, column(kept).zip(rows(g)));
    }
}
