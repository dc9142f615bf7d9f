//! LSTM cell, forward and backward side by side, for a run of n hidden units of one batch
//! row: every slice is those units' values (one run of the batch-major gate and state buffers).
//!   i, f, o = σ(.), g = tanh(.), c' = f c + i g, h' = o tanh(c')
//!
//! Inlined into the caller's SIMD dispatch, so the loops over units compile to vector code.

use crate::Real;

/// One step of a run of units.
/// [i, f, g, o] (n each): x projections in, activated gates out (kept for BPTT);
/// [h_i, h_f, h_g, h_o] (n each): the h projections added to them; c_prev (n);
/// c_next, tanh_c, h_next (n): written.
#[inline(always)]
pub fn forward<T: Real>(
    [i, f, g, o]: [&mut [T]; 4],
    [h_i, h_f, h_g, h_o]: [&[T]; 4],
    c_prev: &[T],
    c_next: &mut [T],
    tanh_c: &mut [T],
    h_next: &mut [T],
) {
    let n = h_next.len();
    let (i, f, g, o) = (&mut i[..n], &mut f[..n], &mut g[..n], &mut o[..n]);
    let (h_i, h_f, h_g, h_o) = (&h_i[..n], &h_f[..n], &h_g[..n], &h_o[..n]);
    let (c_prev, c_next, tanh_c) = (&c_prev[..n], &mut c_next[..n], &mut tanh_c[..n]);
    for b in 0..n {
        let (iv, fv) = (T::sigmoid_of(i[b] + h_i[b]), T::sigmoid_of(f[b] + h_f[b]));
        let (gv, ov) = (T::tanh_of(g[b] + h_g[b]), T::sigmoid_of(o[b] + h_o[b]));
        let c = fv * c_prev[b] + iv * gv;
        let tc = T::tanh_of(c);
        (i[b], f[b], g[b], o[b]) = (iv, fv, gv, ov);
        (c_next[b], tanh_c[b], h_next[b]) = (c, tc, ov * tc);
    }
}

/// One step back for a run of units.
/// [i, f, g, o] (n each): activated gates in, d(pre-activation) out; tanh_c, c_prev (n) from
/// the forward pass; dh (n): dLoss/dh'; dc (n): dLoss/dc' in, dLoss/dc out.
#[inline(always)]
pub fn backward<T: Real>(
    [i, f, g, o]: [&mut [T]; 4],
    tanh_c: &[T],
    c_prev: &[T],
    dh: &[T],
    dc: &mut [T],
) {
    let n = dc.len();
    let (i, f, g, o) = (&mut i[..n], &mut f[..n], &mut g[..n], &mut o[..n]);
    let (tanh_c, c_prev, dh) = (&tanh_c[..n], &c_prev[..n], &dh[..n]);
    let one = T::one();
    for b in 0..n {
        let (tc, dh_b) = (tanh_c[b], dh[b]);
        // backprop through h' = o tanh(c'), then c' = f c + i g
        let dc_b = dc[b] + dh_b * o[b] * (one - tc * tc);
        let d_o = dh_b * tc;
        let d_i = dc_b * g[b];
        let d_g = dc_b * i[b];
        let d_f = dc_b * c_prev[b];
        dc[b] = dc_b * f[b];
        // backprop through the gate nonlinearities
        i[b] = d_i * i[b] * (one - i[b]);
        f[b] = d_f * f[b] * (one - f[b]);
        g[b] = d_g * (one - g[b] * g[b]);
        o[b] = d_o * o[b] * (one - o[b]);
    }
}
