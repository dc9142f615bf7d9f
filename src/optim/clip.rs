//! Gradient clipping as `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`.

/// g <- min(1, max_norm / (||g|| + 1e-6)) g over all gradients together; returns ||g|| (the
/// total L2 norm before clipping).
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: f32) -> f32 {
    let total = sum_of_squares(grads).sqrt() as f32;
    if let Some(coef) = clip_factor(total, max_norm) {
        scale_grads(grads, coef);
    }
    total
}

/// The sum of squares of every gradient entry, in f64 (for a norm over several sources).
pub fn sum_of_squares(grads: &[&mut [f32]]) -> f64 {
    grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|&v| (v as f64) * (v as f64))
        .sum()
}

/// max_norm / (norm + 1e-6) when that is below 1 (the gradients must shrink), as
/// `torch.nn.utils.clip_grad_norm_`; `None` when they stay as they are.
pub fn clip_factor(norm: f32, max_norm: f32) -> Option<f32> {
    let coef = max_norm / (norm + 1e-6);
    (coef < 1.0).then_some(coef)
}

/// g <- coef g
pub fn scale_grads(grads: &mut [&mut [f32]], coef: f32) {
    for g in grads.iter_mut() {
        for v in g.iter_mut() {
            *v *= coef;
        }
    }
}

/// g <- clamp(g, -limit, limit)
pub fn clip_grad_value(grads: &mut [&mut [f32]], limit: f32) {
    for g in grads.iter_mut() {
        for v in g.iter_mut() {
            *v = v.clamp(-limit, limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_to_the_norm_and_returns_the_norm_before() {
        let (mut a, mut b) = (vec![3.0f32], vec![4.0f32]);
        let norm = clip_grad_norm(&mut [&mut a, &mut b], 1.0);
        assert_eq!(norm, 5.0);
        assert!((a[0] - 0.6).abs() < 1e-6 && (b[0] - 0.8).abs() < 1e-6);
        let mut small = vec![0.1f32];
        assert!((clip_grad_norm(&mut [&mut small], 1.0) - 0.1).abs() < 1e-7);
        assert_eq!(small, vec![0.1]);
        let mut c = vec![-3.0f32, 0.5];
        clip_grad_value(&mut [&mut c], 1.0);
        assert_eq!(c, vec![-1.0, 0.5]);
    }
}
