//! a·b for the dense layers: gemm's sums, bit for bit, without its packing.
//!
//! At makemore's sizes (a few hundred rows of 64 to 256) gemm spent a quarter of its time
//! packing its operands into panels and dispatching, outside its microkernel (BENCHMARKS.md).
//! That microkernel sums each output from zero, one fused multiply-add per term in order, and
//! then adds the start. A row-major b is already such a panel, 16 columns wide: the kernel here
//! reads it in place (bᵀ is first copied into rows, once per product), broadcasts a's elements
//! from wherever they lie, and does the same fused multiply-adds in the same order, so every
//! output has gemm's bits (tested against gemm). Where gemm sums otherwise (more than 512 terms,
//! in passes sized by the cache; its kernels for at most 256 outputs, at most 2 terms, a single
//! row or column), where the CPU lacks AVX2 and FMA, and where a's rows are too long for the
//! kernel to read them as fast as it computes (`keeps_up_with`), gemm computes the product.

/// A matrix read from a slice with any row and column strides.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// `data` as `rows` × `cols`, row after row.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "a {rows}×{cols} matrix");
        Matrix {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without moving the data.
    pub fn t(self) -> Self {
        Matrix {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether the last element lies within `data`.
    fn fits(&self) -> bool {
        if self.rows * self.cols == 0 {
            return true;
        }
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// a·b row after row, each row's sums starting from `start` (a row of b's width) where there is
/// one, else from 0.
pub(super) fn product(a: Matrix, b: Matrix, start: Option<&[f32]>) -> Vec<f32> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && start.is_none_or(|row| row.len() == n),
        "a product of matching shapes"
    );
    assert!(a.fits() && b.fits(), "matrices within their slices");
    if sums_as_gemm([m, k, n]) && keeps_up_with(&a) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: just checked that a and b fit their data and their shapes and start's match.
        if let Some(out) = unsafe { kernel::product(a, b, start) } {
            return out;
        }
    }
    by_gemm(a, b, start)
}

/// Whether gemm-common 0.19 sums an `[m, k]`·`[k, n]` product as the kernel here does: in its
/// main path (not a single row or column, more than 256 outputs, more than 2 terms), in one pass
/// (its passes hold at least 512 terms).
pub(super) fn sums_as_gemm([m, k, n]: [usize; 3]) -> bool {
    m >= 2 && n >= 2 && m * n > 256 && (3..=512).contains(&k)
}

/// Whether the kernel's reads of `a` keep up with its arithmetic. A tile reads 6 rows of a side
/// by side, an element of each per step: rows of more than 128 that are not in the cache yet
/// arrive slower than that (cold, 230×384 by 384×96 ran at 57–65 GFLOP/s against gemm's 84,
/// which first copies them into a panel), and a Transformer step took longer with them. Read
/// along its columns (a transposed), one row of a per step, a keeps up.
fn keeps_up_with(a: &Matrix) -> bool {
    a.col_stride != 1 || a.cols <= 128
}

/// `product` by gemm. Gemm writes the whole output when it does not read it: without a start it
/// goes to an allocation that was not zeroed first.
pub(super) fn by_gemm(a: Matrix, b: Matrix, start: Option<&[f32]>) -> Vec<f32> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut out = match start {
        Some(row) => row.repeat(m),
        None => Vec::with_capacity(m * n),
    };
    // SAFETY: `product` checked that every element gemm reads is inside its slice, and `out`
    // holds m·n elements, which gemm reads only with a start and writes all of.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            start.is_some(),
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(m * n * k),
        );
        out.set_len(m * n);
    }
    out
}

/// Burn's CPU backend's rule: threads only for products of `size` = m·n·k ≥ 192³, which pay
/// for them.
fn parallelism(size: usize) -> gemm::Parallelism {
    match size >= 192 * 192 * 192 && rayon::current_num_threads() > 1 {
        true => gemm::Parallelism::Rayon(0),
        false => gemm::Parallelism::None,
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;
    use std::borrow::Cow;

    use rayon::prelude::*;

    use super::Matrix;

    impl Matrix<'_> {
        /// The element in row `i`, column `j`.
        fn at(&self, i: usize, j: usize) -> f32 {
            self.data[i * self.row_stride + j * self.col_stride]
        }
    }

    /// Rows of a tile: its 6 × 2 accumulators, b's two vectors and a's broadcast take 15 of
    /// the 16 vector registers.
    const ROWS: usize = 6;

    /// a·b (+ start), where the CPU has AVX2 and FMA. Safety: a and b fit their data, b has
    /// a row for each column of a, and start, where there is one, a value for each of b's columns.
    pub unsafe fn product(a: Matrix, b: Matrix, start: Option<&[f32]>) -> Option<Vec<f32>> {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        let (m, k, n) = (a.rows, a.cols, b.cols);
        // SAFETY: the CPU has AVX2, and b fits its data.
        let b = &unsafe { row_major(b) };
        let mut out = Vec::with_capacity(m * n);
        let rows_of = |out: &mut [std::mem::MaybeUninit<f32>], first: usize| {
            // SAFETY: the CPU has AVX2 and FMA; a is m × k and start n long, as the caller
            // promises; these rows of the output are rows first.. of a·b, and b is k × n.
            unsafe { tiles(a, first, b, [k, n], start, out) }
        };
        let spare = &mut out.spare_capacity_mut()[..m * n];
        match super::parallelism(m * n * k) {
            gemm::Parallelism::None => rows_of(spare, 0),
            _ => {
                let per_task = m.div_ceil(ROWS * rayon::current_num_threads()) * ROWS;
                spare
                    .par_chunks_mut(per_task * n)
                    .enumerate()
                    .for_each(|(task, out)| rows_of(out, task * per_task));
            }
        }
        // SAFETY: `tiles` wrote every element of the m·n.
        unsafe { out.set_len(m * n) };
        Some(out)
    }

    /// The rows of a·b from row `first`, as many as `out` holds, tile by tile: 16 columns of b
    /// (then 8, then the rest, masked) against 6 rows of a at a time.
    ///
    /// Safety: the CPU has AVX2 and FMA; a has those rows, `b` is `[k, n]` row after row, and
    /// `start`, where there is one, holds n.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tiles(
        a: Matrix,
        first: usize,
        b: &[f32],
        [k, n]: [usize; 2],
        start: Option<&[f32]>,
        out: &mut [std::mem::MaybeUninit<f32>],
    ) {
        // SAFETY: each tile's rows and columns lie within a, b, start and out, as the caller
        // promises of the whole.
        unsafe {
            let rows = out.len() / n;
            let out = out.as_mut_ptr().cast::<f32>();
            let mut j = 0;
            while j < n {
                let width = match n - j {
                    w if w >= 16 => 16,
                    w if w >= 8 => 8,
                    w => w,
                };
                for i in (0..rows).step_by(ROWS) {
                    let tile = Tile {
                        a: a.data.as_ptr().add((first + i) * a.row_stride),
                        a_strides: [a.row_stride, a.col_stride],
                        b: b.as_ptr().add(j),
                        k,
                        n,
                        start: start.map(|row| row.as_ptr().add(j)),
                        out: out.add(i * n + j),
                    };
                    let height = (rows - i).min(ROWS);
                    match width {
                        16 => tile.with::<2, false>(height, 16),
                        8 => tile.with::<1, false>(height, 8),
                        w => tile.with::<1, true>(height, w),
                    }
                }
                j += width;
            }
        }
    }

    /// One tile's operands: its first row of a, its first column of b, start and output, each
    /// with as many rows and columns after it as the tile reads or writes.
    struct Tile {
        a: *const f32,
        /// a's row and column strides.
        a_strides: [usize; 2],
        b: *const f32,
        k: usize,
        /// b's and the output's row length.
        n: usize,
        start: Option<*const f32>,
        out: *mut f32,
    }

    impl Tile {
        /// The tile of `height` (≤ 6) rows, `V` vectors of 8 columns, the last `MASKED` to
        /// `width`. Safety: the CPU has AVX2 and FMA; the tile's operands hold that many.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn with<const V: usize, const MASKED: bool>(&self, height: usize, width: usize) {
            // SAFETY: the caller's promise, for 1 to 6 rows.
            unsafe {
                match height {
                    1 => self.sums::<1, V, MASKED>(width),
                    2 => self.sums::<2, V, MASKED>(width),
                    3 => self.sums::<3, V, MASKED>(width),
                    4 => self.sums::<4, V, MASKED>(width),
                    5 => self.sums::<5, V, MASKED>(width),
                    _ => self.sums::<6, V, MASKED>(width),
                }
            }
        }

        /// Σₚ a[r, p]·b[p, c] for the tile's R rows and V·8 columns (`width` of the last vector's
        /// lanes where `MASKED`), one fused multiply-add per term in order from zero, then
        /// `start` + the sum: gemm's microkernel's order and rounding. Safety: as `with`'s.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn sums<const R: usize, const V: usize, const MASKED: bool>(&self, width: usize) {
            // SAFETY: every element read or written is in the tile's R rows and its columns,
            // within its operands as the caller promises; masked lanes are not touched.
            unsafe {
                let mask = lanes(width);
                let masked = |v: usize| MASKED && v == V - 1;
                let [row_stride, col_stride] = self.a_strides;
                let mut sums = [[_mm256_setzero_ps(); V]; R];
                let mut b = [_mm256_setzero_ps(); V];
                for p in 0..self.k {
                    for (v, b) in b.iter_mut().enumerate() {
                        *b = load(self.b.add(p * self.n + 8 * v), mask, masked(v));
                    }
                    for (r, sums) in sums.iter_mut().enumerate() {
                        let a_rp = _mm256_set1_ps(*self.a.add(r * row_stride + p * col_stride));
                        for (sum, &b) in sums.iter_mut().zip(&b) {
                            *sum = _mm256_fmadd_ps(a_rp, b, *sum);
                        }
                    }
                }
                for (r, sums) in sums.iter().enumerate() {
                    for (v, &sum) in sums.iter().enumerate() {
                        let sum = match self.start {
                            Some(start) => {
                                _mm256_add_ps(load(start.add(8 * v), mask, masked(v)), sum)
                            }
                            None => sum,
                        };
                        let out = self.out.add(r * self.n + 8 * v);
                        match masked(v) {
                            true => _mm256_maskstore_ps(out, mask, sum),
                            false => _mm256_storeu_ps(out, sum),
                        }
                    }
                }
            }
        }
    }

    /// 8 floats from `p`, or only the lanes of `mask` where `masked` (the rest 0). Safety: the
    /// CPU has AVX2; those lanes lie within one allocation.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load(p: *const f32, mask: __m256i, masked: bool) -> __m256 {
        // SAFETY: the caller's promise.
        unsafe {
            match masked {
                true => _mm256_maskload_ps(p, mask),
                false => _mm256_loadu_ps(p),
            }
        }
    }

    /// `b`'s elements row after row: its data where they already lie so; else, where b is the
    /// transpose of a matrix stored row after row, its blocks of 8 × 8 transposed in registers
    /// (copied one by one at the edges, and where b has other strides). Safety: the CPU has
    /// AVX2; `b` fits its data.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_major(b: Matrix) -> Cow<[f32]> {
        let (rows, cols) = (b.rows, b.cols);
        if b.col_stride == 1 && b.row_stride == cols {
            return Cow::Borrowed(&b.data[..rows * cols]);
        }
        let mut out = vec![0.0; rows * cols];
        let blocks = match b.row_stride == 1 {
            true => [rows / 8 * 8, cols / 8 * 8],
            false => [0, 0],
        };
        // Two blocks side by side write whole cache lines of the output, 16 columns, and read
        // 16 rows of bᵀ along, each line of them read whole by two blocks one after the other.
        for pair in (0..blocks[1]).step_by(16) {
            for i in (0..blocks[0]).step_by(8) {
                for j in (pair..blocks[1].min(pair + 16)).step_by(8) {
                    // SAFETY: rows i..i + 8 and columns j..j + 8 lie within b and out.
                    unsafe {
                        let column = |c: usize| b.data.as_ptr().add((j + c) * b.col_stride + i);
                        let rows = std::array::from_fn(|c| _mm256_loadu_ps(column(c)));
                        for (r, row) in transpose(rows).into_iter().enumerate() {
                            _mm256_storeu_ps(out.as_mut_ptr().add((i + r) * cols + j), row);
                        }
                    }
                }
            }
        }
        for i in 0..rows {
            let done = if i < blocks[0] { blocks[1] } else { 0 };
            for j in done..cols {
                out[i * cols + j] = b.at(i, j);
            }
        }
        Cow::Owned(out)
    }

    /// The 8 × 8 matrix of rows `r` transposed.
    #[target_feature(enable = "avx2,fma")]
    fn transpose(r: [__m256; 8]) -> [__m256; 8] {
        let pairs = |a, b| (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
        let (t0, t1) = pairs(r[0], r[1]);
        let (t2, t3) = pairs(r[2], r[3]);
        let (t4, t5) = pairs(r[4], r[5]);
        let (t6, t7) = pairs(r[6], r[7]);
        let quads = |a, b| {
            (
                _mm256_shuffle_ps::<0x44>(a, b),
                _mm256_shuffle_ps::<0xEE>(a, b),
            )
        };
        let (s0, s1) = quads(t0, t2);
        let (s2, s3) = quads(t1, t3);
        let (s4, s5) = quads(t4, t6);
        let (s6, s7) = quads(t5, t7);
        let halves = |a, b| {
            (
                _mm256_permute2f128_ps::<0x20>(a, b),
                _mm256_permute2f128_ps::<0x31>(a, b),
            )
        };
        let (o0, o4) = halves(s0, s4);
        let (o1, o5) = halves(s1, s5);
        let (o2, o6) = halves(s2, s6);
        let (o3, o7) = halves(s3, s7);
        [o0, o1, o2, o3, o4, o5, o6, o7]
    }

    /// The mask of the first `width` (≤ 8) lanes.
    #[target_feature(enable = "avx2,fma")]
    fn lanes(width: usize) -> __m256i {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(width as i32), lane)
    }
}
