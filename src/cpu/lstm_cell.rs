//! LSTM cell, forward and backward side by side. A gate row is [i | f | g | o], each H wide.
//!   i, f, o = σ(.), g = tanh(.), c' = f c + i g, h' = o tanh(c')

use super::Real;

/// One step for B rows.
/// gates (B, 4H): pre-activations in, activated gates out (kept for the backward pass);
/// c_prev (B, H); c_next, tanh_c, h_next (B, H): written.
pub fn forward<T: Real>(
    gates: &mut [T],
    c_prev: &[T],
    c_next: &mut [T],
    tanh_c: &mut [T],
    h_next: &mut [T],
    hidden: usize,
) {
    let h = hidden;
    for (b, row) in gates.chunks_exact_mut(4 * h).enumerate() {
        let span = b * h..(b + 1) * h;
        T::sigmoid_in_place(&mut row[..2 * h]);
        T::tanh_in_place(&mut row[2 * h..3 * h]);
        T::sigmoid_in_place(&mut row[3 * h..]);
        let (i, rest) = row.split_at(h);
        let (f, rest) = rest.split_at(h);
        let (g, o) = rest.split_at(h);
        let c_new = &mut c_next[span.clone()];
        for j in 0..h {
            c_new[j] = f[j] * c_prev[span.start + j] + i[j] * g[j];
        }
        let tc = &mut tanh_c[span.clone()];
        T::tanh_into(c_new, tc);
        let h_new = &mut h_next[span];
        for j in 0..h {
            h_new[j] = o[j] * tc[j];
        }
    }
}

/// One step back for B rows.
/// gates (B, 4H): activated gates in, d(pre-activation) out; tanh_c, c_prev (B, H) from the
/// forward pass; dh (B, H): dLoss/dh'; dc (B, H): dLoss/dc' in, dLoss/dc out.
pub fn backward<T: Real>(
    gates: &mut [T],
    tanh_c: &[T],
    c_prev: &[T],
    dh: &[T],
    dc: &mut [T],
    hidden: usize,
) {
    let h = hidden;
    let one = T::one();
    for (b, row) in gates.chunks_exact_mut(4 * h).enumerate() {
        let base = b * h;
        let (i, rest) = row.split_at_mut(h);
        let (f, rest) = rest.split_at_mut(h);
        let (g, o) = rest.split_at_mut(h);
        for j in 0..h {
            let (tc, dh_j) = (tanh_c[base + j], dh[base + j]);
            // backprop through h' = o tanh(c'), then c' = f c + i g
            let dc_j = dc[base + j] + dh_j * o[j] * (one - tc * tc);
            let d_o = dh_j * tc;
            let d_i = dc_j * g[j];
            let d_g = dc_j * i[j];
            let d_f = dc_j * c_prev[base + j];
            dc[base + j] = dc_j * f[j];
            // backprop through the gate nonlinearities
            i[j] = d_i * i[j] * (one - i[j]);
            f[j] = d_f * f[j] * (one - f[j]);
            g[j] = d_g * (one - g[j] * g[j]);
            o[j] = d_o * o[j] * (one - o[j]);
        }
    }
}
