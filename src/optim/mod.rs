//! Optimizers and gradient clipping over a model's parameters, as flat f32 slices in a fixed
//! order (the order of `named_parameters()`), with PyTorch's update rules.

mod adam;
mod clip;
mod sgd;

pub use adam::{Adam, AdamCoefficients};
pub use clip::{clip_factor, clip_grad_norm, clip_grad_value, scale_grads, sum_of_squares};
pub use sgd::Sgd;

/// One optimizer step over every parameter with its gradient.
pub trait Optimizer {
    /// `params[i]` is updated from `grads[i]`; the lists keep their order from step to step.
    fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]]);

    /// The learning rate, for schedules.
    fn set_lr(&mut self, lr: f32);
}

/// One training update: clips `grads` to a global L2 norm of `clip` (when given), then steps
/// `optimizer`. Returns the norm before clipping (when clipping).
pub fn clip_and_step(
    optimizer: &mut impl Optimizer,
    mut params: Vec<&mut [f32]>,
    mut grads: Vec<&mut [f32]>,
    clip: Option<f32>,
) -> Option<f32> {
    let norm = clip.map(|max| clip_grad_norm(&mut grads, max));
    let grads: Vec<&[f32]> = grads.into_iter().map(|g| &*g).collect();
    optimizer.step(&mut params, &grads);
    norm
}
