//! The per-step product of a recurrence, c (M, N) = a (M, K) · w (K, N), where w (a block of
//! W_hh) is the same at every step and a (the batch's states or gate gradients) is small.
//!
//! `w` is packed once per sequence into panels of 16 columns, each K rows of 16 contiguous
//! floats, and an AVX2+FMA kernel keeps a 6x16 tile of c in twelve registers while it streams a
//! panel. A general GEMM repacks both operands at every call and picks its kernel for large
//! shapes; at M = 32 that cost it 30-50% of the time here. f64, other CPUs, and single-step
//! calls (where packing would cost as much as the product) use `matmul_serial`.

use std::any::TypeId;

use ndarray::{ArrayView2, ArrayViewMut2, s};

use crate::Real;
use crate::math::matmul::matmul_serial;

/// Columns per packed panel: two AVX registers of f32.
const PANEL: usize = 16;
/// Rows of c one kernel call keeps in registers.
const TILE_ROWS: usize = 6;

/// The right operand of a per-step product, prepared for many steps.
pub struct StepWeights<'w, T> {
    /// (K, N) as given, for the fallback.
    plain: ArrayView2<'w, T>,
    /// ceil(N / 16) panels of (K, 16), zero-padded; present when the f32 kernel runs.
    packed: Option<Vec<f32>>,
}

impl<'w, T: Real> StepWeights<'w, T> {
    /// w (K, N), used for `steps` products.
    pub fn new(w: ArrayView2<'w, T>, steps: usize) -> Self {
        let packed = (steps > 1 && kernel_available::<T>()).then(|| {
            let (k, n) = w.dim();
            let mut packed = vec![0f32; n.div_ceil(PANEL) * k * PANEL];
            for (panel, block) in packed.chunks_exact_mut(k * PANEL).enumerate() {
                let columns = w.slice(s![.., panel * PANEL..n.min((panel + 1) * PANEL)]);
                for (row, out) in columns
                    .rows()
                    .into_iter()
                    .zip(block.chunks_exact_mut(PANEL))
                {
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o = as_f32(v);
                    }
                }
            }
            packed
        });
        StepWeights { plain: w, packed }
    }

    /// c (M, N) <- a (M, K) · w, plus the old c when `accumulate`. Rows of a and c may be
    /// strided; each row must be contiguous.
    pub fn product(&self, mut c: ArrayViewMut2<'_, T>, a: ArrayView2<'_, T>, accumulate: bool) {
        let (m, k) = a.dim();
        let n = self.plain.ncols();
        assert!(
            k == self.plain.nrows() && c.dim() == (m, n),
            "step product shapes: ({m}, {k}) x {:?} -> {:?}",
            self.plain.dim(),
            c.dim()
        );
        match &self.packed {
            #[cfg(target_arch = "x86_64")]
            Some(packed) if a.strides()[1] == 1 && c.strides()[1] == 1 && m > 0 && n > 0 => {
                let (lda, ldc) = (a.strides()[0], c.strides()[0]);
                assert!(lda >= 0 && ldc >= 0, "step product rows run forward");
                // SAFETY: T is f32 (`kernel_available`), so the pointers are f32 pointers; the
                // views' shapes and row strides bound every access; the CPU has AVX2 and FMA
                // (`kernel_available`); c is borrowed mutably, so it aliases neither input.
                unsafe {
                    x86::product(
                        c.as_mut_ptr() as *mut f32,
                        ldc as usize,
                        a.as_ptr() as *const f32,
                        lda as usize,
                        packed,
                        (m, n, k),
                        accumulate,
                    )
                }
            }
            _ => matmul_serial(c, a, self.plain, accumulate),
        }
    }
}

/// Whether the packed f32 kernel runs for T on this CPU.
fn kernel_available<T: 'static>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        TypeId::of::<T>() == TypeId::of::<f32>()
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = TypeId::of::<T>;
        false
    }
}

/// v as f32; only called where T is f32.
fn as_f32<T: Real>(v: T) -> f32 {
    v.to_f32().expect("f32 converts to f32")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{PANEL, TILE_ROWS};

    /// c (m, n), rows ldc apart <- a (m, k), rows lda apart · packed (k, n) [+ c].
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; c and a hold m rows of n and k floats at those strides; packed
    /// holds ceil(n / 16) panels of k x 16 floats; c aliases neither a nor packed.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn product(
        c: *mut f32,
        ldc: usize,
        a: *const f32,
        lda: usize,
        packed: &[f32],
        (m, n, k): (usize, usize, usize),
        accumulate: bool,
    ) {
        assert!(packed.len() >= n.div_ceil(PANEL) * k * PANEL);
        for panel in 0..n.div_ceil(PANEL) {
            let w = packed[panel * k * PANEL..].as_ptr();
            let (col, width) = (panel * PANEL, PANEL.min(n - panel * PANEL));
            let mut row = 0;
            while row < m {
                // Two tiles of at least 4 rows rather than a full one and a sliver: a tile
                // under 4 rows has too few accumulators to hide the FMA latency.
                let left = m - row;
                let rows = if left > TILE_ROWS && left < 2 * TILE_ROWS {
                    left.div_ceil(2)
                } else {
                    TILE_ROWS.min(left)
                };
                // SAFETY: rows row..row+rows exist in a and c; the caller vouches for the rest.
                unsafe {
                    let (a, c) = (a.add(row * lda), c.add(row * ldc + col));
                    let tile = Tile {
                        a,
                        lda,
                        w,
                        k,
                        c,
                        ldc,
                        width,
                        accumulate,
                    };
                    match rows {
                        6 => tile.run::<6>(),
                        5 => tile.run::<5>(),
                        4 => tile.run::<4>(),
                        3 => tile.run::<3>(),
                        2 => tile.run::<2>(),
                        _ => tile.run::<1>(),
                    }
                }
                row += rows;
            }
        }
    }

    /// R rows of a against one panel, into R rows of `width` <= 16 columns of c.
    struct Tile {
        a: *const f32,
        lda: usize,
        w: *const f32,
        k: usize,
        c: *mut f32,
        ldc: usize,
        width: usize,
        accumulate: bool,
    }

    impl Tile {
        /// # Safety
        /// As `product`, for this tile's rows and panel.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn run<const R: usize>(self) {
            let Tile {
                a,
                lda,
                w,
                k,
                c,
                ldc,
                width,
                accumulate,
            } = self;
            // SAFETY: every pointer stays inside the rows, panel and columns the caller owns.
            unsafe {
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                for p in 0..k {
                    let w0 = _mm256_loadu_ps(w.add(p * PANEL));
                    let w1 = _mm256_loadu_ps(w.add(p * PANEL + 8));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = _mm256_broadcast_ss(&*a.add(r * lda + p));
                        acc[0] = _mm256_fmadd_ps(x, w0, acc[0]);
                        acc[1] = _mm256_fmadd_ps(x, w1, acc[1]);
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    let out = c.add(r * ldc);
                    if width == PANEL {
                        for (half, &v) in acc.iter().enumerate() {
                            let out = out.add(8 * half);
                            let v = if accumulate {
                                _mm256_add_ps(v, _mm256_loadu_ps(out))
                            } else {
                                v
                            };
                            _mm256_storeu_ps(out, v);
                        }
                    } else {
                        let mut lanes = [0f32; PANEL];
                        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
                        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[1]);
                        for (j, &v) in lanes[..width].iter().enumerate() {
                            let out = out.add(j);
                            *out = if accumulate { *out + v } else { v };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Every tile height, a ragged last panel, strided rows, with and without accumulation,
    /// against a product summed in f64.
    #[test]
    fn packed_product_matches_a_naive_product() {
        for &(m, k, n) in &[(1, 5, 3), (7, 19, 37), (32, 64, 48), (13, 256, 130)] {
            let a = Array2::from_shape_fn((m, k + 3), |(i, j)| {
                ((i * 31 + j * 7) % 23) as f32 * 0.1 - 1.1
            });
            let a = a.slice(s![.., ..k]);
            let w =
                Array2::from_shape_fn((k, n), |(i, j)| ((i * 13 + j * 5) % 17) as f32 * 0.07 - 0.5);
            let weights = StepWeights::new(w.view(), 2);
            assert_eq!(weights.packed.is_some(), kernel_available::<f32>());
            for accumulate in [false, true] {
                let mut c = Array2::from_shape_fn((m, n + 2), |(i, j)| (i + j) as f32 * 0.01);
                let before = c.clone();
                weights.product(c.slice_mut(s![.., ..n]), a, accumulate);
                for i in 0..m {
                    for j in 0..n + 2 {
                        let mut want = if accumulate || j >= n {
                            before[[i, j]] as f64
                        } else {
                            0.0
                        };
                        if j < n {
                            want += (0..k)
                                .map(|p| a[[i, p]] as f64 * w[[p, j]] as f64)
                                .sum::<f64>();
                        }
                        assert!(
                            (c[[i, j]] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "m={m} k={k} n={n} acc={accumulate}: c[{i},{j}] = {}, want {want}",
                            c[[i, j]]
                        );
                    }
                }
            }
        }
    }
}
