//! C = A B (+ C) on strided ndarray views, through the `gemm` crate's packed, multithreaded kernels.

use gemm::Parallelism;
use ndarray::{ArrayView2, ArrayViewMut2};

use super::Real;

/// Below this many multiply-adds a product runs on one thread: waking the pool costs more.
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// c (m, n) <- a (m, k) · b (k, n), plus the old c when `accumulate`.
///
/// Any strides work (a transposed view is just swapped strides), so callers pass `w.t()` instead
/// of copying. Shapes are the caller's invariant; a mismatch is a bug, hence the assert.
pub fn matmul<T: Real>(
    mut c: ArrayViewMut2<'_, T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "matmul shapes: ({m}, {k}) x ({k2}, {n}) -> {:?}",
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::zero());
        }
        return;
    }
    let parallelism = if m * n * k >= PARALLEL_MIN_MACS {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    let (cs, as_, bs) = (
        c.strides().to_vec(),
        a.strides().to_vec(),
        b.strides().to_vec(),
    );
    // SAFETY: the pointers and strides come from live ndarray views of exactly these shapes, and
    // `c` is borrowed mutably so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            cs[1],
            cs[0],
            accumulate,
            a.as_ptr(),
            as_[1],
            as_[0],
            b.as_ptr(),
            bs[1],
            bs[0],
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Scratch for `matmul_batch_rows`, kept across the steps of a sequence.
#[derive(Debug)]
pub struct TransposeScratch<T> {
    /// (k, m): a transposed
    a_t: ndarray::Array2<T>,
    /// (n, m): the product transposed
    c_t: ndarray::Array2<T>,
}

impl<T: Real> TransposeScratch<T> {
    /// For products c (m, n) = a (m, k) · b (k, n).
    pub fn new(m: usize, k: usize, n: usize) -> Self {
        TransposeScratch {
            a_t: ndarray::Array2::zeros((k, m)),
            c_t: ndarray::Array2::zeros((n, m)),
        }
    }
}

/// c (m, n) <- a (m, k) · b (k, n) (+ the old c), for a small m (the batch of one time step).
///
/// Computed as c^T = b^T a^T with both a^T and c^T contiguous: the GEMM kernels then stream the
/// long n dimension through their row tiles, which measured 30-50% faster at m=32, n=1024,
/// k=256 than the direct product, more than the two small transposes cost.
pub fn matmul_batch_rows<T: Real>(
    mut c: ArrayViewMut2<'_, T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    accumulate: bool,
    scratch: &mut TransposeScratch<T>,
) {
    match (a.as_slice(), scratch.a_t.as_slice_mut()) {
        (Some(src), Some(dst)) => transpose(src, dst, a.nrows(), a.ncols(), |d, s| *d = s),
        _ => scratch.a_t.assign(&a.t()),
    }
    matmul(scratch.c_t.view_mut(), b.t(), scratch.a_t.view(), false);
    let (rows, cols) = c.dim();
    match (scratch.c_t.as_slice(), c.as_slice_mut()) {
        (Some(src), Some(dst)) if accumulate => transpose(src, dst, cols, rows, |d, s| *d = *d + s),
        (Some(src), Some(dst)) => transpose(src, dst, cols, rows, |d, s| *d = s),
        _ if accumulate => c.zip_mut_with(&scratch.c_t.t(), |x, &y| *x = *x + y),
        _ => c.assign(&scratch.c_t.t()),
    }
}

/// dst (cols, rows) <- f(dst, src (rows, cols)^T), both contiguous. One of the two dimensions
/// is the batch (small): walking in the order that puts the stride on that side keeps the
/// strided accesses a few cache lines apart (a 4 KiB stride would thrash L1).
fn transpose<T: Copy>(src: &[T], dst: &mut [T], rows: usize, cols: usize, f: impl Fn(&mut T, T)) {
    debug_assert!(src.len() == rows * cols && dst.len() == rows * cols);
    if rows <= cols {
        // src in order; writes stride `rows`
        for (r, src_row) in src.chunks_exact(cols).enumerate() {
            for (c, &v) in src_row.iter().enumerate() {
                f(&mut dst[c * rows + r], v);
            }
        }
    } else {
        // dst in order; reads stride `cols`
        for (c, dst_row) in dst.chunks_exact_mut(rows).enumerate() {
            for (d, &v) in dst_row.iter_mut().zip(src[c..].iter().step_by(cols)) {
                f(d, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn batch_rows_product_equals_the_direct_one() {
        let a = Array2::from_shape_fn((5, 37), |(i, j)| ((i * 37 + j) % 11) as f64 - 5.0);
        let w = Array2::from_shape_fn((70, 37), |(i, j)| ((i + 3 * j) % 13) as f64 * 0.5);
        let mut direct = Array2::from_elem((5, 70), 2.0);
        matmul(direct.view_mut(), a.view(), w.t(), true);
        let mut via = Array2::from_elem((5, 70), 2.0);
        let mut scratch = TransposeScratch::new(5, 37, 70);
        matmul_batch_rows(via.view_mut(), a.view(), w.t(), true, &mut scratch);
        assert_eq!(via, direct);
        matmul_batch_rows(via.view_mut(), a.view(), w.t(), false, &mut scratch);
        matmul(direct.view_mut(), a.view(), w.t(), false);
        assert_eq!(via, direct);
    }

    #[test]
    fn matches_naive_product_with_transposes_and_accumulation() {
        let a = Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f64 * 0.1 - 1.0);
        let bt = Array2::from_shape_fn((3, 5), |(i, j)| ((i + 2 * j) % 7) as f64 - 3.0);
        let mut c = Array2::from_elem((7, 3), 1.0);
        matmul(c.view_mut(), a.view(), bt.t(), true);
        for i in 0..7 {
            for j in 0..3 {
                let want: f64 = 1.0 + (0..5).map(|p| a[[i, p]] * bt[[j, p]]).sum::<f64>();
                assert!(
                    (c[[i, j]] - want).abs() < 1e-12,
                    "c[{i},{j}] = {}, want {want}",
                    c[[i, j]]
                );
            }
        }
    }
}
