//! Elman RNN cell, forward and backward side by side. Rows are batch entries of width H.
//!   h' = act(W_ih x + b_ih + W_hh h + b_hh)

use super::Real;

/// pre (B, H): the summed projections in, h' out.
pub fn forward<T: Real>(pre: &mut [T], relu: bool) {
    if relu {
        for v in pre.iter_mut() {
            *v = v.max(T::zero());
        }
    } else {
        T::tanh_in_place(pre);
    }
}

/// slot (B, H): h' in, d(pre-activation) out; dh (B, H): dLoss/dh'.
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
