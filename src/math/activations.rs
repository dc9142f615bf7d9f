//! f32 sigmoid and tanh that vectorise. libm's `expf` is a scalar call per element, which would
//! cost more than the recurrent matrix product itself at H=256; this exp is branch-free (Cephes'
//! polynomial, max relative error about 2 ulp) and always inlined, so the gate loops that call it
//! compile to SIMD inside the caller's runtime dispatch (`cpu::simd`).

const LOG2_E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that n * LN2_HI is exact for |n| < 2^9.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
// exp overflows f32 above this and is subnormal below the negative bound.
const EXP_MAX: f32 = 88.37;
const EXP_MIN: f32 = -87.33;

/// exp(x) for x in [EXP_MIN, EXP_MAX] (clamped outside), branch-free.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let n = (x * LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // Scale by 2^n through the exponent bits; n is in [-126, 128) after the clamp. Adding 2^23
    // puts n + 127 in the low mantissa bits, and the shift moves them into the exponent: a float
    // add and an integer shift, which vectorise, where `n as i32` (a saturating conversion)
    // compiles to a scalar convert and compare per lane.
    const ROUND_TO_INT: f32 = 8_388_608.0; // 2^23
    y * f32::from_bits((n + (ROUND_TO_INT + 127.0)).to_bits() << 23)
}

/// exp of every element, in place, vectorised (softmax in the loss).
pub fn exp_in_place(values: &mut [f32]) {
    crate::math::simd::run(ExpInPlace(values));
}

struct ExpInPlace<'a>(&'a mut [f32]);

impl crate::math::simd::Kernel for ExpInPlace<'_> {
    #[inline(always)]
    fn run(self) {
        for v in self.0.iter_mut() {
            *v = exp_f32(*v);
        }
    }
}

#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) <= 1: no overflow, no branch.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let e = exp_f32(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 libm over a dense grid, including the saturated tails.
    #[test]
    fn sigmoid_and_tanh_match_libm() {
        let grid: Vec<f32> = (-40_000..=40_000).map(|i| i as f32 * 1e-3).collect();
        let sig: Vec<f32> = grid.iter().map(|&x| sigmoid_f32(x)).collect();
        let tanh: Vec<f32> = grid.iter().map(|&x| tanh_f32(x)).collect();
        for ((&x, &s), &t) in grid.iter().zip(&sig).zip(&tanh) {
            let want_s = 1.0 / (1.0 + (-(x as f64)).exp());
            let want_t = (x as f64).tanh();
            assert!(
                (s as f64 - want_s).abs() <= 3e-7 * want_s.max(1e-30) + 1e-30,
                "sigmoid({x}) = {s}, want {want_s}"
            );
            assert!(
                (t as f64 - want_t).abs() <= 2e-7,
                "tanh({x}) = {t}, want {want_t}"
            );
        }
    }

    #[test]
    fn extremes_saturate_without_nan() {
        let inputs = [f32::MAX, -f32::MAX, 1e30, -1e30, 0.0, -0.0];
        let xs: Vec<f32> = inputs.iter().map(|&x| sigmoid_f32(x)).collect();
        let ts: Vec<f32> = inputs.iter().map(|&x| tanh_f32(x)).collect();
        assert_eq!((xs[0], xs[2]), (1.0, 1.0));
        assert!(xs[1] >= 0.0 && xs[1] < 1e-37 && xs[3] >= 0.0 && xs[3] < 1e-37);
        assert_eq!(xs[4], 0.5);
        assert_eq!(&ts[..4], &[1.0, -1.0, 1.0, -1.0]);
        assert_eq!(ts[4], 0.0);
    }
}
