//! C = A B (+ C) on strided ndarray views, through the `gemm` crate's packed, multithreaded kernels.

use gemm::Parallelism;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::Real;

/// Below this many multiply-adds a product runs on one thread: waking the pool costs more.
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// c (m, n) <- a (m, k) · b (k, n), plus the old c when `accumulate`.
///
/// Any strides work (a transposed view is just swapped strides), so callers pass `w.t()` instead
/// of copying. Shapes are the caller's invariant; a mismatch is a bug, hence the assert.
pub fn matmul<T: Real>(
    c: ArrayViewMut2<'_, T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let parallel = m * b.ncols() * k >= PARALLEL_MIN_MACS;
    product(c, a, b, accumulate, parallel);
}

/// `matmul` on the calling thread alone: for threads that already split the work between them.
pub fn matmul_serial<T: Real>(
    c: ArrayViewMut2<'_, T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    accumulate: bool,
) {
    product(c, a, b, accumulate, false);
}

fn product<T: Real>(
    mut c: ArrayViewMut2<'_, T>,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    accumulate: bool,
    parallel: bool,
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
    let parallelism = if parallel {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

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
