//! The positions of a training batch that carry a target. Each row of `[B, T]` is an item, its
//! end, and then padding up to the data's longest item: on names, more than half the positions
//! are padding. They predict nothing, and causal attention never lets them reach an earlier
//! position, so they are dead: nothing they compute reaches the loss, and their gradients are
//! zero. The Transformer block computes the live rows only, one item's after another's.

/// Which rows of `[B, T, ·]` are live: the first `lengths[b]` of item b.
#[derive(Clone, Debug)]
pub(super) struct Rows {
    t: usize,
    lengths: Vec<usize>,
    /// Where each item's first row is among the live rows, and after the last, their count.
    starts: Vec<usize>,
}

impl Rows {
    /// Every row of `[batch, t, ·]`.
    pub fn all(batch: usize, t: usize) -> Self {
        Rows::new(t, vec![t; batch])
    }

    /// The first `lengths[b]` ≤ `t` rows of each item b.
    pub fn new(t: usize, lengths: Vec<usize>) -> Self {
        assert!(
            lengths.iter().all(|&n| n <= t),
            "at most {t} live rows per item"
        );
        let starts = std::iter::once(0)
            .chain(lengths.iter().scan(0, |at, n| {
                *at += n;
                Some(*at)
            }))
            .collect();
        Rows { t, lengths, starts }
    }

    pub fn batch(&self) -> usize {
        self.lengths.len()
    }

    pub fn t(&self) -> usize {
        self.t
    }

    /// Item `b`'s live rows.
    pub fn len(&self, b: usize) -> usize {
        self.lengths[b]
    }

    /// Where item `b`'s first row is among the live rows.
    pub fn start(&self, b: usize) -> usize {
        self.starts[b]
    }

    /// How many rows are live.
    pub fn live(&self) -> usize {
        self.starts[self.batch()]
    }

    /// How many rows `[B, T, ·]` has, the dead ones too.
    pub fn padded_len(&self) -> usize {
        self.batch() * self.t
    }

    /// The live rows of `x` `[B, T, width]`, one after the other.
    pub fn gather(&self, x: &[f32], width: usize) -> Vec<f32> {
        assert_eq!(x.len(), self.padded_len() * width, "[B, T, {width}]");
        let mut to = Vec::with_capacity(self.live() * width);
        for (item, &n) in x.chunks_exact(self.t * width).zip(&self.lengths) {
            to.extend_from_slice(&item[..n * width]);
        }
        to
    }

    /// Live rows `[live, width]` back in `[B, T, width]`, zeros in the dead ones.
    pub fn scatter(&self, x: &[f32], width: usize) -> Vec<f32> {
        assert_eq!(x.len(), self.live() * width, "[live rows, {width}]");
        let mut to = vec![0.0; self.padded_len() * width];
        for (b, item) in to.chunks_exact_mut(self.t * width).enumerate() {
            let rows = self.start(b) * width..self.start(b + 1) * width;
            item[..rows.len()].copy_from_slice(&x[rows]);
        }
        to
    }
}
