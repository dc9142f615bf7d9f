//! Elman RNN cell, forward and backward side by side, for a run of n hidden units of one batch
//! row: every slice is those units' values.
//!   h' = act(W_ih x + b_ih + W_hh h + b_hh)

use crate::Real;

/// pre (n): the x projection in, h' out (kept for BPTT); h_proj (n): the h projection added
/// to it; h_next (n): written with h'.
#[inline(always)]
pub fn forward<T: Real>(pre: &mut [T], h_proj: &[T], h_next: &mut [T], relu: bool) {
    let n = h_next.len();
    let (pre, h_proj) = (&mut pre[..n], &h_proj[..n]);
    for b in 0..n {
        let sum = pre[b] + h_proj[b];
        pre[b] = if relu {
            sum.max(T::zero())
        } else {
            T::tanh_of(sum)
        };
        h_next[b] = pre[b];
    }
}

/// slot (n): h' in, d(pre-activation) out; dh (n): dLoss/dh'.
#[inline(always)]
pub fn backward<T: Real>(slot: &mut [T], dh: &[T], relu: bool) {
    if relu {
        // backprop through relu: pass where the output was positive
        for (s, &d) in slot.iter_mut().zip(dh) {
            *s = if *s > T::zero() { d } else { T::zero() };
        }
    } else {
        // backprop through tanh: 1 - h'^2
        for (s, &d) in slot.iter_mut().zip(dh) {
            *s = d * (T::one() - *s * *s);
        }
    }
}
