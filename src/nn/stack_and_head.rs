//! The end of a training step the stack-plus-head models share: BPTT from the head's gradient,
//! then one clipped optimizer step over the stack's parameters and the head's together.

use super::Linear;
use super::linear::LinearGrads;
use crate::error::Result;
use crate::model::{OutputGrads, Rnn, Tape};
use crate::optim::{Optimizer, clip_and_step};

/// BPTT through `tape` from `upstream`, then one step of `optimizer` over every parameter of
/// `rnn` and `head` (gradients clipped to the global L2 norm `clip` when given).
pub(super) fn backward_and_step(
    rnn: &mut Rnn<f32>,
    head: &mut Linear,
    tape: Tape<f32>,
    upstream: OutputGrads<'_, f32>,
    mut head_grads: LinearGrads,
    optimizer: &mut impl Optimizer,
    clip: Option<f32>,
) -> Result<()> {
    let mut grads = rnn.backward(tape, upstream, false)?;
    let mut grad_slices = grads.params.slices_mut();
    grad_slices.extend(head_grads.slices_mut());
    let mut params = rnn.params_mut().slices_mut();
    params.extend(head.slices_mut());
    clip_and_step(optimizer, params, grad_slices, clip);
    Ok(())
}
