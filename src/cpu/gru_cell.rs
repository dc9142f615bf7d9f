//! GRU cell, forward and backward side by side. A gate row is [r | z | n], each H wide.
//!   r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h
//! where x_* = W_i* x + b_i* and h_* = W_h* h + b_h* (PyTorch keeps b_hn inside the r product).

use super::Real;

/// One step for B rows.
/// gates (B, 3H): x projections in, activated [r | z | n] out; hproj (B, 3H): h projections;
/// h_prev (B, H); hidden_n (B, H): h_n written for the backward pass; h_next (B, H): written.
pub fn forward<T: Real>(
    gates: &mut [T],
    hproj: &[T],
    h_prev: &[T],
    hidden_n: &mut [T],
    h_next: &mut [T],
    hidden: usize,
) {
    let h = hidden;
    for (b, row) in gates.chunks_exact_mut(3 * h).enumerate() {
        let (base, hrow) = (b * h, &hproj[b * 3 * h..(b + 1) * 3 * h]);
        for (x, &hv) in row[..2 * h].iter_mut().zip(&hrow[..2 * h]) {
            *x = *x + hv;
        }
        T::sigmoid_in_place(&mut row[..2 * h]);
        let (rz, n) = row.split_at_mut(2 * h);
        let hn = &mut hidden_n[base..base + h];
        hn.copy_from_slice(&hrow[2 * h..]);
        for j in 0..h {
            n[j] = n[j] + rz[j] * hn[j];
        }
        T::tanh_in_place(n);
        let z = &rz[h..];
        for j in 0..h {
            h_next[base + j] = n[j] + z[j] * (h_prev[base + j] - n[j]);
        }
    }
}

/// One step back for B rows.
/// gates (B, 3H): activated [r | z | n] in, d(x projections) out; hidden_grads (B, 3H): written
/// with d(h projections); hidden_n, h_prev, dh (B, H); dh_direct (B, H): written with the part of
/// dLoss/dh that bypasses W_hh (z * dh).
pub fn backward<T: Real>(
    gates: &mut [T],
    hidden_grads: &mut [T],
    hidden_n: &[T],
    h_prev: &[T],
    dh: &[T],
    dh_direct: &mut [T],
    hidden: usize,
) {
    let h = hidden;
    let one = T::one();
    for (b, row) in gates.chunks_exact_mut(3 * h).enumerate() {
        let base = b * h;
        let hrow = &mut hidden_grads[b * 3 * h..(b + 1) * 3 * h];
        let (r, rest) = row.split_at_mut(h);
        let (z, n) = rest.split_at_mut(h);
        for j in 0..h {
            let dh_j = dh[base + j];
            // backprop through h' = n + z (h - n)
            let d_n = dh_j * (one - z[j]);
            let d_z = dh_j * (h_prev[base + j] - n[j]);
            dh_direct[base + j] = dh_j * z[j];
            // backprop through n = tanh(x_n + r h_n)
            let d_npre = d_n * (one - n[j] * n[j]);
            let d_r = d_npre * hidden_n[base + j];
            hrow[2 * h + j] = d_npre * r[j];
            // backprop through the sigmoids
            let d_rpre = d_r * r[j] * (one - r[j]);
            let d_zpre = d_z * z[j] * (one - z[j]);
            hrow[j] = d_rpre;
            hrow[h + j] = d_zpre;
            r[j] = d_rpre;
            z[j] = d_zpre;
            n[j] = d_npre;
        }
    }
}
