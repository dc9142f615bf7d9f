//! GRU cell, forward and backward side by side, for a run of n hidden units of one batch
//! row: every slice is those units' values.
//!   r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h
//! where x_* = W_i* x + b_i* and h_* = W_h* h + b_h* (PyTorch keeps b_hn inside the r product).

use crate::Real;

/// One step of a run of units.
/// [r, z, n] (n each): x projections in, activated gates out; [h_r, h_z, h_n] (n each): the
/// unit's h projections; h_prev (n); hidden_n (n): h_n kept for BPTT; h_next (n): written.
#[inline(always)]
pub fn forward<T: Real>(
    [r, z, n]: [&mut [T]; 3],
    [h_r, h_z, h_n]: [&[T]; 3],
    h_prev: &[T],
    hidden_n: &mut [T],
    h_next: &mut [T],
) {
    let len = h_next.len();
    let (r, z, n) = (&mut r[..len], &mut z[..len], &mut n[..len]);
    let (h_r, h_z, h_n, h_prev) = (&h_r[..len], &h_z[..len], &h_n[..len], &h_prev[..len]);
    let hidden_n = &mut hidden_n[..len];
    for b in 0..len {
        let rv = T::sigmoid_of(r[b] + h_r[b]);
        let zv = T::sigmoid_of(z[b] + h_z[b]);
        let nv = T::tanh_of(n[b] + rv * h_n[b]);
        (r[b], z[b], n[b], hidden_n[b]) = (rv, zv, nv, h_n[b]);
        h_next[b] = nv + zv * (h_prev[b] - nv);
    }
}

/// One step back for a run of units.
/// [r, z, n] (n each): activated gates in, d(x projections) out; [g_r, g_z, g_n] (n each):
/// written with d(h projections); hidden_n, h_prev, dh (n); dh_direct (n): written with the
/// part of dLoss/dh that bypasses W_hh (z * dh).
#[inline(always)]
pub fn backward<T: Real>(
    [r, z, n]: [&mut [T]; 3],
    [g_r, g_z, g_n]: [&mut [T]; 3],
    hidden_n: &[T],
    h_prev: &[T],
    dh: &[T],
    dh_direct: &mut [T],
) {
    let len = dh_direct.len();
    let (r, z, n) = (&mut r[..len], &mut z[..len], &mut n[..len]);
    let (g_r, g_z, g_n) = (&mut g_r[..len], &mut g_z[..len], &mut g_n[..len]);
    let (hidden_n, h_prev, dh) = (&hidden_n[..len], &h_prev[..len], &dh[..len]);
    let one = T::one();
    for b in 0..len {
        let dh_b = dh[b];
        // backprop through h' = n + z (h - n)
        let d_n = dh_b * (one - z[b]);
        let d_z = dh_b * (h_prev[b] - n[b]);
        dh_direct[b] = dh_b * z[b];
        // backprop through n = tanh(x_n + r h_n)
        let d_npre = d_n * (one - n[b] * n[b]);
        let d_r = d_npre * hidden_n[b];
        g_n[b] = d_npre * r[b];
        // backprop through the sigmoids
        let d_rpre = d_r * r[b] * (one - r[b]);
        let d_zpre = d_z * z[b] * (one - z[b]);
        (g_r[b], g_z[b]) = (d_rpre, d_zpre);
        (r[b], z[b], n[b]) = (d_rpre, d_zpre, d_npre);
    }
}
